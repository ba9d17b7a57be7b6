"""Optional hyperparameter search (Optuna, TPE) over the chosen candidate's main settings.

The study is seeded with the defaults' score, already measured during selection, so a
search can only replace the model with one that scores strictly better on the same
selection measure (validation macro-F1, or repeated cross-validation when validation is
small). Trials stop early when the next one would not fit in the time budget.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution

from training_job import kinds
from training_job.config import Hyperparameters

log = logging.getLogger(__name__)


def search_space(kind: str) -> dict[str, BaseDistribution]:
    """The kind's search space (declared in its module) as Optuna distributions."""
    return {
        name: IntDistribution(int(s.low), int(s.high), log=s.log)
        if s.integer
        else FloatDistribution(s.low, s.high, log=s.log)
        for name, s in kinds.get(kind).space.items()
    }


@dataclass(frozen=True)
class Trial:
    number: int
    params: dict[str, Any]
    macro_f1: float
    seconds: float


@dataclass(frozen=True)
class Tuning:
    kind: str
    defaults: Trial
    trials: list[Trial]
    stopped: str  # why the search ended before its trial count, or ""

    @property
    def best(self) -> Trial:
        return max([self.defaults, *self.trials], key=lambda t: t.macro_f1)

    @property
    def improved(self) -> bool:
        return self.best is not self.defaults

    @property
    def seconds(self) -> float:
        return sum(t.seconds for t in self.trials)


def tune(
    kind: str,
    hp: Hyperparameters,
    defaults_f1: float,
    defaults_seconds: float,
    train: Callable[[Hyperparameters], float],
    deadline: float | None,
) -> Tuning:
    """Up to hp.hpo_trials trials of `train` (which returns the selection macro-F1)."""
    space = search_space(kind)
    current = kinds.get(kind).option_values(hp)
    defaults = Trial(0, {name: current[name] for name in space}, defaults_f1,
                     defaults_seconds)  # fmt: skip
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=hp.seed))  # fmt: skip
    try:
        study.add_trial(optuna.trial.create_trial(
            params=defaults.params, distributions=space, value=defaults_f1))  # fmt: skip
    except ValueError:  # defaults outside the searched range: the search starts cold
        log.info("hpo %s: defaults %s are outside the search space", kind, defaults.params)
    trials: list[Trial] = []
    stopped = ""
    for number in range(1, hp.hpo_trials + 1):
        typical = max([defaults_seconds, *(t.seconds for t in trials)])
        if deadline is not None and time.monotonic() + typical > deadline:
            stopped = f"time budget: {len(trials)} of {hp.hpo_trials} trials fitted in it"
            break
        trial = study.ask(space)
        began = time.monotonic()
        f1 = train(hp.with_options(**trial.params))
        study.tell(trial, f1)
        trials.append(Trial(number, dict(trial.params), f1, time.monotonic() - began))
        log.info("hpo %s trial %d: %s -> %.4f", kind, number, trial.params, f1)
    return Tuning(kind, defaults, trials, stopped)

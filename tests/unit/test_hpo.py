"""The hyperparameter search: it finds better settings, keeps the defaults otherwise, and
stops when the time budget cannot fit another trial."""

from __future__ import annotations

import math
import time

from training_job.config import Hyperparameters
from training_job.hpo import tune


def _peak_at_100(hp: Hyperparameters) -> float:
    return 1.0 - abs(math.log10(hp.options["tfidf_c"]) - 2.0) / 10.0


def test_search_moves_towards_the_best_setting() -> None:
    hp = Hyperparameters(hpo_trials=25, options={"tfidf_c": 10.0})
    tuning = tune("tfidf", hp, _peak_at_100(hp), 0.01, _peak_at_100, deadline=None)
    assert len(tuning.trials) == 25
    assert tuning.improved
    assert abs(math.log10(tuning.best.params["tfidf_c"]) - 2.0) < 0.3


def test_defaults_are_kept_when_no_trial_beats_them() -> None:
    hp = Hyperparameters(hpo_trials=5, options={"head_c": 10.0})
    tuning = tune("head", hp, 1.0, 0.01, lambda _: 0.5, deadline=None)
    assert not tuning.improved
    assert tuning.best.params == {"head_c": 10.0}


def test_search_stops_when_the_next_trial_would_miss_the_deadline() -> None:
    def slow(hp: Hyperparameters) -> float:
        time.sleep(0.2)
        return 0.5

    hp = Hyperparameters(hpo_trials=50)
    tuning = tune("tfidf", hp, 0.4, 0.2, slow, deadline=time.monotonic() + 0.7)
    assert 1 <= len(tuning.trials) <= 3
    assert tuning.stopped.startswith(f"time budget: {len(tuning.trials)} of 50 trials")


def test_defaults_outside_the_space_start_the_search_cold() -> None:
    hp = Hyperparameters(hpo_trials=2, options={"tfidf_c": 1e6})
    tuning = tune("tfidf", hp, 0.9, 0.01, lambda _: 0.95, deadline=None)
    assert tuning.improved
    assert len(tuning.trials) == 2

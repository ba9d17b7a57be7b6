"""Candidate models and the automatic choice between them.

The candidates are the kinds of the registry (training_job/kinds). `auto` trains every kind
suited to the data that fits the time budget, keeps the best on the selection measure
(validation macro-F1, or repeated cross-validation where validation is small: each kind
says how it is scored) and, if asked, tunes the winner. Ties go to the cheaper kind (the
registry's order).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from training_job import kinds
from training_job.config import Hyperparameters
from training_job.hpo import Tuning, tune
from training_job.kinds.base import EpochCallback, KindTrainer, SelectionData
from training_job.serving import TextClassifier
from training_job.split import Split

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Candidate:
    kind: str
    classifier: TextClassifier
    selection_f1: float
    seconds: float
    details: dict[str, float] = field(default_factory=dict)
    out_of_fold: np.ndarray | None = None  # see kinds.base.Fitted


@dataclass(frozen=True)
class Selection:
    winner: Candidate
    candidates: list[Candidate]
    skipped: dict[str, str]
    tuning: Tuning | None = None


def plan(hp: Hyperparameters, split: Split) -> tuple[list[str], dict[str, str]]:
    """The kinds to train, and why any kind is skipped (before the time-budget check)."""
    if hp.mode not in kinds.MODES:
        raise ValueError(f"mode must be one of {', '.join(kinds.MODES)}, got {hp.mode!r}")
    if hp.mode != "auto":
        return [hp.mode], {}
    planned: list[str] = []
    skipped: dict[str, str] = {}
    for kind in kinds.REGISTRY:
        reason = kind.unsuited(hp, split)
        if reason is None:
            planned.append(kind.name)
        else:
            skipped[kind.name] = reason
    return planned, skipped


class CandidateTrainer:
    """Trains any kind at given hyperparameters; each kind's trainer is prepared once."""

    def __init__(self, data: SelectionData) -> None:
        self.data = data
        self._trainers: dict[str, KindTrainer] = {}

    def trainer(self, kind: str) -> KindTrainer:
        if kind not in self._trainers:
            self._trainers[kind] = kinds.get(kind).trainer(self.data)
        return self._trainers[kind]

    def train(self, kind: str, hp: Hyperparameters) -> Candidate:
        began = time.monotonic()
        fitted = self.trainer(kind).fit(hp)
        seconds = time.monotonic() - began
        return Candidate(kind, fitted.classifier, fitted.selection_f1, seconds, fitted.details,
                         fitted.out_of_fold)  # fmt: skip


def select_model(
    hp: Hyperparameters, labels: list[str], split: Split, on_epoch: EpochCallback,
    started: float,
) -> Selection:  # fmt: skip
    """Train the planned candidates, keep the best on the selection measure, then tune it
    if asked."""
    planned, skipped = plan(hp, split)
    data = SelectionData(hp, labels, split, on_epoch)
    trainer = CandidateTrainer(data)
    budget = hp.time_budget_seconds
    candidates: list[Candidate] = []
    for name in planned:
        if hp.mode == "auto":
            left = budget - (time.monotonic() - started) if budget > 0 else None
            reason = trainer.trainer(name).too_slow(left)
            if reason is not None:
                skipped[name] = reason
                continue
        candidate = trainer.train(name, hp)
        log.info("candidate %s: selection macro-F1 %.4f in %.1f s", name, candidate.selection_f1,
                 candidate.seconds)  # fmt: skip
        candidates.append(candidate)
    if not candidates:
        raise RuntimeError(f"no candidate could be trained: {skipped}")
    winner = choose(candidates)
    if hp.hpo_trials <= 0:
        return Selection(winner, candidates, skipped)
    deadline = started + budget if budget > 0 else None
    best = winner

    def trial(trial_hp: Hyperparameters) -> float:
        nonlocal best
        candidate = trainer.train(winner.kind, trial_hp)
        if candidate.selection_f1 > best.selection_f1:
            best = candidate  # only the best model is kept in memory
        return candidate.selection_f1

    tuning = tune(winner.kind, hp, winner.selection_f1, winner.seconds, trial, deadline)
    return Selection(best, candidates, skipped, tuning)


def choose(candidates: list[Candidate]) -> Candidate:
    """The best selection macro-F1; on a tie, the cheaper kind."""
    return max(candidates, key=lambda c: (round(c.selection_f1, 6), -kinds.NAMES.index(c.kind)))

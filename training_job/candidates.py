"""Candidate models and the automatic choice between them.

The candidates are the kinds of the registry (training_job/kinds). `auto` plans them from
their measured cost: each kind estimates the seconds of its fit from one timed step, and
the kinds are fitted cheapest first. The cheapest always runs; a later kind is dropped
before its fit when it would not fit the time budget, or when it cannot pay for itself:
no kind can add more than the best score so far leaves (1 - its macro-F1), so a kind
whose estimated minutes, at `min_gain_per_minute` points each, exceed that room is not
fitted (on all of BBC: fine-tuning, about 5 minutes, after TF-IDF at 0.98). On a few
documents that room is at least what one document of the smallest label is worth: a
head at 0.98 on 16 short messages left 2 points, dropped contrastive tuning, and lost 8.7
points to it on the test set; scored by folds, it adds what the leader's score on those
few documents cannot rule out. Scored by folds, a kind `underrated_by_folds` (contrastive
tuning, the few-shot model) is held to the time budget only, not to that rate: on BBC at 32
a label its 9-10 minutes would ask for more than the 6.1 points of room `head`'s score
left, and it added 1.4-2.1 points over `head` on 500-2,000 test articles. Kinds that
combine others (`ensemble`) come last.

The best on the selection measure (validation macro-F1, or repeated cross-validation
where validation is small) is kept and, if asked, tuned; ties go to the cheaper kind (the
registry's order). Scored by folds, a kind `underrated_by_folds` (contrastive tuning) is
kept unless another beats it by more than two standard errors of the paired out-of-fold
difference: at 8 documents a label its fold encoders learn from two thirds of a few
documents. On three corpora at 8 a label (bench/fewshot.py) it scored at least `head`'s
test macro-F1 in 9 seeds of 9, while its fold score lost to another kind's in 4. A tie
is kept too: on SMS spam (seeds 1-2) head and contrastive answered the 16 documents alike
out of fold, and contrastive scored 0 and 12 points more on the test set. It is
not kept where its out-of-fold score would not clearly beat the majority class (the bar
would refuse the run it is judged on, where the best kind would register).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from training_job import kinds
from training_job.config import Hyperparameters
from training_job.evaluate import macro_f1_interval, majority_macro_f1, predicted_labels
from training_job.hpo import Tuning, tune
from training_job.kinds.base import (
    CLEAR_STANDARD_ERRORS,
    EpochCallback,
    Fitted,
    KindTrainer,
    SelectionData,
    difference_standard_error,
    score_standard_error,
    selection_score,
)
from training_job.progress import Progress
from training_job.split import Split

log = logging.getLogger(__name__)

# A kind estimated to fit within this many seconds is always tried (while it can win).
CHEAP_SECONDS = 30.0


@dataclass(frozen=True)
class Candidate(Fitted):
    kind: str = ""
    seconds: float = 0.0


@dataclass(frozen=True)
class Selection:
    winner: Candidate
    candidates: list[Candidate]
    skipped: dict[str, str]
    reason: str = ""  # why the winner was kept
    tuning: Tuning | None = None
    estimates: dict[str, float] = field(default_factory=dict)  # planned seconds per kind


def plan(hp: Hyperparameters, split: Split) -> tuple[list[str], dict[str, str]]:
    """The kinds to train, and why any kind is skipped (before cost and budget checks).
    A kind that combines others is planned after every kind `auto` would try."""
    if hp.mode not in kinds.MODES:
        raise ValueError(f"mode must be one of {', '.join(kinds.MODES)}, got {hp.mode!r}")
    chosen = None if hp.mode == "auto" else kinds.get(hp.mode)
    if chosen is not None and not chosen.combines:
        return [hp.mode], {}
    planned: list[str] = []
    skipped: dict[str, str] = {}
    for kind in kinds.REGISTRY:
        if kind is chosen:  # asked for by name: planned after the kinds it combines
            planned.append(kind.name)
            continue
        if kind.combines and chosen is not None:
            continue
        reason = kind.unsuited(hp, split)
        if reason is None:
            planned.append(kind.name)
        else:
            skipped[kind.name] = reason
    return planned, skipped


def one_document(truth: np.ndarray) -> float:
    """About the points of the selection measure one document of the rarest label moves:
    of macro-F1 over the labels, or (multi-label) of micro-F1 over all the positives."""
    if truth.ndim == 2:
        return 100 / max(int(truth.sum()), 1)
    counts = Counter(truth.tolist()).values()
    return 100 / (len(counts) * min(counts))


def not_worth(cost: float, leader: Candidate, rate: float, truth: np.ndarray, seed: int = 0,
              fold_scored: bool = False) -> str | None:  # fmt: skip
    """Why a kind estimated at `cost` seconds is not worth fitting after `leader`, the best
    so far (None: fit it). The room it may fill is 1 - the leader's score, at least one
    document of the rarest label (`truth`: every selection row's classes), and, where the
    kinds are scored by folds on a few documents (`fold_scored`), what that score cannot
    rule out (two bootstrap standard errors: 0.885 on 32 SMS messages was 0.79 on the test
    set). A validation split's score comes from the models served: on all of BBC its two
    standard errors (1.7 points on 334 documents) let in a 4-minute fine-tune that scored
    under the TF-IDF leader (0.969 to 0.975) and took the job from about 80 s to 320 s."""
    if rate <= 0 or cost <= CHEAP_SECONDS:
        return None
    room = 100 * (1 - leader.selection_f1)
    held = leader.held_out
    if held is not None:
        rows = truth[held.rows]
        if fold_scored and len(held.logits) == len(rows):
            room += 100 * CLEAR_STANDARD_ERRORS * score_standard_error(rows, held.logits, seed)
        room = max(room, one_document(rows))
    if room >= rate * cost / 60:
        return None
    return (
        f"about {cost:.0f} s for at most {room:.1f} points of macro-F1 over {leader.kind} "
        f"({leader.selection_f1:.4f}): under min_gain_per_minute ({rate:g})"
    )


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
        return Candidate(fitted.classifier, fitted.selection_f1, fitted.details,
                         fitted.held_out, kind, seconds)  # fmt: skip


def _by_cost(planned: list[str], estimates: dict[str, float]) -> list[str]:
    """Cheapest first (ties in the registry's order); kinds that combine others last."""
    return sorted(planned, key=lambda name: (kinds.get(name).combines, estimates[name],
                                             kinds.NAMES.index(name)))  # fmt: skip


def select_model(
    hp: Hyperparameters, labels: list[str], split: Split, on_epoch: EpochCallback,
    started: float, progress: Progress | None = None,
) -> Selection:  # fmt: skip
    """Train the planned candidates, keep the best on the selection measure, then tune it
    if asked; `progress` hears of each fit."""
    progress = progress or Progress(lambda tags, metrics: None)
    planned, skipped = plan(hp, split)
    data = SelectionData(hp, labels, split, on_epoch, on_step=progress.step)
    trainer = CandidateTrainer(data)
    auto = hp.mode == "auto"
    if auto:
        progress.phase("training", "timing a sample fit of each kind")
    estimates = {name: trainer.trainer(name).cost() for name in planned} if auto else {}
    progress.plan(estimates)
    budget = hp.time_budget_seconds
    candidates: list[Candidate] = []
    order = _by_cost(planned, estimates) if auto else planned
    for index, name in enumerate(order, start=1):
        if auto and candidates:  # the cheapest kind always runs: a run ends with a model
            left = budget - (time.monotonic() - started) if budget > 0 else None
            reason = trainer.trainer(name).too_slow(left)
            held_to_rate = not (data.cross_validated and kinds.get(name).underrated_by_folds)
            if reason is None and held_to_rate:
                cost = trainer.trainer(name).cost()
                reason = not_worth(cost, choose(candidates), hp.min_gain_per_minute,
                                   data.truth, hp.seed, data.cross_validated)  # fmt: skip
            if reason is not None:
                skipped[name] = reason
                progress.skipped(name)
                log.info("candidate %s skipped: %s", name, reason)
                continue
        progress.fitting(name, f"candidate {index} of {len(order)}: {name}")
        candidate = trainer.train(name, hp)
        progress.fitted(name)
        log.info("candidate %s: selection macro-F1 %.4f in %.1f s", name, candidate.selection_f1,
                 candidate.seconds)  # fmt: skip
        candidates.append(candidate)
        data.members[name] = candidate
    if not candidates:
        raise RuntimeError(f"no candidate could be trained: {skipped}")
    winner, why = keep(candidates, data) if auto else (candidates[-1], f"mode {hp.mode}")
    log.info("kept %s: %s", winner.kind, why)
    if hp.hpo_trials <= 0 or not kinds.get(winner.kind).space:
        return Selection(winner, candidates, skipped, why, estimates=estimates)
    deadline = started + budget if budget > 0 else None
    best = winner
    progress.phase("tuning", f"up to {hp.hpo_trials} trials of {winner.kind}")
    progress.plan({f"trial {n}": winner.seconds for n in range(1, hp.hpo_trials + 1)})
    tried = 0

    def trial(trial_hp: Hyperparameters) -> float:
        nonlocal best, tried
        tried += 1
        progress.fitting(f"trial {tried}", f"trial {tried} of up to {hp.hpo_trials}: {winner.kind}")
        candidate = trainer.train(winner.kind, trial_hp)
        progress.fitted(f"trial {tried}")
        if candidate.selection_f1 > best.selection_f1:
            best = candidate  # only the best model is kept in memory
        return candidate.selection_f1

    tuning = tune(winner.kind, hp, winner.selection_f1, winner.seconds, trial, deadline)
    return Selection(best, candidates, skipped, why, tuning, estimates)


def choose(candidates: list[Candidate]) -> Candidate:
    """The best selection macro-F1; on a tie, the cheaper kind."""
    return max(candidates, key=lambda c: (round(c.selection_f1, 6), -kinds.NAMES.index(c.kind)))


def keep(candidates: list[Candidate], data: SelectionData) -> tuple[Candidate, str]:
    """The candidate `auto` keeps, and why: the best selection score, but where kinds are
    scored by folds, the best underrated kind unless that score beats it clearly."""
    best = choose(candidates)
    measure = "micro-F1" if data.multi_label else "macro-F1"
    why = f"the best selection {measure} ({best.selection_f1:.4f})"
    underrated = [c for c in candidates if kinds.get(c.kind).underrated_by_folds]
    if not data.cross_validated or not underrated or best in underrated:
        return best, why
    kept = choose(underrated)
    if best.held_out is None or kept.held_out is None or best.held_out.rows != kept.held_out.rows:
        return best, why
    truth = data.truth[best.held_out.rows]
    first, second = best.held_out.logits, kept.held_out.logits
    gain = selection_score(truth, first) - selection_score(truth, second)
    error = difference_standard_error(truth, first, second, data.hp.seed)
    margin = (
        f"{best.kind} scores {gain:.4f} over {kept.kind} out of fold on {len(truth)} documents "
        f"({CLEAR_STANDARD_ERRORS:g} standard errors: {CLEAR_STANDARD_ERRORS * error:.4f})"
    )
    if gain > CLEAR_STANDARD_ERRORS * error:  # a tie too is kept: the folds underrate it
        return best, f"{why}; {margin}"
    n_labels, seed = len(data.labels), data.hp.seed
    if not clears_majority(kept, truth, n_labels, seed) and clears_majority(
        best, truth, n_labels, seed
    ):
        return best, (
            f"{why}; {margin}, but {kept.kind}'s out-of-fold score does not clearly beat the "
            f"majority class: the run would be refused where {best.kind}'s registers"
        )
    return kept, f"{margin}: within the noise, and {kept.kind}'s fold models score under it"


def clears_majority(candidate: Candidate, truth: np.ndarray, n_labels: int, seed: int) -> bool:
    """Whether the 95% interval of its held-out macro-F1 lies above the majority-class
    baseline: the bar's own rule on the estimate a cross-validated run is judged on."""
    thresholds = candidate.classifier.config.thresholds
    predicted = predicted_labels(candidate.held_out_probabilities(), thresholds)
    low, _ = macro_f1_interval(truth, predicted, n_labels, seed)
    return low > majority_macro_f1(truth, n_labels)

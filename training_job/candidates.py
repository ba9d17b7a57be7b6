"""Candidate models and the automatic choice between them.

- `tfidf`: TF-IDF word (1-2) and character (2-5) n-grams + logistic regression.
- `head`: the base encoder frozen, mean-pooled embeddings + logistic regression.
- `finetune`: the full fine-tune (modeling.fine_tune).

Selection is by macro-F1 on the validation split; ties go to the faster model (the order of
KINDS). With fewer than SMALL_VALIDATION validation documents one document decides too
much, so the cheap candidates are then scored by stratified k-fold cross-validation on
train+validation, repeated CV_REPEATS times with different folds (measured on BBC: a single
5-fold pass picked the worse model at 8 documents a label), refitted on both, and
calibrated on their out-of-fold scores. Fine-tuning cannot be cross-validated cheaply, so
`auto` trains it only when the validation split is large enough to compare it fairly.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import FeatureUnion, Pipeline

from training_job.config import Hyperparameters
from training_job.data import Document
from training_job.hpo import Tuning, tune
from training_job.modeling import estimate_finetune_seconds, fine_tune, resolve_base_model
from training_job.serving import (
    ClassifierConfig,
    EmbeddingHeadClassifier,
    TextClassifier,
    TextEncoder,
    TfidfClassifier,
    fit_temperature,
)
from training_job.split import Split

log = logging.getLogger(__name__)

KINDS = ("tfidf", "head", "finetune")  # fastest first: ties go to the faster model
MODES = ("auto", *KINDS)
FEW_SHOT_DOCS = 20
SMALL_VALIDATION = 30
CV_REPEATS = 3
# Below SMALL_VALIDATION, fine-tuning is compared by k-fold too, while that stays cheap
# (short texts): see Hyperparameters.finetune_cv_max_seconds.
FINETUNE_CV_FOLDS = 3
EpochCallback = Callable[[int, dict[str, float]], None]


@dataclass(frozen=True)
class Candidate:
    kind: str
    classifier: TextClassifier
    selection_f1: float
    seconds: float


@dataclass(frozen=True)
class Selection:
    winner: Candidate
    candidates: list[Candidate]
    skipped: dict[str, str]
    tuning: Tuning | None = None


def _macro_f1(truth: np.ndarray, logits: np.ndarray) -> float:
    return float(f1_score(truth, logits.argmax(axis=1), average="macro", zero_division=0))


def plan(hp: Hyperparameters, split: Split) -> tuple[list[str], dict[str, str]]:
    """The kinds to train, and why any kind is skipped (before the time-budget check)."""
    if hp.mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {hp.mode!r}")
    if hp.mode != "auto":
        return [hp.mode], {}
    # The average, not the smallest label: one rare label in a large dataset must not
    # rule fine-tuning out (it won by 9.5 points on an imbalanced 200/100/40/16/8 set).
    average = len(split.train) / len(Counter(d.label for d in split.train))
    if average < FEW_SHOT_DOCS:
        reason = (
            f"labels average {average:.0f} training documents (< {FEW_SHOT_DOCS}); "
            "fine-tuning does not pay off there"
        )
        return ["tfidf", "head"], {"finetune": reason}
    return list(KINDS), {}


def compared_by_folds(hp: Hyperparameters, split: Split) -> bool:
    """Whether `auto` scores fine-tuning by k-fold: its validation set is too small to
    compare it fairly with the cross-validated cheap candidates."""
    return hp.mode == "auto" and len(split.validation) < SMALL_VALIDATION


def finetune_skip_reason(hp: Hyperparameters, labels: list[str], split: Split, left: float | None
                         ) -> str | None:  # fmt: skip
    """Why `auto` should not fine-tune here (too slow to compare, or to fit the budget)."""
    folds = compared_by_folds(hp, split)
    if not folds and left is None:
        return None
    needed = estimate_finetune_seconds(hp, labels, split) * (
        (FINETUNE_CV_FOLDS + 1) if folds else 1
    )
    if folds and needed > hp.finetune_cv_max_seconds:
        return (
            f"{len(split.validation)} validation documents (< {SMALL_VALIDATION}) cannot "
            f"compare fine-tuning fairly, and comparing it by {FINETUNE_CV_FOLDS} folds would "
            f"take about {needed:.0f} s"
        )
    if left is not None and needed > left:
        return (
            f"fine-tuning would take about {needed:.0f} s; {max(left, 0):.0f} s "
            "of the time budget are left"
        )
    return None


def _config(hp: Hyperparameters, labels: list[str], kind: str, windows: int) -> ClassifierConfig:
    return ClassifierConfig(
        id2label=dict(enumerate(labels)),
        max_length=hp.max_length,
        window_overlap=hp.window_overlap,
        max_windows=windows,
        kind=kind,
    )


def tfidf_pipeline(hp: Hyperparameters, n_docs: int) -> Pipeline:
    min_df = 2 if n_docs >= 1000 else 1  # drop hapaxes only where there is data to spare
    features = FeatureUnion(
        [
            ("word", TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=min_df,
                                     max_features=200_000)),
            ("char", TfidfVectorizer(sublinear_tf=True, analyzer="char_wb", ngram_range=(2, 5),
                                     min_df=min_df, max_features=300_000)),
        ]
    )  # fmt: skip
    head = LogisticRegression(C=hp.tfidf_c, max_iter=3000, class_weight="balanced")
    return Pipeline([("features", features), ("model", head)])


def head_model(hp: Hyperparameters) -> LogisticRegression:
    return LogisticRegression(C=hp.head_c, max_iter=3000, class_weight="balanced")


class _CheapCandidate:
    """Fit-and-score for candidates whose fit takes seconds (tfidf, head)."""

    def __init__(
        self,
        fit: Callable[[Hyperparameters, list[int]], Any],
        scores: Callable[[Any, list[int]], Any],
        build: Callable[[Any], TextClassifier],
    ) -> None:
        self.fit = fit
        self.scores = scores
        self.build = build

    def select(self, hp: Hyperparameters, train: list[int], val: list[int], truth: np.ndarray
               ) -> tuple[TextClassifier, float]:  # fmt: skip
        """The calibrated classifier and its selection macro-F1."""
        estimator, f1, logits, held_truth = self._score(hp, train, val, truth)
        classifier = self.build(estimator)
        classifier.config = replace(
            classifier.config, temperature=fit_temperature(logits, held_truth)
        )
        return classifier, f1

    def _score(self, hp: Hyperparameters, train: list[int], val: list[int], truth: np.ndarray
               ) -> tuple[Any, float, np.ndarray, np.ndarray]:  # fmt: skip
        """(estimator, selection macro-F1, calibration logits, calibration truth)."""
        if len(val) >= SMALL_VALIDATION:
            estimator = self.fit(hp, train)
            logits = self.scores(estimator, val)
            return estimator, _macro_f1(truth[val], logits), logits, truth[val]
        both = train + val
        folds = min(5, min(Counter(truth[both].tolist()).values()))
        if folds < 2:  # a label with one document: nothing to hold out
            estimator = self.fit(hp, train)
            logits = self.scores(estimator, val)
            return estimator, _macro_f1(truth[val], logits), logits, truth[val]
        scores = []
        for repeat in range(CV_REPEATS):
            out_of_fold = self._out_of_fold(hp, both, truth, folds, hp.seed + repeat)
            scores.append(_macro_f1(truth[both], out_of_fold))
            if repeat == 0:
                calibration = out_of_fold
        return self.fit(hp, both), float(np.mean(scores)), calibration, truth[both]

    def _out_of_fold(self, hp: Hyperparameters, rows: list[int], truth: np.ndarray, folds: int,
                     seed: int) -> np.ndarray:  # fmt: skip
        out_of_fold = np.zeros((len(rows), int(truth.max()) + 1))
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        for fit_rows, held_rows in splitter.split(np.zeros(len(rows)), truth[rows]):
            fold = self.fit(hp, [rows[i] for i in fit_rows])
            out_of_fold[held_rows] = self.scores(fold, [rows[i] for i in held_rows])
        return out_of_fold


def _cheap(
    kind: str, hp: Hyperparameters, labels: list[str], docs: list[Document], truth: np.ndarray
) -> _CheapCandidate:
    texts = [d.text for d in docs]
    if kind == "tfidf":
        config = _config(hp, labels, "tfidf", hp.max_windows)
        return _CheapCandidate(
            lambda h, rows: tfidf_pipeline(h, len(rows)).fit([texts[i] for i in rows], truth[rows]),
            lambda est, rows: est.predict_log_proba([texts[i] for i in rows]),
            lambda est: TfidfClassifier(est, config),
        )
    config = _config(hp, labels, "head", hp.head_max_windows)
    encoder = TextEncoder.load(resolve_base_model(hp.base_model), config)
    embeddings = encoder.embed(texts)  # once for every split, fold and trial
    return _CheapCandidate(
        lambda h, rows: head_model(h).fit(embeddings[rows], truth[rows]),
        lambda est, rows: est.predict_log_proba(embeddings[rows]),
        lambda est: EmbeddingHeadClassifier(encoder, est, config),
    )


class CandidateTrainer:
    """Trains one kind at given hyperparameters; what is costly to prepare is prepared once."""

    def __init__(self, labels: list[str], split: Split, on_epoch: EpochCallback) -> None:
        self.labels = labels
        self.split = split
        self.on_epoch = on_epoch
        self.docs = split.train + split.validation
        self.truth = np.array([labels.index(d.label) for d in self.docs])
        self.train_rows = list(range(len(split.train)))
        self.val_rows = list(range(len(split.train), len(self.docs)))
        self._cheap: dict[str, _CheapCandidate] = {}

    def train(self, kind: str, hp: Hyperparameters) -> Candidate:
        began = time.monotonic()
        classifier: TextClassifier
        if kind == "finetune":
            outcome = fine_tune(hp, self.labels, self.split, self.on_epoch)
            classifier, f1 = outcome.classifier, outcome.val_f1
            if compared_by_folds(hp, self.split):
                f1 = self._finetune_by_folds(hp, f1)
        else:
            if kind not in self._cheap:
                self._cheap[kind] = _cheap(kind, hp, self.labels, self.docs, self.truth)
            classifier, f1 = self._cheap[kind].select(
                hp, self.train_rows, self.val_rows, self.truth
            )
        return Candidate(kind, classifier, f1, time.monotonic() - began)

    def _finetune_by_folds(self, hp: Hyperparameters, val_f1: float) -> float:
        """Mean held-out macro-F1 of fine-tuning over stratified folds of train+validation."""
        folds = min(FINETUNE_CV_FOLDS, min(Counter(self.truth.tolist()).values()))
        if folds < 2:  # a label with one document: nothing to hold out
            return val_f1
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=hp.seed)
        scores = []
        for fit_rows, held_rows in splitter.split(np.zeros(len(self.docs)), self.truth):
            fold = Split([self.docs[i] for i in fit_rows], [self.docs[i] for i in held_rows], [])
            scores.append(fine_tune(hp, self.labels, fold, lambda e, m: None).val_f1)
        return float(np.mean(scores))


def select_model(
    hp: Hyperparameters, labels: list[str], split: Split, on_epoch: EpochCallback,
    started: float,
) -> Selection:  # fmt: skip
    """Train the planned candidates, keep the best on validation, then tune it if asked."""
    kinds, skipped = plan(hp, split)
    trainer = CandidateTrainer(labels, split, on_epoch)
    candidates: list[Candidate] = []
    for kind in [k for k in KINDS if k in kinds]:
        if kind == "finetune" and hp.mode == "auto":
            budget = hp.time_budget_seconds
            left = budget - (time.monotonic() - started) if budget > 0 else None
            reason = finetune_skip_reason(hp, labels, split, left)
            if reason is not None:
                skipped[kind] = reason
                continue
        candidate = trainer.train(kind, hp)
        log.info("candidate %s: selection macro-F1 %.4f in %.1f s", kind, candidate.selection_f1,
                 candidate.seconds)  # fmt: skip
        candidates.append(candidate)
    if not candidates:
        raise RuntimeError(f"no candidate could be trained: {skipped}")
    winner = choose(candidates)
    if hp.hpo_trials <= 0:
        return Selection(winner, candidates, skipped)
    deadline = started + hp.time_budget_seconds if hp.time_budget_seconds > 0 else None
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
    """The best selection macro-F1; on a tie, the faster kind."""
    return max(candidates, key=lambda c: (round(c.selection_f1, 6), -KINDS.index(c.kind)))

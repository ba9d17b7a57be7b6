"""Test-split evaluation: headline and per-class metrics, report JSON, confusion-matrix and
ROC / precision-recall PNGs.

Multi-label (truth a documents x labels 0/1 matrix, labels answered at their thresholds),
as Comprehend reports it and more: micro and macro precision/recall/F1, Hamming loss,
subset accuracy, label cardinality, a per-label report with support, and one 2x2 confusion
matrix per label."""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    f1_score,
    hamming_loss,
    multilabel_confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
)

from training_job.kinds.base import resampled_macro_f1


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, float]
    report: dict[str, Any]
    confusion: np.ndarray  # labels x labels; multi-label: labels x 2 x 2 ([[tn, fp], [fn, tp]])

    @property
    def multi_label(self) -> bool:
        return self.confusion.ndim == 3


def predicted_labels(probs: np.ndarray, thresholds: tuple[float, ...] = ()) -> np.ndarray:
    """The top class of each row, or (thresholds given: multi-label) its 0/1 labels."""
    if thresholds:
        return (probs >= np.asarray(thresholds)).astype(int)
    result: np.ndarray = probs.argmax(axis=1)
    return result


def metric_key(label: str) -> str:
    """MLflow metric names allow only a small character set; labels may hold anything."""
    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", label)


def expected_calibration_error(probs: np.ndarray, truth: np.ndarray, bins: int = 10) -> float:
    """Of the top label; multi-label: of every (document, label) yes/no at 0.5."""
    if truth.ndim == 2:
        confidence = np.maximum(probs, 1 - probs).ravel()
        correct = ((probs >= 0.5) == truth.astype(bool)).ravel()
    else:
        confidence = probs.max(axis=1)
        correct = probs.argmax(axis=1) == truth
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for low, high in itertools.pairwise(edges):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            ece += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(ece)


def macro_f1_interval(truth: np.ndarray, predicted: np.ndarray, n_labels: int, seed: int,
                      resamples: int = 1000) -> tuple[float, float]:  # fmt: skip
    """95% bootstrap (percentile) interval of macro-F1, resampling the documents
    (`predicted`: classes, or multi-label 0/1 rows)."""
    rng = np.random.default_rng(seed)
    chunk = 100  # resamples at a time: memory bounded on a large test set
    scores = np.concatenate([
        resampled_macro_f1(truth, predicted, rng.integers(0, len(truth), (n, len(truth))),
                           n_labels)
        for n in [chunk] * (resamples // chunk) + [resamples % chunk] if n
    ])  # fmt: skip
    low, high = np.percentile(scores, [2.5, 97.5])
    return float(low), float(high)


def difference_interval(truth: np.ndarray, first: np.ndarray, second: np.ndarray,
                        n_labels: int, seed: int, resamples: int = 1000
                        ) -> tuple[float, float, float]:  # fmt: skip
    """Macro-F1 of `first` minus that of `second` on the same documents, with its 95%
    paired bootstrap interval (both scored on each resample of the documents)."""
    rng = np.random.default_rng(seed)
    chunk = 100
    differences = np.concatenate([
        resampled_macro_f1(truth, first, rows, n_labels)
        - resampled_macro_f1(truth, second, rows, n_labels)
        for rows in (rng.integers(0, len(truth), (n, len(truth)))
                     for n in [chunk] * (resamples // chunk) + [resamples % chunk] if n)
    ])  # fmt: skip
    everything = np.arange(len(truth))[None, :]
    observed = (resampled_macro_f1(truth, first, everything, n_labels)
                - resampled_macro_f1(truth, second, everything, n_labels))[0]  # fmt: skip
    low, high = np.percentile(differences, [2.5, 97.5])
    return float(observed), float(low), float(high)


def majority_macro_f1(truth: np.ndarray, n_labels: int) -> float:
    """Macro-F1 of always answering the most common label (multi-label: the most common
    set of labels): the baseline to beat."""
    if truth.ndim == 2:
        rows, counts = np.unique(truth, axis=0, return_counts=True)
        answer = np.tile(rows[counts.argmax()], (len(truth), 1))
        return float(f1_score(truth, answer, average="macro", zero_division=0))
    share = float(np.bincount(truth, minlength=n_labels).max()) / len(truth)
    return 2 * share / (1 + share) / n_labels


def _ranking_metrics(probs: np.ndarray, truth: np.ndarray, n: int) -> dict[str, float]:
    if truth.ndim == 2:  # averaged over the labels with both answers among these documents
        both = [i for i in range(n) if 0 < truth[:, i].sum() < len(truth)]
        if not both:
            return {}
        return {
            "test_roc_auc": float(roc_auc_score(truth[:, both], probs[:, both], average="macro")),
            "test_pr_auc": float(
                average_precision_score(truth[:, both], probs[:, both], average="macro")
            ),
        }
    onehot = np.eye(n)[truth]
    if n == 2:
        return {
            "test_roc_auc": float(roc_auc_score(truth, probs[:, 1])),
            "test_pr_auc": float(average_precision_score(truth, probs[:, 1])),
        }
    return {
        "test_roc_auc": float(roc_auc_score(onehot, probs, average="macro")),
        "test_pr_auc": float(average_precision_score(onehot, probs, average="macro")),
    }


def evaluate(probs: np.ndarray, truth: np.ndarray, labels: list[str],
             thresholds: tuple[float, ...] = ()) -> Evaluation:  # fmt: skip
    """All test metrics from calibrated probabilities and true class indices (multi-label:
    0/1 rows, labels answered at `thresholds`)."""
    if truth.ndim == 2:
        return _evaluate_multi_label(probs, truth, labels, thresholds)
    n = len(labels)
    predicted = probs.argmax(axis=1)
    indices = list(range(n))
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=indices, zero_division=0
    )
    metrics: dict[str, float] = {
        "test_accuracy": float(accuracy_score(truth, predicted)),
        "test_macro_precision": float(np.mean(precision)),
        "test_macro_recall": float(np.mean(recall)),
        "test_macro_f1": float(np.mean(f1)),
        "test_ece": expected_calibration_error(probs, truth),
    }
    metrics.update(_ranking_metrics(probs, truth, n))
    per_class = _per_label(metrics, labels, (precision, recall, f1, support))
    matrix = confusion_matrix(truth, predicted, labels=indices)
    report = {
        "labels": labels,
        "per_class": per_class,
        "metrics": metrics,
        "confusion_matrix": matrix.tolist(),
    }
    return Evaluation(metrics=metrics, report=report, confusion=matrix)


def _per_label(metrics: dict[str, float], labels: list[str], scores: tuple[Any, ...]
               ) -> dict[str, dict[str, float]]:  # fmt: skip
    """Each label's precision, recall and F1 as metrics, and its row of the report."""
    precision, recall, f1, support = scores
    per_class: dict[str, dict[str, float]] = {}
    for i, label in enumerate(labels):
        key = metric_key(label)
        metrics[f"test_precision_{key}"] = float(precision[i])
        metrics[f"test_recall_{key}"] = float(recall[i])
        metrics[f"test_f1_{key}"] = float(f1[i])
        per_class[label] = {"precision": float(precision[i]), "recall": float(recall[i]),
                            "f1": float(f1[i]), "support": int(support[i])}  # fmt: skip
    return per_class


def _evaluate_multi_label(probs: np.ndarray, truth: np.ndarray, labels: list[str],
                          thresholds: tuple[float, ...]) -> Evaluation:  # fmt: skip
    predicted = predicted_labels(probs, thresholds)
    metrics: dict[str, float] = {"test_hamming_loss": float(hamming_loss(truth, predicted)),
                                 "test_subset_accuracy": float(accuracy_score(truth, predicted)),
                                 "test_label_cardinality": float(truth.sum(axis=1).mean()),
                                 "test_predicted_cardinality": float(predicted.sum(axis=1).mean()),
                                 "test_no_label_share": float((predicted.sum(axis=1) == 0).mean()),
                                 "test_ece": expected_calibration_error(probs, truth)}  # fmt: skip
    for average in ("micro", "macro"):
        p, r, f, _ = precision_recall_fscore_support(truth, predicted, average=average,
                                                     zero_division=0)  # fmt: skip
        metrics.update({f"test_{average}_precision": float(p), f"test_{average}_recall": float(r),
                        f"test_{average}_f1": float(f)})  # fmt: skip
    metrics.update(_ranking_metrics(probs, truth, len(labels)))
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, average=None, zero_division=0
    )
    matrices = multilabel_confusion_matrix(truth, predicted)
    per_class = _per_label(metrics, labels, (precision, recall, f1, support))
    for i, label in enumerate(labels):
        (tn, fp), (fn, tp) = matrices[i].tolist()
        per_class[label].update({"threshold": float(thresholds[i]), "true_positives": tp,
                                 "false_positives": fp, "false_negatives": fn,
                                 "true_negatives": tn})  # fmt: skip
    report = {
        "labels": labels,
        "multi_label": True,
        "per_class": per_class,
        "metrics": metrics,
        "label_confusion": {label: matrices[i].tolist() for i, label in enumerate(labels)},
    }
    return Evaluation(metrics=metrics, report=report, confusion=matrices)


PREDICTIONS_FILE = "test_predictions.json"  # read by functions/core/runs.py


def _named(labels: list[str], answer: np.ndarray) -> list[str]:
    """A class index, or a row of 0/1 labels, as label names."""
    if answer.ndim == 0:
        return [labels[int(answer)]]
    return [label for label, on in zip(labels, answer, strict=True) if on]


def write_predictions(keys: list[str], probs: np.ndarray, truth: np.ndarray,
                      labels: list[str], method: str, folder: Path,
                      thresholds: tuple[float, ...] = ()) -> Path:  # fmt: skip
    """Each evaluated document's true and predicted labels and every label's probability:
    what a user reads to see what the model got wrong."""
    predicted = predicted_labels(probs, thresholds)
    rows = [
        {
            "key": key,
            "true_labels": _named(labels, true),
            "predicted_labels": _named(labels, answer),
            "score": round(float(row.max()), 4),
            "scores": {label: round(float(p), 4) for label, p in zip(labels, row, strict=True)},
        }
        for key, true, answer, row in zip(keys, truth, predicted, probs, strict=True)
    ]
    path = folder / PREDICTIONS_FILE
    path.write_text(json.dumps({"estimate": method, "labels": labels, "rows": rows}))
    return path


def write_report(evaluation: Evaluation, folder: Path) -> Path:
    path = folder / "classification_report.json"
    path.write_text(json.dumps(evaluation.report, indent=2))
    return path


# What the figures are drawn on, in their titles: the test split, or out of fold.
TEST_SPLIT = "test split"


def plot_confusion(evaluation: Evaluation, labels: list[str], folder: Path,
                   measured_on: str = TEST_SPLIT) -> Path:  # fmt: skip
    if evaluation.multi_label:
        return plot_label_confusion(evaluation, labels, folder, measured_on)
    import matplotlib

    matplotlib.use("Agg")  # no display in a container
    import matplotlib.pyplot as plt

    size = max(4.0, 0.6 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(evaluation.confusion, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    peak = evaluation.confusion.max() or 1
    for (row, col), value in np.ndenumerate(evaluation.confusion):
        colour = "white" if value > peak / 2 else "black"
        ax.text(col, row, str(value), ha="center", va="center", color=colour)
    ax.set_title(f"Confusion matrix ({measured_on})")
    fig.tight_layout()
    path = folder / "confusion_matrix.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_label_confusion(evaluation: Evaluation, labels: list[str], folder: Path,
                         measured_on: str = TEST_SPLIT) -> Path:  # fmt: skip
    """Multi-label: each label's 2x2 matrix (has it / answered it) in a grid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(4, len(labels))
    rows = -(-len(labels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.8 * columns, 2.8 * rows), squeeze=False)
    for ax in axes.flat[len(labels) :]:
        ax.axis("off")
    for ax, label, matrix in zip(axes.flat, labels, evaluation.confusion, strict=False):
        ax.imshow(matrix, cmap="Blues")
        peak = matrix.max() or 1
        for (row, col), value in np.ndenumerate(matrix):
            colour = "white" if value > peak / 2 else "black"
            ax.text(col, row, str(value), ha="center", va="center", color=colour)
        ax.set_xticks([0, 1], ["no", "yes"])
        ax.set_yticks([0, 1], ["no", "yes"])
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(label, fontsize="medium")
    fig.suptitle(f"Confusion per label ({measured_on})")
    fig.tight_layout()
    path = folder / "label_confusion.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_curves(probs: np.ndarray, truth: np.ndarray, labels: list[str], folder: Path,
                measured_on: str = TEST_SPLIT) -> Path:  # fmt: skip
    """ROC and precision-recall curves, one-vs-rest per class, on the estimate's documents."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve, roc_curve

    # One above the other, about as wide as the run page shows it: side by side the text
    # was drawn at half size.
    fig, (roc_ax, pr_ax) = plt.subplots(2, 1, figsize=(6.4, 9.6))
    for i, label in enumerate(labels):
        positive = truth[:, i].astype(bool) if truth.ndim == 2 else truth == i
        if positive.all() or not positive.any():
            continue  # a curve needs both classes
        fpr, tpr, _ = roc_curve(positive, probs[:, i])
        precision, recall, _ = precision_recall_curve(positive, probs[:, i])
        roc_ax.plot(fpr, tpr, label=label)
        pr_ax.plot(recall, precision, label=label)
    roc_ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
    roc_ax.set(title=f"ROC ({measured_on})", xlabel="false positive rate",
               ylabel="true positive rate")  # fmt: skip
    pr_ax.set(title=f"Precision-recall ({measured_on})", xlabel="recall", ylabel="precision")
    for ax in (roc_ax, pr_ax):
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
    pr_ax.legend(loc="lower left", fontsize="small", ncols=2 if len(labels) > 8 else 1)
    fig.tight_layout()
    path = folder / "pr_roc_curves.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

"""Test-split evaluation: headline and per-class metrics, report JSON, confusion-matrix and
ROC / precision-recall PNGs."""

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
    precision_recall_fscore_support,
    roc_auc_score,
)


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, float]
    report: dict[str, Any]
    confusion: np.ndarray


def metric_key(label: str) -> str:
    """MLflow metric names allow only a small character set; labels may hold anything."""
    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", label)


def expected_calibration_error(probs: np.ndarray, truth: np.ndarray, bins: int = 10) -> float:
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
    """95% bootstrap (percentile) interval of macro-F1, resampling the documents."""
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(seed)
    labels = list(range(n_labels))
    scores = []
    for _ in range(resamples):
        rows = rng.integers(0, len(truth), len(truth))
        scores.append(f1_score(truth[rows], predicted[rows], labels=labels, average="macro",
                               zero_division=0))  # fmt: skip
    low, high = np.percentile(scores, [2.5, 97.5])
    return float(low), float(high)


def majority_macro_f1(truth: np.ndarray, n_labels: int) -> float:
    """Macro-F1 of always answering the most common label: the baseline to beat."""
    share = float(np.bincount(truth, minlength=n_labels).max()) / len(truth)
    return 2 * share / (1 + share) / n_labels


def _ranking_metrics(probs: np.ndarray, truth: np.ndarray, n: int) -> dict[str, float]:
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


def evaluate(probs: np.ndarray, truth: np.ndarray, labels: list[str]) -> Evaluation:
    """All test metrics from calibrated probabilities and true class indices."""
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
    per_class: dict[str, dict[str, float]] = {}
    for i, label in enumerate(labels):
        key = metric_key(label)
        metrics[f"test_precision_{key}"] = float(precision[i])
        metrics[f"test_recall_{key}"] = float(recall[i])
        metrics[f"test_f1_{key}"] = float(f1[i])
        per_class[label] = {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
    matrix = confusion_matrix(truth, predicted, labels=indices)
    report = {
        "labels": labels,
        "per_class": per_class,
        "metrics": metrics,
        "confusion_matrix": matrix.tolist(),
    }
    return Evaluation(metrics=metrics, report=report, confusion=matrix)


PREDICTIONS_FILE = "test_predictions.json"  # read by functions/core/runs.py


def write_predictions(keys: list[str], probs: np.ndarray, truth: np.ndarray,
                      labels: list[str], method: str, folder: Path) -> Path:  # fmt: skip
    """Each evaluated document's true and predicted labels and every label's probability:
    what a user reads to see what the model got wrong (labels are lists, as in multi-label)."""
    rows = [
        {
            "key": key,
            "true_labels": [labels[int(true)]],
            "predicted_labels": [labels[int(row.argmax())]],
            "score": round(float(row.max()), 4),
            "scores": {label: round(float(p), 4) for label, p in zip(labels, row, strict=True)},
        }
        for key, true, row in zip(keys, truth, probs, strict=True)
    ]
    path = folder / PREDICTIONS_FILE
    path.write_text(json.dumps({"estimate": method, "labels": labels, "rows": rows}))
    return path


def write_report(evaluation: Evaluation, folder: Path) -> Path:
    path = folder / "classification_report.json"
    path.write_text(json.dumps(evaluation.report, indent=2))
    return path


def plot_confusion(evaluation: Evaluation, labels: list[str], folder: Path) -> Path:
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
    ax.set_title("Confusion matrix (test split)")
    fig.tight_layout()
    path = folder / "confusion_matrix.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_curves(probs: np.ndarray, truth: np.ndarray, labels: list[str], folder: Path) -> Path:
    """ROC and precision-recall curves, one-vs-rest per class, on the test split."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve, roc_curve

    fig, (roc_ax, pr_ax) = plt.subplots(1, 2, figsize=(11, 4.5))
    for i, label in enumerate(labels):
        positive = truth == i
        if positive.all() or not positive.any():
            continue  # a curve needs both classes
        fpr, tpr, _ = roc_curve(positive, probs[:, i])
        precision, recall, _ = precision_recall_curve(positive, probs[:, i])
        roc_ax.plot(fpr, tpr, label=label)
        pr_ax.plot(recall, precision, label=label)
    roc_ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
    roc_ax.set(title="ROC (test split)", xlabel="false positive rate", ylabel="true positive rate")
    pr_ax.set(title="Precision-recall (test split)", xlabel="recall", ylabel="precision")
    for ax in (roc_ax, pr_ax):
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
    pr_ax.legend(loc="lower left", fontsize="small")
    fig.tight_layout()
    path = folder / "pr_roc_curves.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

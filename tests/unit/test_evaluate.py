"""Test-split metrics, report and confusion-matrix image."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score

from training_job.evaluate import (
    evaluate,
    majority_macro_f1,
    plot_confusion,
    write_predictions,
    write_report,
)
from training_job.kinds.base import resampled_macro_f1


def test_multiclass_metrics_report_and_png(tmp_path: Path) -> None:
    labels = ["sport", "tech & science", "politics"]
    truth = np.array([0, 0, 1, 1, 2, 2])
    probs = np.array(
        [[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1],
         [0.5, 0.4, 0.1], [0.1, 0.1, 0.8], [0.2, 0.2, 0.6]]
    )  # fmt: skip
    evaluation = evaluate(probs, truth, labels)
    metrics = evaluation.metrics
    assert metrics["test_accuracy"] == pytest.approx(5 / 6)
    assert metrics["test_recall_tech _ science"] == pytest.approx(0.5)
    assert metrics["test_f1_sport"] == pytest.approx(0.8)
    assert 0.0 <= metrics["test_ece"] <= 1.0
    assert metrics["test_roc_auc"] > 0.8
    assert evaluation.confusion.tolist() == [[2, 0, 0], [1, 1, 0], [0, 0, 2]]
    report = json.loads(write_report(evaluation, tmp_path).read_text())
    assert report["per_class"]["politics"]["support"] == 2
    png = plot_confusion(evaluation, labels, tmp_path)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_binary_ranking_metrics_use_the_positive_class() -> None:
    truth = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.45, 0.55]])
    metrics = evaluate(probs, truth, ["neg", "pos"]).metrics
    assert metrics["test_roc_auc"] == pytest.approx(1.0)
    assert metrics["test_pr_auc"] == pytest.approx(1.0)


def test_multi_label_metrics_as_comprehend_reports_them_and_one_matrix_a_label(
    tmp_path: Path,
) -> None:
    labels = ["billing", "bug", "praise"]
    truth = np.array([[1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]])
    probs = np.array([[0.9, 0.4, 0.1], [0.2, 0.8, 0.6], [0.1, 0.2, 0.7], [0.7, 0.1, 0.2]])
    thresholds = (0.5, 0.3, 0.5)  # bug's threshold lets 0.4 through
    evaluation = evaluate(probs, truth, labels, thresholds)
    metrics = evaluation.metrics
    # predicted: {billing, bug}, {bug, praise}, {praise}, {billing}: one label too many
    assert metrics["test_subset_accuracy"] == pytest.approx(3 / 4)
    assert metrics["test_hamming_loss"] == pytest.approx(1 / 12)
    assert metrics["test_micro_precision"] == pytest.approx(5 / 6)
    assert metrics["test_micro_recall"] == pytest.approx(1.0)
    assert metrics["test_macro_f1"] == pytest.approx((1 + 1 + 2 / 3) / 3)
    assert metrics["test_label_cardinality"] == pytest.approx(5 / 4)
    assert metrics["test_predicted_cardinality"] == pytest.approx(6 / 4)
    report = json.loads(write_report(evaluation, tmp_path).read_text())
    assert report["multi_label"] is True
    assert report["per_class"]["praise"] == {
        "precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3), "support": 1,
        "threshold": 0.5, "true_positives": 1, "false_positives": 1, "false_negatives": 0,
        "true_negatives": 2,
    }  # fmt: skip
    assert report["label_confusion"]["praise"] == [[2, 1], [0, 1]]
    png = plot_confusion(evaluation, labels, tmp_path)
    assert png.name == "label_confusion.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    written = write_predictions(["a", "b", "c", "d"], probs, truth, labels, "test split",
                                tmp_path, thresholds)  # fmt: skip
    rows = json.loads(written.read_text())["rows"]
    assert rows[1]["true_labels"] == ["bug"]
    assert rows[1]["predicted_labels"] == ["bug", "praise"]


def test_the_multi_label_baseline_answers_the_commonest_set_of_labels() -> None:
    truth = np.array([[1, 0], [1, 0], [1, 0], [0, 1], [1, 1]])
    # always {first}: F1 of first = 2*4/(2*4+0+1) = 8/9; of second, 0
    assert majority_macro_f1(truth, 2) == pytest.approx(8 / 9 / 2)


@pytest.mark.parametrize("n_labels", [2, 5, 20])
@pytest.mark.parametrize("documents", [4, 30, 300])
def test_resampled_macro_f1_is_scikit_learns_for_every_resample(
    n_labels: int, documents: int
) -> None:
    # given: answers right 60% of the time, and 50 bootstrap resamples of the documents
    rng = np.random.default_rng(n_labels * documents)
    truth = rng.integers(0, n_labels, documents)
    answers = np.where(rng.random(documents) < 0.6, truth, rng.integers(0, n_labels, documents))
    rows = rng.integers(0, documents, (50, documents))
    every, present = list(range(n_labels)), None
    matrix = rng.integers(0, 2, (documents, n_labels))
    flipped = np.where(rng.random((documents, n_labels)) < 0.7, matrix, 1 - matrix)

    # then: each resample's macro-F1 is f1_score's, over every label or the present ones
    for labels, only in ((every, False), (present, True)):
        expected = [f1_score(truth[r], answers[r], labels=labels, average="macro",
                             zero_division=0) for r in rows]  # fmt: skip
        assert resampled_macro_f1(truth, answers, rows, n_labels, only) == pytest.approx(expected)
    expected = [f1_score(matrix[r], flipped[r], average="macro", zero_division=0) for r in rows]
    assert resampled_macro_f1(matrix, flipped, rows, n_labels) == pytest.approx(expected)

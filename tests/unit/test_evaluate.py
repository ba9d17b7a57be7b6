"""Test-split metrics, report and confusion-matrix image."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from training_job.evaluate import evaluate, plot_confusion, write_report


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

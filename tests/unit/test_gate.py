"""The registration bar: a point estimate on a test split, the interval on a small one."""

from __future__ import annotations

import numpy as np

from training_job.config import Hyperparameters
from training_job.job import Estimate, gate


def _estimate(cross_validated: bool) -> Estimate:
    method = "3-fold cross-validation" if cross_validated else "test split of 400 documents"
    return Estimate(np.zeros((1, 2)), np.zeros(1), method, ["a"], ["a text"], cross_validated)


def _metrics(score: float, low: float, high: float, baseline: float = 0.2) -> dict[str, float]:
    return {"test_macro_f1": score, "test_macro_f1_low": low, "test_macro_f1_high": high,
            "majority_macro_f1": baseline}  # fmt: skip


HP = Hyperparameters(labels=["a", "b"], min_macro_f1=0.7)


def test_a_test_split_estimate_under_the_bar_is_refused_by_how_much() -> None:
    passed, reason = gate(_metrics(0.69, 0.62, 0.76), HP, _estimate(cross_validated=False))
    assert not passed
    assert "is below the bar 0.7000 by 0.0100" in reason


def test_a_cross_validated_estimate_whose_interval_reaches_the_bar_passes() -> None:
    # fold models saw two thirds of 48 documents: 0.69 out of fold, 0.79 on a test set
    passed, reason = gate(_metrics(0.69, 0.58, 0.79), HP, _estimate(cross_validated=True))
    assert passed, reason
    assert "reaches the bar within its interval 0.7000" in reason


def test_a_cross_validated_estimate_wholly_under_the_bar_is_refused_saying_its_interval() -> None:
    passed, reason = gate(_metrics(0.52, 0.41, 0.63), HP, _estimate(cross_validated=True))
    assert not passed
    assert "is below the bar 0.7000 by 0.1800; its interval tops out at 0.6300" in reason


def test_any_estimate_must_clearly_beat_the_majority_class() -> None:
    passed, reason = gate(_metrics(0.8, 0.3, 0.9, baseline=0.33), HP, _estimate(True))
    assert not passed
    assert "does not clearly beat the majority-class baseline 0.3300" in reason
    assert "its interval starts at 0.3000, not above it (no bar registers it" in reason

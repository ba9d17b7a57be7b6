"""The registration bar: a point estimate on a test split, the interval on a small one."""

from __future__ import annotations

import numpy as np

from training_job.config import Hyperparameters
from training_job.job import Estimate, gate


def _estimate(cross_validated: bool, labels: int = 2, truth: np.ndarray | None = None
              ) -> Estimate:  # fmt: skip
    method = "3-fold cross-validation" if cross_validated else "test split of 400 documents"
    truth = np.zeros(1) if truth is None else truth
    return Estimate(np.zeros((len(truth), labels)), truth, method, ["a"] * len(truth),
                    ["a text"] * len(truth), cross_validated)  # fmt: skip


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
    assert "reaches the bar 0.7000 within its interval" in reason


def test_a_cross_validated_estimate_wholly_under_the_bar_is_refused_saying_its_interval() -> None:
    passed, reason = gate(_metrics(0.52, 0.41, 0.63), HP, _estimate(cross_validated=True))
    assert not passed
    assert "is below the bar 0.7000 by 0.1800; its interval tops out at 0.6300" in reason


def test_any_estimate_must_clearly_beat_the_majority_class() -> None:
    passed, reason = gate(_metrics(0.8, 0.3, 0.9, baseline=0.33), HP, _estimate(True))
    assert not passed
    assert "does not clearly beat the majority-class baseline 0.3300" in reason
    assert "its interval starts at 0.3000, not above it (no bar registers it" in reason


def test_with_no_bar_given_it_is_a_share_of_the_way_from_chance_to_one() -> None:
    # given: no min_macro_f1; the default 0.4 of the way from chance to a perfect 1
    default = Hyperparameters(labels=["a", "b"])
    # then: two labels (chance 0.5) keep 0.7
    passed, reason = gate(_metrics(0.69, 0.62, 0.76), default, _estimate(False))
    named = "the bar 0.7000 (the default: 0.40 of the way from chance, 0.5000, to 1)"
    assert not passed and f"below {named} by 0.0100" in reason
    # and: twenty labels (chance 0.05) take 0.43: 0.64 out of fold on 8 a label registers
    passed, reason = gate(_metrics(0.64, 0.57, 0.69, baseline=0.005), default,
                          _estimate(True, labels=20))  # fmt: skip
    assert passed and "meets the bar 0.4300 (the default" in reason
    # and: several labels a document: chance is their mean prevalence (here 0.25 and 0.75)
    rows = np.array([[1, 1], [0, 1], [0, 1], [0, 0]])
    passed, reason = gate(_metrics(0.7, 0.6, 0.8, baseline=0.4), default,
                          _estimate(False, truth=rows))  # fmt: skip
    assert passed and f"meets {named}" in reason

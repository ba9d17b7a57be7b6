"""`promote: if_better`: the paired comparison with the champion on the same documents."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score

from training_job.evaluate import difference_interval
from training_job.promotion import judge
from training_job.serving import ClassifierConfig, TextClassifier

LABELS = ["a", "b", "c"]
TRUTH = np.array([0, 1, 2] * 20)
TEXTS = [f"doc {i}" for i in range(len(TRUTH))]


class Answers(TextClassifier):
    """A champion answering fixed classes for TEXTS."""

    def __init__(self, answers: np.ndarray, labels: list[str] = LABELS) -> None:
        self.answers = dict(zip(TEXTS, answers, strict=True))
        self.config = ClassifierConfig(dict(enumerate(labels)), 128, 32, 2, kind="table")

    def logits(self, texts: list[str]) -> np.ndarray:
        return np.eye(len(self.config.id2label))[[self.answers[t] for t in texts]] * 5.0

    def size_bytes(self) -> int:
        return 1

    def requirements(self) -> frozenset[str]:
        return frozenset()

    def save(self, folder: Path) -> None:
        raise AssertionError("not saved")


def _probabilities(answers: np.ndarray) -> np.ndarray:
    return np.eye(3)[answers]


def test_the_difference_is_the_macro_f1_difference_with_a_paired_interval() -> None:
    rng = np.random.default_rng(0)
    first = np.where(rng.random(60) < 0.9, TRUTH, (TRUTH + 1) % 3)
    second = np.where(rng.random(60) < 0.6, TRUTH, (TRUTH + 1) % 3)
    difference, low, high = difference_interval(TRUTH, first, second, 3, seed=1)
    expected = f1_score(TRUTH, first, average="macro") - f1_score(TRUTH, second, average="macro")
    assert difference == pytest.approx(expected)
    assert low < difference < high
    assert difference_interval(TRUTH, first, first, 3, seed=1) == (0.0, 0.0, 0.0)


def test_a_clearly_better_model_is_promoted_and_an_equal_one_is_not() -> None:
    wrong = np.where(np.arange(60) % 2 == 0, TRUTH, (TRUTH + 1) % 3)  # half wrong
    champion = Answers(wrong)
    better = judge(_probabilities(TRUTH), (), TRUTH, TEXTS, LABELS, champion, "m v1", seed=0)
    assert better.promote, better.reason
    assert better.reason.startswith("promoted: macro-F1 +")
    assert better.metrics["champion_macro_f1_difference_low"] > 0
    same = judge(_probabilities(wrong), (), TRUTH, TEXTS, LABELS, champion, "m v1", seed=0)
    assert not same.promote
    assert "does not lie above 0; m v1 stays champion" in same.reason


def test_no_champion_promotes_and_a_champion_of_other_labels_is_not_compared() -> None:
    assert judge(_probabilities(TRUTH), (), TRUTH, TEXTS, LABELS, None, "m", seed=0).promote
    other = Answers(TRUTH, ["a", "b", "z"])
    refused = judge(_probabilities(TRUTH), (), TRUTH, TEXTS, LABELS, other, "m v4", seed=0)
    assert not refused.promote
    assert "m v4 answers other labels (a, b, z)" in refused.reason

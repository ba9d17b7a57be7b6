"""What to label next: the least sure documents, spread over what they say."""

from __future__ import annotations

import numpy as np

from training_job.serving import ClassifierConfig
from training_job.suggest import margins, spread

CONFIG = ClassifierConfig({0: "a", 1: "b", 2: "c"}, 128, 32, 2)


def test_margins_are_the_top_two_gap_or_the_nearest_threshold() -> None:
    probs = np.array([[0.5, 0.3, 0.2], [0.34, 0.33, 0.33], [0.9, 0.05, 0.05]])
    np.testing.assert_allclose(margins(probs, CONFIG), [0.2, 0.01, 0.85])
    multi = ClassifierConfig(CONFIG.id2label, 128, 32, 2, multi_label=True,
                             thresholds=(0.5, 0.4, 0.9))  # fmt: skip
    np.testing.assert_allclose(margins(np.array([[0.9, 0.45, 0.1], [0.1, 0.1, 0.1]]), multi),
                               [0.1, 0.6])  # fmt: skip


def test_the_least_sure_come_first_and_copies_take_one_place() -> None:
    # given: a puzzling text five times over (the least sure), two other puzzling texts,
    # and plain ones
    texts = ["refund for the crash report"] * 5 + [
        "the app freezes when I pay", "invoice shows a broken total",
        "thanks, all good", "great service", "love it"]  # fmt: skip
    margin = np.array([0.05] * 5 + [0.10, 0.15, 0.9, 0.95, 0.97])
    # when
    chosen = spread(texts, margin, 3)
    # then: one copy of the least sure, then the other two puzzling texts, not more copies
    assert chosen[0] == 0
    assert sorted(texts[i] for i in chosen) == sorted([texts[0], texts[5], texts[6]])


def test_a_sure_text_unlike_the_rest_does_not_beat_an_unsure_one() -> None:
    texts = ["alpha beta", "alpha gamma", "zeta eta theta"]
    chosen = spread(texts, np.array([0.0, 0.05, 0.99]), 2)
    assert chosen == [0, 1]  # distance is weighted by uncertainty


def test_copies_only_left_are_taken_least_sure_first_and_n_caps_at_the_texts() -> None:
    texts = ["same words"] * 3
    assert spread(texts, np.array([0.3, 0.1, 0.2]), 5) == [1, 2, 0]
    assert spread([], np.zeros(0), 3) == []

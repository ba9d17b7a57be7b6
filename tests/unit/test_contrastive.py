"""How many pairs the contrastive kind tunes on, and how they are drawn."""

from __future__ import annotations

import numpy as np
import pytest

from training_job.kinds.contrastive import pair_count, sentence_pairs


@pytest.mark.parametrize(
    ("counts", "pairs"),
    [
        ([8] * 6, 1920),  # 48 questions: SetFit's count and 20 a document agree
        ([8, 8], 640),  # 16 documents: SetFit draws 144; at least 20 + 20 a document
        ([16] * 6, 7680),  # 96 documents: SetFit's count, twice 20 a document
    ],
)
def test_pairs_follow_setfit_with_at_least_twenty_of_each_a_document(
    counts: list[int], pairs: int
) -> None:
    assert pair_count(counts, iterations=20) == pairs


def test_pairs_are_half_similar_and_every_document_is_an_anchor() -> None:
    truth = np.array([0] * 5 + [1] * 5 + [2] * 5)
    rows = list(range(15))
    pairs = sentence_pairs(truth, rows, 60, seed=0)
    assert len(pairs) == 60
    assert sum(similar for _, _, similar in pairs) == 30
    assert {a for a, _, _ in pairs} == set(rows)
    assert all((truth[a] == truth[b]) == bool(similar) for a, b, similar in pairs)
    assert all(a != b for a, b, _ in pairs)


def test_multi_label_pairs_are_as_similar_as_their_labels_overlap() -> None:
    # documents with one or two of three labels (a 0/1 row each)
    truth = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 1, 1], [0, 0, 1], [1, 0, 1]] * 2)
    rows = list(range(len(truth)))
    pairs = sentence_pairs(truth, rows, 48, seed=1)
    assert {a for a, _, _ in pairs} == set(rows)
    for a, b, similar in pairs:
        both, either = (truth[a] & truth[b]).sum(), (truth[a] | truth[b]).sum()
        assert similar == pytest.approx(both / either)  # the Jaccard index of their labels
    assert {similar for _, _, similar in pairs} >= {0.0, 0.5, 1.0}

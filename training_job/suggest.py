"""What to label next: the documents a model is least sure of, spread over what they say.

Uncertainty is the margin between a document's two best scores (multi-label: its label
closest to its threshold), so 0 is a coin toss. The `CANDIDATES` x n least sure are then
chosen from greedily, k-center style: the next one is the farthest (cosine distance of
TF-IDF vectors, which every kind can afford) from those already chosen, weighted by its
uncertainty, so ten near-copies of one puzzling e-mail take one place, not ten.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from training_job.serving import ClassifierConfig

# The least sure this many times n are read again and spread.
CANDIDATES = 5


def margins(probabilities: np.ndarray, config: ClassifierConfig) -> np.ndarray:
    """Each row's certainty: top-two probability gap, or (multi-label) the smallest
    distance of a label's probability to its threshold, doubled to the same 0-1 scale."""
    if config.multi_label:
        gaps = np.abs(probabilities - np.asarray(config.thresholds)[None, :])
        result: np.ndarray = np.clip(2 * gaps.min(axis=1), 0.0, 1.0)
        return result
    ordered = np.sort(probabilities, axis=1)
    gap: np.ndarray = ordered[:, -1] - ordered[:, -2]
    return gap


def spread(texts: list[str], margin: np.ndarray, n: int) -> list[int]:
    """Indices of `n` of the texts: uncertain (small margin) and unlike one another."""
    if not texts:
        return []
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectors: Any = TfidfVectorizer(sublinear_tf=True).fit_transform(texts)
    uncertainty = 1.0 - np.asarray(margin, dtype=float) + 1e-9  # a sure one still counts a bit
    chosen = [int(np.argmax(uncertainty))]
    distance = 1.0 - (vectors @ vectors[chosen[0]].T).toarray().ravel()
    while len(chosen) < min(n, len(texts)):
        score = np.clip(distance, 0.0, None) * uncertainty
        score[chosen] = -1.0
        best = int(np.argmax(score))
        if score[best] <= 1e-9:  # only copies of chosen ones are left: the least sure of them
            rest = np.setdiff1d(np.arange(len(texts)), chosen)
            best = int(rest[np.argmax(uncertainty[rest])])
        chosen.append(best)
        distance = np.minimum(distance, 1.0 - (vectors @ vectors[best].T).toarray().ravel())
    return chosen

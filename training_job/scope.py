"""Out of scope: how unlike its training documents a text is, as a score in [0, 1].

Two measures, each on documents held out of what measures them:
- unsureness: one minus the top calibrated probability, logged (every kind; computed from
  the logits, so a model sure to 1 - 1e-20 still ranks its texts);
- distance, for a classifier with sentence features (head, contrastive: their encoder's
  embeddings; finetune: its tuned network's mean-pooled last layer; an ensemble: its first
  member's): the smallest Mahalanobis distance to a class mean of its training
  documents, with one shared covariance shrunk by Ledoit-Wolf so a few documents a label
  still give an invertible matrix (Lee et al., 2018).
Each is logged and standardised by its held-out values; a text's standardised measures are
summed (on held-out labels the sum ranked better than either alone: bench/ood.py), and
`ood_score` = Phi(standardised sum), so about 0.5 is a typical in-scope text.
`out_of_scope`: the score passes the one that `IN_SCOPE_QUANTILE` of the held-out
documents stay under (about 5 % of in-scope text is flagged). A TF-IDF model's distances
ranked held-out labels worse than its probabilities (svd features, nearest neighbours):
it keeps unsureness alone.

Serving needs numpy alone (this module ships inside every logged model).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from training_job.data import Document
    from training_job.serving import TextClassifier

SCOPE_FILE = "scope.npz"
UNSURENESS, DISTANCE_AND_UNSURENESS = "unsureness", "distance+unsureness"
IN_SCOPE_QUANTILE = 0.95
# Documents whose features the summary is fitted on (an encoder pass each; a sample of a
# few hundred fixes a 384-dimension shrunk covariance well).
SCOPE_DOCUMENTS = 500
SCOPE_FOLDS = 5
# Bins of the held-out scores kept as the reference that live traffic is compared with.
REFERENCE_BINS = 20


@dataclass(frozen=True)
class Scope:
    """What a served model keeps of its training inputs to say how far a text lies."""

    method: str
    # Each measure's held-out log mean and standard deviation: unsureness[, distance].
    centres: np.ndarray
    scales: np.ndarray
    # Of the standardised sum over held-out documents.
    mean: float
    std: float
    threshold: float
    # Shares of held-out in-scope documents per ood_score bin (REFERENCE_BINS over [0, 1]).
    reference: np.ndarray
    documents: int  # held-out documents the mapping and threshold were measured on
    means: np.ndarray | None = None  # labels x features
    precision: np.ndarray | None = None  # features x features

    def measures(self, unsureness: np.ndarray, features: np.ndarray | None) -> np.ndarray:
        """Each text's logged measures (texts x measures): unsureness[, distance]."""
        found = [unsureness]
        if self.method == DISTANCE_AND_UNSURENESS:
            if features is None or self.means is None or self.precision is None:
                raise ValueError("this scope needs the classifier's features")
            distance = mahalanobis(features, self.means, self.precision)
            found.append(np.log(np.maximum(distance, 1e-12)))
        return np.stack(found, axis=1)

    def scores(self, unsureness: np.ndarray, features: np.ndarray | None) -> np.ndarray:
        """ood_score of texts from their log unsureness (serving.log_unsureness) and
        features."""
        return self.scored(self.measures(unsureness, features))

    def scored(self, measures: np.ndarray) -> np.ndarray:
        summed = ((measures - self.centres) / self.scales).sum(axis=1)
        return normal_cdf((summed - self.mean) / self.std)

    def save(self, folder: Path) -> None:
        numbers = np.array([self.mean, self.std, self.threshold, self.documents])
        arrays = {"method": np.array(self.method), "reference": self.reference,
                  "centres": self.centres, "scales": self.scales, "numbers": numbers}  # fmt: skip
        if self.means is not None and self.precision is not None:
            arrays |= {"means": self.means, "precision": self.precision}
        with (folder / SCOPE_FILE).open("wb") as sink:
            np.savez(sink, **arrays)  # type: ignore[arg-type]

    @classmethod
    def read(cls, folder: Path) -> Scope | None:
        """The scope saved in a model folder (None: saved before scopes)."""
        path = folder / SCOPE_FILE
        if not path.exists():
            return None
        with np.load(path, allow_pickle=False) as saved:
            mean, std, threshold, documents = saved["numbers"].tolist()
            return cls(str(saved["method"]), saved["centres"], saved["scales"], mean, std,
                       threshold, saved["reference"], int(documents), saved.get("means"),
                       saved.get("precision"))  # fmt: skip


def normal_cdf(z: np.ndarray) -> np.ndarray:
    return np.array([0.5 * math.erfc(-float(v) / math.sqrt(2)) for v in np.ravel(z)])


def mahalanobis(features: np.ndarray, means: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """Each row's smallest squared Mahalanobis distance to a class mean, expanded as
    x'Px - 2x'Pm + m'Pm: matrix products (a rows x classes x features einsum took seconds
    for 64 texts and 100 labels)."""
    projected = features @ precision
    own = (projected * features).sum(axis=1)
    means_own = ((means @ precision) * means).sum(axis=1)
    distances = own[:, None] - 2.0 * projected @ means.T + means_own[None, :]
    result: np.ndarray = np.maximum(distances.min(axis=1), 0.0)
    return result


def class_summary(features: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class means and the Ledoit-Wolf precision of the features centred on them."""
    from sklearn.covariance import LedoitWolf

    present = np.unique(classes)
    means = np.stack([features[classes == c].mean(axis=0) for c in present])
    centred = features - means[np.searchsorted(present, classes)]
    precision = LedoitWolf(assume_centered=True).fit(centred).precision_
    return means, precision


def out_of_fold_distances(features: np.ndarray, classes: np.ndarray, seed: int) -> np.ndarray:
    """Each document's distance from a summary fitted without it (k folds)."""
    from sklearn.model_selection import KFold, StratifiedKFold

    counts = np.unique(classes, return_counts=True)[1]
    folds = min(SCOPE_FOLDS, len(classes))
    stratified = counts.min() >= folds
    splitter = (StratifiedKFold if stratified else KFold)(folds, shuffle=True, random_state=seed)
    held = np.zeros(len(classes))
    for fitted, scored in splitter.split(features, classes):
        means, precision = class_summary(features[fitted], classes[fitted])
        held[scored] = mahalanobis(features[scored], means, precision)
    return held


def fit_scope(measures: np.ndarray, paired: np.ndarray, method: str,
              means: np.ndarray | None = None,
              precision: np.ndarray | None = None) -> Scope:  # fmt: skip
    """A scope from held-out logged measures: `measures` holds each measure's held-out
    values (a column each; NaN where a document was not held out for that measure), which
    standardise it; `paired` the rows held out for every measure, on which the sum's
    mapping and the threshold are fitted."""
    if len(paired) == 0:
        raise ValueError("no document was held out for every measure")
    centres, scales = np.nanmean(measures, axis=0), np.nanstd(measures, axis=0)
    scales = np.where(scales > 0, scales, 1.0)  # identical held-out values: any scale
    summed = ((measures[paired] - centres) / scales).sum(axis=1)
    std = float(summed.std())
    std = std if np.isfinite(std) and std > 0 else 1.0
    partial = Scope(method, centres, scales, float(summed.mean()), std, 0.0,
                    np.zeros(REFERENCE_BINS), len(summed), means, precision)  # fmt: skip
    scores = partial.scored(measures[paired])
    threshold = float(np.quantile(scores, IN_SCOPE_QUANTILE))
    reference = np.histogram(scores, bins=REFERENCE_BINS, range=(0.0, 1.0))[0] / len(scores)
    return dataclasses.replace(partial, threshold=threshold, reference=reference)


def scope_for(classifier: TextClassifier, held_rows: list[int] | None,
              held_logits: np.ndarray | None, docs: list[Document], labels: list[str],
              seed: int) -> Scope:  # fmt: skip
    """The served classifier's scope, from the logits of `docs` held out in its selection
    (rows of `docs`) and, where it has features, a sample of `docs` (distances out of
    fold)."""
    from training_job.serving import log_unsureness

    sample = scope_sample(docs, seed)
    if held_rows is None or held_logits is None:  # no held-out scores: the sample's own
        held_rows, held_logits = sample, classifier.logits([docs[row].text for row in sample])
    # Distances are measured on held-out rows too (a seeded sample of them: they come
    # grouped by label), so both measures meet on enough rows of every label.
    import random

    some_held = random.Random(seed).sample(list(held_rows), min(len(held_rows), SCOPE_DOCUMENTS))
    sample = sorted(set(sample) | set(some_held))
    texts = [docs[row].text for row in sample]
    unsure = np.full(len(docs), np.nan)
    unsure[held_rows] = log_unsureness(held_logits, classifier.config)
    if classifier.represent(texts[:1])[1] is None:  # no sentence features (one text asked)
        return fit_scope(unsure[:, None], np.asarray(held_rows, dtype=int), UNSURENESS)
    features = np.asarray(classifier.represent(texts)[1])
    classes = np.array([labels.index(docs[row].label) for row in sample])
    distance = np.full(len(docs), np.nan)
    distance[sample] = np.log(np.maximum(out_of_fold_distances(features, classes, seed), 1e-12))
    paired = np.array(sorted(set(held_rows) & set(sample)), dtype=int)
    means, precision = class_summary(features, classes)
    return fit_scope(np.stack([unsure, distance], axis=1), paired, DISTANCE_AND_UNSURENESS,
                     means, precision)  # fmt: skip


def scope_sample(docs: list[Document], seed: int) -> list[int]:
    """Rows of at most SCOPE_DOCUMENTS documents, each label in proportion, at least two."""
    import random

    by_label: dict[str, list[int]] = {}
    for row, doc in enumerate(docs):
        by_label.setdefault(doc.label, []).append(row)
    share = min(1.0, SCOPE_DOCUMENTS / len(docs))
    chosen: list[int] = []
    for label in sorted(by_label):
        found = by_label[label]
        count = min(len(found), max(2, round(share * len(found))))
        chosen += random.Random(f"{seed}-{label}").sample(found, count)
    return sorted(chosen)

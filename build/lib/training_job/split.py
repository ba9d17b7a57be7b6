"""Stratified train/validation/test split with a fixed seed.

Every label keeps at least one validation and one test document (none with a test
fraction of 0: the job then estimates by cross-validation), so a label needs at least
MIN_DOCS_PER_LABEL (3) usable documents; below that the job fails and names it.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass

from training_job.data import Document

MIN_DOCS_PER_LABEL = 3


@dataclass(frozen=True)
class Split:
    train: list[Document]
    validation: list[Document]
    test: list[Document]

    def sizes(self) -> dict[str, int]:
        return {
            "train": len(self.train),
            "validation": len(self.validation),
            "test": len(self.test),
        }


def stratified_split(
    documents: list[Document], val_fraction: float, test_fraction: float, seed: int
) -> Split:
    """Split each label on its own so every split keeps the label proportions."""
    by_label: dict[str, list[Document]] = defaultdict(list)
    for doc in sorted(documents, key=lambda d: d.key):
        by_label[doc.label].append(doc)
    rng = random.Random(seed)
    train: list[Document] = []
    validation: list[Document] = []
    test: list[Document] = []
    for label in sorted(by_label):
        docs = by_label[label]
        rng.shuffle(docs)
        n = len(docs)
        n_test = max(1, round(n * test_fraction)) if test_fraction > 0 else 0
        n_val = max(1, round(n * val_fraction))
        # Never starve training: shrink validation first, then test, down to one each.
        while n - n_test - n_val < 1 and (n_val > 1 or n_test > 1):
            if n_val >= n_test:
                n_val -= 1
            else:
                n_test -= 1
        test.extend(docs[:n_test])
        validation.extend(docs[n_test : n_test + n_val])
        train.extend(docs[n_test + n_val :])
    rng.shuffle(train)
    return Split(train=train, validation=validation, test=test)

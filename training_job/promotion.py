"""`promote: if_better`: a new model takes the `@champion` alias only where it beats the
current champion on the same held-out documents, by a paired bootstrap interval of the
macro-F1 difference that lies above 0.

Those documents are the new run's estimate (its test split, or out of fold): the
champion may have trained on some of them (an earlier version of the same dataset), which
can only favour the champion, so a promotion is never won by that bias.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from training_job.evaluate import difference_interval, predicted_labels
from training_job.serving import TextClassifier


@dataclass(frozen=True)
class Promotion:
    promote: bool
    reason: str
    metrics: dict[str, float] = field(default_factory=dict)


def judge(new_probabilities: np.ndarray, thresholds: tuple[float, ...], truth: np.ndarray,
          texts: list[str], labels: list[str], champion: TextClassifier | None,
          champion_name: str, seed: int) -> Promotion:  # fmt: skip
    """Whether the new model (its probabilities on `texts`) replaces `champion`."""
    if champion is None:
        return Promotion(True, "no champion yet: this model becomes it")
    theirs = [champion.config.id2label[i] for i in range(len(champion.config.id2label))]
    if theirs != labels or champion.config.multi_label != (truth.ndim == 2):
        return Promotion(False, f"not promoted: {champion_name} answers other labels "
                         f"({', '.join(theirs)}), so the two cannot be compared on the same "
                         "documents; promote it by hand if it should serve")  # fmt: skip
    new = predicted_labels(new_probabilities, thresholds)
    old = predicted_labels(champion.probabilities(texts), champion.config.thresholds)
    difference, low, high = difference_interval(truth, new, old, len(labels), seed)
    metrics = {"champion_macro_f1_difference": difference,
               "champion_macro_f1_difference_low": low,
               "champion_macro_f1_difference_high": high}  # fmt: skip
    said = (
        f"macro-F1 {difference:+.4f} over {champion_name} on the same {len(truth)} "
        f"held-out documents (95% interval {low:+.4f} to {high:+.4f})"
    )
    if low > 0:
        return Promotion(True, f"promoted: {said}", metrics)
    return Promotion(False, f"not promoted: {said} does not lie above 0; {champion_name} "
                     "stays champion", metrics)  # fmt: skip

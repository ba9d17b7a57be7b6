"""`ensemble`: the calibrated probabilities of the best two or three fitted kinds, averaged.

Built last, from the other kinds' fits in the same selection (SelectionData.members): no
model is trained again. Its score is its members' validation probabilities averaged. As
serving runs every member (it costs their sum) and the average is judged on the documents
its members were calibrated on (and the better of two or three members is chosen on them),
it must beat its best member by more than two standard errors of the paired difference:
only that excess is added to the member's score, so a gain within the noise is a tie,
which the member wins. Measured on all of TREC (2,000 documents): a validation gain of 1.6
points, 1.7 standard errors, was a test loss of 1 point.

`auto` tries it only where kinds are scored on a validation split, by the very models it
would serve. Scored by cross-validation, a member's fold models are weaker than the model
served, a tuned encoder most of all: on TREC at 8 a label, averaging contrastive's fold
scores with head's beat contrastive's alone, and the served average then lost 4.7 points
to contrastive on the test set. Asked for by name, it combines out-of-fold scores.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from training_job.config import Hyperparameters
from training_job.kinds.base import (
    CLEAR_STANDARD_ERRORS,
    Fitted,
    HeldOut,
    KindTrainer,
    ModelKind,
    SelectionData,
    calibrate,
    difference_standard_error,
    read_options,
    scored_by_folds,
    selection_score,
)
from training_job.onnx_export import OnnxExportable
from training_job.serving import ClassifierConfig, TextClassifier

if TYPE_CHECKING:
    from training_job.split import Split

MEMBERS_FILE = "ensemble.json"  # the members' kinds, in the order of their folders


@dataclass(frozen=True)
class EnsembleOptions:
    ensemble_max_members: int = 3  # the best this many kinds at most (2 at least)
    # The gain over the best member must exceed this many bootstrap standard errors.
    ensemble_standard_errors: float = CLEAR_STANDARD_ERRORS


def member_folder(folder: Path, index: int) -> Path:
    return folder / "members" / str(index)


def average_log_probabilities(probabilities: list[np.ndarray], multi_label: bool) -> np.ndarray:
    """The ensemble's logits: log of the mean of the members' probabilities, or
    (multi-label) each label's log-odds of the mean."""
    mean: np.ndarray = np.clip(np.mean(probabilities, axis=0), 1e-12, 1 - 1e-12)
    result: np.ndarray = np.log(mean / (1 - mean)) if multi_label else np.log(mean)
    return result


class EnsembleClassifier(TextClassifier):
    """Averages its members' calibrated probabilities; each member loads as its kind."""

    def __init__(self, members: list[TextClassifier], config: ClassifierConfig) -> None:
        self.members = members
        self.config = config

    def logits(self, texts: list[str]) -> np.ndarray:
        return self.represent(texts)[0]

    def represent(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
        """The averaged logits, and the first member's features that has any (its scope's
        distances are measured on that member's sentence embeddings)."""
        probabilities, features = [], None
        for member in self.members:
            logits, found = member.represent(texts)
            probabilities.append(member.calibrated(logits))
            features = found if features is None else features
        return average_log_probabilities(probabilities, self.config.multi_label), features

    def size_bytes(self) -> int:
        return sum(member.size_bytes() for member in self.members)

    def requirements(self) -> frozenset[str]:
        return frozenset().union(*(member.requirements() for member in self.members))

    def export_onnx(self, folder: Path) -> bool:
        exported = [isinstance(member, OnnxExportable)
                    and member.export_onnx(member_folder(folder, index))
                    for index, member in enumerate(self.members)]  # fmt: skip
        return any(exported)

    def on_onnx(self, folder: Path, runtime: str) -> EnsembleClassifier:
        """Members with a network exported in `folder` run on onnxruntime, the others (tf-idf)
        on their own code."""
        members = [member.on_onnx(member_folder(folder, index), runtime)
                   if isinstance(member, OnnxExportable)
                   and any(member_folder(folder, index).glob("*.onnx")) else member
                   for index, member in enumerate(self.members)]  # fmt: skip
        return EnsembleClassifier(members, replace(self.config, runtime=runtime))

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for index, member in enumerate(self.members):
            member.save(member_folder(folder, index))
        kinds = [member.config.kind for member in self.members]
        (folder / MEMBERS_FILE).write_text(json.dumps({"members": kinds}))
        self.config.write(folder)

    @classmethod
    def load(cls, folder: Path, config: ClassifierConfig) -> EnsembleClassifier:
        from training_job.serving import load_classifier

        count = len(json.loads((folder / MEMBERS_FILE).read_text())["members"])
        members = [load_classifier(member_folder(folder, i)) for i in range(count)]
        return cls(members, config)


class _Trainer(KindTrainer):
    def __init__(self, data: SelectionData) -> None:
        self.data = data

    def _ranked(self) -> list[tuple[str, Fitted]]:
        """The fitted kinds with held-out scores on the best one's rows, best first."""
        scored = [(k, f) for k, f in self.data.members.items() if f.held_out is not None]
        scored.sort(key=lambda item: -item[1].selection_f1)
        if not scored:
            return []
        rows = scored[0][1].held_out.rows  # type: ignore[union-attr]
        return [(k, f) for k, f in scored if f.held_out.rows == rows]  # type: ignore[union-attr]

    def too_slow(self, seconds_left: float | None) -> str | None:
        fitted = self._ranked()
        if len(fitted) < 2:
            return f"it combines two fitted kinds or more; fitted: {len(fitted)}"
        return None

    def fit(self, hp: Hyperparameters) -> Fitted:
        ranked = self._ranked()
        if len(ranked) < 2:
            raise ValueError(
                "an ensemble combines at least two fitted kinds; "
                f"fitted: {', '.join(self.data.members) or 'none'}"
            )
        options = read_options(EnsembleOptions, hp)
        limit = max(2, options.ensemble_max_members)
        _, best = ranked[0]
        assert best.held_out is not None
        rows = best.held_out.rows
        truth = self.data.truth[rows]
        best_on_rows = selection_score(truth, best.held_out.logits)
        chosen: list[tuple[str, Fitted]] = []
        logits = best.held_out.logits
        score = -1.0
        for size in range(2, min(limit, len(ranked)) + 1):
            members = ranked[:size]
            combined = average_log_probabilities([f.held_out_probabilities() for _, f in members],
                                                 self.data.multi_label)  # fmt: skip
            f1 = selection_score(truth, combined)
            if f1 > score:  # more members only for a strictly better score
                chosen, logits, score = members, combined, f1
        # The gain over the best member on the same rows beyond the noise, on top of that
        # member's selection score (under cross-validation it averages several repeats).
        gain = score - best_on_rows
        error = difference_standard_error(truth, logits, best.held_out.logits, hp.seed)
        config = calibrate(self.data.config(Ensemble.name), logits, truth)
        classifier = EnsembleClassifier([f.classifier for _, f in chosen], config)
        details = {
            "members": float(len(chosen)),
            "gain_over_best_member": gain,
            "gain_standard_error": error,
            "calibration_documents": float(len(rows)),
        }
        if "folds" in best.details:
            details["folds"] = best.details["folds"]
        score = best.selection_f1 + max(gain - options.ensemble_standard_errors * error, 0.0)
        return Fitted(classifier, score, details, HeldOut(rows, logits))


class Ensemble(ModelKind):
    name = "ensemble"
    summary = "the best two or three kinds' calibrated probabilities averaged, where that wins"
    options = EnsembleOptions
    combines = True

    def unsuited(self, hp: Hyperparameters, split: Split) -> str | None:
        if scored_by_folds(split):
            return (
                "the kinds are scored by cross-validation here, by fold models weaker than "
                "the models served (a tuned encoder most of all), so averaging their scores "
                "would not say how the served average does"
            )
        return None

    def trainer(self, data: SelectionData) -> KindTrainer:
        return _Trainer(data)

    def load(self, folder: Path, config: ClassifierConfig) -> TextClassifier:
        return EnsembleClassifier.load(folder, config)


KIND = Ensemble()

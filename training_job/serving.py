"""What every served classifier shares: its config, windows over long texts, calibrated
scores, and the loader that hands a saved model to the kind that saved it.

This package ships inside every logged model (code_paths; training_job/pyfunc.py is the
MLflow model's code), so a served model keeps the code it was trained with; it imports only
what serving has: numpy, scikit-learn, tokenizers (each kind imports its runtime where it
loads). Evaluation in the job uses the same code, so what is measured is what is served.
"""

from __future__ import annotations

import json
import math
import shutil
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training_job.scope import Scope

CONFIG_FILE = "classifier.json"
# ClassifierConfig.runtime of a network run by onnxruntime (training_job/onnx_export.py).
ONNX_FP32, ONNX_INT8 = "onnx-fp32", "onnx-int8"
# The packages (distribution names) each way of serving imports, besides numpy; a logged
# model's pip requirements are those its classifier names (TextClassifier.requirements).
SCIKIT_LEARN = frozenset({"scikit-learn"})
ON_ONNX = frozenset({"onnxruntime", "tokenizers"})
ON_TORCH = frozenset({"torch", "transformers", "tokenizers"})


@dataclass(frozen=True)
class ClassifierConfig:
    """How the served model turns text into windows and logits into calibrated scores."""

    id2label: dict[int, str]
    max_length: int
    window_overlap: int
    max_windows: int
    temperature: float = 1.0
    batch_size: int = 32
    # The model kind that saved it (training_job/kinds), which loads it.
    kind: str = "finetune"
    # Multi-label: logits are each label's log-odds (probabilities do not sum to 1) and a
    # label is answered where its probability reaches its threshold (tuned on held-out
    # scores, one per label in id2label's order).
    multi_label: bool = False
    thresholds: tuple[float, ...] = ()
    # onnxruntime on "onnx-fp32" or "onnx-int8" weights (training_job/onnx_export.py chose
    # it), or "": the kind's own code (PyTorch, scikit-learn), as every model before ONNX.
    runtime: str = ""

    @classmethod
    def read(cls, folder: Path) -> ClassifierConfig:
        raw = json.loads((folder / CONFIG_FILE).read_text())
        raw["id2label"] = {int(k): v for k, v in raw["id2label"].items()}
        raw["thresholds"] = tuple(raw.get("thresholds", ()))
        return cls(**raw)

    def write(self, folder: Path) -> None:
        (folder / CONFIG_FILE).write_text(json.dumps(asdict(self), indent=2, sort_keys=True))


@dataclass(frozen=True)
class Prediction:
    """The top label, its index and probability; a multi-label model also answers every
    label that passes its threshold (`labels`, none: `abstained`) and every probability."""

    label: str
    prediction: int
    score: float
    labels: list[str] | None = None
    scores: dict[str, float] | None = None
    abstained: bool | None = None
    # How unlike the training documents the text is (training_job/scope.py), and whether
    # that is past the scope's threshold; None from a model saved without a scope.
    ood_score: float | None = None
    out_of_scope: bool | None = None


@dataclass(frozen=True)
class Assessment:
    """Calibrated probabilities of a batch of texts and, where the model keeps a scope,
    each text's ood_score and whether it is out of scope."""

    probabilities: np.ndarray
    ood_scores: np.ndarray | None = None
    out_of_scope: np.ndarray | None = None


def select_windows(count: int, limit: int) -> list[int]:
    """Indices of the windows to keep: all, or `limit` spread evenly from first to last."""
    if count <= limit:
        return list(range(count))
    step = (count - 1) / (limit - 1) if limit > 1 else 0.0
    return sorted({round(i * step) for i in range(limit)})


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    scaled = logits / temperature
    scaled = scaled - scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    result: np.ndarray = exp / exp.sum(axis=1, keepdims=True)
    return result


def sigmoid(logits: np.ndarray) -> np.ndarray:
    result: np.ndarray = 1.0 / (1.0 + np.exp(-np.clip(logits, -50, 50)))
    return result


def log_unsureness(logits: np.ndarray, config: ClassifierConfig) -> np.ndarray:
    """log(1 - top calibrated probability) of each row, from the logits so that it stays
    finite where the probability rounds to 1: the log of the other labels' softmax mass,
    or (multi-label) log(1 - sigmoid(top logit)) = -softplus(top logit)."""
    if config.multi_label:
        multi: np.ndarray = -np.logaddexp(0.0, logits.max(axis=1))
        return multi
    scaled = logits / config.temperature
    others = scaled.copy()
    others[np.arange(len(others)), scaled.argmax(axis=1)] = -np.inf
    result: np.ndarray = np.logaddexp.reduce(others, axis=1) - np.logaddexp.reduce(scaled, axis=1)
    return result


def fit_temperature(logits: np.ndarray, targets: np.ndarray) -> float:
    """Temperature minimising validation negative log-likelihood (a 1-D grid search)."""
    best_t, best_nll = 1.0, math.inf
    for t in np.exp(np.linspace(math.log(0.05), math.log(20.0), 241)):
        probs = softmax(logits, float(t))
        nll = -float(np.mean(np.log(probs[np.arange(len(targets)), targets] + 1e-12)))
        if nll < best_nll:
            best_t, best_nll = float(t), nll
    return best_t


class TextClassifier(ABC):
    """What every kind shares: calibrated probabilities and predictions from `logits`."""

    config: ClassifierConfig
    # Fitted by the job after selection, saved beside the kind's files (load_classifier).
    scope: Scope | None = None

    @abstractmethod
    def logits(self, texts: list[str]) -> np.ndarray:
        """Uncalibrated scores, one row per text."""

    @abstractmethod
    def size_bytes(self) -> int:
        """Memory taken by the weights."""

    @abstractmethod
    def save(self, folder: Path) -> None:
        """Write everything `load_classifier` needs."""

    @abstractmethod
    def requirements(self) -> frozenset[str]:
        """The packages its loading and predicting import (ON_ONNX, ON_TORCH, ...)."""

    def calibrated(self, logits: np.ndarray) -> np.ndarray:
        """Probabilities from logits: softmax at the fitted temperature, or (multi-label)
        each label's sigmoid."""
        if self.config.multi_label:
            return sigmoid(logits)
        return softmax(logits, self.config.temperature)

    def represent(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
        """Logits and the features a scope measures distance on (None: a kind without
        sentence features; its scope reads the top probability)."""
        return self.logits(texts), None

    def probabilities(self, texts: list[str]) -> np.ndarray:
        return self.calibrated(self.logits(texts))

    def assess(self, texts: list[str]) -> Assessment:
        """Probabilities and, with a scope, how far out of scope each text is (one pass)."""
        logits, features = self.represent(texts)
        probabilities = self.calibrated(logits)
        if self.scope is None:
            return Assessment(probabilities)
        ood = self.scope.scores(log_unsureness(logits, self.config), features)
        return Assessment(probabilities, ood, ood > self.scope.threshold)

    def predict(self, texts: list[str]) -> list[Prediction]:
        return decisions(self.assess(texts), self.config)


def decide(probs: np.ndarray, config: ClassifierConfig, ood_score: float | None = None,
           out_of_scope: bool | None = None) -> Prediction:  # fmt: skip
    """One text's answer from its probabilities (multi-label: the labels over threshold)."""
    best = int(probs.argmax())
    names = config.id2label
    if not config.multi_label:
        return Prediction(names[best], best, float(probs[best]), ood_score=ood_score,
                          out_of_scope=out_of_scope)  # fmt: skip
    chosen = [names[i] for i, p in enumerate(probs) if p >= config.thresholds[i]]
    scores = {names[i]: float(p) for i, p in enumerate(probs)}
    return Prediction(names[best], best, float(probs[best]), chosen, scores, not chosen,
                      ood_score, out_of_scope)  # fmt: skip


def decisions(assessment: Assessment, config: ClassifierConfig) -> list[Prediction]:
    """Each text's answer, with its ood_score and out_of_scope where assessed."""
    ood, outside = assessment.ood_scores, assessment.out_of_scope
    return [decide(row, config,
                   None if ood is None else float(ood[i]),
                   None if outside is None else bool(outside[i]))
            for i, row in enumerate(assessment.probabilities)]  # fmt: skip


def torch_bytes(model: Any) -> int:
    return int(sum(p.numel() * p.element_size() for p in model.parameters()))


def windows_tokenizer(tokenizer: Any) -> Any:
    """A `tokenizers.Tokenizer` for `token_windows`: a model folder's tokenizer.json, or a
    copy of a Hugging Face fast tokenizer's (its own settings are left alone)."""
    from tokenizers import Tokenizer

    if isinstance(tokenizer, (str, Path)):
        return Tokenizer.from_file(str(Path(tokenizer) / "tokenizer.json"))
    return Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())


def token_windows(tokenizer: Any, config: ClassifierConfig, texts: list[str]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Padded windows (ids, mask) read for each text, and the text each window belongs to:
    `max_length` tokens overlapping by `window_overlap`, at most `max_windows` a text.
    `tokenizer` is a `tokenizers.Tokenizer` (windows_tokenizer), so serving needs neither
    torch nor transformers and training reads the same windows."""
    tokenizer.no_padding()
    tokenizer.enable_truncation(config.max_length, stride=config.window_overlap)
    windows: list[Any] = []
    owners: list[int] = []
    for owner, encoding in enumerate(tokenizer.encode_batch(texts)):
        found = [encoding, *encoding.overflowing]
        kept = select_windows(len(found), config.max_windows)
        windows.extend(found[i] for i in kept)
        owners.extend([owner] * len(kept))
    width = max((len(w.ids) for w in windows), default=0)
    ids = np.zeros((len(windows), width), dtype=np.int64)  # masked: any pad id reads the same
    mask = np.zeros((len(windows), width), dtype=np.int64)
    for row, window in enumerate(windows):
        ids[row, : len(window.ids)] = window.ids
        mask[row, : len(window.ids)] = window.attention_mask
    return ids, mask, np.asarray(owners, dtype=np.int64)


def row_batches(mask: np.ndarray, batch_size: int) -> Iterator[tuple[np.ndarray, int]]:
    """Row batches, longest windows first, each cut to its own longest window."""
    order = np.argsort(-mask.sum(axis=1), kind="stable")
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        yield rows, int(mask[rows[0]].sum())


class OnnxNetwork:
    """A network exported at training time (training_job/onnx_export.py), run by
    onnxruntime on (ids, mask) windows: no torch, no transformers. `outputs` are read in
    order; the first must be there, the others only where the export has them (a model
    exported before an output was added)."""

    def __init__(self, path: Path, outputs: str | list[str], runtime: str) -> None:
        import onnxruntime

        self.path = path
        self.runtime = runtime
        self.session = onnxruntime.InferenceSession(str(path),
                                                    providers=["CPUExecutionProvider"])  # fmt: skip
        wanted = [outputs] if isinstance(outputs, str) else outputs
        found = {output.name for output in self.session.get_outputs()}
        self.outputs = [wanted[0], *(name for name in wanted[1:] if name in found)]

    def __call__(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The first output."""
        return self.run(ids, mask)[0]

    def run(self, ids: np.ndarray, mask: np.ndarray) -> list[np.ndarray]:
        """Every output the export has, in `outputs` order."""
        if self.runtime != ONNX_INT8:
            return self._run(ids, mask)
        # Dynamic int8 scales activations by the whole input: one window at a time, cut to
        # its own tokens, so a text's scores never depend on the texts batched with it.
        lengths = mask.sum(axis=1)
        each = [self._run(ids[row : row + 1, : lengths[row]], mask[row : row + 1, : lengths[row]])
                for row in range(len(ids))]  # fmt: skip
        return [np.concatenate([found[i] for found in each]) for i in range(len(self.outputs))]

    def _run(self, ids: np.ndarray, mask: np.ndarray) -> list[np.ndarray]:
        feeds = {"input_ids": ids, "attention_mask": mask}
        result: list[np.ndarray] = self.session.run(self.outputs, feeds)
        return result

    def size_bytes(self) -> int:
        return self.path.stat().st_size

    def save(self, path: Path) -> None:
        if self.path != path:
            shutil.copyfile(self.path, path)


def load_classifier(folder: Path | str) -> TextClassifier:
    """Load a saved classifier of any kind, through the kind that saved it."""
    from training_job import kinds

    folder = Path(folder)
    config = ClassifierConfig.read(folder)
    classifier = kinds.get(config.kind).load(folder, config)
    classifier.scope = Scope.read(folder)
    return classifier

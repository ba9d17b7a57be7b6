"""The trained classifier as it is served: windowed inference over long texts.

This file is the MLflow model's code ("models from code"): MLflow copies it into the model
and loads it by path, so it imports only torch, transformers, numpy, pandas and mlflow,
and a served model keeps the code it was trained with. Evaluation in the job uses the same
code, so what is measured is what is served.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

CONFIG_FILE = "classifier.json"


@dataclass(frozen=True)
class ClassifierConfig:
    """How the served model turns text into windows and logits into calibrated scores."""

    id2label: dict[int, str]
    max_length: int
    window_overlap: int
    max_windows: int
    temperature: float = 1.0
    batch_size: int = 32
    # "finetune" (sequence classifier), "head" (frozen encoder + logistic regression)
    # or "tfidf" (TF-IDF + logistic regression).
    kind: str = "finetune"

    @classmethod
    def read(cls, folder: Path) -> ClassifierConfig:
        raw = json.loads((folder / CONFIG_FILE).read_text())
        raw["id2label"] = {int(k): v for k, v in raw["id2label"].items()}
        return cls(**raw)

    def write(self, folder: Path) -> None:
        (folder / CONFIG_FILE).write_text(json.dumps(asdict(self), indent=2, sort_keys=True))


@dataclass(frozen=True)
class Prediction:
    label: str
    prediction: int
    score: float


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

    @abstractmethod
    def logits(self, texts: list[str]) -> np.ndarray:
        """Uncalibrated scores, one row per text."""

    @abstractmethod
    def size_bytes(self) -> int:
        """Memory taken by the weights."""

    @abstractmethod
    def save(self, folder: Path) -> None:
        """Write everything `load_classifier` needs."""

    def probabilities(self, texts: list[str]) -> np.ndarray:
        return softmax(self.logits(texts), self.config.temperature)

    def predict(self, texts: list[str]) -> list[Prediction]:
        probs = self.probabilities(texts)
        best = probs.argmax(axis=1)
        return [
            Prediction(self.config.id2label[int(i)], int(i), float(probs[row, i]))
            for row, i in enumerate(best)
        ]


def _torch_bytes(model: Any) -> int:
    return int(sum(p.numel() * p.element_size() for p in model.parameters()))


def _token_windows(
    tokenizer: Any, config: ClassifierConfig, texts: list[str]
) -> tuple[Any, Any, np.ndarray]:
    """Padded windows (ids, mask) read for each text, and the text each window belongs to."""
    encoded = tokenizer(
        texts,
        truncation=True,
        max_length=config.max_length,
        stride=config.window_overlap,
        return_overflowing_tokens=True,
        padding="longest",
        return_tensors="pt",
    )
    owners = encoded["overflow_to_sample_mapping"].tolist()
    rows_of: list[list[int]] = [[] for _ in texts]
    for row, owner in enumerate(owners):
        rows_of[owner].append(row)
    keep: list[int] = []
    for rows in rows_of:
        keep.extend(rows[i] for i in select_windows(len(rows), config.max_windows))
    return encoded["input_ids"][keep], encoded["attention_mask"][keep], np.asarray(owners)[keep]


def _batches(mask: Any, batch_size: int) -> Any:
    """Row batches, longest windows first, each cut to its own longest window."""
    order = torch.argsort(mask.sum(dim=1), descending=True)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        yield rows, int(mask[rows[0]].sum())


class WindowedClassifier(TextClassifier):
    """A sequence classifier that reads texts longer than its window as overlapping windows."""

    def __init__(self, model: Any, tokenizer: Any, config: ClassifierConfig) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.config = config

    def size_bytes(self) -> int:
        return _torch_bytes(self.model)

    @classmethod
    def load(cls, folder: Path | str) -> WindowedClassifier:
        folder = Path(folder)
        config = ClassifierConfig.read(folder)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForSequenceClassification.from_pretrained(folder)
        model.eval()
        return cls(model, tokenizer, config)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
        self.config.write(folder)

    def windows(self, texts: list[str]) -> tuple[list[list[int]], list[int]]:
        """Token windows for all texts and, for each window, the index of its text."""
        encoded = self.tokenizer(
            texts,
            truncation=True,
            max_length=self.config.max_length,
            stride=self.config.window_overlap,
            return_overflowing_tokens=True,
            padding=False,
        )
        per_text: dict[int, list[list[int]]] = {}
        for ids, owner in zip(
            encoded["input_ids"], encoded["overflow_to_sample_mapping"], strict=True
        ):
            per_text.setdefault(int(owner), []).append(ids)
        windows: list[list[int]] = []
        owners: list[int] = []
        for owner in range(len(texts)):
            found = per_text.get(owner, [])
            for index in select_windows(len(found), self.config.max_windows):
                windows.append(found[index])
                owners.append(owner)
        return windows, owners

    def logits(self, texts: list[str]) -> np.ndarray:
        """Mean window logits per text (before temperature)."""
        ids, mask, owners = _token_windows(self.tokenizer, self.config, texts)
        totals = np.zeros((len(texts), len(self.config.id2label)), dtype=np.float64)
        with torch.inference_mode():
            for rows, width in _batches(mask, self.config.batch_size):
                out = self.model(input_ids=ids[rows, :width], attention_mask=mask[rows, :width])
                np.add.at(totals, owners[rows.numpy()], out.logits.float().numpy())
        counts = np.bincount(owners, minlength=len(texts)).astype(np.float64)
        return totals / np.maximum(counts, 1)[:, None]


class TextEncoder:
    """The frozen base encoder: mean-pooled, L2-normalised embeddings, averaged over windows."""

    def __init__(self, model: Any, tokenizer: Any, config: ClassifierConfig) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.config = config

    @classmethod
    def load(cls, name: str | Path, config: ClassifierConfig) -> TextEncoder:
        from transformers import AutoModel

        model = AutoModel.from_pretrained(name).eval()
        return cls(model, AutoTokenizer.from_pretrained(name), config)

    def embed(self, texts: list[str]) -> np.ndarray:
        ids, mask, owners = _token_windows(self.tokenizer, self.config, texts)
        width = self.model.config.hidden_size
        totals = np.zeros((len(texts), width), dtype=np.float64)
        with torch.inference_mode():
            for rows, cut in _batches(mask, self.config.batch_size):
                window_mask = mask[rows, :cut]
                hidden = self.model(input_ids=ids[rows, :cut], attention_mask=window_mask)[0]
                weights = window_mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)
                np.add.at(totals, owners[rows.numpy()], pooled.float().numpy())
        norms = np.linalg.norm(totals, axis=1, keepdims=True)
        result: np.ndarray = totals / np.maximum(norms, 1e-12)
        return result


SKLEARN_FILE = "estimator.joblib"


class EmbeddingHeadClassifier(TextClassifier):
    """Frozen encoder embeddings + a logistic-regression head (log-probabilities as logits)."""

    def __init__(self, encoder: TextEncoder, head: Any, config: ClassifierConfig) -> None:
        self.encoder = encoder
        self.head = head
        self.config = config

    def logits(self, texts: list[str]) -> np.ndarray:
        result: np.ndarray = self.head.predict_log_proba(self.encoder.embed(texts))
        return result

    def size_bytes(self) -> int:
        return _torch_bytes(self.encoder.model) + int(self.head.coef_.nbytes)

    def save(self, folder: Path) -> None:
        import joblib

        folder.mkdir(parents=True, exist_ok=True)
        self.encoder.model.save_pretrained(folder)
        self.encoder.tokenizer.save_pretrained(folder)
        joblib.dump(self.head, folder / SKLEARN_FILE)
        self.config.write(folder)


class TfidfClassifier(TextClassifier):
    """TF-IDF (word and character n-grams) + logistic regression over the whole text."""

    def __init__(self, pipeline: Any, config: ClassifierConfig) -> None:
        self.pipeline = pipeline
        self.config = config

    def logits(self, texts: list[str]) -> np.ndarray:
        result: np.ndarray = self.pipeline.predict_log_proba(texts)
        return result

    def size_bytes(self) -> int:
        model = self.pipeline[-1]
        features = self.pipeline[0]
        vocabulary = sum(len(t.vocabulary_) for _, t in features.transformer_list)
        return int(model.coef_.nbytes) + 64 * vocabulary

    def save(self, folder: Path) -> None:
        import joblib

        folder.mkdir(parents=True, exist_ok=True)
        joblib.dump(self.pipeline, folder / SKLEARN_FILE)
        self.config.write(folder)


def load_classifier(folder: Path | str) -> TextClassifier:
    """Load a saved classifier of any kind."""
    folder = Path(folder)
    config = ClassifierConfig.read(folder)
    if config.kind == "finetune":
        return WindowedClassifier.load(folder)
    import joblib

    estimator = joblib.load(folder / SKLEARN_FILE)
    if config.kind == "head":
        return EmbeddingHeadClassifier(TextEncoder.load(folder, config), estimator, config)
    if config.kind == "tfidf":
        return TfidfClassifier(estimator, config)
    raise ValueError(f"unknown classifier kind {config.kind!r}")


def _texts_from(model_input: Any) -> list[str]:
    if hasattr(model_input, "columns"):
        column = "text" if "text" in model_input.columns else model_input.columns[0]
        return [str(t) for t in model_input[column].tolist()]
    if isinstance(model_input, str):
        return [model_input]
    return [str(t) for t in model_input]


try:  # the MLflow wrapper exists only where mlflow is installed (the job, the predict API)
    import mlflow.pyfunc
    from mlflow.models import set_model

    class TextClassifierModel(mlflow.pyfunc.PythonModel):  # type: ignore[name-defined,misc]
        """MLflow pyfunc: predict(texts) -> DataFrame(label, prediction, score)."""

        def load_context(self, context: Any) -> None:
            self.classifier = load_classifier(context.artifacts["classifier"])

        # No type hints here: MLflow reads them as an input schema and warns about Any.
        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
            import pandas as pd

            rows = [asdict(p) for p in self.classifier.predict(_texts_from(model_input))]
            return pd.DataFrame(rows, columns=["label", "prediction", "score"])

    set_model(TextClassifierModel())

except ImportError:  # pragma: no cover - serving without mlflow
    pass

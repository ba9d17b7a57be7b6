"""`head`: the base encoder frozen, mean-pooled embeddings + logistic regression.

The documents are embedded once; every fold and trial refits only the regression, so it
is cheap to cross-validate: the few-shot kind that needs no gradient steps.
"""

from __future__ import annotations

import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from training_job.config import Hyperparameters
from training_job.kinds.base import (
    SKLEARN_FILE,
    CrossValidatedTrainer,
    KindTrainer,
    ModelKind,
    Search,
    SelectionData,
    linear_bytes,
    linear_head,
    linear_logits,
    read_options,
    resolve_base_model,
)
from training_job.serving import (
    ON_ONNX,
    ON_TORCH,
    SCIKIT_LEARN,
    ClassifierConfig,
    OnnxNetwork,
    TextClassifier,
    row_batches,
    token_windows,
    torch_bytes,
    windows_tokenizer,
)

# The encoder's file in a model folder served by onnxruntime.
ENCODER_ONNX = "encoder.onnx"


@dataclass(frozen=True)
class HeadOptions:
    head_c: float = 10.0  # inverse regularisation of the logistic regression
    head_max_windows: int = 2  # windows embedded per document (long texts)


def head_model(c: float, multi_label: bool = False) -> Any:
    """The regression on embeddings, or (multi-label) one for each label."""
    from sklearn.linear_model import LogisticRegression

    return linear_head(LogisticRegression(C=c, max_iter=3000, class_weight="balanced"),
                       multi_label)  # fmt: skip


class WindowEncoder(ABC):
    """A sentence encoder: mean-pooled, L2-normalised embeddings, averaged over windows.
    Subclasses run the network: PyTorch (training, and models saved before ONNX) or
    onnxruntime (serving without torch)."""

    config: ClassifierConfig
    window_tokenizer: Any

    @abstractmethod
    def pooled(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Each window's last hidden state averaged over its tokens (windows x width)."""

    @abstractmethod
    def save(self, folder: Path) -> None:
        """Write the network and its tokenizer into a model folder."""

    @abstractmethod
    def size_bytes(self) -> int:
        """Memory taken by the weights."""

    @abstractmethod
    def requirements(self) -> frozenset[str]:
        """The packages running it imports."""

    def embed(self, texts: list[str]) -> np.ndarray:
        ids, mask, owners = token_windows(self.window_tokenizer, self.config, texts)
        totals: np.ndarray | None = None
        for rows, cut in row_batches(mask, self.config.batch_size):
            pooled = self.pooled(ids[rows, :cut], mask[rows, :cut]).astype(np.float64)
            if totals is None:
                totals = np.zeros((len(texts), pooled.shape[1]))
            np.add.at(totals, owners[rows], pooled)
        if totals is None:
            raise ValueError("no text to embed")
        norms = np.linalg.norm(totals, axis=1, keepdims=True)
        result: np.ndarray = totals / np.maximum(norms, 1e-12)
        return result

    def embedding_seconds(self, texts: list[str], sample: int = 32) -> float:
        """Seconds to embed all `texts`, from a timed sample of them (after a warm-up)."""
        chosen = random.Random(0).sample(texts, min(sample, len(texts)))
        self.embed(chosen[:4])  # a cold first pass is several times slower
        began = time.monotonic()
        self.embed(chosen)
        return (time.monotonic() - began) * len(texts) / len(chosen)


class TextEncoder(WindowEncoder):
    """The encoder on PyTorch (a Hugging Face model and tokenizer)."""

    def __init__(self, model: Any, tokenizer: Any, config: ClassifierConfig) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.window_tokenizer = windows_tokenizer(tokenizer)
        self.config = config

    @classmethod
    def load(cls, name: str | Path, config: ClassifierConfig) -> TextEncoder:
        from transformers import AutoModel, AutoTokenizer

        model = AutoModel.from_pretrained(name).eval()
        return cls(model, AutoTokenizer.from_pretrained(name), config)

    def pooled(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            pooled = mean_pooled(self.model)(torch.from_numpy(ids), torch.from_numpy(mask))
        result: np.ndarray = pooled.float().numpy()
        return result

    def save(self, folder: Path) -> None:
        self.model.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)

    def size_bytes(self) -> int:
        return torch_bytes(self.model)

    def requirements(self) -> frozenset[str]:
        return ON_TORCH

    def export_onnx(self, path: Path) -> None:
        from training_job.onnx_export import export_network

        ids, mask, _ = token_windows(self.window_tokenizer, self.config,
                                     ["an example text to trace", "and another"])  # fmt: skip
        export_network(mean_pooled(self.model), {"input_ids": ids, "attention_mask": mask},
                       "pooled", path)  # fmt: skip


def mean_pooled(model: Any) -> Any:
    """The network from token ids and mask to each window's mean-pooled last hidden state
    (a torch module: the one PyTorch runs and the one exported to ONNX)."""
    import torch

    class MeanPooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask)[0]
            pooled: torch.Tensor = masked_mean(hidden, attention_mask)
            return pooled

    return MeanPooled()


def masked_mean(hidden: Any, attention_mask: Any) -> Any:
    """Each window's hidden states (torch) averaged over its tokens, padding left out."""
    weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)


class OnnxEncoder(WindowEncoder):
    """The encoder on onnxruntime and `tokenizers`: no torch, no transformers."""

    def __init__(self, path: Path, window_tokenizer: Any, config: ClassifierConfig) -> None:
        self.network = OnnxNetwork(path, "pooled", config.runtime)
        self.window_tokenizer = window_tokenizer
        self.config = config

    @classmethod
    def load(cls, folder: Path, config: ClassifierConfig) -> OnnxEncoder:
        return cls(folder / ENCODER_ONNX, windows_tokenizer(folder), config)

    def pooled(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return self.network(ids, mask)

    def save(self, folder: Path) -> None:
        self.network.save(folder / ENCODER_ONNX)
        self.window_tokenizer.save(str(folder / "tokenizer.json"))

    def size_bytes(self) -> int:
        return self.network.size_bytes()

    def requirements(self) -> frozenset[str]:
        return ON_ONNX


class EmbeddingHeadClassifier(TextClassifier):
    """Encoder embeddings + a logistic-regression head (log-probabilities as logits)."""

    def __init__(self, encoder: WindowEncoder, head: Any, config: ClassifierConfig) -> None:
        self.encoder = encoder
        self.head = head
        self.config = config

    @classmethod
    def load(cls, folder: Path, config: ClassifierConfig) -> EmbeddingHeadClassifier:
        import joblib

        runtime = OnnxEncoder if config.runtime else TextEncoder
        encoder = runtime.load(folder, config)
        return cls(encoder, joblib.load(folder / SKLEARN_FILE), config)

    def logits(self, texts: list[str]) -> np.ndarray:
        return self.represent(texts)[0]

    def represent(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        embeddings = self.encoder.embed(texts)
        return linear_logits(self.head, embeddings, self.config.multi_label), embeddings

    def size_bytes(self) -> int:
        return self.encoder.size_bytes() + linear_bytes(self.head)

    def requirements(self) -> frozenset[str]:
        return self.encoder.requirements() | SCIKIT_LEARN

    def export_onnx(self, folder: Path) -> bool:
        if not isinstance(self.encoder, TextEncoder):
            return False
        self.encoder.export_onnx(folder / ENCODER_ONNX)
        return True

    def on_onnx(self, folder: Path, runtime: str) -> EmbeddingHeadClassifier:
        config = replace(self.config, runtime=runtime)
        encoder = OnnxEncoder(folder / ENCODER_ONNX, self.encoder.window_tokenizer, config)
        return EmbeddingHeadClassifier(encoder, self.head, config)

    def save(self, folder: Path) -> None:
        import joblib

        folder.mkdir(parents=True, exist_ok=True)
        self.encoder.save(folder)
        joblib.dump(self.head, folder / SKLEARN_FILE)
        self.config.write(folder)


class EmbeddingTrainer(CrossValidatedTrainer):
    """Embeds every document once with `encoder` (on the first fit); folds and trials
    refit the regression."""

    def __init__(
        self, data: SelectionData, encoder: TextEncoder, c: Callable[[Hyperparameters], float]
    ) -> None:
        super().__init__(data)
        self.encoder = encoder
        self.c = c  # the regression's C, read from the trial's hyperparameters

    @cached_property
    def embeddings(self) -> np.ndarray:
        return self.encoder.embed(self.data.texts)

    def measure_cost(self) -> float:
        return self.encoder.embedding_seconds(self.data.texts)

    def fit_rows(self, hp: Hyperparameters, rows: list[int]) -> Any:
        model = head_model(self.c(hp), self.data.multi_label)
        return model.fit(self.embeddings[rows], self.truth[rows])

    def scores(self, estimator: Any, rows: list[int]) -> np.ndarray:
        return linear_logits(estimator, self.embeddings[rows], self.data.multi_label)

    def build(self, estimator: Any) -> TextClassifier:
        return EmbeddingHeadClassifier(self.encoder, estimator, self.encoder.config)


class Head(ModelKind):
    name = "head"
    summary = "frozen MiniLM embeddings + logistic regression; few-shot, no gradient steps"
    options = HeadOptions
    space = {"head_c": Search(0.01, 1000.0, log=True)}

    def trainer(self, data: SelectionData) -> KindTrainer:
        options = read_options(HeadOptions, data.hp)
        config = data.config(self.name, options.head_max_windows)
        encoder = TextEncoder.load(resolve_base_model(data.hp.base_model), config)
        return EmbeddingTrainer(data, encoder, lambda hp: read_options(HeadOptions, hp).head_c)

    def load(self, folder: Path, config: ClassifierConfig) -> TextClassifier:
        return EmbeddingHeadClassifier.load(folder, config)


KIND = Head()

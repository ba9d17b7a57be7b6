"""Serving without torch: a transformer kind's network exported to ONNX at training time,
with an int8 variant, and the job's choice of the runtime that serves the model.

Export is torch's own exporter (`torch.onnx.export(dynamo=True)`, onnxscript), which
follows the pinned torch and transformers (optimum 2's exporter is a separate package); int8
is onnxruntime's dynamic quantiser. A variant is served only where its answers agree with
the PyTorch model's: an export that fails or disagrees leaves the model on PyTorch, saying
why. Training only: serving reads the files with onnxruntime (training_job/kinds/head.py).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from training_job.serving import ONNX_FP32, ONNX_INT8, TextClassifier

log = logging.getLogger(__name__)

# A variant serves only where it gives the PyTorch model's answer on at least this share of
# the documents checked, and (int8) loses at most this much macro-F1 on them.
MIN_AGREEMENT = 0.995
MAX_F1_DROP = 0.005
# The runtime tag of a model served by its kind's own code (PyTorch, scikit-learn).
NATIVE = "native"
# Documents the variants are checked on: the validation split, topped up from training.
PARITY_DOCUMENTS = 200


@runtime_checkable
class OnnxExportable(Protocol):
    """A classifier whose networks can run on onnxruntime (head, contrastive, finetune, an
    ensemble of any of them)."""

    def export_onnx(self, folder: Path) -> bool:
        """Write its networks into `folder` as .onnx files; False: none to export."""

    def on_onnx(self, folder: Path, runtime: str) -> TextClassifier:
        """The same classifier, its networks run by onnxruntime from `folder`'s files."""


def export_network(module: Any, inputs: dict[str, Any], outputs: str | list[str],
                   path: Path) -> None:  # fmt: skip
    """`module(**inputs)` as one self-contained ONNX file, batch and length dynamic; its
    outputs (one tensor, or a tuple of them) named `outputs`."""
    import torch

    batch, length = torch.export.Dim("batch"), torch.export.Dim("length")
    shapes = {name: {0: batch, 1: length} for name in inputs}
    tensors = {name: torch.as_tensor(value) for name, value in inputs.items()}
    program = torch.onnx.export(
        module.eval(), (), kwargs=tensors, input_names=list(inputs),
        output_names=[outputs] if isinstance(outputs, str) else outputs,
        dynamic_shapes=shapes, dynamo=True, verbose=False,
    )  # fmt: skip
    if program is None:
        raise RuntimeError("torch.onnx.export returned no program")
    path.parent.mkdir(parents=True, exist_ok=True)
    program.save(str(path), external_data=False)


def quantize_int8(source: Path, target: Path) -> None:
    """Dynamic int8 quantisation of the weights (activations stay float)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target.parent.mkdir(parents=True, exist_ok=True)
    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)


def _answers(classifier: TextClassifier, texts: list[str]) -> tuple[list[Any], np.ndarray]:
    """Each text's answer (its label, or multi-label its set of labels) and probabilities."""
    probs = classifier.probabilities(texts)
    answers = [p.labels if p.labels is not None else p.label
               for p in (classifier.predict(texts) if texts else [])]  # fmt: skip
    return answers, probs


def _macro_f1(classifier: TextClassifier, probs: np.ndarray, truth: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    config = classifier.config
    if config.multi_label:
        predicted = probs >= np.asarray(config.thresholds)[None, :]
    else:
        predicted = probs.argmax(axis=1)
    return float(f1_score(truth, predicted, average="macro", zero_division=0))


@dataclass
class RuntimeChoice:
    """The classifier to evaluate and serve, the runtime it runs on, why, and the figures."""

    classifier: TextClassifier
    runtime: str  # "onnx-fp32", "onnx-int8" or NATIVE
    reason: str
    metrics: dict[str, float] = field(default_factory=dict)


def choose_runtime(classifier: TextClassifier, texts: list[str], truth: np.ndarray,
                   folder: Path) -> RuntimeChoice:  # fmt: skip
    """int8 ONNX where it agrees with PyTorch (>= MIN_AGREEMENT of the answers, macro-F1
    within MAX_F1_DROP), else fp32 ONNX where it agrees, else the kind's own code."""
    fp32, int8 = folder / "fp32", folder / "int8"
    began = time.monotonic()
    try:
        if not isinstance(classifier, OnnxExportable) or not classifier.export_onnx(fp32):
            return RuntimeChoice(classifier, NATIVE, f"{classifier.config.kind} has no ONNX "
                                 "export: it serves through its own code")  # fmt: skip
        for network in fp32.rglob("*.onnx"):  # an ensemble exports one for each member
            quantize_int8(network, int8 / network.relative_to(fp32))
        variants = {ONNX_FP32: classifier.on_onnx(fp32, ONNX_FP32),
                    ONNX_INT8: classifier.on_onnx(int8, ONNX_INT8)}  # fmt: skip
    except Exception as exc:  # any exporter failure leaves the model on PyTorch
        log.warning("ONNX export failed: %s", exc, exc_info=True)
        said = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
        reason = f"ONNX export failed ({type(exc).__name__}): {said}"
        return RuntimeChoice(classifier, NATIVE, reason[:300])
    reference, probs = _answers(classifier, texts)
    reference_f1 = _macro_f1(classifier, probs, truth)
    metrics = {"onnx_export_seconds": time.monotonic() - began,
               "onnx_parity_documents": float(len(texts))}  # fmt: skip
    passing: dict[str, str] = {}
    for runtime, variant in variants.items():
        answers, variant_probs = _answers(variant, texts)
        name = runtime.replace("-", "_")
        agreement = float(np.mean([a == b for a, b in zip(answers, reference, strict=True)]))
        drop = reference_f1 - _macro_f1(variant, variant_probs, truth)
        error = float(np.abs(variant_probs - probs).max()) if texts else 0.0
        metrics |= {f"{name}_agreement": agreement, f"{name}_macro_f1_drop": drop,
                    f"{name}_max_probability_error": error}  # fmt: skip
        if agreement >= MIN_AGREEMENT and drop <= MAX_F1_DROP:
            passing[runtime] = f"{agreement:.1%} of the answers, macro-F1 {-drop:+.4f}"
    checked = f"against PyTorch on {len(texts)} documents"
    for runtime in (ONNX_INT8, ONNX_FP32):
        if runtime in passing:
            said = f"{runtime} agrees {checked}: {passing[runtime]}"
            return RuntimeChoice(variants[runtime], runtime, said, metrics)
    return RuntimeChoice(classifier, NATIVE,
                         f"no ONNX variant agrees {checked} (>= {MIN_AGREEMENT:.1%} of the "
                         f"answers, macro-F1 within {MAX_F1_DROP})", metrics)  # fmt: skip

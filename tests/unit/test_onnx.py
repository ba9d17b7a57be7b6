"""ONNX serving: each transformer kind exported, run by onnxruntime with the answers of its
PyTorch model (short and windowed texts), int8 kept only where it agrees, the fallback to
PyTorch saying why, and models saved before ONNX still loading through PyTorch."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from transformers import AutoModel, AutoTokenizer, BertConfig, BertForSequenceClassification

from training_job.kinds.ensemble import EnsembleClassifier
from training_job.kinds.finetune import OnnxWindowedClassifier, WindowedClassifier
from training_job.kinds.head import EmbeddingHeadClassifier, OnnxEncoder, TextEncoder
from training_job.onnx_export import NATIVE, choose_runtime
from training_job.serving import (
    ON_ONNX,
    ON_TORCH,
    ONNX_FP32,
    ONNX_INT8,
    SCIKIT_LEARN,
    ClassifierConfig,
    TextClassifier,
    load_classifier,
)

LABELS = {0: "a", 1: "b", 2: "c"}
LONG = " ".join(f"word{i} and some more text" for i in range(120))  # several windows
TEXTS = ["first", "a somewhat longer second text about the weather", LONG, "x"]


def _config(kind: str) -> ClassifierConfig:
    return ClassifierConfig(LABELS, max_length=32, window_overlap=8, max_windows=4, kind=kind)


@pytest.fixture(scope="module")
def finetuned(tiny_base_model: str) -> WindowedClassifier:
    """A sequence classifier with random weights: parity, not quality, is under test."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_base_model)
    config = BertConfig.from_pretrained(tiny_base_model, num_labels=3)
    model = BertForSequenceClassification(config).eval()
    return WindowedClassifier(model, tokenizer, _config("finetune"))


@pytest.fixture(scope="module")
def head(tiny_base_model: str) -> EmbeddingHeadClassifier:
    network = AutoModel.from_pretrained(tiny_base_model).eval()
    encoder = TextEncoder(network, AutoTokenizer.from_pretrained(tiny_base_model), _config("head"))
    texts = [f"{word} text {i}" for i in range(4) for word in ("rain", "goal", "vote")]
    labels = [i % 3 for i in range(len(texts))]
    regression = LogisticRegression(C=100.0, max_iter=3000).fit(encoder.embed(texts), labels)
    return EmbeddingHeadClassifier(encoder, regression, _config("head"))


@pytest.mark.parametrize("kind", ["finetune", "head"])
def test_each_transformer_kind_on_onnx_answers_as_on_pytorch(
    kind: str, finetuned: WindowedClassifier, head: EmbeddingHeadClassifier, tmp_path: Path
) -> None:
    classifier: TextClassifier = finetuned if kind == "finetune" else head
    reference = classifier.probabilities(TEXTS)
    assert classifier.export_onnx(tmp_path / "net")  # type: ignore[attr-defined]
    fp32 = classifier.on_onnx(tmp_path / "net", ONNX_FP32)  # type: ignore[attr-defined]
    np.testing.assert_allclose(fp32.probabilities(TEXTS), reference, atol=1e-4)
    assert classifier.requirements() >= ON_TORCH
    assert fp32.requirements() & ON_TORCH <= {"tokenizers"}
    assert fp32.requirements() >= ON_ONNX
    # saved and loaded by the loader every kind shares: the same answers, from onnxruntime
    fp32.save(tmp_path / "saved")
    loaded = load_classifier(tmp_path / "saved")
    assert isinstance(loaded, (OnnxWindowedClassifier, EmbeddingHeadClassifier))
    assert loaded.config.runtime == ONNX_FP32
    np.testing.assert_allclose(loaded.probabilities(TEXTS), reference, atol=1e-4)
    # and the features its scope measures distance on (training_job/scope.py), the same too
    features, served = classifier.represent(TEXTS)[1], loaded.represent(TEXTS)[1]
    assert features is not None and served is not None
    np.testing.assert_allclose(served, features, atol=1e-4)


def test_int8_scores_a_text_the_same_whatever_it_is_batched_with(
    finetuned: WindowedClassifier, tmp_path: Path
) -> None:
    from training_job.onnx_export import quantize_int8

    finetuned.export_onnx(tmp_path / "fp32")
    quantize_int8(tmp_path / "fp32/classifier.onnx", tmp_path / "int8/classifier.onnx")
    int8 = finetuned.on_onnx(tmp_path / "int8", ONNX_INT8)
    alone = int8.probabilities(["a somewhat longer second text about the weather"])
    batched = int8.probabilities(TEXTS)[1:2]
    np.testing.assert_allclose(batched, alone, atol=1e-6)


def test_the_job_serves_int8_where_it_agrees_and_logs_both_variants(
    finetuned: WindowedClassifier, tmp_path: Path
) -> None:
    truth = finetuned.probabilities(TEXTS).argmax(axis=1)
    choice = choose_runtime(finetuned, TEXTS, truth, tmp_path)
    assert choice.runtime in {ONNX_INT8, ONNX_FP32}, choice.reason
    assert choice.classifier.config.runtime == choice.runtime
    for variant in ("onnx_fp32", "onnx_int8"):
        assert {f"{variant}_agreement", f"{variant}_macro_f1_drop",
                f"{variant}_max_probability_error"} <= set(choice.metrics)  # fmt: skip
    assert choice.metrics["onnx_fp32_agreement"] == 1.0
    if choice.runtime == ONNX_FP32:  # int8 is kept only where it agrees
        assert choice.metrics["onnx_int8_agreement"] < 0.995 or (
            choice.metrics["onnx_int8_macro_f1_drop"] > 0.005
        )


class _Perturbed(TextClassifier):
    """A variant whose answers differ from its model's on the texts `wrong` names."""

    def __init__(self, model: TextClassifier, runtime: str, wrong: set[str]) -> None:
        self.model, self.wrong = model, wrong
        self.config = replace(model.config, runtime=runtime)

    def logits(self, texts: list[str]) -> np.ndarray:
        logits = self.model.logits(texts)
        return np.array(
            # rolled, not reversed: a reversed row keeps a middle label's argmax
            [
                np.roll(row, 1) if t in self.wrong else row
                for t, row in zip(texts, logits, strict=True)
            ]
        )

    def size_bytes(self) -> int:
        return 1

    def requirements(self) -> frozenset[str]:
        return ON_ONNX

    def save(self, folder: Path) -> None:
        raise AssertionError("not saved")


class _Exportable(TextClassifier):
    """A model whose ONNX variants answer as `variants` says (or whose export fails)."""

    def __init__(self, model: TextClassifier, wrong: dict[str, set[str]] | None) -> None:
        self.model, self.wrong = model, wrong
        self.config = model.config

    def logits(self, texts: list[str]) -> np.ndarray:
        return self.model.logits(texts)

    def size_bytes(self) -> int:
        return 1

    def requirements(self) -> frozenset[str]:
        return ON_TORCH

    def save(self, folder: Path) -> None:
        raise AssertionError("not saved")

    def export_onnx(self, folder: Path) -> bool:
        if self.wrong is None:
            raise RuntimeError("Unsupported operator aten::made_up\nat line 3")
        folder.mkdir(parents=True)
        return True

    def on_onnx(self, folder: Path, runtime: str) -> TextClassifier:
        assert self.wrong is not None
        return _Perturbed(self.model, runtime, self.wrong[runtime])


def test_a_failed_export_or_disagreeing_variants_leave_the_model_on_pytorch_saying_why(
    finetuned: WindowedClassifier, tmp_path: Path
) -> None:
    truth = finetuned.probabilities(TEXTS).argmax(axis=1)
    failed = choose_runtime(_Exportable(finetuned, None), TEXTS, truth, tmp_path / "1")
    assert failed.runtime == NATIVE
    assert failed.reason == ("ONNX export failed (RuntimeError): Unsupported operator "
                             "aten::made_up")  # fmt: skip
    both_wrong = {ONNX_FP32: {"first"}, ONNX_INT8: {"first"}}
    wrong = choose_runtime(_Exportable(finetuned, both_wrong), TEXTS, truth, tmp_path / "2")
    assert wrong.runtime == NATIVE and wrong.classifier.config.runtime == ""
    assert "no ONNX variant agrees against PyTorch on 4 documents" in wrong.reason
    assert wrong.metrics["onnx_fp32_agreement"] == 0.75
    int8_wrong = {ONNX_FP32: set(), ONNX_INT8: {"first"}}
    fp32 = choose_runtime(_Exportable(finetuned, int8_wrong), TEXTS, truth, tmp_path / "3")
    assert fp32.runtime == ONNX_FP32, fp32.reason
    assert fp32.metrics["onnx_int8_agreement"] == 0.75


def test_a_model_saved_before_onnx_loads_through_pytorch(
    finetuned: WindowedClassifier, head: EmbeddingHeadClassifier, tmp_path: Path
) -> None:
    for name, classifier in (("finetune", finetuned), ("head", head)):
        folder = tmp_path / name
        classifier.save(folder)
        written = json.loads((folder / "classifier.json").read_text())
        written.pop("runtime")  # as every model saved before this change
        (folder / "classifier.json").write_text(json.dumps(written))
        loaded = load_classifier(folder)
        assert loaded.config.runtime == ""
        assert loaded.requirements() >= ON_TORCH
        np.testing.assert_allclose(loaded.probabilities(TEXTS), classifier.probabilities(TEXTS),
                                   atol=1e-5)  # fmt: skip


def test_an_ensemble_runs_its_transformer_members_on_onnx_and_the_others_as_they_are(
    finetuned: WindowedClassifier, head: EmbeddingHeadClassifier, tmp_path: Path
) -> None:
    table = _Perturbed(finetuned, "", set())  # a member with no network to export
    ensemble = EnsembleClassifier([head, table, finetuned], _config("ensemble"))
    assert ensemble.export_onnx(tmp_path / "net")
    served = ensemble.on_onnx(tmp_path / "net", ONNX_FP32)
    assert [type(m) for m in served.members] == [EmbeddingHeadClassifier, _Perturbed,
                                                 OnnxWindowedClassifier]  # fmt: skip
    assert isinstance(served.members[0], EmbeddingHeadClassifier)
    assert isinstance(served.members[0].encoder, OnnxEncoder)
    np.testing.assert_allclose(served.probabilities(TEXTS), ensemble.probabilities(TEXTS),
                               atol=1e-4)  # fmt: skip
    assert served.requirements() == ON_ONNX | SCIKIT_LEARN


def test_a_finetune_network_exported_without_features_still_serves_its_logits(
    finetuned: WindowedClassifier, tmp_path: Path
) -> None:
    # Given a network exported as before scopes: logits alone
    from training_job.kinds.finetune import CLASSIFIER_ONNX
    from training_job.onnx_export import export_network

    ids_and_mask = finetuned.windows(["an example"])[0][0]
    ids = np.array([ids_and_mask])
    inputs = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    logits_alone = logits_module(finetuned)
    export_network(logits_alone, inputs, "logits", tmp_path / "old" / CLASSIFIER_ONNX)
    # When it is loaded as the loader loads a saved model
    old = finetuned.on_onnx(tmp_path / "old", ONNX_FP32)
    # Then it answers as before, with no features (its scope reads its probabilities)
    np.testing.assert_allclose(old.probabilities(TEXTS), finetuned.probabilities(TEXTS),
                               atol=1e-4)  # fmt: skip
    assert old.represent(TEXTS)[1] is None


def logits_module(classifier: WindowedClassifier) -> object:
    import torch

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = classifier.model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            logits: torch.Tensor = self.model(input_ids=input_ids,
                                              attention_mask=attention_mask).logits  # fmt: skip
            return logits

    return Logits()

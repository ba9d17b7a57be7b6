"""Windowed inference and calibration, on a tiny randomly initialised model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

from training_job.kinds.finetune import WindowedClassifier
from training_job.serving import ClassifierConfig, fit_temperature, select_windows, softmax


@pytest.fixture(scope="module")
def classifier(tiny_base_model: str) -> WindowedClassifier:
    tokenizer = AutoTokenizer.from_pretrained(tiny_base_model)
    config = BertConfig.from_pretrained(tiny_base_model, num_labels=3)
    model = BertForSequenceClassification(config).eval()
    settings = ClassifierConfig(
        id2label={0: "a", 1: "b", 2: "c"}, max_length=32, window_overlap=8, max_windows=4
    )
    return WindowedClassifier(model, tokenizer, settings)


def test_select_windows_keeps_first_and_last() -> None:
    assert select_windows(3, 5) == [0, 1, 2]
    assert select_windows(10, 4) == [0, 3, 6, 9]
    assert select_windows(10, 1) == [0]


def test_long_text_becomes_several_windows_capped(classifier: WindowedClassifier) -> None:
    short, long = "a short text", " ".join(f"word{i}" for i in range(400))
    windows, owners = classifier.windows([short, long])
    assert owners.count(0) == 1
    assert owners.count(1) == 4  # capped at max_windows, spread over the document
    assert all(len(w) <= 32 for w in windows)


def test_predictions_are_probabilities_in_input_order(classifier: WindowedClassifier) -> None:
    texts = ["first", " ".join(["long"] * 500), "third"]
    probs = classifier.probabilities(texts)
    assert probs.shape == (3, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    predictions = classifier.predict(texts)
    assert [p.label for p in predictions] == [
        classifier.config.id2label[int(i)] for i in probs.argmax(axis=1)
    ]


def test_saved_classifier_loads_with_its_config(
    classifier: WindowedClassifier, tmp_path: Path
) -> None:
    classifier.save(tmp_path / "clf")
    loaded = WindowedClassifier.load(tmp_path / "clf")
    assert loaded.config == classifier.config
    np.testing.assert_allclose(
        loaded.logits(["same text"]), classifier.logits(["same text"]), rtol=1e-5
    )


def test_temperature_softens_overconfident_logits() -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 400)
    # Right 70% of the time but with huge margins: a temperature above 1 fixes that.
    right = rng.random(400) < 0.7
    predicted = np.where(right, truth, 1 - truth)
    logits = np.zeros((400, 2))
    logits[np.arange(400), predicted] = 10.0
    temperature = fit_temperature(logits, truth)
    assert temperature > 5
    confidence = softmax(logits, temperature).max(axis=1).mean()
    assert abs(confidence - 0.7) < 0.05

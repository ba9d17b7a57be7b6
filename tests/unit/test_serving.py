"""Windowed inference and calibration, on a tiny randomly initialised model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

from training_job.kinds.base import (
    linear_head,
    linear_logits,
    selection_score,
    sigmoid,
    tune_thresholds,
)
from training_job.kinds.finetune import WindowedClassifier
from training_job.serving import (
    ClassifierConfig,
    decide,
    fit_temperature,
    select_windows,
    softmax,
)


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


def test_multi_label_answers_every_label_over_its_threshold_or_abstains() -> None:
    config = ClassifierConfig(id2label={0: "billing", 1: "bug", 2: "praise"}, max_length=32,
                              window_overlap=8, max_windows=1, multi_label=True,
                              thresholds=(0.5, 0.3, 0.9))  # fmt: skip
    both = decide(np.array([0.8, 0.35, 0.85]), config)
    assert (both.label, both.labels, both.abstained) == ("praise", ["billing", "bug"], False)
    assert both.scores == {"billing": 0.8, "bug": 0.35, "praise": 0.85}
    none = decide(np.array([0.2, 0.1, 0.6]), config)
    assert (none.labels, none.abstained, none.label) == ([], True, "praise")


def test_a_labels_threshold_is_its_own_best_shrunk_toward_the_shared_one_by_its_positives(
) -> None:  # fmt: skip
    # given: held-out scores where label 0 (100 positives of 200) separates at 0.3-0.7, and
    # label 1's two positives score 0.1 over its negatives' 0.05; label 2 has no positive
    truth = np.zeros((200, 3), dtype=int)
    truth[:100, 0] = 1
    truth[:2, 1] = 1
    probs = np.column_stack([np.where(truth[:, 0], 0.7, 0.3), np.where(truth[:, 1], 0.1, 0.05),
                             np.full(200, 0.2)])  # fmt: skip
    # when: thresholds are tuned on them
    thresholds = tune_thresholds(probs, truth)
    # then: the one threshold best for micro-F1 over all labels is 0.5 (0.1 would answer
    # label 0 for every document); label 0's own 0.5 stands on 100 positives, label 1's own
    # 0.1 counts 2 positives against the shared one's 20, label 2 takes the shared one
    assert thresholds.tolist() == pytest.approx([0.5, (2 * 0.1 + 20 * 0.5) / 22, 0.5])
    # and selection scores the kind at those thresholds: label 1's two positives missed
    assert selection_score(truth, np.log(probs / (1 - probs))) == pytest.approx(200 / 202)


def test_a_label_no_fitted_document_had_is_never_answered() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    # given: a one-vs-rest head fitted on documents where the third label has no positive
    # (a fold without a rare label's few documents)
    features = np.random.default_rng(0).normal(size=(20, 4))
    truth = np.zeros((20, 3), dtype=int)
    truth[:10, 0], truth[10:, 1] = 1, 1
    alone = linear_head(LogisticRegression(), multi_label=True)
    piped = make_pipeline(StandardScaler(), linear_head(LogisticRegression(), multi_label=True))
    for model in (alone.fit(features, truth), piped.fit(features, truth)):
        # when: its log-odds are read
        logits = linear_logits(model, features, multi_label=True)
        # then: that label is certain not to apply (one-vs-rest's decision_function says p 0.5)
        assert sigmoid(logits[:, 2]).max() < 1e-6
        assert tune_thresholds(sigmoid(logits), truth)[2] > 1e-6
        # and the fitted labels keep the regression's own probabilities
        expected = model.predict_proba(features)[:, :2]
        assert sigmoid(logits[:, :2]) == pytest.approx(expected)


def test_the_api_answers_a_multi_label_model_as_the_model_does(
    classifier: WindowedClassifier,
) -> None:
    from dataclasses import replace

    from functions.adapters.model_loader import LoadedClassifier

    classifier.config = replace(classifier.config, multi_label=True, thresholds=(0.5, 0.45, 0.55))
    try:
        texts = ["first", "second text", " ".join(["long"] * 300)]
        served = LoadedClassifier(classifier).predict(texts)
        own = classifier.predict(texts)
        assert [p.labels for p in served] == [p.labels for p in own]
        assert [p.abstained for p in served] == [p.abstained for p in own]
        assert [p.scores for p in served] == [p.scores for p in own]
    finally:
        classifier.config = replace(classifier.config, multi_label=False, thresholds=())

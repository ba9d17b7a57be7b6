"""The `tfidf` kind counts n-grams once per dataset and solves the regression in the
documents' span: a fold's model must be the model fitted on that fold's documents alone."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline

from tests.support import predict_in_fresh_process
from training_job.config import Hyperparameters
from training_job.data import Document
from training_job.kinds import tfidf
from training_job.kinds.base import SelectionData, linear_head, linear_logits
from training_job.split import Split

WORDS = {
    "sports": ["goal", "match", "striker", "league", "coach", "penalty", "score"],
    "weather": ["rain", "storm", "sunny", "forecast", "wind", "cloud", "snow"],
    "money": ["market", "shares", "bank", "profit", "rates", "trade", "budget"],
}


def _documents(per_label: int, words: int) -> list[Document]:
    rng = random.Random(0)
    shared = ["the", "a", "report", "said", "today", "people", "city", "new"]
    docs = []
    for label, own in WORDS.items():
        for i in range(per_label):
            text = " ".join(rng.choice(own + shared * 2) for _ in range(words))
            docs.append(Document(f"{label}/{i}", label, text, len(text), "0", "utf-8"))
    return docs


def _textbook(rows_texts: list[str], truth: np.ndarray, char_chars: int) -> Pipeline:
    """A fresh pipeline vectorised on these documents alone, solved on every column."""
    features = FeatureUnion([
        ("word", TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2))),
        ("char", TfidfVectorizer(sublinear_tf=True, analyzer="char_wb", ngram_range=(2, 5),
                                 preprocessor=lambda t: t[:char_chars].lower())),
    ])  # fmt: skip
    model = LogisticRegression(C=10.0, max_iter=3000, class_weight="balanced", tol=1e-8)
    return Pipeline([("features", features), ("model", model)]).fit(rows_texts, truth)


@pytest.mark.parametrize("words", [12, 400])  # short texts; long ones, char n-grams cut
def test_a_fold_fit_is_the_model_fitted_on_its_documents_alone(words: int) -> None:
    docs = _documents(10, words)
    labels = sorted(WORDS)
    data = SelectionData(Hyperparameters(labels=labels, mode="tfidf"), labels,
                         Split(docs, [], []), lambda e, m: None)  # fmt: skip
    trainer = tfidf.KIND.trainer(data)
    fold, held = list(range(0, 30, 3)) + list(range(1, 30, 3)), list(range(2, 30, 3))
    estimator = trainer.fit_rows(data.hp, fold)  # type: ignore[attr-defined]
    served = trainer.build(estimator).logits([docs[i].text for i in held])  # type: ignore[attr-defined]
    on_counts = trainer.scores(estimator, held)  # type: ignore[attr-defined]
    textbook = _textbook([docs[i].text for i in fold], data.truth[fold], 5000)
    expected = textbook.predict_log_proba([docs[i].text for i in held])
    # n-grams only in held-out documents count for nothing, as if never seen (the two
    # solvers stop within their tolerance of the same optimum)
    assert np.allclose(on_counts, expected, atol=2e-2)
    assert (on_counts.argmax(axis=1) == expected.argmax(axis=1)).all()
    assert np.allclose(served, on_counts, atol=1e-9)
    assert (served.argmax(axis=1) == data.truth[held]).mean() >= 0.8


@pytest.mark.parametrize("multi_label", [False, True])
def test_the_span_solver_gives_the_model_of_the_full_solver(
    monkeypatch: pytest.MonkeyPatch, multi_label: bool
) -> None:
    # both solved tightly: at the default tolerance each stops its own way short of the optimum
    def tight(c: float, multi: bool = False) -> Any:
        return linear_head(
            LogisticRegression(C=c, max_iter=10_000, class_weight="balanced", tol=1e-10), multi
        )

    monkeypatch.setattr(tfidf, "logistic_regression", tight)
    rng = random.Random(1)
    vocabulary = ["".join(rng.choice("abcdefghijklmnop") for _ in range(7)) for _ in range(900)]
    texts = [" ".join(rng.choice(vocabulary) for _ in range(80)) for _ in range(24)]
    truth = np.array([i % 3 for i in range(24)])
    if multi_label:  # every third document has a second label
        truth = np.eye(3, dtype=int)[truth]
        truth[::3, 2] = 1
    features = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5)).fit_transform(texts)
    assert features.shape[1] >= tfidf.SPAN_SOLVER_COLUMNS_PER_ROW * features.shape[0]
    span = tfidf.fit_logistic(features, truth, 10.0)
    full = tfidf.logistic_regression(10.0, multi_label).fit(features, truth)
    assert np.allclose(linear_logits(span, features, multi_label),
                       linear_logits(full, features, multi_label), atol=1e-5)  # fmt: skip
    for fitted, expected in zip(getattr(span, "estimators_", [span]),
                                getattr(full, "estimators_", [full]), strict=True):  # fmt: skip
        assert fitted.coef_.shape == expected.coef_.shape
        assert np.allclose(fitted.coef_, expected.coef_, atol=1e-4)


def test_a_saved_tfidf_model_predicts_in_a_process_without_torch_or_transformers(
    tmp_path: Path,
) -> None:
    # given: a tfidf model fitted and saved as the job saves it
    docs = _documents(6, 12)
    labels = sorted(WORDS)
    data = SelectionData(Hyperparameters(labels=labels, mode="tfidf"), labels,
                         Split(docs, [], []), lambda e, m: None)  # fmt: skip
    trainer = tfidf.KIND.trainer(data)
    estimator = trainer.fit_rows(data.hp, list(range(len(docs))))  # type: ignore[attr-defined]
    trainer.build(estimator).save(tmp_path / "model")  # type: ignore[attr-defined]

    # when: a fresh process loads it through the loader every kind shares and predicts
    label, heavy = predict_in_fresh_process(tmp_path / "model", "storm and rain")

    # then: it answers, and neither torch nor transformers was imported
    assert label == "weather"
    assert heavy == []

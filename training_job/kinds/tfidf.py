"""`tfidf`: TF-IDF word (1-2) and character (2-5) n-grams + logistic regression.

Seconds to fit, no encoder: wins on keyword-like labels and long documents with plenty of
data, and is the cheapest baseline for `auto`.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    read_options,
)
from training_job.serving import ClassifierConfig, TextClassifier


@dataclass(frozen=True)
class TfidfOptions:
    tfidf_c: float = 10.0  # inverse regularisation of the logistic regression


def tfidf_pipeline(options: TfidfOptions, n_docs: int) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, Pipeline

    min_df = 2 if n_docs >= 1000 else 1  # drop hapaxes only where there is data to spare
    features = FeatureUnion(
        [
            ("word", TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=min_df,
                                     max_features=200_000)),
            ("char", TfidfVectorizer(sublinear_tf=True, analyzer="char_wb", ngram_range=(2, 5),
                                     min_df=min_df, max_features=300_000)),
        ]
    )  # fmt: skip
    head = LogisticRegression(C=options.tfidf_c, max_iter=3000, class_weight="balanced")
    return Pipeline([("features", features), ("model", head)])


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


class _Trainer(CrossValidatedTrainer):
    def __init__(self, data: SelectionData) -> None:
        super().__init__(data)
        self.texts = data.texts
        self.config = data.config(Tfidf.name)

    def fit_rows(self, hp: Hyperparameters, rows: list[int]) -> Any:
        pipeline = tfidf_pipeline(read_options(TfidfOptions, hp), len(rows))
        return pipeline.fit([self.texts[i] for i in rows], self.truth[rows])

    def scores(self, estimator: Any, rows: list[int]) -> np.ndarray:
        result: np.ndarray = estimator.predict_log_proba([self.texts[i] for i in rows])
        return result

    def build(self, estimator: Any) -> TextClassifier:
        return TfidfClassifier(estimator, self.config)


class Tfidf(ModelKind):
    name = "tfidf"
    summary = "TF-IDF word and character n-grams + logistic regression; seconds to train"
    options = TfidfOptions
    space = {"tfidf_c": Search(0.1, 1000.0, log=True)}

    def trainer(self, data: SelectionData) -> KindTrainer:
        return _Trainer(data)

    def load(self, folder: Path, config: ClassifierConfig) -> TextClassifier:
        import joblib

        return TfidfClassifier(joblib.load(folder / SKLEARN_FILE), config)


KIND = Tfidf()

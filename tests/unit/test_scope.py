"""The out-of-scope summary a model keeps of its training inputs (training_job/scope.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from functions.core import drift
from training_job import scope
from training_job.data import Document
from training_job.scope import Scope, scope_for
from training_job.serving import ClassifierConfig, TextClassifier, log_unsureness, sigmoid, softmax


class PointClassifier(TextClassifier):
    """Texts are points ("x,y,..."): its features, and logits nearer the closer class mean."""

    def __init__(self, means: np.ndarray, with_features: bool = True) -> None:
        self.means = means
        self.with_features = with_features
        labels = {i: f"label{i}" for i in range(len(means))}
        self.config = ClassifierConfig(labels, 64, 0, 1, kind="test")

    def represent(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
        points = np.array([[float(v) for v in t.split(",")] for t in texts])
        logits = -((points[:, None, :] - self.means[None]) ** 2).sum(axis=2) / 4
        return logits, points if self.with_features else None

    def logits(self, texts: list[str]) -> np.ndarray:
        return self.represent(texts)[0]

    def size_bytes(self) -> int:
        return 0

    def save(self, folder: Path) -> None:
        return None

    def requirements(self) -> frozenset[str]:
        return frozenset()


def texts(points: np.ndarray) -> list[str]:
    return [",".join(f"{v:.6f}" for v in row) for row in points]


def documents(points: np.ndarray, classes: np.ndarray) -> list[Document]:
    return [Document(f"k{i}", f"label{c}", t, 1, "", "utf-8")
            for i, (t, c) in enumerate(zip(texts(points), classes, strict=True))]  # fmt: skip


def clusters(rng: np.random.Generator, centres: np.ndarray, per: int
             ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    points = np.concatenate([c + rng.normal(size=(per, centres.shape[1])) for c in centres])
    return points, np.repeat(np.arange(len(centres)), per)


def fitted_scope(classifier: PointClassifier, points: np.ndarray, classes: np.ndarray) -> Scope:
    held = list(range(0, len(points), 3))  # every third document held out of its selection
    logits = classifier.logits(texts(points[held]))
    labels = [f"label{i}" for i in range(len(classifier.means))]
    return scope_for(classifier, held, logits, documents(points, classes), labels, 1)


def test_texts_from_a_class_never_seen_are_out_of_scope_and_seen_ones_mostly_not() -> None:
    # Given a model of three classes, and a fourth class it never saw
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=4.0, size=(4, 16))
    classifier = PointClassifier(centres[:3])
    seen, classes = clusters(rng, centres[:3], 60)
    classifier.scope = fitted_scope(classifier, seen, classes)
    # When new documents of the seen classes and of the unseen one are assessed
    fresh = classifier.assess(texts(clusters(rng, centres[:3], 200)[0]))
    unseen = classifier.assess(texts(clusters(rng, centres[3:], 200)[0]))
    # Then about 5 % of the seen classes' documents are flagged, and the unseen class's are
    assert fresh.out_of_scope is not None and unseen.out_of_scope is not None
    assert 0.0 < fresh.out_of_scope.mean() < 0.15
    assert unseen.out_of_scope.mean() > 0.95
    assert fresh.ood_scores is not None and 0.3 < np.median(fresh.ood_scores) < 0.7
    assert classifier.scope.method == scope.DISTANCE_AND_UNSURENESS
    assert abs(classifier.scope.reference.sum() - 1.0) < 1e-9


def test_a_saved_scope_reads_back_and_scores_the_same(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    classifier = PointClassifier(rng.normal(scale=3.0, size=(2, 8)))
    points, classes = clusters(rng, classifier.means, 20)
    fitted = fitted_scope(classifier, points, classes)
    fitted.save(tmp_path)
    read = Scope.read(tmp_path)
    assert read is not None and read.method == fitted.method
    logits, features = classifier.represent(texts(points))
    unsure = log_unsureness(logits, classifier.config)
    assert np.allclose(read.scores(unsure, features), fitted.scores(unsure, features))
    assert Scope.read(tmp_path / "elsewhere") is None  # a model saved before scopes


def test_without_features_an_unsure_answer_is_out_of_scope() -> None:
    # Given a model without sentence features (as tfidf, finetune)
    rng = np.random.default_rng(3)
    classifier = PointClassifier(np.array([[-3.0, 0.0], [3.0, 0.0]]), with_features=False)
    points, classes = clusters(rng, classifier.means, 40)
    classifier.scope = fitted_scope(classifier, points, classes)
    # Then a text between its classes is out of scope and one deep in a class is not
    assessed = classifier.assess(["0,0", "-3,0"])
    assert assessed.out_of_scope is not None and assessed.out_of_scope.tolist() == [True, False]
    assert classifier.scope.method == scope.UNSURENESS


def test_few_documents_a_label_still_give_a_scope() -> None:
    rng = np.random.default_rng(4)
    classifier = PointClassifier(rng.normal(scale=3.0, size=(3, 384)))
    points, classes = clusters(rng, classifier.means, 4)  # 12 documents, 384 features
    fitted = fitted_scope(classifier, points, classes)
    assert np.isfinite(fitted.mean) and np.isfinite(fitted.threshold)
    logits, features = classifier.represent(texts(points))
    assert np.isfinite(fitted.scores(log_unsureness(logits, classifier.config), features)).all()


def test_the_control_plane_reads_the_scope_as_the_job_writes_it() -> None:
    assert drift.REFERENCE_BINS == scope.REFERENCE_BINS
    assert abs(drift.EXPECTED_OUT_OF_SCOPE - (1 - scope.IN_SCOPE_QUANTILE)) < 1e-12


def test_unsureness_stays_finite_and_ordered_where_probabilities_round_to_one() -> None:
    config = ClassifierConfig({0: "a", 1: "b", 2: "c"}, 64, 0, 1, temperature=2.0)
    logits = np.array([[0.0, 1.0, 2.0], [100.0, 0.0, 0.0], [200.0, 0.0, 0.0]])
    found = log_unsureness(logits, config)
    expected = np.log(1 - softmax(logits[:1], 2.0).max())
    assert found[0] == pytest.approx(expected)
    assert np.isfinite(found).all() and found[1] > found[2]  # both "1.0" as probabilities
    multi = ClassifierConfig({0: "a", 1: "b"}, 64, 0, 1, multi_label=True, thresholds=(0.5, 0.5))
    found = log_unsureness(np.array([[0.3, -1.0], [80.0, 0.0]]), multi)
    assert found[0] == pytest.approx(np.log(1 - sigmoid(np.array([0.3]))[0]))
    assert np.isfinite(found[1]) and found[1] < -70


def test_the_scope_tag_fits_mlflow_whatever_the_labels() -> None:
    from training_job.job import MAX_TAG_CHARS, scope_tag
    from training_job.split import Split

    rng = np.random.default_rng(5)
    classifier = PointClassifier(rng.normal(scale=3.0, size=(2, 4)))
    points, classes = clusters(rng, classifier.means, 10)
    fitted = fitted_scope(classifier, points, classes)
    labels = [f"{'ラベル' * 12}{i}" for i in range(100)]  # 100 long non-ASCII names
    docs = [Document(f"k{i}", label, "t", 1, "", "utf-8") for i, label in enumerate(labels)]
    tag = scope_tag(fitted, Split(train=docs, validation=[], test=[]), labels)
    assert len(tag) <= MAX_TAG_CHARS and '"reference"' in tag
    small = scope_tag(fitted, Split(train=docs[:2], validation=[], test=[]), labels[:2])
    assert labels[0] in small  # names kept as they are, not \u-escaped

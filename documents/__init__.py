"""What a document must be for the service to train on it or classify it.

One implementation for the three places that read documents: the training job, the batch
job and online predict. No I/O: callers read the bytes. The rules use the standard library
only; the extractors of documents/extract.py (PDF, DOCX, HTML) import theirs when called.
"""

from documents.labelled_csv import (
    CsvError,
    LabelledCsv,
    is_csv_dataset,
    label_counts,
    read_labelled_csv,
    row_key,
    row_line,
    row_text,
)
from documents.rules import (
    BINARY,
    EMPTY,
    HIDDEN,
    decode_document,
    listing_problem,
    text_problem,
    too_large,
)

__all__ = [
    "BINARY",
    "EMPTY",
    "HIDDEN",
    "CsvError",
    "LabelledCsv",
    "decode_document",
    "is_csv_dataset",
    "label_counts",
    "listing_problem",
    "read_labelled_csv",
    "row_key",
    "row_line",
    "row_text",
    "text_problem",
    "too_large",
]

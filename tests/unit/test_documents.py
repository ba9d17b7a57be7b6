"""The document rules shared by training, batch and predict (documents/rules.py)."""

from __future__ import annotations

import random

import pytest

from documents import decode_document, listing_problem, text_problem

# A PDF as files really are: a text header, then an image stream of high-entropy bytes.
_STREAM = random.Random(0).randbytes(4000)
PDF = (
    b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Length 4000 /Filter /DCTDecode >>\nstream\n"
    + _STREAM
    + b"\nendstream\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + _STREAM[:1000]
WINDOWS_TEXT = "\u00a3100 profit \u2013 \u20ac5"  # not UTF-8, and not Latin-1 either
ACCENTS_AND_EMOJI = "Caf\u00e9 au lait, na\u00efve fa\u00e7ade \U0001f600 \u2014 \u201cquoted\u201d"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"", "empty"),
        (b"  \n\t ", "empty"),
        (b"\x00\x01\x02binary", "binary"),
        (b"plain text " * 1000 + b"\x00 after the first 8 KiB", "binary"),
        (bytes(range(1, 32)) * 10, "binary"),
        (PDF, "binary"),
        (JPEG, "binary"),
        ("caf\u00e9 na\u00efve".encode(), ("caf\u00e9 na\u00efve", "utf-8")),
        ("\ufeffwith bom".encode(), ("with bom", "utf-8")),
        (WINDOWS_TEXT.encode("cp1252"), (WINDOWS_TEXT, "cp1252")),
        (b"\x81\x8d odd bytes", ("\x81\x8d odd bytes", "latin-1")),
    ],
)
def test_decode_document_classifies_bytes(raw: bytes, expected: object) -> None:
    assert decode_document(raw) == expected


@pytest.mark.parametrize(
    ("key", "size", "expected"),
    [
        ("ds/pos/a.txt", 10, None),
        ("ds/pos/.DS_Store", 10, "hidden file"),
        ("ds/pos/.", 10, "hidden file"),
        ("ds/pos/empty.txt", 0, "empty"),
        ("ds/pos/big.txt", 101, "larger than 100 bytes"),
        ("ds/pos/limit.txt", 100, None),
        ("ds/.folder/a.txt", 10, None),  # only the file's own name makes it hidden
    ],
)
def test_listing_problem_judges_name_and_size(key: str, size: int, expected: str | None) -> None:
    assert listing_problem(key, size, max_bytes=100) == expected


def test_a_binary_file_read_with_replacement_characters_is_binary() -> None:
    # given: what `predict --file x.pdf` sends, reading the file with errors="replace"
    as_read = PDF.decode("utf-8", errors="replace")
    # then: it is refused, with or without its NULs
    assert text_problem(as_read) == "binary"
    assert text_problem(as_read.replace("\x00", "")) == "binary"


def test_replacement_characters_alone_mark_a_text_binary() -> None:
    # given: high bytes and printable ASCII only (no NUL, no control character)
    raw = bytes(b for b in _STREAM if b >= 0x80 or 0x20 <= b < 0x7F)
    as_read = raw.decode("utf-8", errors="replace")
    assert "\x00" not in as_read
    assert text_problem(as_read) == "binary"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (ACCENTS_AND_EMOJI, None),
        ("r\u00e9sum\u00e9 \ufffd of one mangled character in a longer sentence", None),
        ("line one\r\n\tline two\fpage two\v", None),
        ("   \n\t", "empty"),
        ("", "empty"),
        ("text with a NUL \x00 inside", "binary"),
        ("\x01\x02\x03\x04 abc", "binary"),
    ],
)
def test_text_problem_judges_received_text(text: str, expected: str | None) -> None:
    assert text_problem(text) == expected


@pytest.mark.parametrize(
    "raw",
    [ACCENTS_AND_EMOJI.encode(), "\u00a3100".encode("cp1252"), b"\x81\x8d odd", b"a\tb\r\nc"],
)
def test_what_training_decodes_predict_accepts(raw: bytes) -> None:
    # The job trains on the decoded text; predict must accept the same text as a string.
    decoded = decode_document(raw)
    assert isinstance(decoded, tuple)
    assert text_problem(decoded[0]) is None

"""The document rules: from a listing (name and size), from bytes, and from received text.

Decoding policy: UTF-8 first (a BOM is dropped); if that fails and the bytes are not binary,
Windows-1252 and then Latin-1 are tried (Latin-1 decodes any byte string). A document is
binary when it holds a NUL or when more than `BINARY_CONTROL_RATIO` of its characters are
control characters other than whitespace; it is empty when it holds only whitespace. Text
that arrived already decoded (predict) is judged by the same rule, and is binary as well
when more than `REPLACEMENT_RATIO` of it is U+FFFD, which is what a binary file read with
`errors="replace"` becomes. Reasons are short stable strings shown to users and in reports.
"""

from __future__ import annotations

import re

EMPTY = "empty"
BINARY = "binary"
HIDDEN = "hidden file"

# A control-character share above this marks a document as binary rather than text.
BINARY_CONTROL_RATIO = 0.1
# Binary read with errors="replace" is 30-50% U+FFFD; text has at most a few mangled ones.
REPLACEMENT_RATIO = 0.1
# A binary file shows a NUL early: a cheap look before decoding a large file.
_SNIFF_BYTES = 8192
_ENCODINGS = ("utf-8-sig", "cp1252", "latin-1")
# C0 control characters except tab, line feed, vertical tab, form feed and carriage return.
_CONTROL = re.compile("[\x00-\x08\x0e-\x1f]")


def too_large(max_bytes: int) -> str:
    """The reason given for a document over the size limit."""
    return f"larger than {max_bytes} bytes"


def listing_problem(key: str, size: int, max_bytes: int) -> str | None:
    """Why a listed object (key and size) is not a usable document, or None."""
    name = key.rsplit("/", 1)[-1]
    if name.startswith("."):
        return HIDDEN
    if size <= 0:
        return EMPTY
    if size > max_bytes:
        return too_large(max_bytes)
    return None


def text_problem(text: str) -> str | None:
    """Why a text (decoded, or received as a string) is not a usable document, or None."""
    if not text.strip():
        return EMPTY
    if "\x00" in text:
        return BINARY
    if len(_CONTROL.findall(text)) > BINARY_CONTROL_RATIO * len(text):
        return BINARY
    if text.count("\ufffd") > REPLACEMENT_RATIO * len(text):
        return BINARY
    return None


def decode_document(raw: bytes) -> tuple[str, str] | str:
    """Return (text, encoding) for usable bytes, or the reason they cannot be used."""
    if b"\x00" in raw[:_SNIFF_BYTES]:
        return BINARY
    for encoding in _ENCODINGS:
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        problem = text_problem(text)
        if problem is not None:
            return problem
        return text, "utf-8" if encoding == "utf-8-sig" else encoding
    return "undecodable"  # unreachable in practice: latin-1 decodes any byte string

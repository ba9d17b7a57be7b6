"""Text out of PDF, DOCX, HTML, e-mail and plain text (documents/extract.py), on real files
written by the libraries that make them, and the bad files customers' folders hold."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from documents.extract import (
    DOCX,
    EMAIL,
    ENCRYPTED,
    HTML,
    NO_TEXT_LAYER,
    PDF,
    TEXT,
    Extracted,
    Limits,
    detect,
    extract,
)
from tests.support import (
    blank_pdf_bytes,
    docx_bytes,
    eml_bytes,
    encrypted_pdf_bytes,
    html_bytes,
    pdf_bytes,
    zip_bomb_bytes,
)
from training_job.data import FolderSource, read_dataset

SENTENCE = "Shares of the bank fell after it reported lower quarterly profits."


@pytest.mark.parametrize(
    ("raw", "kind", "extractor"),
    [
        (pdf_bytes(SENTENCE), PDF, "pypdf"),
        (docx_bytes(SENTENCE), DOCX, "python-docx"),
        (html_bytes(SENTENCE), HTML, "trafilatura"),
        (eml_bytes("Quarterly results", SENTENCE), EMAIL, "email"),
        (SENTENCE.encode("cp1252"), TEXT, "utf-8"),
        (("Café " + SENTENCE).encode("cp1252"), TEXT, "cp1252"),
    ],
    ids=["pdf", "docx", "html", "eml", "text", "cp1252"],
)
def test_each_format_is_found_from_its_content_and_read(raw: bytes, kind: str, extractor: str
                                                        ) -> None:  # fmt: skip
    found = extract(raw)
    assert isinstance(found, Extracted), found
    assert (found.format, found.extractor) == (kind, extractor)
    assert SENTENCE in " ".join(found.text.split())


def test_an_email_keeps_its_headers_and_lists_attachments_unread() -> None:
    found = extract(eml_bytes("Invoice overdue", "Please pay by Friday.", "invoice.pdf"))
    assert isinstance(found, Extracted)
    assert "Subject: Invoice overdue" in found.text
    assert "Please pay by Friday." in found.text
    assert found.text.endswith("Attachments: invoice.pdf")
    assert "attached" not in found.text  # the attachment's own text is not read


def test_html_drops_scripts() -> None:
    found = extract(html_bytes("Interest rates rose by a quarter point on Tuesday."))
    assert isinstance(found, Extracted)
    assert "tracking" not in found.text and "quarter point" in found.text


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (encrypted_pdf_bytes(SENTENCE), ENCRYPTED),
        (blank_pdf_bytes(), NO_TEXT_LAYER),
        (blank_pdf_bytes(2000), "PDF of 2000 pages, more than the limit of 500"),
        (b"%PDF-1.7\n" + b"\x8f" * 300, "unreadable PDF"),
        (zip_bomb_bytes(), "DOCX unpacks to 62,914,568 bytes, more than the limit"),
        (b"PK\x03\x04" + b"\x00" * 200, "a damaged ZIP archive, not a readable DOCX"),
        (b"<html><head><script>track()</script></head><body><script>x()</script></body></html>",
         "empty: no text in the HTML"),
        (eml_bytes("scan", "", "scan.pdf"),
         "empty: the e-mail has no text body; attachments, not read: scan.pdf"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 500, "an Office 97-2003 file"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "binary"),
    ],
    ids=["encrypted", "scanned", "2000-pages", "corrupt-pdf", "zip-bomb", "corrupt-docx",
         "all-script", "attachment-only", "ole", "png"],
)  # fmt: skip
def test_bad_documents_are_refused_with_their_reason_quickly(raw: bytes, reason: str) -> None:
    began = time.monotonic()
    found = extract(raw)
    assert isinstance(found, str) and found.startswith(reason), found
    assert time.monotonic() - began < 5  # bounded by the limits, not by the file


def test_limits_bound_pages_and_characters() -> None:
    limits = Limits(max_pdf_pages=2, max_extracted_chars=20)
    assert extract(pdf_bytes(SENTENCE, pages=3), limits) == (
        "PDF of 3 pages, more than the limit of 2"
    )
    found = extract(docx_bytes(SENTENCE), limits)
    assert isinstance(found, Extracted) and found.text == SENTENCE[:20]


def test_detection_reads_the_content_not_the_name(tmp_path: Path) -> None:
    # given: a label folder where names lie about formats, and documents that cannot be read
    for name, raw in {
        "report.txt": pdf_bytes(SENTENCE),  # a PDF named .txt
        "memo.pdf": SENTENCE.encode(),  # text named .pdf
        "letter.docx": docx_bytes(SENTENCE),
        "page.html": html_bytes(SENTENCE),
        "mail.eml": eml_bytes("Results", SENTENCE),
        "scan.pdf": blank_pdf_bytes(),
        "bomb.docx": zip_bomb_bytes(),
    }.items():
        (tmp_path / "finance" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "finance" / name).write_bytes(raw)
    # when: the job reads the dataset
    dataset = read_dataset(FolderSource(tmp_path), ["finance"], max_bytes=1 << 20)
    # then: each usable document is read as what it is; the others are listed with reasons
    formats = {doc.key: doc.format for doc in dataset.documents}
    assert formats == {"finance/report.txt": PDF, "finance/memo.pdf": TEXT,
                       "finance/letter.docx": DOCX, "finance/page.html": HTML,
                       "finance/mail.eml": EMAIL}  # fmt: skip
    assert all(SENTENCE in " ".join(doc.text.split()) for doc in dataset.documents)
    rejected = {r.key: r.reason for r in dataset.rejected}
    assert rejected["finance/scan.pdf"] == NO_TEXT_LAYER
    assert rejected["finance/bomb.docx"].startswith("DOCX unpacks to")
    report = dataset.report()
    assert report["formats_per_label"] == {"finance": {PDF: 1, TEXT: 1, DOCX: 1, HTML: 1,
                                                       EMAIL: 1}}  # fmt: skip
    extracted = {row["key"]: row for row in report["extracted"]}
    assert set(extracted) == set(formats) - {"finance/memo.pdf"}  # plain text is not listed
    assert extracted["finance/report.txt"]["extractor"] == "pypdf"
    assert extracted["finance/report.txt"]["chars"] == len(SENTENCE)


def test_detect_needs_more_than_a_colon_for_an_email() -> None:
    assert detect(b"Note: the meeting moved.\nSee you there.\n") == TEXT
    assert detect(b"From: a@b.c\nSubject: hi\n\nbody\n") == EMAIL

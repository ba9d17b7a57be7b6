"""Text out of the documents customers have: PDF (its text layer), Word (DOCX), web pages
(HTML), e-mail (RFC 822 `.eml`) and plain text in any common encoding.

The format is found from the content (magic bytes, then the opening of the text), never
from the name alone: a PDF saved as `.txt` is read as a PDF and a text file named `.pdf` as
text. Each extractor is a maintained library, imported only when a document of its format
arrives:
- PDF: `pypdf` (pure Python, BSD). An encrypted PDF is opened with the empty password
  (what viewers do) or listed as encrypted; a PDF without a text layer (a scan) is listed as
  "no text layer": reading it would take OCR.
- DOCX: `python-docx` (MIT), paragraphs and table cells in order. The archive's declared
  sizes are checked before anything is unpacked, so a zip bomb is refused unread.
- HTML: `trafilatura` (Apache-2.0), the page's main content without navigation and
  boilerplate; pages too short for its content detection fall back to its plain-text
  conversion. Scripts and styles never count as text.
- E-mail: the standard library's `email` (headers From, To, Date, Subject; the plain body, or
  the HTML body through the HTML extractor); attachments are listed by name, not read.
Plain text keeps the decoding policy of documents/rules.py.

Every extractor stops at the same `Limits` (pages, unpacked bytes, characters kept), so time
and memory are bounded by them; a document over a limit, or one a library cannot read, is
refused with a reason and never raises.
"""

from __future__ import annotations

import email
import email.policy
import io
import re
import zipfile
from dataclasses import dataclass
from email.message import EmailMessage

from documents.rules import BINARY, EMPTY, decode_document

TEXT, PDF, DOCX, HTML, EMAIL = "text", "pdf", "docx", "html", "email"
FORMATS = (TEXT, PDF, DOCX, HTML, EMAIL)
NO_TEXT_LAYER = "no text layer (a scanned PDF: it would take OCR)"
ENCRYPTED = "encrypted PDF (needs a password)"

# What reads each format; their versions are part of a cached extraction's identity.
EXTRACTOR_PACKAGES = ("pypdf", "python-docx", "trafilatura")
OLE = "ole"  # Office 97-2003 (.doc, .xls, Outlook .msg): found, never read
OLE_REFUSED = "an Office 97-2003 file (.doc, .xls or Outlook .msg): save it as DOCX or .eml"
SNIFF_BYTES = 2048  # what detect() reads: a survey fetches no more of a document
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# Formats by name, for counting a listing without opening it; extract() trusts only content.
_NAMED = {".pdf": PDF, ".docx": DOCX, ".htm": HTML, ".html": HTML, ".xhtml": HTML,
          ".eml": EMAIL, ".txt": TEXT, ".text": TEXT, ".md": TEXT, "": TEXT}  # fmt: skip
_HTML_START = re.compile(rb"^\s*(<!--.*?-->\s*)*<(!doctype\s+html|html|head|body)\b", re.I | re.S)
_HEADER = re.compile(
    r"^(from|to|cc|subject|date|received|return-path|mime-version|message-id|"
    r"delivered-to|reply-to|content-type|x-[\w-]+):[ \t]",
    re.I,
)


@dataclass(frozen=True)
class Limits:
    """What one document may cost to read; the same everywhere (job, batch, predict: the
    service's settings of these names reach the jobs as hyperparameters)."""

    max_pdf_pages: int = 500
    max_unpacked_bytes: int = 50 * 2**20  # the parts of a DOCX, as its archive declares them
    max_extracted_chars: int = 1_000_000  # characters kept of a document's text

    @classmethod
    def of(cls, values: object) -> Limits:
        """The limits held by a settings or parameters object under the same names."""
        return cls(**{name: getattr(values, name) for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Extracted:
    text: str
    format: str  # one of FORMATS
    extractor: str  # e.g. "pypdf", "utf-8" (plain text: its encoding)

    @property
    def encoding(self) -> str:
        """Plain text's encoding; the libraries hand back decoded text ("utf-8")."""
        return self.extractor if self.format == TEXT else "utf-8"


class Refused(Exception):
    """A document that cannot be read; its message is the reason shown to users."""


def detect(raw: bytes) -> str:
    """The format of `raw` from its content; TEXT where nothing else matches."""
    head = raw[:SNIFF_BYTES]
    if b"%PDF-" in head[:1024]:
        return PDF
    if head.startswith(b"PK\x03\x04"):
        return DOCX  # any other ZIP is refused by the DOCX reader, with that reason
    if head.startswith(_OLE_MAGIC):
        return OLE
    if _HTML_START.match(head):
        return HTML
    if _looks_like_email(head):
        return EMAIL
    return TEXT


def format_of_name(key: str) -> str | None:
    """The format a document's name announces (plain text for no extension), or None where
    the name says nothing this module knows: only its content can tell."""
    name = key.rsplit("/", 1)[-1]
    extension = name[name.rfind(".") :].lower() if "." in name.lstrip(".") else ""
    return _NAMED.get(extension)


def opening(head: bytes) -> tuple[str, str | None]:
    """A document's format from its first SNIFF_BYTES, and the reason it cannot be read where
    they already show it (an Office 97-2003 file, binary); None where only reading it all
    can tell (an encrypted or scanned PDF)."""
    found = detect(head)
    if found == OLE:
        return found, OLE_REFUSED
    if found == TEXT and decode_document(head) == BINARY:
        return found, BINARY
    return found, None


def _looks_like_email(head: bytes) -> bool:
    """Headers from the first line to a blank line, at least two of them known ones."""
    lines = head.decode("latin-1").splitlines()
    known = 0
    for index, line in enumerate(lines):
        if not line.strip():
            return index > 0 and known >= 2
        if line[:1] in " \t" and index > 0:
            continue  # a folded header's continuation
        if _HEADER.match(line):
            known += 1
        elif index == 0 or ":" not in line.split(" ", 1)[0]:
            return False
    return False


def extract(raw: bytes, limits: Limits | None = None) -> Extracted | str:
    """The text of a document and how it was read, or the reason it cannot be used."""
    limits = limits or Limits()
    found = detect(raw)
    try:
        if found == PDF:
            text, extractor = _pdf(raw, limits), "pypdf"
        elif found == DOCX:
            text, extractor = _docx(raw, limits), "python-docx"
        elif found == HTML:
            text, extractor = _html(raw.decode("utf-8", errors="replace")), "trafilatura"
        elif found == EMAIL:
            text, extractor = _email(raw), "email"
        elif found == OLE:
            return OLE_REFUSED
        else:
            decoded = decode_document(raw)
            if isinstance(decoded, str):
                return decoded
            return Extracted(decoded[0][: limits.max_extracted_chars], TEXT, decoded[1])
    except Refused as exc:
        return str(exc)
    except Exception as exc:  # a library's error on a malformed file: the reason, not a crash
        return f"unreadable {found.upper()}: {type(exc).__name__}: {str(exc)[:200]}"
    text = text.strip()
    if not text:
        return NO_TEXT_LAYER if found == PDF else f"{EMPTY}: no text in the {found.upper()}"
    if "\x00" in text:
        return BINARY
    return Extracted(text[: limits.max_extracted_chars], found, extractor)


def _pdf(raw: bytes, limits: Limits) -> str:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(raw))
    if reader.is_encrypted:
        try:
            opened = bool(reader.decrypt(""))
        except Exception:  # a cipher pypdf cannot undo without the password
            opened = False
        if not opened:
            raise Refused(ENCRYPTED)
    pages = len(reader.pages)
    if pages > limits.max_pdf_pages:
        raise Refused(f"PDF of {pages} pages, more than the limit of {limits.max_pdf_pages}")
    parts: list[str] = []
    size = 0
    for page in reader.pages:
        text = page.extract_text() or ""
        parts.append(text)
        size += len(text)
        if size >= limits.max_extracted_chars:
            break
    return "\n".join(parts)


def _docx(raw: bytes, limits: Limits) -> str:
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
    except zipfile.BadZipFile as exc:
        raise Refused(f"a damaged ZIP archive, not a readable DOCX: {exc}") from None
    with archive:
        names = set(archive.namelist())
        if "word/document.xml" not in names:
            raise Refused("a ZIP archive, not a Word document (no word/document.xml)")
        unpacked = sum(info.file_size for info in archive.infolist())
        if unpacked > limits.max_unpacked_bytes:
            raise Refused(
                f"DOCX unpacks to {unpacked:,} bytes, more than the limit of "
                f"{limits.max_unpacked_bytes:,} (a zip bomb?)"
            )
    import docx

    document = docx.Document(io.BytesIO(raw))
    parts = [paragraph.text for paragraph in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            parts.append("\t".join(cell.text for cell in row.cells))
    return "\n".join(part for part in parts if part.strip())


def _html(markup: str) -> str:
    import trafilatura

    main = trafilatura.extract(markup, include_comments=False, include_tables=True)
    if main:
        return str(main)
    return str(trafilatura.html2txt(markup) or "")


def _email(raw: bytes) -> str:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    lines = [f"{name}: {message[name]}" for name in ("From", "To", "Date", "Subject")
             if message[name]]  # fmt: skip
    body = message.get_body(preferencelist=("plain", "html"))
    text = ""
    if isinstance(body, EmailMessage):
        content = body.get_content()
        text = _html(content) if body.get_content_type() == "text/html" else str(content)
    attached = [part.get_filename() or part.get_content_type()
                for part in message.iter_attachments()]  # fmt: skip
    if not text.strip():
        listed = f"; attachments, not read: {', '.join(attached)}" if attached else ""
        raise Refused(f"{EMPTY}: the e-mail has no text body{listed}")
    found = "\n".join(lines) + "\n\n" + text.strip()
    if attached:
        found += "\n\nAttachments: " + ", ".join(str(name) for name in attached)
    return found

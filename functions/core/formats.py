"""The formats of a dataset's documents, found before a run starts (PDF, DOCX, HTML, e-mail,
text), and the documents whose opening bytes already show they cannot be read.

Only the opening SNIFF_BYTES of a document are fetched, and only of documents whose name
does not say plain text, at most `survey_open_max` of them (in parallel): a listing of
100,000 `.txt` keys stays a listing. The others are counted by their name (`other` where
the name says nothing). What only a whole
read can tell (an encrypted or scanned PDF) the job lists in its data report.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from documents.extract import SNIFF_BYTES, TEXT, format_of_name, opening
from functions.core.config import Settings
from functions.core.models import NotTreated, ObjectInfo
from functions.core.ports import ObjectStore

OTHER = "other"  # not opened (over survey_open_max), and a name that says nothing
_READERS = 16  # concurrent ranged GETs: S3 answers each in tens of milliseconds


@dataclass
class FormatSurvey:
    formats: dict[str, Counter[str]] = field(default_factory=dict)  # label -> format -> docs
    unreadable: list[NotTreated] = field(default_factory=list)

    def per_label(self, label: str) -> dict[str, int]:
        """The label's formats, the most common first."""
        return dict(sorted(self.formats.get(label, Counter()).items(), key=lambda f: (-f[1], f[0])))


def survey_formats(store: ObjectStore, bucket: str, documents: Iterable[tuple[str, ObjectInfo]],
                   settings: Settings) -> FormatSurvey:  # fmt: skip
    """Formats of the (label, object) documents; those found unreadable are not counted."""
    documents = list(documents)
    keys = sorted({info.key for _, info in documents if format_of_name(info.key) != TEXT})
    opened: dict[str, tuple[str, str | None]] = {}
    if keys and settings.survey_open_max > 0:
        keys = keys[: settings.survey_open_max]
        with ThreadPoolExecutor(max_workers=min(_READERS, len(keys))) as pool:
            heads = pool.map(lambda key: store.get_bytes(bucket, key, SNIFF_BYTES), keys)
            opened = {key: opening(head) for key, head in zip(keys, heads, strict=True)
                      if head}  # fmt: skip
    survey = FormatSurvey()
    for label, info in documents:
        found, reason = opened.get(info.key, (format_of_name(info.key) or OTHER, None))
        if reason is not None:
            survey.unreadable.append(NotTreated(info.key, label, reason))
        else:
            survey.formats.setdefault(label, Counter())[found] += 1
    return survey

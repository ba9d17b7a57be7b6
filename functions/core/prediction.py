"""Use case: classify texts with a run's model (or a registered model's alias)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import time
from dataclasses import replace

from documents import text_problem
from documents.extract import Extracted, Limits, extract
from functions.core.config import Settings
from functions.core.errors import InvalidRequest
from functions.core.models import Prediction
from functions.core.serving import ServingRegistry
from functions.core.tenancy import Tenant
from functions.core.validation import check_name


def check_texts(texts: list[str], settings: Settings) -> list[str]:
    """Between 1 and `max_texts_per_request` texts, none blank, none over `max_text_chars`,
    and each one a document the training job would have used (not binary)."""
    if not texts:
        raise InvalidRequest("give `text` or a non-empty `texts` list")
    if len(texts) > settings.max_texts_per_request:
        raise InvalidRequest(f"at most {settings.max_texts_per_request} texts per request")
    for index, text in enumerate(texts):
        if not text.strip():
            raise InvalidRequest(f"text {index} is empty")
        if len(text) > settings.max_text_chars:
            raise InvalidRequest(
                f"text {index} has {len(text)} characters; the limit is {settings.max_text_chars}"
            )
        problem = text_problem(text)
        if problem is not None:
            raise InvalidRequest(
                f"text {index} cannot be classified: {problem} "
                "(the job does not train on such documents either)"
            )
    return texts


def document_text(raw: bytes, settings: Settings) -> Extracted:
    """The text of an uploaded document (PDF, DOCX, HTML, e-mail or plain text), read as the
    training job reads its documents, or an InvalidRequest saying why it cannot be."""
    if not raw:
        raise InvalidRequest("the document is empty")
    if len(raw) > settings.max_document_bytes:
        raise InvalidRequest(
            f"the document has {len(raw)} bytes; the limit is {settings.max_document_bytes}"
        )
    found = extract(raw, Limits.of(settings))
    if not isinstance(found, Extracted):
        raise InvalidRequest(
            f"the document cannot be classified: {found} (the job does not train on such "
            "documents either)"
        )
    return found


def decode_base64(encoded: str) -> bytes:
    """A JSON body's `document`: standard base64 (whitespace and line breaks allowed)."""
    try:
        return base64.b64decode("".join(encoded.split()), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("`document` must be the file's bytes in base64") from None


def audit_entries(
    run_id: str,
    texts: list[str],
    predictions: list[Prediction],
    seconds: float,
    request_id: str,
    include_text: bool,
) -> list[dict[str, object]]:
    """What the audit log keeps of a predict request: by default a hash of each text, not
    the text itself (seed 004's "who asked what" without storing customers' documents)."""
    at = time.time()
    entries: list[dict[str, object]] = []
    for text, prediction in zip(texts, predictions, strict=True):
        entry: dict[str, object] = {
            "at": at,
            "request_id": request_id,
            "run_id": run_id,
            "input_sha256": hashlib.sha256(text.encode()).hexdigest(),
            "input_chars": len(text),
            "label": prediction.label,
            "score": round(prediction.score, 6),
            "abstained": prediction.abstained,
            "latency_ms": round(seconds * 1000, 3),
        }
        if prediction.labels is not None:  # multi-label: every label it answered
            entry["labels"] = prediction.labels
        if prediction.ood_score is not None:
            entry["ood_score"] = round(prediction.ood_score, 6)
            entry["out_of_scope"] = prediction.out_of_scope
        if include_text:
            entry["text"] = text
        entries.append(entry)
    return entries


def predict_texts(
    registry: ServingRegistry,
    settings: Settings,
    reference: str,
    texts: list[str],
    tenant: Tenant,
) -> tuple[str, list[Prediction]]:
    """The run id that answered, and its predictions in the order of `texts`."""
    reference = check_name("runid", reference, settings.max_name_length)
    check_texts(texts, settings)
    predictions = registry.predict(reference, texts, tenant)
    run_id = registry.resolve(reference)
    if settings.abstain_below > 0:  # a multi-label model abstains by its own thresholds
        predictions = [
            p if p.labels is not None else replace(p, abstained=p.score < settings.abstain_below)
            for p in predictions
        ]
    return run_id, predictions

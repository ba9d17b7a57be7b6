"""POST /custom_classifier/predict: label, class index and calibrated score; of text, or of
a document (PDF, DOCX, HTML, e-mail) in base64 or uploaded as multipart/form-data."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import JSONResponse

from functions.api.deps import (
    MetricsDep,
    RegistryDep,
    RequestIdDep,
    ServicesDep,
    SettingsDep,
    TenantDep,
)
from functions.api.schemas import (
    ERROR_RESPONSES,
    SUCCESS,
    Envelope,
    PredictionOut,
    PredictRequest,
)
from functions.core.config import Settings
from functions.core.errors import InvalidRequest
from functions.core.models import Prediction
from functions.core.prediction import audit_entries, decode_base64, document_text, predict_texts
from functions.core.serving import ServingRegistry
from functions.core.tenancy import Tenant
from functions.logs import bind

router = APIRouter(prefix="/custom_classifier", tags=["predict"], responses=ERROR_RESPONSES)


Answer = Envelope[PredictionOut | list[PredictionOut]]


@router.post("/predict", response_model=Answer)
def predict(
    body: PredictRequest,
    registry: RegistryDep,
    settings: SettingsDep,
    services: ServicesDep,
    metrics: MetricsDep,
    request_id: RequestIdDep,
    tenant: TenantDep,
) -> JSONResponse:
    """Classify `text` (answers one prediction), `texts` (answers a list, same order) or
    `document`, a file in base64 (answers one prediction, with the `format` it was read as).

    `runid` is an MLflow run id or a registered model reference (`models:/<name>@champion`).
    """
    given = [name for name in ("text", "texts", "document") if getattr(body, name) is not None]
    if len(given) != 1:
        raise InvalidRequest("give exactly one of `text`, `texts` or `document`")
    format_ = None
    if body.document is not None:
        extracted = document_text(decode_base64(body.document), settings)
        texts, format_ = [extracted.text], extracted.format
    else:
        texts = [body.text] if body.text is not None else list(body.texts or [])
    args = (registry, settings, services, metrics, request_id, tenant)
    return _answer(*args, body.runid, texts, body.all_scores, body.texts is None, format_)


@router.post("/predict/file", response_model=Answer)
def predict_file(
    runid: Annotated[str, Form(max_length=2048)],
    file: Annotated[UploadFile, File(description="PDF, DOCX, HTML, e-mail (.eml) or text")],
    registry: RegistryDep,
    settings: SettingsDep,
    services: ServicesDep,
    metrics: MetricsDep,
    request_id: RequestIdDep,
    tenant: TenantDep,
    all_scores: Annotated[bool, Form()] = False,
) -> JSONResponse:
    """Classify an uploaded file (multipart/form-data: `runid`, `file`, `all_scores`), read
    as the training job reads its documents; answers one prediction with its `format`."""
    raw = file.file.read(settings.max_document_bytes + 1)
    extracted = document_text(raw, settings)
    args = (registry, settings, services, metrics, request_id, tenant)
    return _answer(*args, runid, [extracted.text], all_scores, True, extracted.format)


def _answer(registry: ServingRegistry, settings: Settings, services: ServicesDep,
            metrics: MetricsDep, request_id: str, tenant: Tenant, runid: str, texts: list[str],
            all_scores: bool, single: bool, format_: str | None) -> JSONResponse:  # fmt: skip
    started = time.perf_counter()
    run_id, results = predict_texts(registry, settings, runid, texts, tenant)
    bind(run_id=run_id)
    services.audit.record(
        audit_entries(run_id, texts, results, time.perf_counter() - started, request_id,
                      settings.audit_include_text)
    )  # fmt: skip
    services.drift.observe(run_id, results)
    for result in results:
        metrics.predictions.labels(result.label).inc()
    predictions = [_out(p, all_scores, format_) for p in results]
    data = predictions[0] if single else predictions
    envelope: Answer = Envelope(status=SUCCESS, data=data)
    # Built and typed here already: skip FastAPI's second validation on the hot path.
    # `labels` and `scores` only where answered: the seed's prediction has four fields.
    return JSONResponse(envelope.model_dump(exclude_none=True))


def _out(p: Prediction, all_scores: bool, format_: str | None) -> PredictionOut:
    return PredictionOut(
        label=p.label,
        prediction=p.prediction,
        score=p.score,
        abstained=p.abstained,
        labels=p.labels,
        scores=p.scores if all_scores or p.labels is not None else None,
        ood_score=p.ood_score,
        out_of_scope=p.out_of_scope,
        format=format_,
    )

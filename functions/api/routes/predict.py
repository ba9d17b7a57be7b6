"""POST /custom_classifier/predict: label, class index and calibrated score."""

from __future__ import annotations

import time

from fastapi import APIRouter
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
from functions.core.errors import InvalidRequest
from functions.core.prediction import audit_entries, predict_texts
from functions.logs import bind

router = APIRouter(prefix="/custom_classifier", tags=["predict"], responses=ERROR_RESPONSES)


@router.post("/predict", response_model=Envelope[PredictionOut | list[PredictionOut]])
def predict(
    body: PredictRequest,
    registry: RegistryDep,
    settings: SettingsDep,
    services: ServicesDep,
    metrics: MetricsDep,
    request_id: RequestIdDep,
    tenant: TenantDep,
) -> JSONResponse:
    """Classify `text` (answers one prediction) or `texts` (answers a list, same order).

    `runid` is an MLflow run id or a registered model reference (`models:/<name>@champion`).
    """
    if (body.text is None) == (body.texts is None):
        raise InvalidRequest("give exactly one of `text` or `texts`")
    texts = [body.text] if body.text is not None else list(body.texts or [])
    started = time.perf_counter()
    run_id, results = predict_texts(registry, settings, body.runid, texts, tenant)
    bind(run_id=run_id)
    services.audit.record(
        audit_entries(run_id, texts, results, time.perf_counter() - started, request_id,
                      settings.audit_include_text)
    )  # fmt: skip
    services.drift.observe(run_id, results)
    for result in results:
        metrics.predictions.labels(result.label).inc()
    predictions = [
        PredictionOut(label=p.label, prediction=p.prediction, score=p.score, abstained=p.abstained,
                      labels=p.labels,
                      scores=p.scores if body.all_scores or p.labels is not None else None,
                      ood_score=p.ood_score, out_of_scope=p.out_of_scope)
        for p in results
    ]  # fmt: skip
    data = predictions[0] if body.text is not None else predictions
    envelope: Envelope[PredictionOut | list[PredictionOut]] = Envelope(status=SUCCESS, data=data)
    # Built and typed here already: skip FastAPI's second validation on the hot path.
    # `labels` and `scores` only where answered: the seed's prediction has four fields.
    return JSONResponse(envelope.model_dump(exclude_none=True))

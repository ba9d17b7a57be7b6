"""Use case: classify texts with a run's model (or a registered model's alias)."""

from __future__ import annotations

from dataclasses import replace

from functions.core.config import Settings
from functions.core.errors import InvalidRequest
from functions.core.models import Prediction
from functions.core.serving import ServingRegistry
from functions.core.validation import check_name


def check_texts(texts: list[str], settings: Settings) -> list[str]:
    """Between 1 and `max_texts_per_request` texts, none blank, none over `max_text_chars`."""
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
    return texts


def predict_texts(
    registry: ServingRegistry, settings: Settings, reference: str, texts: list[str]
) -> list[Prediction]:
    """Predictions in the order of `texts`."""
    reference = check_name("runid", reference, settings.max_name_length)
    predictions = registry.predict(reference, check_texts(texts, settings))
    if settings.abstain_below <= 0:
        return predictions
    return [replace(p, abstained=p.score < settings.abstain_below) for p in predictions]

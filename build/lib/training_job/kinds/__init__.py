"""The registry of model kinds: one module each (training_job/kinds/<kind>.py), listed once
here. Selection, the time budget, tuning and the serving loader iterate it; the API, CLI,
UI and README lists of modes are checked against it (tests/unit/test_architecture.py)."""

from __future__ import annotations

from typing import Any

from training_job.config import Hyperparameters
from training_job.kinds import contrastive, ensemble, finetune, head, tfidf
from training_job.kinds.base import ModelKind

# Cheapest first: a tie on the selection measure goes to the earlier kind. Kinds that
# combine others come after every kind they combine.
REGISTRY: tuple[ModelKind, ...] = (
    tfidf.KIND, head.KIND, contrastive.KIND, finetune.KIND, ensemble.KIND,
)  # fmt: skip
NAMES = tuple(kind.name for kind in REGISTRY)
MODES = ("auto", *NAMES)


def get(name: str) -> ModelKind:
    for kind in REGISTRY:
        if kind.name == name:
            return kind
    raise ValueError(f"unknown model kind {name!r}; the kinds are {', '.join(NAMES)}")


def option_names() -> set[str]:
    """Every kind's own hyperparameter names (they are unique across kinds)."""
    import dataclasses

    return {f.name for kind in REGISTRY for f in dataclasses.fields(kind.options)}


def option_values(hp: Hyperparameters) -> dict[str, Any]:
    """Every kind's options as this run resolves them (logged as run params)."""
    values: dict[str, Any] = {}
    for kind in REGISTRY:
        values.update(kind.option_values(hp))
    return values

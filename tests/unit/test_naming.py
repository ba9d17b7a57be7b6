"""Names both images derive from the same input must agree (the API passes the registered
model's name to the job, and a job run without the API derives it itself)."""

from __future__ import annotations

import pytest

from functions.core.training import registered_model_name
from training_job.config import Hyperparameters
from training_job.tracking import registered_model_name as job_registered_model_name

NAMES = ["news", "nc ui ünïcode 名前", "nc-ui-n-code", "a/b", "x:y", " padded ", "acme__n"]


@pytest.mark.parametrize("experiment", NAMES)
def test_the_api_and_the_job_name_a_registered_model_alike(experiment: str) -> None:
    ours = registered_model_name(experiment)
    assert ours == job_registered_model_name(Hyperparameters(experiment_name=experiment))
    assert "/" not in ours and ":" not in ours  # MLflow refuses both


def test_names_that_a_slug_would_merge_stay_apart() -> None:
    assert registered_model_name("nc ui ünïcode 名前") != registered_model_name("nc-ui-n-code")

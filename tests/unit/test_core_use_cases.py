"""The use cases of functions/core on in-memory ports: idempotent training requests, the
queue position, cancel, restore and registered model names (no S3, MLflow or jobs)."""

from __future__ import annotations

import pytest

from functions.core.config import Settings
from functions.core.deletion import restore_experiment, restore_run, soft_delete_experiment
from functions.core.errors import Conflict, InvalidRequest
from functions.core.idempotency import start_training_once
from functions.core.models import TrainingRequest
from functions.core.runs import cancel_run, experiment_runs
from functions.core.tenancy import NO_TENANT, Tenant
from tests.unit.fakes import FakeLauncher, FakeStore, FakeTracking

SETTINGS = Settings(data_bucket="data", artifacts_bucket="artifacts", min_docs_per_label=2)


@pytest.fixture
def store() -> FakeStore:
    fake = FakeStore()
    for folder in ("news", "tenants/acme/news"):
        for label in ("sports", "weather"):
            for i in range(3):
                fake.put_text("data", f"{folder}/{label}/{i}.txt", f"{label} document {i}")
    return fake


def _request(experiment: str = "news", mode: str = "auto") -> TrainingRequest:
    return TrainingRequest(["sports", "weather"], "news", experiment, mode)


def test_one_key_one_run_another_body_conflicts_and_tenants_do_not_share_keys(
    store: FakeStore,
) -> None:
    tracking, launcher = FakeTracking(), FakeLauncher()
    first = start_training_once(_request(), "k1", store, tracking, launcher, SETTINGS, NO_TENANT)
    again = start_training_once(_request(), "k1", store, tracking, launcher, SETTINGS, NO_TENANT)
    assert again.run.run_id == first.run.run_id
    assert again.dataset.documents_per_label == {"sports": 3, "weather": 3}
    assert len(tracking.runs) == len(launcher.jobs) == 1
    with pytest.raises(Conflict, match="different request"):
        start_training_once(_request(mode="head"), "k1", store, tracking, launcher,
                            SETTINGS, NO_TENANT)  # fmt: skip
    other = start_training_once(_request(), "k1", store, tracking, launcher, SETTINGS,
                                Tenant("acme"))  # fmt: skip
    assert other.run.run_id != first.run.run_id
    with pytest.raises(InvalidRequest, match="printable ASCII"):
        start_training_once(_request(), "é", store, tracking, launcher, SETTINGS, NO_TENANT)


def test_a_lost_record_still_finds_the_run_its_job_belongs_to(store: FakeStore) -> None:
    tracking, launcher = FakeTracking(), FakeLauncher()
    first = start_training_once(_request(), "k", store, tracking, launcher, SETTINGS, NO_TENANT)
    store.objects = {k: v for k, v in store.objects.items() if k[0] != "artifacts"}
    again = start_training_once(_request(), "k", store, tracking, launcher, SETTINGS, NO_TENANT)
    assert again.run.run_id == first.run.run_id
    assert [r.lifecycle_stage for r in tracking.runs.values()] == ["active", "deleted"]


def test_queued_runs_are_scheduled_with_their_place_and_can_be_cancelled(
    store: FakeStore,
) -> None:
    tracking, launcher = FakeTracking(), FakeLauncher(slots=1)
    started = [start_training_once(_request(), None, store, tracking, launcher, SETTINGS,
                                   NO_TENANT) for _ in range(3)]  # fmt: skip
    assert [s.run.status for s in started] == ["RUNNING", "SCHEDULED", "SCHEDULED"]
    assert [s.queue_position for s in started] == [None, 1, 2]
    shown = {r.run_id: r.queue_position for r in experiment_runs(tracking, launcher, "news")}
    assert shown[started[2].run.run_id] == 2
    killed = cancel_run(tracking, launcher, started[1].run.run_id, "tenant acme", "oops")
    assert killed.status == "KILLED"
    assert killed.tags["custom_classifier.cancelled"] == "cancelled by tenant acme: oops"
    assert launcher.queue_position(started[2].job_id) == 1
    with pytest.raises(Conflict, match="only a queued or running run"):
        cancel_run(tracking, launcher, killed.run_id, "tenant acme", "")


def test_restore_brings_back_soft_deleted_experiments_and_runs(store: FakeStore) -> None:
    tracking, launcher = FakeTracking(), FakeLauncher()
    run = start_training_once(_request(), None, store, tracking, launcher, SETTINGS, NO_TENANT).run
    soft_delete_experiment(tracking, "news")
    with pytest.raises(Conflict, match="restore the experiment"):
        tracking.delete_run(run.run_id)
        restore_run(tracking, run.run_id)
    assert "restored" in restore_experiment(tracking, "news")
    assert "restored" in restore_run(tracking, run.run_id)
    with pytest.raises(Conflict, match="not deleted"):
        restore_experiment(tracking, "news")


def test_a_registered_model_name_held_by_another_experiment_is_refused_first(
    store: FakeStore,
) -> None:
    tracking, launcher = FakeTracking(), FakeLauncher()
    start_training_once(_request("a-b"), None, store, tracking, launcher, SETTINGS, NO_TENANT)
    with pytest.raises(Conflict, match="experiment 'a-b'"):
        start_training_once(_request("a/b"), None, store, tracking, launcher, SETTINGS, NO_TENANT)
    assert tracking.get_experiment("a/b") is None  # refused before anything was created
    assert tracking.models == {"a-b-classifier": tracking.get_experiment("a-b").experiment_id}


def test_a_request_sets_its_own_registration_bar_within_0_and_1(store: FakeStore) -> None:
    tracking, launcher = FakeTracking(), FakeLauncher()
    # when: one request brings its bar, another leaves the service's
    strict = TrainingRequest(["sports", "weather"], "news", "strict", min_macro_f1=0.9)
    start_training_once(strict, None, store, tracking, launcher, SETTINGS, NO_TENANT)
    start_training_once(_request("default"), None, store, tracking, launcher, SETTINGS, NO_TENANT)
    # then: each job gets its bar; a bar outside 0-1 is refused before anything is created
    bars = {spec.hyperparameters["experiment_name"]: spec.hyperparameters["min_macro_f1"]
            for spec in launcher.jobs.values()}  # fmt: skip
    assert bars == {"strict": "0.9", "default": str(SETTINGS.min_macro_f1)}
    with pytest.raises(InvalidRequest, match="min_macro_f1 must be between 0 and 1"):
        too_high = TrainingRequest(["sports", "weather"], "news", "odd", min_macro_f1=1.5)
        start_training_once(too_high, None, store, tracking, launcher, SETTINGS, NO_TENANT)
    assert tracking.get_experiment("odd") is None

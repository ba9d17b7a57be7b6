"""The use cases of functions/core on in-memory ports: idempotent training requests, the
queue position, cancel, restore, registered model names and the documents a run got wrong
(no S3, MLflow or jobs)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from functions.core.batch import batch_status, start_batch
from functions.core.config import Settings
from functions.core.deletion import restore_experiment, restore_run, soft_delete_experiment
from functions.core.errors import (
    Conflict,
    InvalidDataset,
    InvalidRequest,
    ModelNotReady,
    RunNotFound,
)
from functions.core.idempotency import start_training_once
from functions.core.models import Experiment, TrainingRequest
from functions.core.runs import (
    PREDICTIONS_ARTIFACT,
    cancel_run,
    evaluated_documents,
    experiment_runs,
    promote,
)
from functions.core.serving import check_servable
from functions.core.tags import (
    METRIC_PASSES_BAR_UP_TO,
    TAG_GATE,
    TAG_GATE_REASON,
    TAG_MODEL_URI,
    TAG_REGISTERED,
)
from functions.core.tenancy import NO_TENANT, Tenant
from functions.core.validation import resolve_location, survey_dataset
from tests.unit.fakes import FakeLauncher, FakeStore, FakeTracking
from training_job.evaluate import write_predictions

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


def test_a_label_with_too_few_documents_is_refused_with_what_would_do_and_no_run(
    store: FakeStore,
) -> None:
    store.put_text("data", "news/traffic/0.txt", "a jam on the ring road")
    tracking, launcher = FakeTracking(), FakeLauncher()
    request = TrainingRequest(["sports", "weather", "traffic"], "news", "news", "auto")
    with pytest.raises(InvalidDataset) as refused:
        start_training_once(request, "k", store, tracking, launcher, SETTINGS, NO_TENANT)
    said = str(refused.value)
    assert "at least 2 usable documents" in said and "'traffic' has 1" in said
    assert "add documents to it, or train on the others (labels: 'sports', 'weather')" in said
    assert not tracking.runs and not launcher.jobs


def test_a_refused_run_is_registered_at_a_bar_its_estimate_passes_and_at_no_other(
    store: FakeStore,
) -> None:
    tracking, launcher = FakeTracking(), FakeLauncher()
    run = start_training_once(_request(), "k", store, tracking, launcher, SETTINGS,
                              NO_TENANT).run  # fmt: skip
    missed = "macro-F1 0.7812 (95% interval 0.61-0.83, 3-fold) is below the bar 0.9000"
    tracking._update(run.run_id, status="FINISHED", metrics={METRIC_PASSES_BAR_UP_TO: 0.83})
    tracking.set_tags(run.run_id, {TAG_GATE: "failed", TAG_GATE_REASON: missed,
                                   TAG_MODEL_URI: "models:/m-1"})  # fmt: skip
    with pytest.raises(ModelNotReady):  # no bar given: promote as before
        promote(tracking, run.run_id)
    # and: asked to predict, the refused run says how to register it
    with pytest.raises(ModelNotReady, match=r"it is not served; POST /promote with its run_id "
                       r"and a min_macro_f1 up to 0\.8300 registers it"):  # fmt: skip
        check_servable(tracking.get_run(run.run_id))
    with pytest.raises(Conflict, match=r"passes bars up to 0\.8300, not 0\.9000"):
        promote(tracking, run.run_id, 0.9)
    with pytest.raises(InvalidRequest, match="between 0 and 1"):
        promote(tracking, run.run_id, 1.5)
    assert not tracking.versions
    assert promote(tracking, run.run_id, 0.8) == ("news-classifier", "1")
    tags = tracking.get_run(run.run_id).tags
    assert tags[TAG_GATE] == "passed" and tags[TAG_REGISTERED] == "news-classifier/1"
    assert tags[TAG_GATE_REASON].startswith("registered by request at the bar 0.8000")
    assert tracking.aliases == {"news-classifier@champion": "1"}
    assert promote(tracking, run.run_id, 0.8) == ("news-classifier", "1")  # not twice
    # and: an estimate that does not clearly beat the majority class registers at no bar
    other = start_training_once(_request(), "k2", store, tracking, launcher, SETTINGS,
                                NO_TENANT).run  # fmt: skip
    tracking._update(other.run_id, status="FINISHED")
    tracking.set_tags(other.run_id, {TAG_MODEL_URI: "models:/m-2", TAG_GATE_REASON: "chance"})
    with pytest.raises(Conflict, match="cannot be registered at any bar: chance"):
        promote(tracking, other.run_id, 0.0)


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


def _finished_run(tracking: FakeTracking) -> str:
    experiment_id = tracking.create_experiment("news")
    run_id = tracking.create_run(experiment_id, "run", {}, {}).run_id
    tracking.runs[run_id] = replace(tracking.runs[run_id], status="FINISHED")
    return run_id


def test_the_documents_a_run_got_wrong_as_the_job_wrote_them_filtered_by_label(
    tmp_path: Path,
) -> None:
    # given: the job's predictions on five test documents, two of them wrong
    labels = ["sports", "weather", "tech"]
    probs = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8],
                      [0.1, 0.5, 0.4]])  # fmt: skip
    truth = np.array([0, 1, 1, 2, 2])
    keys = [f"news/{labels[t]}/{i}.txt" for i, t in enumerate(truth)]
    written = write_predictions(keys, probs, truth, labels, "test split of 5 documents", tmp_path)
    tracking = FakeTracking()
    run_id = _finished_run(tracking)
    assert f"evaluation/{written.name}" == PREDICTIONS_ARTIFACT  # where the job logs it
    tracking.artifacts[(run_id, PREDICTIONS_ARTIFACT)] = written.read_bytes()
    # when: only the wrong ones
    found = evaluated_documents(tracking, run_id, wrong_only=True)
    # then
    assert (found.estimate, found.documents, found.wrong, found.matching) == (
        "test split of 5 documents", 5, 2, 2)  # fmt: skip
    rows = [(r.key, r.true_labels, r.predicted_labels, r.score) for r in found.rows]
    assert rows == [(keys[2], ["weather"], ["sports"], 0.6), (keys[4], ["tech"], ["weather"], 0.5)]
    assert found.rows[0].scores == {"sports": 0.6, "weather": 0.3, "tech": 0.1}
    # a confusion-matrix cell: true weather, predicted sports
    cell = evaluated_documents(tracking, run_id, true_label="weather", predicted_label="sports")
    assert [r.key for r in cell.rows] == [keys[2]]
    # every document of one true label, right or wrong, a page at a time
    page = evaluated_documents(tracking, run_id, true_label="tech", offset=1, limit=1)
    assert (page.matching, [r.key for r in page.rows]) == (2, [keys[4]])
    with pytest.raises(InvalidRequest, match="'politics' is not one of this run's"):
        evaluated_documents(tracking, run_id, predicted_label="politics")


def test_a_run_has_test_predictions_once_finished_and_evaluated() -> None:
    tracking = FakeTracking()
    running = tracking.create_run(tracking.create_experiment("news"), "run", {}, {}).run_id
    with pytest.raises(ModelNotReady, match="RUNNING"):
        evaluated_documents(tracking, running)
    with pytest.raises(RunNotFound, match="no test predictions"):
        evaluated_documents(tracking, _finished_run(tracking))


def test_a_batch_over_three_machines_deals_shards_and_sums_their_reports(store: FakeStore) -> None:
    # given: a served run and a batch request over 3 GPU machines
    tracking, launcher = FakeTracking(), FakeLauncher()
    run = tracking.create_run(tracking.create_experiment("news"), "r", {}, {TAG_GATE: "passed"})
    tracking._update(run.run_id, status="FINISHED")
    record = start_batch(run.run_id, "news", "scored", tracking, store, launcher, SETTINGS,
                         NO_TENANT, instances=3, instance_type="ml.g5.xlarge")  # fmt: skip
    # then: one job of 3 machines of that type, with one descriptor a shard to deal out
    spec = launcher.jobs[record.job_id]
    assert (spec.instances, spec.instance_type, spec.hyperparameters["instances"]) == (
        3, "ml.g5.xlarge", "3")  # fmt: skip
    folder = f"batch-jobs/shards/{record.job_id}/3/"
    assert spec.hyperparameters["shards_uri"] == f"s3://artifacts/{folder}"
    assert sorted(i.key for i in store.list_objects("artifacts", folder)) == [
        f"{folder}shard-0000{i}" for i in range(3)]  # fmt: skip
    assert batch_status(record.job_id, store, SETTINGS, NO_TENANT).status == "PENDING"

    # and: the same request again with another N while it runs changes nothing it reports
    again = start_batch(run.run_id, "news", "scored", tracking, store, launcher, SETTINGS,
                        NO_TENANT, instances=2)  # fmt: skip
    assert (again.job_id, again.instances) == (record.job_id, 3)

    def report(shard: int, status: str, done: int, error: str = "") -> None:
        body = {"status": status, "total": 12, "done": done, "treated": done - 1,
                "not_treated_count": 1, "error": error}  # fmt: skip
        store.put_text("data", f"scored/_shards/shard-0000{shard}-of-00003.json", json.dumps(body))

    # when: shards report, the job's progress is their sum; a failed shard fails the job
    report(0, "DONE", 4)
    report(1, "RUNNING", 2)
    job = batch_status(record.job_id, store, SETTINGS, NO_TENANT)
    assert (job.status, job.done, job.total, len(job.shards)) == ("RUNNING", 6, 12, 2)
    assert (job.number_documents_treated, job.number_documents_non_treated) == (4, 2)
    report(2, "FAILED", 0, "node lost")
    job = batch_status(record.job_id, store, SETTINGS, NO_TENANT)
    assert (job.status, job.error) == ("FAILED", "shard 2: node lost")
    # until it runs again; the last shard done writes COMPLETED
    report(2, "RUNNING", 0)
    assert batch_status(record.job_id, store, SETTINGS, NO_TENANT).status == "RUNNING"
    store.put_text(
        "data",
        "scored/_progress.json",
        json.dumps(
            {"status": "COMPLETED", "total": 12, "done": 12, "number_documents_treated": 12}
        ),
    )
    assert batch_status(record.job_id, store, SETTINGS, NO_TENANT).done == 12


def test_a_batch_job_that_died_before_reporting_is_failed_with_the_launchers_reason(
    store: FakeStore,
) -> None:
    tracking, launcher = FakeTracking(), FakeLauncher()
    run = tracking.create_run(tracking.create_experiment("news"), "r", {}, {TAG_GATE: "passed"})
    tracking._update(run.run_id, status="FINISHED")
    record = start_batch(run.run_id, "news", "scored", tracking, store, launcher, SETTINGS,
                         NO_TENANT)  # fmt: skip
    assert batch_status(record.job_id, store, SETTINGS, NO_TENANT, launcher).status == "PENDING"
    launcher.failures[record.job_id] = "the job process ended without reporting an outcome"
    job = batch_status(record.job_id, store, SETTINGS, NO_TENANT, launcher)
    assert (job.status, job.error) == ("FAILED", launcher.failures[record.job_id])
    # a job that reported answers its own state, whatever the launcher says
    store.put_text("data", "scored/_progress.json", json.dumps({"status": "RUNNING", "done": 1}))
    assert batch_status(record.job_id, store, SETTINGS, NO_TENANT, launcher).status == "RUNNING"


@pytest.mark.parametrize(
    ("instances", "instance_type", "message"),
    [(0, "", "instances must be between 1 and 10"), (11, "", "between 1 and 10"),
     (1, "ml.p5.48xlarge", "instance_type 'ml.p5.48xlarge' is not allowed")],
)  # fmt: skip
def test_batch_and_training_machines_stay_within_the_allowed(
    store: FakeStore, instances: int, instance_type: str, message: str
) -> None:
    tracking, launcher = FakeTracking(), FakeLauncher()
    with pytest.raises(InvalidRequest, match=message):
        start_batch("f" * 32, "news", "scored", tracking, store, launcher, SETTINGS, NO_TENANT,
                    instances=instances, instance_type=instance_type)  # fmt: skip
    if instance_type:
        request = replace(_request(), instance_type=instance_type)
        with pytest.raises(InvalidRequest, match=message):
            start_training_once(request, None, store, tracking, launcher, SETTINGS, NO_TENANT)
    assert not launcher.jobs and not tracking.runs


def test_training_asks_its_launcher_for_the_machine_type(store: FakeStore) -> None:
    tracking, launcher = FakeTracking(), FakeLauncher()
    request = replace(_request(), instance_type="ml.g6.xlarge")
    start_training_once(request, None, store, tracking, launcher, SETTINGS, NO_TENANT)
    assert [spec.instance_type for spec in launcher.jobs.values()] == ["ml.g6.xlarge"]


def test_a_request_racing_the_one_that_creates_its_experiment_joins_it(store: FakeStore) -> None:
    # given: another request of the same name creates the experiment and claims its model
    # name between this request's look-up of the experiment and its look-up of the name
    class Racing(FakeTracking):
        def __init__(self) -> None:
            super().__init__()
            self.looked_up = 0

        def get_experiment(self, name: str) -> Experiment | None:
            self.looked_up += 1
            if self.looked_up == 1:  # not there yet; the other request creates it now
                self.claim_model_name("news-classifier", self.create_experiment(name))
                return None
            return super().get_experiment(name)

    tracking, launcher = Racing(), FakeLauncher()
    started = start_training_once(_request(), None, store, tracking, launcher, SETTINGS,
                                  NO_TENANT)  # fmt: skip
    # then: it trains in that experiment, not a 409 for a name "held by another experiment"
    assert [e.name for e in tracking.list_experiments()] == ["news"]
    assert started.run.experiment_id == tracking.models["news-classifier"]


def test_the_survey_opens_only_documents_not_named_as_text_and_at_most_the_limit(
    store: FakeStore,
) -> None:
    # given: beside 3 text documents a label, a PDF named .bin and two old Word files
    store.objects[("data", "news/sports/scan.bin")] = b"%PDF-1.7\n" + bytes(100)
    for name in ("a.doc", "b.doc"):
        store.objects[("data", f"news/weather/{name}")] = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
    opened: list[str] = []
    reading = store.get_bytes
    store.get_bytes = lambda b, k, limit=None: opened.append(k) or reading(b, k, limit)  # type: ignore[method-assign]
    location = resolve_location("news", SETTINGS, NO_TENANT)
    # when: the limit lets two of the three be opened
    limited = SETTINGS.model_copy(update={"survey_open_max": 2})
    summary = survey_dataset(store, location, ["sports", "weather"], limited)
    # then: text names are counted unread; the opened ones by content, the rest by name
    assert sorted(opened) == ["news/sports/scan.bin", "news/weather/a.doc"]
    assert summary.formats_per_label == {
        "sports": {"text": 3, "pdf": 1},
        "weather": {"text": 3, "other": 1},
    }
    assert [(n.key, n.reason[:28]) for n in summary.not_treated] == [
        ("news/weather/a.doc", "an Office 97-2003 file (.doc")
    ]
    assert summary.documents_per_label == {"sports": 4, "weather": 4}

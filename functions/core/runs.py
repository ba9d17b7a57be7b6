"""Use cases: the status of an experiment's runs and of the latest runs overall."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from documents import is_csv_dataset, row_line, row_text
from functions.core.errors import (
    Conflict,
    DatasetNotFound,
    ExperimentNotFound,
    InvalidRequest,
    ModelNotReady,
    RunNotFound,
    run_not_found,
)
from functions.core.models import Experiment, RunSummary
from functions.core.ports import JobLauncher, ObjectStore, Tracking
from functions.core.tags import (
    METRIC_PASSES_BAR_UP_TO,
    TAG_CANCELLED,
    TAG_GATE,
    TAG_GATE_REASON,
    TAG_JOB_ID,
    TAG_MODEL_NAME,
    TAG_MODEL_URI,
    TAG_REGISTERED,
)
from functions.core.validation import check_bar

EXPERIMENT_RUNS = 3
LATEST_RUNS = 10


def experiment_name(name: str) -> str:
    if not name.strip():
        raise InvalidRequest("experiment_name must not be empty")
    return name


def active_experiment(tracking: Tracking, name: str) -> Experiment:
    experiment = tracking.get_experiment(experiment_name(name))
    if experiment is None or not experiment.active:
        raise ExperimentNotFound(f"experiment {name!r} not found")
    return experiment


# A run in these states has a job queued or running behind it.
ACTIVE_STATUSES = frozenset({"RUNNING", "SCHEDULED"})


def reconcile(run: RunSummary, tracking: Tracking, launcher: JobLauncher) -> RunSummary:
    """A queued or running run whose job has ended without logging (killed, failed to start,
    spot capacity never came) is marked FAILED with the launcher's reason; a queued one gets
    its place in the queue."""
    job_id = run.tags.get(TAG_JOB_ID)
    if run.status not in ACTIVE_STATUSES or not job_id:
        return run
    reason = launcher.failure(job_id)
    if reason is None:
        position = launcher.queue_position(job_id) if run.status == "SCHEDULED" else None
        return replace(run, queue_position=position)
    latest = tracking.get_run(run.run_id)  # the job may have logged its end meanwhile
    if latest.status not in ACTIVE_STATUSES:
        return latest
    tracking.fail_run(run.run_id, reason)
    return tracking.get_run(run.run_id)


def reap(tracking: Tracking, launcher: JobLauncher, max_runs: int = 500) -> list[str]:
    """Mark FAILED every queued or running run whose job has ended without logging; returns
    their ids. Status reads do this for the runs they show; this catches the rest."""
    reaped = []
    for run in tracking.active_runs(max_runs):
        if reconcile(run, tracking, launcher).status == "FAILED":
            reaped.append(run.run_id)
    return reaped


def experiment_runs(
    tracking: Tracking, launcher: JobLauncher, name: str, limit: int = EXPERIMENT_RUNS
) -> list[RunSummary]:
    """The newest runs of one experiment, each checked against its job."""
    experiment = active_experiment(tracking, name)
    runs = tracking.search_runs([experiment.experiment_id], max_results=limit)
    return [reconcile(run, tracking, launcher) for run in runs]


def latest_runs(tracking: Tracking, limit: int = LATEST_RUNS) -> list[tuple[RunSummary, str]]:
    """The newest runs across all active experiments, with their experiment names."""
    experiments = {e.experiment_id: e.name for e in tracking.list_experiments()}
    if not experiments:
        return []
    runs = tracking.search_runs(list(experiments), max_results=limit)
    return [(run, experiments[run.experiment_id]) for run in runs]


# What the UI may fetch of a run's artifacts: the evaluation, never data or models.
VIEWABLE_ARTIFACTS = {
    "evaluation/classification_report.json": "application/json",
    "evaluation/confusion_matrix.png": "image/png",
    "evaluation/label_confusion.png": "image/png",  # multi-label runs
    "evaluation/pr_roc_curves.png": "image/png",
}
CHAMPION_ALIAS = "champion"


@dataclass(frozen=True)
class RunDetail:
    run: RunSummary
    experiment_name: str
    report: dict[str, Any] | None
    artifacts: list[str]
    # Whether the run's registered version is its model's @champion now.
    champion: bool = False


def run_detail(tracking: Tracking, launcher: JobLauncher, run_id: str) -> RunDetail:
    """A run (checked against its job), its experiment and its evaluation report."""
    run = reconcile(tracking.get_run(run_id), tracking, launcher)
    experiments = {e.experiment_id: e.name for e in tracking.list_experiments()}
    if run.experiment_id not in experiments:
        raise run_not_found(run_id)  # its experiment is deleted
    report = None
    artifacts = []
    if run.status == "FINISHED":
        raw = tracking.download_artifact(run_id, "evaluation/classification_report.json")
        report = json.loads(raw) if raw else None
        logged = set(tracking.list_artifacts(run_id, "evaluation"))
        artifacts = [p for p in VIEWABLE_ARTIFACTS if p.endswith(".png") and p in logged]
    return RunDetail(run, experiments[run.experiment_id], report, artifacts,
                     champion_of(tracking, run))  # fmt: skip


def champion_of(tracking: Tracking, run: RunSummary) -> bool:
    """Whether the run registered the version its model's @champion points at now."""
    name = run.tags.get(TAG_REGISTERED, "").rpartition("/")[0]
    if not name:
        return False
    try:
        return tracking.resolve_model_reference(f"models:/{name}@{CHAMPION_ALIAS}") == run.run_id
    except RunNotFound:
        return False


def run_artifact(tracking: Tracking, run_id: str, path: str) -> tuple[bytes, str]:
    """One viewable artifact of a run and its media type."""
    media_type = VIEWABLE_ARTIFACTS.get(path)
    if media_type is None:
        raise InvalidRequest(f"artifact {path!r} is not viewable here")
    tracking.get_run(run_id)  # 404 for unknown or deleted runs
    content = tracking.download_artifact(run_id, path)
    if content is None:
        raise RunNotFound(f"run {run_id!r} has no {path}")
    return content, media_type


# Written by the training job (training_job/evaluate.py write_predictions).
PREDICTIONS_ARTIFACT = "evaluation/test_predictions.json"


@dataclass(frozen=True)
class EvaluatedDocument:
    """One document the run was evaluated on: what it is and what the model answered."""

    key: str
    true_labels: list[str]
    predicted_labels: list[str]
    score: float
    scores: dict[str, float]

    @property
    def wrong(self) -> bool:
        return set(self.true_labels) != set(self.predicted_labels)


@dataclass(frozen=True)
class EvaluatedDocuments:
    estimate: str  # what they are, e.g. "test split of 120 documents"
    documents: int  # evaluated in all
    wrong: int  # of those, misclassified
    matching: int  # passing the filters (rows holds a page of them)
    rows: list[EvaluatedDocument]


def _evaluated(tracking: Tracking, run_id: str) -> tuple[RunSummary, dict[str, Any]]:
    """A finished run and its logged test predictions ({estimate, labels, rows})."""
    run = tracking.get_run(run_id)  # 404 for unknown or deleted runs
    if run.status in ACTIVE_STATUSES:
        raise ModelNotReady(f"run {run_id!r} is {run.status}: it is evaluated when it finishes")
    if run.status != "FINISHED":
        raise ModelNotReady(f"run {run_id!r} ended {run.status}, before it was evaluated")
    raw = tracking.download_artifact(run_id, PREDICTIONS_ARTIFACT)
    if raw is None:
        raise RunNotFound(f"run {run_id!r} has no test predictions (trained before they were kept)")
    logged: dict[str, Any] = json.loads(raw)
    return run, logged


def evaluated_documents(tracking: Tracking, run_id: str, *, wrong_only: bool = False,
                        true_label: str | None = None, predicted_label: str | None = None,
                        missed_label: str | None = None, added_label: str | None = None,
                        offset: int = 0, limit: int = 100) -> EvaluatedDocuments:  # fmt: skip
    """The documents a finished run was evaluated on (its test split, or every document
    out of fold where that split would be small), optionally only those it got wrong, with
    a given true or predicted label, or (multi-label) where it missed a label the document
    has or added one it does not have."""
    _, logged = _evaluated(tracking, run_id)
    rows = [EvaluatedDocument(**row) for row in logged["rows"]]
    for label in (true_label, predicted_label, missed_label, added_label):
        if label is not None and label not in logged["labels"]:
            raise InvalidRequest(
                f"label {label!r} is not one of this run's: {', '.join(logged['labels'])}"
            )
    matching = [
        row
        for row in rows
        if (row.wrong or not wrong_only)
        and (true_label is None or true_label in row.true_labels)
        and (predicted_label is None or predicted_label in row.predicted_labels)
        and (
            missed_label is None or missed_label in set(row.true_labels) - set(row.predicted_labels)
        )
        and (added_label is None or added_label in set(row.predicted_labels) - set(row.true_labels))
    ]
    return EvaluatedDocuments(
        logged["estimate"],
        len(rows),
        sum(row.wrong for row in rows),
        len(matching),
        matching[offset : offset + limit],
    )


DOCUMENT_VIEW_CHARS = 100_000  # a document is shown up to this many characters


def evaluated_document_text(tracking: Tracking, store: ObjectStore, run_id: str,
                            key: str) -> tuple[str, bool]:  # fmt: skip
    """The text of one document the run was evaluated on (no other: the run's evaluation is
    what grants reading it), cut at DOCUMENT_VIEW_CHARS; and whether it was cut."""
    run, logged = _evaluated(tracking, run_id)
    if key not in {row["key"] for row in logged["rows"]}:
        raise RunNotFound(f"run {run_id!r} was not evaluated on a document {key!r}")
    data = urlsplit(run.params.get("data_uri", ""))
    bucket, data_key = data.netloc, data.path.strip("/")
    if is_csv_dataset(data_key):  # a row of a Comprehend-format CSV
        return _csv_row(store, bucket, data_key, key)
    text = store.get_text(bucket, key)
    if text is None:
        raise DatasetNotFound(f"s3://{bucket}/{key} is gone (deleted since the run)")
    return text[:DOCUMENT_VIEW_CHARS], len(text) > DOCUMENT_VIEW_CHARS


def _csv_row(store: ObjectStore, bucket: str, csv_key: str, key: str) -> tuple[str, bool]:
    line = row_line(csv_key, key)
    raw = store.get_bytes(bucket, csv_key)
    text = None if raw is None or line is None else row_text(raw, line)
    if text is None:
        raise DatasetNotFound(f"s3://{bucket}/{key} is gone (the CSV changed since the run)")
    return text[:DOCUMENT_VIEW_CHARS], len(text) > DOCUMENT_VIEW_CHARS


def promote(tracking: Tracking, run_id: str, min_macro_f1: float | None = None
            ) -> tuple[str, str]:  # fmt: skip
    """Make this run's registered model version the `champion` (what alias references
    serve); returns (model name, version). A finished run the bar refused is registered
    first where `min_macro_f1` is given and its estimate passes that bar: the user sets the
    bar after seeing the run, without training again."""
    run = tracking.get_run(run_id)
    if min_macro_f1 is not None and not run.tags.get(TAG_REGISTERED):
        register_at_bar(tracking, run, min_macro_f1)
    return tracking.promote(run_id, CHAMPION_ALIAS)


def register_at_bar(tracking: Tracking, run: RunSummary, bar: float) -> str:
    """Register a refused run's logged model where its estimate passes `bar` by the gate's
    rule (the job logs the highest bar it passes: none where the estimate does not clearly
    beat the majority class); the run's gate tags then say so. Returns the version."""
    check_bar(bar)
    said = f"run {run.run_id}"
    if run.status != "FINISHED" or TAG_CANCELLED in run.tags:
        raise Conflict(f"{said} is {run.status}: only a finished run can be registered")
    uri, name = run.tags.get(TAG_MODEL_URI), run.tags.get(TAG_MODEL_NAME)
    if not uri or not name:
        raise Conflict(f"{said} was trained before a run could be registered later: train "
                       "again with min_macro_f1")  # fmt: skip
    reachable = run.metrics.get(METRIC_PASSES_BAR_UP_TO)
    reason = run.tags.get(TAG_GATE_REASON, "")
    if reachable is None:
        raise Conflict(f"{said} cannot be registered at any bar: {reason}")
    if bar > reachable:
        raise Conflict(f"{said}'s estimate passes bars up to {reachable:.4f}, not "
                       f"{bar:.4f}: {reason}")  # fmt: skip
    version = tracking.register(run.run_id, uri, name)
    tracking.set_tags(run.run_id, {
        TAG_GATE: "passed",
        TAG_GATE_REASON: f"registered by request at the bar {bar:.4f} (its estimate passes "
                         f"bars up to {reachable:.4f}); at training: {reason}",
    })  # fmt: skip
    return version


def cancel_run(
    tracking: Tracking, launcher: JobLauncher, run_id: str, who: str, reason: str
) -> RunSummary:
    """Stop a queued or running run's job; the run ends KILLED saying who and why, and
    registers nothing (the job reads the tag before registering and when it is stopped)."""
    run = tracking.get_run(run_id)
    if run.status not in ACTIVE_STATUSES:
        raise Conflict(
            f"run {run_id} is {run.status}: only a queued or running run can be cancelled"
        )
    note = f"cancelled by {who}" + (f": {reason}" if reason else "")
    tracking.set_tags(run_id, {TAG_CANCELLED: note})
    job_id = run.tags.get(TAG_JOB_ID)
    if job_id:
        launcher.cancel(job_id)
    latest = tracking.get_run(run_id)
    if latest.status == "FINISHED":  # it ended before the stop reached it
        raise Conflict(f"run {run_id} finished before it could be cancelled")
    tracking.kill_run(run_id)
    return tracking.get_run(run_id)

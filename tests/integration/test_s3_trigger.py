"""Training started by a `_train.json` upload: the S3-trigger Lambda and the local poller."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest
from mlflow import MlflowClient

from functions.core.config import Settings
from functions.s3_trigger.handler import RetryLater, build_handler
from functions.s3_trigger.poller import poll_once
from functions.services import Services
from tests.support import (
    DATA_BUCKET,
    TICKETS,
    TOPICS,
    keyword_tree,
    multi_label_tree,
    upload_tree,
)

EVENT = json.loads((Path(__file__).parents[1] / "events" / "s3_put.json").read_text())


def _upload_manifest(s3: Any, prefix: str, manifest: Any) -> dict[str, Any]:
    """Put the manifest and return the S3 event AWS would send for that upload."""
    key = f"{prefix}/_train.json"
    body = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
    etag = s3.put_object(Bucket=DATA_BUCKET, Key=key, Body=body)["ETag"].strip('"')
    event = copy.deepcopy(EVENT)
    record = event["Records"][0]["s3"]
    record["bucket"].update(name=DATA_BUCKET, arn=f"arn:aws:s3:::{DATA_BUCKET}")
    record["object"].update(key=quote_plus(key, safe="/"), eTag=etag, size=len(body))
    return dict(event)


def _result(s3: Any, prefix: str) -> dict[str, Any]:
    body = s3.get_object(Bucket=DATA_BUCKET, Key=f"{prefix}/_train.result.json")["Body"].read()
    return dict(json.loads(body))


def _runs(experiment: str) -> list[Any]:
    client = MlflowClient()
    found = client.get_experiment_by_name(experiment)
    return [] if found is None else list(client.search_runs([found.experiment_id]))


@pytest.fixture
def spaced_prefix(dataset_prefix: str) -> str:
    return f"trigger data/{dataset_prefix}"  # S3 events URL-encode keys: the space is a "+"


def test_duplicate_deliveries_start_one_job(
    settings: Settings, s3: Any, spaced_prefix: str, experiment_name: str
) -> None:
    # given: a dataset and its manifest (no labels: every label folder)
    upload_tree(s3, DATA_BUCKET, spaced_prefix, keyword_tree(TOPICS, 8))
    event = _upload_manifest(s3, spaced_prefix, {"experiment_name": experiment_name})
    handler = build_handler(settings)
    # when: S3 delivers the event, again, and once more through SQS
    first = handler(event, None)["results"][0]
    again = handler(event, None)["results"][0]
    via_sqs = {"Records": [{"eventSource": "aws:sqs", "body": json.dumps(event)}]}
    third = build_handler(settings)(via_sqs, None)["results"][0]
    # then: one run, one job, and the result file names them
    runs = _runs(experiment_name)
    assert len(runs) == 1
    assert first["status"] == "started"
    assert first["labels"] == sorted(TOPICS)
    assert first["number_documents_treated"] == 8 * len(TOPICS)
    assert again["run_id"] == third["run_id"] == first["run_id"] == runs[0].info.run_id
    assert _result(s3, spaced_prefix) == first
    jobs = [p.name for p in settings.work_dir.iterdir() if not p.name.startswith(".")]
    assert jobs == [first["job_id"]]


def test_changed_manifest_starts_a_new_run_and_an_unchanged_one_does_not(
    settings: Settings, s3: Any, dataset_prefix: str, experiment_name: str
) -> None:
    upload_tree(s3, DATA_BUCKET, dataset_prefix, keyword_tree(TOPICS, 8))
    handler = build_handler(settings)
    manifest = {"experiment_name": experiment_name, "labels": sorted(TOPICS)}
    first = handler(_upload_manifest(s3, dataset_prefix, manifest), None)["results"][0]
    # when: the same manifest is uploaded again, then a changed one
    same = handler(_upload_manifest(s3, dataset_prefix, manifest), None)["results"][0]
    changed = {**manifest, "mode": "tfidf"}
    second = handler(_upload_manifest(s3, dataset_prefix, changed), None)["results"][0]
    # then
    assert same["run_id"] == first["run_id"]
    assert second["status"] == "started"
    assert second["run_id"] != first["run_id"]
    assert {r.info.run_id for r in _runs(experiment_name)} == {first["run_id"], second["run_id"]}
    assert MlflowClient().get_run(second["run_id"]).data.params["label2id"]


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ({"labels": ["sports", "nope"]}, "'nope' has 0"),
        ({"labels": "sports"}, "must be a list of strings"),
        ({"labels": ["sports", "weather"], "colour": "red"}, "unknown manifest fields: colour"),
        ({"labels": ["sports", "weather"], "hpo_trials": "3"}, "'hpo_trials' must be a int"),
        ({"labels": ["sports", "weather"], "multi_label": "yes"}, "must be true or false"),
        (b"{not json", "not valid JSON"),
    ],
)
def test_bad_manifest_writes_the_errors_and_starts_nothing(
    settings: Settings,
    s3: Any,
    dataset_prefix: str,
    experiment_name: str,
    manifest: Any,
    message: str,
) -> None:
    upload_tree(s3, DATA_BUCKET, dataset_prefix, keyword_tree(TOPICS, 8))
    if isinstance(manifest, dict):
        manifest = {"experiment_name": experiment_name, **manifest}
    result = build_handler(settings)(_upload_manifest(s3, dataset_prefix, manifest), None)
    written = _result(s3, dataset_prefix)
    assert result["results"] == [written]
    assert written["status"] == "rejected"
    assert message in written["error"]
    assert "run_id" not in written
    assert MlflowClient().get_experiment_by_name(experiment_name) is None
    assert not settings.work_dir.exists() or not any(settings.work_dir.iterdir())


def test_a_manifest_trains_a_multi_label_layout_only_when_it_says_multi_label(
    settings: Settings, s3: Any, dataset_prefix: str, experiment_name: str
) -> None:
    # given: tickets with one or two labels, a file under each of its label folders
    upload_tree(s3, DATA_BUCKET, dataset_prefix, multi_label_tree(TICKETS, 24))
    handler = build_handler(settings)
    # when: the manifest does not say multi_label, then says it
    event = _upload_manifest(s3, dataset_prefix, {"experiment_name": experiment_name})
    refused = handler(event, None)["results"][0]
    event = _upload_manifest(s3, dataset_prefix, {"experiment_name": experiment_name,
                                                  "multi_label": True})  # fmt: skip
    started = handler(event, None)["results"][0]
    # then: refused saying how to train it, then started with each label's tickets counted
    assert refused["status"] == "rejected"
    assert "multi_label: true" in refused["error"]
    assert started["status"] == "started", started
    assert started["labels"] == sorted(TICKETS)
    assert started["number_documents_treated"] == 12 * len(TICKETS)


def test_mlflow_down_fails_the_invocation_so_it_is_delivered_again(
    settings: Settings, s3: Any, dataset_prefix: str, experiment_name: str
) -> None:
    upload_tree(s3, DATA_BUCKET, dataset_prefix, keyword_tree(TOPICS, 8))
    event = _upload_manifest(s3, dataset_prefix, {"experiment_name": experiment_name})
    down = settings.model_copy(update={"mlflow_tracking_uri": "http://127.0.0.1:9"})
    with pytest.raises(RetryLater, match="MLflow"):
        build_handler(down)(event, None)
    listing = s3.list_objects_v2(Bucket=DATA_BUCKET, Prefix=f"{dataset_prefix}/_train.result")
    assert listing.get("KeyCount", 0) == 0
    # and once MLflow is back, the redelivered event starts the run
    assert build_handler(settings)(event, None)["results"][0]["status"] == "started"


def test_local_poller_starts_each_new_manifest_once(
    settings: Settings, s3: Any, dataset_prefix: str, experiment_name: str
) -> None:
    upload_tree(s3, DATA_BUCKET, dataset_prefix, keyword_tree(TOPICS, 8))
    _upload_manifest(s3, dataset_prefix, {"experiment_name": experiment_name})
    services = Services(settings)
    started = [r for r in poll_once(services)["results"] if r["manifest"].endswith(
        f"{dataset_prefix}/_train.json")]  # fmt: skip
    assert [r["status"] for r in started] == ["started"]
    again = poll_once(services)["results"]
    assert not [r for r in again if r["manifest"].endswith(f"{dataset_prefix}/_train.json")]
    assert len(_runs(experiment_name)) == 1

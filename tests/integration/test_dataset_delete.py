"""Deleting a dataset: exactly its objects go, never while a queued or running job reads it,
never another tenant's. Batch outputs are not offered as datasets, and a hard delete takes
the batch jobs of the experiment's runs with it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient

from functions.api.app import create_app
from functions.core.config import Settings
from functions.core.models import JobSpec, Launch
from functions.core.tags import TAG_DATA_URI, TAG_GATE
from functions.services import Services
from tests.support import (
    ARTIFACTS_BUCKET,
    DATA_BUCKET,
    TOPICS,
    admin_cli,
    keyword_tree,
    list_keys,
    upload_tree,
)

API = "/custom_classifier"
DELETE = f"{API}/datasets/delete"


class IdleLauncher:
    """Starts no job: what it is asked to launch stays queued (PENDING) until a test writes
    the job's `_progress.json` as the job would."""

    def launch(self, spec: JobSpec) -> Launch:
        return Launch(spec.job_name)

    def failure(self, job_id: str) -> str | None:
        return None

    def queue_position(self, job_id: str) -> int | None:
        return None

    def cancel(self, job_id: str) -> None:
        return None


@pytest.fixture
def queued_api(settings: Settings) -> Iterator[TestClient]:
    """The API with a launcher that leaves batch jobs queued."""
    with TestClient(create_app(settings, Services(settings, launcher=IdleLauncher()))) as client:
        yield client


def _servable_run(experiment: str) -> str:
    """A finished run that passed the evaluation gate (all a batch request checks)."""
    client = MlflowClient()
    run = client.create_run(client.create_experiment(experiment), tags={TAG_GATE: "passed"})
    client.set_terminated(run.info.run_id)
    return str(run.info.run_id)


def _batch(api: TestClient, run_id: str, source: str, target: str) -> str:
    body = {"runid": run_id, "input_path": source, "output_path": target}
    started = api.post(f"{API}/batch_predict", json=body)
    assert started.status_code == 200, started.text
    assert started.json()["data"]["status"] == "PENDING"
    return str(started.json()["data"]["job_id"])


def _job_ends(s3: Any, output_prefix: str) -> None:
    """What a batch job writes when it is done."""
    progress = {"status": "COMPLETED", "total": 6, "done": 6, "number_documents_treated": 6}
    s3.put_object(Bucket=DATA_BUCKET, Key=f"{output_prefix}/_progress.json",
                  Body=json.dumps(progress).encode())  # fmt: skip


def _index_entries(s3: Any, job_id: str) -> list[str]:
    return [key for key in list_keys(s3, ARTIFACTS_BUCKET, "batch-jobs/") if job_id in key]


def test_deleting_a_dataset_removes_its_objects_and_nothing_else(
    api: TestClient, s3: Any, dataset_prefix: str
) -> None:
    # given: two datasets, one's name the start of the other's
    upload_tree(s3, DATA_BUCKET, dataset_prefix, keyword_tree(TOPICS, 3))
    s3.put_object(Bucket=DATA_BUCKET, Key=f"{dataset_prefix}/_train.json", Body=b"{}")
    upload_tree(s3, DATA_BUCKET, f"{dataset_prefix}2", keyword_tree(TOPICS, 3))

    # when: the first is deleted
    deleted = api.post(DELETE, json={"path": dataset_prefix})

    # then: its 7 objects are gone, the other's 6 are there, and only the other is listed
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["data"] == {
        "data_uri": f"s3://{DATA_BUCKET}/{dataset_prefix}",
        "objects_removed": 7,
        "batch_jobs_removed": 0,
    }
    assert list_keys(s3, DATA_BUCKET, f"{dataset_prefix}/") == []
    assert len(list_keys(s3, DATA_BUCKET, f"{dataset_prefix}2/")) == 6
    listed = api.get(f"{API}/datasets").json()["data"]
    assert f"{dataset_prefix}2" in listed and dataset_prefix not in listed
    # and: deleting it again is a 404; the bucket root or an unreadable bucket a 422
    again = api.post(DELETE, json={"path": dataset_prefix})
    assert again.status_code == 404 and "not found" in again.json()["error"]
    for path in ("/", "s3://elsewhere/news"):
        assert api.post(DELETE, json={"path": path}).status_code == 422


def test_only_the_data_bucket_holds_deletable_datasets(settings: Settings, s3: Any) -> None:
    readable = settings.model_copy(update={"allowed_buckets": [ARTIFACTS_BUCKET]})
    with TestClient(create_app(readable)) as api:
        refused = api.post(DELETE, json={"path": f"s3://{ARTIFACTS_BUCKET}/batch-jobs"})
    assert refused.status_code == 422
    assert "data bucket" in refused.json()["error"]


def test_a_dataset_is_not_deleted_while_a_training_run_reads_it(
    api: TestClient, s3: Any, dataset_prefix: str, experiment_name: str
) -> None:
    # given: a dataset, a queued run training on it and a running one on one of its labels
    upload_tree(s3, DATA_BUCKET, dataset_prefix, keyword_tree(TOPICS, 3))
    client = MlflowClient()
    experiment_id = client.create_experiment(experiment_name)
    uri = f"s3://{DATA_BUCKET}/{dataset_prefix}"
    queued = client.create_run(experiment_id, tags={TAG_DATA_URI: uri}).info.run_id
    client.update_run(queued, status="SCHEDULED")
    running = client.create_run(experiment_id, tags={TAG_DATA_URI: f"{uri}/sports"}).info.run_id
    elsewhere = client.create_run(experiment_id, tags={TAG_DATA_URI: f"{uri}2"}).info.run_id

    # when: it is deleted, then: 409 naming the two runs, and every object is kept
    refused = api.post(DELETE, json={"path": dataset_prefix})
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert queued in error and running in error and elsewhere not in error
    assert len(list_keys(s3, DATA_BUCKET, f"{dataset_prefix}/")) == 6

    # when: the runs end, then: it is deleted
    for run_id in (queued, running, elsewhere):
        client.set_terminated(run_id)
    deleted = api.post(DELETE, json={"path": dataset_prefix})
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["data"]["objects_removed"] == 6


def test_batch_jobs_block_the_delete_of_their_input_and_hide_their_output(
    queued_api: TestClient, s3: Any, dataset_prefix: str, experiment_name: str
) -> None:
    # given: a queued batch job over a dataset, writing to a top-level folder of its own
    upload_tree(s3, DATA_BUCKET, dataset_prefix, keyword_tree(TOPICS, 3))
    scored = f"{dataset_prefix}-scored"
    job_id = _batch(queued_api, _servable_run(experiment_name), dataset_prefix, scored)

    # when: the dataset is deleted, then: 409 naming the job
    refused = queued_api.post(DELETE, json={"path": dataset_prefix})
    assert refused.status_code == 409, refused.text
    assert job_id in refused.json()["error"]

    # when: the job has written its output and ended
    _job_ends(s3, scored)

    # then: the output folder is not offered as a dataset, the input is
    listed = queued_api.get(f"{API}/datasets").json()["data"]
    assert dataset_prefix in listed and scored not in listed
    # and: the dataset is deleted with the index entries under it; the job and output stay
    deleted = queued_api.post(DELETE, json={"path": dataset_prefix})
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["data"]["batch_jobs_removed"] == 0
    assert (
        list_keys(s3, ARTIFACTS_BUCKET, f"batch-jobs/inputs/{DATA_BUCKET}/{dataset_prefix}/") == []
    )
    assert queued_api.get(f"{API}/batch_predict/{job_id}").json()["data"]["status"] == "COMPLETED"

    # when: the output folder is deleted, then: the job whose results it held goes with it
    gone = queued_api.post(DELETE, json={"path": scored})
    assert gone.status_code == 200, gone.text
    assert gone.json()["data"]["batch_jobs_removed"] == 1
    assert queued_api.get(f"{API}/batch_predict/{job_id}").status_code == 404
    assert _index_entries(s3, job_id) == []


def test_hard_delete_removes_the_batch_jobs_of_the_experiments_runs(
    queued_api: TestClient, s3: Any, dataset_prefix: str, experiment_name: str
) -> None:
    # given: a batch job with a model of the experiment, and its output written
    upload_tree(s3, DATA_BUCKET, dataset_prefix, keyword_tree(TOPICS, 3))
    scored = f"{dataset_prefix}-scored"
    job_id = _batch(queued_api, _servable_run(experiment_name), dataset_prefix, scored)
    _job_ends(s3, scored)
    assert _index_entries(s3, job_id)

    # when: the experiment is hard-deleted
    deleted = queued_api.post(f"{API}/experiment/hard_delete",
                              json={"experiment_name": experiment_name})  # fmt: skip

    # then: the job's record and index entries are gone; its output and input are not
    assert deleted.status_code == 200, deleted.text
    assert "1 batch job records removed" in deleted.json()["status"]
    assert queued_api.get(f"{API}/batch_predict/{job_id}").status_code == 404
    assert _index_entries(s3, job_id) == []
    assert list_keys(s3, DATA_BUCKET, f"{scored}/") == [f"{scored}/_progress.json"]
    assert len(list_keys(s3, DATA_BUCKET, f"{dataset_prefix}/")) == 6


def test_a_tenant_cannot_delete_another_tenants_dataset(secured: Settings, s3: Any) -> None:
    suffix = uuid.uuid4().hex[:4]
    acme, globex = f"acme-{suffix}", f"globex-{suffix}"
    with TestClient(create_app(secured)) as api:
        keys = {tenant: json.loads(admin_cli("create-key", "--tenant", tenant))["api_key"]
                for tenant in (acme, globex)}  # fmt: skip

        def delete(tenant: str, path: str) -> Any:
            return api.post(DELETE, json={"path": path}, headers={"x-api-key": keys[tenant]})

        # given: acme's dataset "news"; globex has none
        upload_tree(s3, DATA_BUCKET, f"tenants/{acme}/news", keyword_tree(TOPICS, 3))

        # when: globex names it by URI or by traversal: 422, as every path outside its folder
        for path in (f"s3://{DATA_BUCKET}/tenants/{acme}/news", f"../{acme}/news"):
            assert delete(globex, path).status_code == 422, path
        # by its own name: its own (missing) dataset, 404
        assert delete(globex, "news").status_code == 404

        # then: acme's objects are all there, and acme can delete them
        assert len(list_keys(s3, DATA_BUCKET, f"tenants/{acme}/news/")) == 6
        deleted = delete(acme, "news")
        assert deleted.status_code == 200, deleted.text
        assert deleted.json()["data"]["data_uri"] == f"s3://{DATA_BUCKET}/tenants/{acme}/news"

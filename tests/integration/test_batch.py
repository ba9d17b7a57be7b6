"""Batch prediction over an S3 prefix: launched through the API, resumable after a crash."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from fastapi.testclient import TestClient

from tests.conftest import TrainedModel
from tests.support import (
    DATA_BUCKET,
    TOPICS,
    LambdaApi,
    keyword_tree,
    list_keys,
    upload_tree,
    wait_until,
)
from training_job.batch import BatchJob, BatchParameters, load_run_classifier

BATCH = "/custom_classifier/batch_predict"


def _rows(s3: Any, prefix: str) -> list[dict[str, Any]]:
    rows = []
    for key in sorted(list_keys(s3, DATA_BUCKET, f"{prefix}/")):
        if key.endswith(".jsonl"):
            body = s3.get_object(Bucket=DATA_BUCKET, Key=key)["Body"].read().decode()
            rows += [json.loads(line) for line in body.splitlines() if line]
    return rows


@pytest.fixture
def batch_input(s3: Any, dataset_prefix: str) -> str:
    tree = keyword_tree(TOPICS, 5)  # 10 documents, and 3 that training would not use either
    tree["sports"]["junk.bin"] = bytes(range(256)) * 4
    tree["weather"]["empty.txt"] = b""
    tree["weather"][".DS_Store"] = b"Bud1 finder metadata"
    upload_tree(s3, DATA_BUCKET, f"{dataset_prefix}/in", tree)
    return f"{dataset_prefix}/in"


def test_batch_job_writes_every_document_once_and_lists_the_unusable(
    api: TestClient, s3: Any, trained_model: TrainedModel, batch_input: str, dataset_prefix: str
) -> None:
    # when: a batch prediction is requested, into a top-level folder of its own, over 3
    # shards (3 local processes, each its shard of the parts)
    output = f"{dataset_prefix}-out"
    body = {"runid": trained_model.run_id, "input_path": batch_input, "output_path": output,
            "instances": 3}  # fmt: skip
    response = api.post(BATCH, json=body)

    # then: it answers a job id at once, and the same request names the same job
    assert response.status_code == 200, response.text
    job = response.json()["data"]
    assert job["job_id"].startswith("batch-")
    assert job["output_uri"] == f"s3://{DATA_BUCKET}/{output}"
    assert api.post(BATCH, json=body).json()["data"]["job_id"] == job["job_id"]

    def completed() -> dict[str, Any] | None:
        status = api.get(f"{BATCH}/{job['job_id']}").json()
        return status if status["data"]["status"] in {"COMPLETED", "FAILED"} else None

    final = wait_until(completed, timeout=120, what="batch job", every=1)

    # then: progress is complete, 10 treated and 3 not, each with its reason
    assert final["data"]["status"] == "COMPLETED", final
    assert final["data"]["instances"] == 3
    assert (final["data"]["done"], final["data"]["total"]) == (13, 13)
    assert (final["data"]["treated"], final["data"]["not_treated"]) == (10, 3)
    assert final["number_documents_treated"] == 10
    assert final["number_documents_non_treated"] == 3
    unusable = {
        f"{batch_input}/sports/junk.bin": "binary",
        f"{batch_input}/weather/empty.txt": "empty",
        f"{batch_input}/weather/.DS_Store": "hidden file",
    }
    assert sorted(final["list_id_not_treated"]) == sorted(unusable)
    assert {d["key"]: d["reason"] for d in final["data"]["not_treated_documents"]} == unusable
    # and: every usable document has exactly one row
    rows = _rows(s3, output)
    assert len(rows) == 10
    assert len({row["key"] for row in rows}) == 10
    for row in rows:
        assert row["label"] in TOPICS and 0 < row["score"] <= 1
    manifest = json.loads(
        s3.get_object(Bucket=DATA_BUCKET, Key=f"{output}/_manifest.json")["Body"].read()
    )
    assert {item["key"]: item["reason"] for item in manifest["list_id_not_treated"]} == unusable
    # and: the output is not offered as a dataset; the folder it read is
    datasets = api.get("/custom_classifier/datasets").json()["data"]
    assert dataset_prefix in datasets and output not in datasets


class _CrashOnce:
    """The real classifier, except that one call fails as a killed process would."""

    def __init__(self, classifier: Any, fail_on_call: int) -> None:
        self.classifier = classifier
        self.calls = 0
        self.fail_on_call = fail_on_call

    def predict(self, texts: list[str]) -> Any:
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise RuntimeError("node lost")
        return self.classifier.predict(texts)


def test_rerun_after_a_crash_neither_duplicates_nor_loses_rows(
    s3: Any, mlflow_uri: str, trained_model: TrainedModel, batch_input: str, dataset_prefix: str
) -> None:
    # given: a job that dies on its third part (parts of 3 documents)
    params = BatchParameters(
        run_id=trained_model.run_id,
        input_uri=f"s3://{DATA_BUCKET}/{batch_input}",
        output_uri=f"s3://{DATA_BUCKET}/{dataset_prefix}/out",
        job_id="batch-test",
        part_size=3,
    )
    classifier = load_run_classifier(trained_model.run_id, mlflow_uri)
    client = boto3.client("s3")
    with pytest.raises(RuntimeError, match="node lost"):
        BatchJob(params, client, _CrashOnce(classifier, fail_on_call=3)).run()
    written = [k for k in list_keys(s3, DATA_BUCKET, f"{dataset_prefix}/out/") if "meta" in k]
    assert len(written) == 2

    # when: it runs again
    manifest = BatchJob(params, client, classifier).run()

    # then: each usable document has exactly one row
    rows = _rows(s3, f"{dataset_prefix}/out")
    assert sorted(row["key"] for row in rows) == sorted({row["key"] for row in rows})
    assert len(rows) == manifest["number_documents_treated"] == 10
    assert manifest["number_documents_non_treated"] == 3
    assert len(manifest["parts"]) == 5


def test_three_shards_one_crashed_then_rerun_write_every_row_once(
    s3: Any, mlflow_uri: str, trained_model: TrainedModel, batch_input: str, dataset_prefix: str
) -> None:
    # given: a job over 3 shards, parts of 2 documents (7 parts: shard 0 has parts 0, 3 and 6,
    # shard 1 parts 1 and 4, shard 2 parts 2 and 5), and shard 1 dies on its second part
    params = BatchParameters(
        run_id=trained_model.run_id,
        input_uri=f"s3://{DATA_BUCKET}/{batch_input}",
        output_uri=f"s3://{DATA_BUCKET}/{dataset_prefix}/out",
        job_id="batch-test",
        part_size=2,
        instances=3,
    )
    classifier = load_run_classifier(trained_model.run_id, mlflow_uri)
    client = boto3.client("s3")
    with pytest.raises(RuntimeError, match="node lost"):
        BatchJob(params, client, _CrashOnce(classifier, fail_on_call=2)).run([1])
    # when: the other shards finish, they wait for it: no manifest yet
    assert BatchJob(params, client, classifier).run([0]) is None
    assert BatchJob(params, client, classifier).run([2]) is None
    assert not list_keys(s3, DATA_BUCKET, f"{dataset_prefix}/out/_manifest.json")
    # and: shard 1 runs again, resuming its parts; being the last, it closes the job
    manifest = BatchJob(params, client, classifier).run([1])

    # then: every usable document has exactly one row, each part is listed once, in order
    assert manifest is not None
    rows = _rows(s3, f"{dataset_prefix}/out")
    assert len(rows) == len({row["key"] for row in rows}) == 10
    assert manifest["number_documents_treated"] == 10
    assert manifest["number_documents_non_treated"] == 3
    out = f"{dataset_prefix}/out"
    assert manifest["parts"] == [f"{out}/part-{index:05d}.jsonl" for index in range(7)]
    progress = json.loads(
        s3.get_object(Bucket=DATA_BUCKET, Key=f"{out}/_progress.json")["Body"].read()
    )
    assert (progress["status"], progress["done"], progress["total"]) == ("COMPLETED", 13, 13)


def test_batch_requests_that_cannot_run_get_4xx(
    api: TestClient, trained_model: TrainedModel, batch_input: str, dataset_prefix: str
) -> None:
    ok = {
        "runid": trained_model.run_id,
        "input_path": batch_input,
        "output_path": f"{dataset_prefix}/out",
    }
    cases = [
        ({**ok, "runid": "f" * 32}, 404, "not found"),
        ({**ok, "output_path": f"{batch_input}/results"}, 422, "must not overlap"),
        ({**ok, "input_path": f"{dataset_prefix}/nothing"}, 422, "no documents under"),
        ({**ok, "output_path": "s3://elsewhere/out"}, 422, "not one this service"),
        ({**ok, "instance_type": "ml.p5.48xlarge"}, 422, "instance_type 'ml.p5.48xlarge' is not"),
        ({**ok, "instances": 0}, 422, "instances must be between 1 and 10"),
        ({**ok, "instances": 11}, 422, "instances must be between 1 and 10"),
    ]
    for body, code, message in cases:
        response = api.post(BATCH, json=body)
        assert response.status_code == code, (body, response.text)
        assert message in response.json()["error"]
    assert api.get(f"{BATCH}/batch-0123456789abcdef").status_code == 404
    assert api.get(f"{BATCH}/../../etc").status_code == 404


def test_batch_status_through_the_lambda_handler(lambda_api: LambdaApi) -> None:
    code, body = lambda_api.call("v2", "GET", f"{BATCH}/batch-0123456789abcdef")
    assert code == 404
    assert "not found" in body["error"]


def test_suggest_ranks_the_uncertain_documents_first_and_spreads_them(
    api: TestClient, s3: Any, trained_model: TrainedModel, dataset_prefix: str
) -> None:
    # given: unlabelled documents, most plainly one topic, a few mixing both (one of them
    # five times over, as a forwarded e-mail would be)
    clear = {f"clear-{i}.txt": text for i, text in enumerate([
        "football match tonight, the striker and the league", "a goal for the striker",
        "rain and a storm in the forecast", "sunny then cloud, says the forecast",
        "the league match ended with a late goal", "storm clouds and heavy rain"])}  # fmt: skip
    mixed = {"mixed-a": "the football match was stopped by rain and storm",
             "mixed-b": "striker and goal under cloud and forecast of rain",
             "mixed-c": "league match played in sunny weather then a storm"}  # fmt: skip
    tree = {**clear, **{f"{name}-{i}.txt": mixed["mixed-a"] for i, name in
                        enumerate(["mixed-a"] * 5)}}  # fmt: skip
    tree |= {f"{name}.txt": text for name, text in mixed.items() if name != "mixed-a"}
    for name, text in tree.items():
        s3.put_object(Bucket=DATA_BUCKET, Key=f"{dataset_prefix}/unlabelled/{name}", Body=text)
    # when: three suggestions are asked for
    body = {"runid": trained_model.run_id, "input_path": f"{dataset_prefix}/unlabelled", "n": 3}
    started = api.post("/custom_classifier/suggest", json=body)
    assert started.status_code == 200, started.text
    job = started.json()["data"]
    assert job["output_uri"] == f"s3://{DATA_BUCKET}/{dataset_prefix}/_suggestions/unlabelled"

    def completed() -> dict[str, Any] | None:
        status = api.get(f"/custom_classifier/suggest/{job['job_id']}").json()["data"]
        return status if status["status"] in {"COMPLETED", "FAILED"} else None

    final = wait_until(completed, timeout=120, what="suggest job", every=1)
    # then: three different texts (five copies of one take one place at most), the least
    # sure first, each with the model's guess (the ranking itself: tests/unit/test_suggest.py)
    assert final["status"] == "COMPLETED", final
    suggested = final["suggestions"]
    assert [s["rank"] for s in suggested] == [1, 2, 3]
    assert len({s["text"] for s in suggested}) == 3
    rows = _rows(s3, f"{dataset_prefix}/_suggestions/unlabelled")
    assert len(rows) == len(tree)  # every document answered, each with its margin
    assert suggested[0]["margin"] == min(r["margin"] for r in rows)
    assert all(s["label"] in trained_model.labels and 0 <= s["margin"] < 1 for s in suggested)
    # and a batch prediction of the same folder is another job, without suggestions
    batch = {"runid": trained_model.run_id, "input_path": f"{dataset_prefix}/unlabelled",
             "output_path": f"{dataset_prefix}-batch-out"}  # fmt: skip
    other = api.post(BATCH, json=batch).json()["data"]
    assert other["job_id"] != job["job_id"] and other["suggestions"] is None

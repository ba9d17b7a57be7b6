"""Tenant isolation: two tenants, each with its own API key, datasets and experiments of the
same names. Neither can list, read, predict with, batch with, promote or delete the other's
runs and models, even knowing their ids: the answer is the 404 an unknown id gets."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import requests
from fastapi.testclient import TestClient
from mlflow import MlflowClient

from functions.api.app import create_app
from functions.api.handler import build_handler
from functions.core.config import Settings
from functions.s3_trigger.poller import poll_once
from functions.services import Services
from tests.support import (
    DATA_BUCKET,
    TOPICS,
    LambdaApi,
    admin_cli,
    keyword_tree,
    list_keys,
    upload_tree,
    wait_until,
)

API = "/custom_classifier"
LABELS = sorted(TOPICS)
UNKNOWN_RUN = "0" * 32


class Caller:
    """One tenant's HTTP client: every request carries its key."""

    def __init__(self, api: TestClient, tenant: str) -> None:
        self.api = api
        self.tenant = tenant
        self.key = json.loads(admin_cli("create-key", "--tenant", tenant))["api_key"]

    def get(self, route: str, **params: Any) -> Any:
        return self.api.get(f"{API}{route}", params=params, headers={"x-api-key": self.key})

    def post(self, route: str, body: dict[str, Any]) -> Any:
        return self.api.post(f"{API}{route}", json=body, headers={"x-api-key": self.key})

    def train(self, dataset: str, experiment: str) -> str:
        started = self.post("/process", {"labels": LABELS, "path": dataset,
                                         "experiment_name": experiment})  # fmt: skip
        assert started.status_code == 200, started.text
        return str(started.json()["data"]["info"]["run_id"])

    def wait_finished(self, experiment: str) -> dict[str, Any]:
        def finished() -> dict[str, Any] | None:
            runs = self.post("/job_status", {"experiment_name": experiment}).json()
            run: dict[str, Any] = runs[0]
            return run if run["status"] in {"FINISHED", "FAILED"} else None

        run: dict[str, Any] = wait_until(finished, timeout=240, what="training", every=1)
        assert run["status"] == "FINISHED", run
        return run


def _upload(caller: Caller, dataset: str) -> None:
    """Through /uploads and the presigned PUT URLs, as the UI and CLI do."""
    tree = keyword_tree(TOPICS, 12)
    files = [{"path": f"{label}/{name}", "size": len(body)}
             for label, docs in tree.items() for name, body in docs.items()]  # fmt: skip
    plan = caller.post("/uploads", {"path": dataset, "files": files})
    assert plan.status_code == 200, plan.text
    for item in plan.json()["data"]["uploads"]:
        assert item["key"].startswith(f"tenants/{caller.tenant}/{dataset}/")
        label, name = item["path"].split("/")
        assert requests.put(item["url"], data=tree[label][name], timeout=10).status_code == 200


def _not_found(response: Any, like: Any) -> None:
    """A 404 worded as for an id nobody has (the id itself aside)."""
    assert response.status_code == 404, response.text
    assert response.json()["status"]["code"] == 404
    assert like.status_code == 404


@pytest.fixture
def tenants(secured: Settings) -> Any:
    with TestClient(create_app(secured)) as api:
        suffix = uuid.uuid4().hex[:4]
        yield Caller(api, f"acme-{suffix}"), Caller(api, f"globex-{suffix}")


def test_tenants_see_and_touch_only_their_own_runs_and_models(
    tenants: tuple[Caller, Caller], s3: Any
) -> None:
    acme, globex = tenants
    experiment = f"news-{uuid.uuid4().hex[:6]}"  # the same name for both tenants

    # given: each tenant uploads a dataset named "news" and trains an experiment of one name
    for caller in tenants:
        _upload(caller, "news")
        assert caller.get("/datasets").json()["data"] == ["news"]
    acme_run = acme.train("news", experiment)
    globex_run = globex.train("news", experiment)
    acme_status = acme.wait_finished(experiment)
    globex_status = globex.wait_finished(experiment)

    # then: two experiments in MLflow, namespaced, and two registered models
    client = MlflowClient()
    trained = ((acme, acme_run, acme_status), (globex, globex_run, globex_status))
    for caller, run_id, status in trained:
        mlflow_experiment = client.get_experiment_by_name(f"{caller.tenant}__{experiment}")
        assert mlflow_experiment is not None
        assert client.get_run(run_id).info.experiment_id == mlflow_experiment.experiment_id
        assert status["run_id"] == run_id
        assert status["registered_model"] == f"{caller.tenant}__{experiment}-classifier/1"
        assert client.get_run(run_id).data.tags["custom_classifier.tenant"] == caller.tenant
    acme_model = f"models:/{acme.tenant}__{experiment}-classifier@champion"

    # listings: each sees its own run under its own (unprefixed) experiment name
    for caller, own, other in ((acme, acme_run, globex_run), (globex, globex_run, acme_run)):
        latest = caller.get("/all_experiments/last_run").json()
        assert own in {r["run_id"] for r in latest} and other not in {r["run_id"] for r in latest}
        assert {r["experiment_name"] for r in latest} == {experiment}
        runs = caller.get("/runid/status", experiment_name=experiment).json()
        assert [r["run_id"] for r in runs] == [own]

    # reading, predicting, batching, promoting with acme's run id or model: 404 for globex
    unknown_run = globex.get(f"/runs/{UNKNOWN_RUN}")
    assert acme.get(f"/runs/{acme_run}").status_code == 200
    _not_found(globex.get(f"/runs/{acme_run}"), unknown_run)
    assert globex.get(f"/runs/{acme_run}").json()["error"] == unknown_run.json()["error"].replace(
        UNKNOWN_RUN, acme_run
    )
    _not_found(globex.get(f"/runs/{acme_run}/artifacts/evaluation/classification_report.json"),
               unknown_run)  # fmt: skip
    text = {"text": "goal match team"}
    _not_found(globex.post("/predict", {"runid": acme_run, **text}), unknown_run)  # not cached
    _not_found(globex.post("/predict", {"runid": acme_model, **text}), unknown_run)
    assert acme.post("/predict", {"runid": acme_run, **text}).status_code == 200
    assert acme.post("/predict", {"runid": acme_model, **text}).status_code == 200
    _not_found(globex.post("/predict", {"runid": acme_run, **text}), unknown_run)  # cached now
    _not_found(globex.post("/predict", {"runid": acme_model, **text}), unknown_run)
    _not_found(globex.post("/batch_predict", {"runid": acme_run, "input_path": "news/sports",
                                              "output_path": "out"}), unknown_run)  # fmt: skip
    acme_batch = acme.post("/batch_predict", {"runid": acme_run, "input_path": "news/sports",
                                              "output_path": "scored"})  # fmt: skip
    assert acme_batch.status_code == 200, acme_batch.text
    assert (
        acme_batch.json()["data"]["output_uri"]
        == f"s3://{DATA_BUCKET}/tenants/{acme.tenant}/scored"
    )
    job_id = acme_batch.json()["data"]["job_id"]
    assert acme.get(f"/batch_predict/{job_id}").status_code == 200
    _not_found(globex.get(f"/batch_predict/{job_id}"), unknown_run)
    _not_found(globex.post("/promote", {"run_id": acme_run}), unknown_run)

    # deleting: globex's deletes reach only its own experiment and runs
    _not_found(globex.post("/run/soft_delete", {"run_id": acme_run}), unknown_run)
    hard = globex.post("/experiment/hard_delete", {"experiment_name": experiment})
    assert hard.status_code == 200, hard.text
    assert client.get_experiment_by_name(f"{globex.tenant}__{experiment}") is None
    assert acme.get(f"/runs/{acme_run}").json()["data"]["status"] == "FINISHED"
    assert acme.post("/predict", {"runid": acme_model, **text}).status_code == 200
    assert globex.post("/job_status", {"experiment_name": experiment}).status_code == 404
    assert list_keys(s3, DATA_BUCKET, f"tenants/{acme.tenant}/news/")  # data is never deleted


@pytest.mark.parametrize(
    "path",
    [
        "s3://{bucket}/tenants/{other}/news",  # the other tenant's folder
        "s3://{bucket}/news",  # the shared bucket root's datasets
        "s3://{bucket}/tenants/{me}",  # its own folder, not a dataset
        "../{other}/news",  # traversal
        "s3://someone-elses-bucket/tenants/{me}/news",
    ],
)
def test_a_tenants_paths_stay_inside_its_folder(
    tenants: tuple[Caller, Caller], s3: Any, path: str
) -> None:
    me, other = tenants
    upload_tree(s3, DATA_BUCKET, f"tenants/{other.tenant}/news", keyword_tree(TOPICS, 8))
    upload_tree(s3, DATA_BUCKET, "news", keyword_tree(TOPICS, 8))
    target = path.format(bucket=DATA_BUCKET, other=other.tenant, me=me.tenant)
    experiment = f"steal-{uuid.uuid4().hex[:6]}"
    answers = [
        me.post("/process", {"labels": LABELS, "path": target, "experiment_name": experiment}),
        me.get("/datasets/labels", path=target),
        me.post("/uploads", {"path": target, "files": [{"path": "sports/a.txt", "size": 3}]}),
        me.post("/batch_predict", {"runid": UNKNOWN_RUN, "input_path": target, "output_path": "o"}),
    ]
    for answer in answers:
        assert answer.status_code == 422, (target, answer.text)
        assert answer.json()["data"] is None
    assert MlflowClient().get_experiment_by_name(f"{me.tenant}__{experiment}") is None
    assert me.get("/datasets").json()["data"] == []


def test_a_manifest_in_a_tenants_folder_trains_for_that_tenant(
    tenants: tuple[Caller, Caller], s3: Any, secured: Settings
) -> None:
    acme, globex = tenants
    experiment = f"dropped-{uuid.uuid4().hex[:6]}"
    prefix = f"tenants/{acme.tenant}/inbox"
    upload_tree(s3, DATA_BUCKET, prefix, keyword_tree(TOPICS, 8))
    s3.put_object(Bucket=DATA_BUCKET, Key=f"{prefix}/_train.json",
                  Body=json.dumps({"experiment_name": experiment}).encode())  # fmt: skip

    poll_once(Services(secured))

    result = json.loads(
        s3.get_object(Bucket=DATA_BUCKET, Key=f"{prefix}/_train.result.json")["Body"].read()
    )
    assert result["status"] == "started", result
    assert MlflowClient().get_experiment_by_name(f"{acme.tenant}__{experiment}") is not None
    runs = acme.post("/job_status", {"experiment_name": experiment}).json()
    assert [r["run_id"] for r in runs] == [result["run_id"]]
    assert globex.post("/job_status", {"experiment_name": experiment}).status_code == 404
    seen = globex.get("/all_experiments/last_run").json()
    assert result["run_id"] not in {r["run_id"] for r in seen}


def test_behind_a_jwt_authorizer_the_verified_claim_names_the_tenant(
    settings: Settings, s3: Any
) -> None:
    jwt = settings.model_copy(update={"auth": "jwt", "api_base_path": "/prod"})
    gateway = LambdaApi(build_handler(jwt))
    tenant, other = f"acme-{uuid.uuid4().hex[:4]}", f"globex-{uuid.uuid4().hex[:4]}"
    upload_tree(s3, DATA_BUCKET, f"tenants/{tenant}/news", keyword_tree(TOPICS, 8))

    # the verified claims (HTTP API JWT authorizer, REST API Cognito authorizer) name it
    for version in ("v2", "v1"):
        status, body = gateway.call(version, "GET", f"{API}/datasets",
                                    claims={"sub": "user-1", "custom:tenant": tenant})  # fmt: skip
        assert (status, body["data"]) == (200, ["news"]), body
        status, body = gateway.call(version, "GET", f"{API}/datasets/labels",
                                    query={"path": f"s3://{DATA_BUCKET}/tenants/{tenant}/news"},
                                    claims={"custom:tenant": other})  # fmt: skip
        assert status == 422, body

    # no authorizer context, or no tenant claim: 401; headers cannot stand in for claims
    for claims in (None, {"sub": "user-1"}, {"custom:tenant": "Not A Tenant"}):
        status, body = gateway.call("v2", "GET", f"{API}/datasets", claims=claims)
        assert status == 401, claims
        assert "custom:tenant" in body["error"]
    with TestClient(create_app(jwt)) as bare:
        forged = {"authorization": "Bearer x", "x-amzn-oidc-data": "x", "custom:tenant": tenant}
        assert bare.get(f"{API}/datasets", headers=forged).status_code == 401
        assert bare.get("/health").status_code == 200

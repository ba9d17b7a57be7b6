"""The HTTP API through the FastAPI app, against moto S3 and a real MLflow server."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient

from functions.api.app import create_app
from functions.core.config import Settings
from functions.core.validation import TRAINING_MODES
from tests.support import (
    ARTIFACTS_BUCKET,
    DATA_BUCKET,
    TOPICS,
    keyword_tree,
    list_keys,
    upload_tree,
    wait_until,
)


def _process(api: TestClient, labels: list[str], path: str, experiment: str) -> Any:
    return api.post(
        "/custom_classifier/process",
        json={"labels": labels, "path": path, "experiment_name": experiment},
    )


def _wait_finished(api: TestClient, experiment: str, timeout: float = 180) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        runs = api.post("/custom_classifier/job_status", json={"experiment_name": experiment})
        run: dict[str, Any] = runs.json()[0]
        return run if run["status"] in {"FINISHED", "FAILED"} else None

    result: dict[str, Any] = wait_until(finished, timeout=timeout, what="training run", every=1)
    return result


@pytest.fixture
def topics_dataset(s3: Any, dataset_prefix: str) -> str:
    tree = keyword_tree(TOPICS, 12)
    tree["sports"]["empty.txt"] = b""
    tree["weather"][".hidden"] = b"metadata"
    upload_tree(s3, DATA_BUCKET, dataset_prefix, tree)
    return dataset_prefix


def test_process_then_status_then_hard_delete_removes_everything(
    api: TestClient, s3: Any, topics_dataset: str, experiment_name: str
) -> None:
    # when: a valid training request
    response = _process(api, ["sports", "weather"], topics_dataset, experiment_name)

    # then: the seed's envelope with the new RUNNING run and the dataset report
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == {"code": 200, "message": "Success"}
    assert body["error"] == ""
    info = body["data"]["info"]
    assert info["status"] == "RUNNING"
    assert re.fullmatch(r"training_classifier\d{4}-\d\d-\d\d_\d{6}", info["run_name"])
    assert info["run_id"] == info["run_uuid"]
    assert body["data"]["data"]["params"]["label2id"] == "{'sports': 0, 'weather': 1}"
    assert body["data"]["data"]["tags"]["mlflow.runName"] == info["run_name"]
    assert body["number_documents_treated"] == 24
    assert body["number_documents_non_treated"] == 2
    assert sorted(body["list_id_not_treated"]) == [
        f"{topics_dataset}/sports/empty.txt",
        f"{topics_dataset}/weather/.hidden",
    ]
    assert body["data"]["dataset"]["documents_per_label"] == {"sports": 12, "weather": 12}
    assert body["data"]["dataset"]["formats_per_label"] == {
        "sports": {"text": 12},
        "weather": {"text": 12},
    }

    # when: the job runs to the end on its own
    run = _wait_finished(api, experiment_name)

    # then: status shows metrics and the registered model
    assert run["status"] == "FINISHED", run
    assert run["run_id"] == info["run_id"]
    assert run["params.id2label"] == "{0: 'sports', 1: 'weather'}"
    assert run["tags.mlflow.runName"] == info["run_name"]
    assert run["metrics.test_macro_f1"] is not None
    assert run["registered"] is True
    assert run["model_kind"] in set(TRAINING_MODES) - {"auto"}
    experiment_id = info["experiment_id"]
    assert list_keys(s3, ARTIFACTS_BUCKET, f"{experiment_id}/")
    assert (
        api.get(
            "/custom_classifier/runid/status", params={"experiment_name": experiment_name}
        ).json()[0]["run_id"]
        == info["run_id"]
    )
    latest = api.get("/custom_classifier/all_experiments/last_run").json()
    assert {
        "run_id": info["run_id"],
        "status": "FINISHED",
        "experiment_name": experiment_name,
        "tags.mlflow.runName": info["run_name"],
    } in latest

    # when: the experiment is hard-deleted
    deleted = api.post(
        "/custom_classifier/experiment/hard_delete", json={"experiment_name": experiment_name}
    )

    # then: nothing is left in MLflow or on S3, and the name is free again
    assert deleted.status_code == 200, deleted.text
    assert "hard-deleted" in deleted.json()["status"]
    assert "rows purged" in deleted.json()["status"]
    assert list_keys(s3, ARTIFACTS_BUCKET, f"{experiment_id}/") == []
    client = MlflowClient()
    assert client.get_experiment_by_name(experiment_name) is None
    assert client.search_model_versions(f"run_id='{info['run_id']}'") == []
    assert client.search_registered_models(f"name='{experiment_name}-classifier'") == []
    missing = api.post("/custom_classifier/job_status", json={"experiment_name": experiment_name})
    assert missing.status_code == 404
    assert client.create_experiment(experiment_name)


@pytest.mark.parametrize(
    ("labels", "path", "name", "message"),
    [
        (["sports"], None, None, "at least two distinct labels"),
        (["sports", "sports"], None, None, "labels must be distinct"),
        (["sports", " "], None, None, "labels must not be empty"),
        (["sports", "a/b"], None, None, "not a valid folder name"),
        (["sports", "weather"], "../other", None, "'..'"),
        (["sports", "weather"], "s3://someone-elses-bucket/x", None, "not one this service"),
        (["sports", "weather"], "/", None, "not the bucket root"),
        (["sports", "politics"], None, None, "'politics' has 0"),
        (["sports", "weather"], None, "", "experiment_name must not be empty"),
        (["sports", "weather"], None, "bad\x07name", "control characters"),
        (["sports", "weather"], None, "right\u202eto-left", "control characters"),
        (["sports", "wea\x00ther"], None, None, "not a valid folder name"),
        (["sports", ".."], None, None, "not a valid folder name"),
        ([f"label-{i}" for i in range(101)], None, None, "at most 100 labels"),
        (["sports", "weather"], "data/\x1b[31m", None, "control characters"),
        (["sports", "weather"], "s3://cc-data/a/../../b", None, "'..'"),
    ],
)
def test_invalid_requests_get_422_and_create_nothing(
    api: TestClient,
    topics_dataset: str,
    experiment_name: str,
    labels: list[str],
    path: str | None,
    name: str | None,
    message: str,
) -> None:
    experiment = experiment_name if name is None else name
    response = _process(api, labels, path if path is not None else topics_dataset, experiment)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["status"]["code"] == 422
    assert message in body["error"]
    assert body["data"] is None
    assert MlflowClient().get_experiment_by_name(experiment_name) is None


def test_too_few_documents_reports_counts_and_unusable_documents(
    api: TestClient, s3: Any, dataset_prefix: str, experiment_name: str
) -> None:
    tree = keyword_tree(TOPICS, 8)
    tree["weather"] = {name: tree["weather"][name] for name in list(tree["weather"])[:5]}
    tree["weather"]["blank.txt"] = b""
    upload_tree(s3, DATA_BUCKET, dataset_prefix, tree)
    response = _process(api, ["sports", "weather"], dataset_prefix, experiment_name)
    assert response.status_code == 422
    body = response.json()
    assert "'weather' has 5" in body["error"]
    assert body["number_documents_treated"] == 13
    assert body["list_id_not_treated"] == [f"{dataset_prefix}/weather/blank.txt"]
    assert MlflowClient().get_experiment_by_name(experiment_name) is None


def test_malformed_body_gets_422_in_the_envelope(api: TestClient) -> None:
    response = api.post("/custom_classifier/process", json={"labels": "sports"})
    assert response.status_code == 422
    body = response.json()
    assert body["status"] == {"code": 422, "message": "Unprocessable Entity"}
    assert "labels" in body["error"] and "path" in body["error"]


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("process", {"multilabel": True}),  # a typo of multi_label
        ("predict", {"runid": "0" * 32, "text": "x", "threshold": 0.5}),
        ("batch_predict", {"runid": "0" * 32, "input_path": "a", "output_path": "b", "n": 1}),
        ("run/soft_delete", {"run_id": "0" * 32, "hard": True}),
        ("experiment/soft_delete", {"experiment_name": "x", "hard": True}),
        ("uploads", {"path": "news", "files": [{"path": "a/1.txt", "size": 1, "label": "a"}]}),
    ],
)
def test_an_unknown_field_is_a_422_naming_it_not_silently_ignored(
    api: TestClient, topics_dataset: str, experiment_name: str, route: str,
    body: dict[str, Any],
) -> None:  # fmt: skip
    if route == "process":
        body = {"labels": ["sports", "weather"], "path": topics_dataset,
                "experiment_name": experiment_name, **body}  # fmt: skip
    unknown = "label" if route == "uploads" else next(reversed(body))
    response = api.post(f"/custom_classifier/{route}", json=body)
    assert response.status_code == 422, response.text
    answer = response.json()
    assert answer["status"]["code"] == 422
    assert f"{unknown}: unknown field" in answer["error"]
    assert MlflowClient().get_experiment_by_name(experiment_name) is None


def test_an_unknown_promote_policy_is_a_422_naming_the_choices(
    api: TestClient, topics_dataset: str, experiment_name: str
) -> None:
    body = {"labels": ["sports", "weather"], "path": topics_dataset,
            "experiment_name": experiment_name, "promote": "sometimes"}  # fmt: skip
    response = api.post("/custom_classifier/process", json=body)
    assert response.status_code == 422, response.text
    assert "'always' or 'if_better'" in response.json()["error"]
    assert MlflowClient().get_experiment_by_name(experiment_name) is None


def test_unknown_names_get_404(api: TestClient, experiment_name: str) -> None:
    for path in (
        "/custom_classifier/job_status",
        "/custom_classifier/experiment/soft_delete",
        "/custom_classifier/experiment/hard_delete",
    ):
        response = api.post(path, json={"experiment_name": experiment_name})
        assert response.status_code == 404, path
        assert experiment_name in response.json()["error"]
    response = api.get("/custom_classifier/runid/status", params={"experiment_name": "nope-x"})
    assert response.status_code == 404
    for run_id in ("0" * 32, "a/b", "../../x", "a'b", "%00", "-", "_x"):
        response = api.post("/custom_classifier/run/soft_delete", json={"run_id": run_id})
        assert response.status_code == 404, run_id
    assert api.get("/custom_classifier/runs/-").status_code == 404  # found by schemathesis


def test_soft_deletes_hide_but_keep(api: TestClient, experiment_name: str) -> None:
    # given: an experiment with two runs
    client = MlflowClient()
    experiment_id = client.create_experiment(experiment_name)
    first = client.create_run(experiment_id).info.run_id
    second = client.create_run(experiment_id).info.run_id

    # when: one run is soft-deleted
    response = api.post("/custom_classifier/run/soft_delete", json={"run_id": first})

    # then: it disappears from the status, but MLflow keeps it
    assert response.status_code == 200
    assert response.json()["status"].startswith(f"Run {first} soft-deleted")
    runs = api.post("/custom_classifier/job_status", json={"experiment_name": experiment_name})
    assert [r["run_id"] for r in runs.json()] == [second]
    assert client.get_run(first).info.lifecycle_stage == "deleted"

    # when: the experiment is soft-deleted
    response = api.post(
        "/custom_classifier/experiment/soft_delete", json={"experiment_name": experiment_name}
    )

    # then: it is gone from the API, still in MLflow, and its name cannot be trained into
    assert response.status_code == 200
    assert "soft-deleted" in response.json()["status"]
    assert (
        api.post(
            "/custom_classifier/job_status", json={"experiment_name": experiment_name}
        ).status_code
        == 404
    )
    assert client.get_experiment(experiment_id).lifecycle_stage == "deleted"
    assert all(
        r["experiment_name"] != experiment_name
        for r in api.get("/custom_classifier/all_experiments/last_run").json()
    )


def test_soft_deleted_experiment_name_is_a_conflict(
    api: TestClient, topics_dataset: str, experiment_name: str
) -> None:
    client = MlflowClient()
    client.delete_experiment(client.create_experiment(experiment_name))
    response = _process(api, ["sports", "weather"], topics_dataset, experiment_name)
    assert response.status_code == 409
    assert "soft-deleted" in response.json()["error"]


def test_job_status_lists_the_last_three_runs_newest_first(
    api: TestClient, experiment_name: str
) -> None:
    client = MlflowClient()
    experiment_id = client.create_experiment(experiment_name)
    ids = [client.create_run(experiment_id, start_time=1000 + i).info.run_id for i in range(5)]
    runs = api.post("/custom_classifier/job_status", json={"experiment_name": experiment_name})
    assert [r["run_id"] for r in runs.json()] == ids[:1:-1]
    assert set(runs.json()[0]) >= {
        "run_id",
        "status",
        "params.label2id",
        "params.id2label",
        "tags.mlflow.runName",
        "metrics.test_macro_f1",
        "metrics.test_accuracy",
        "registered",
    }


def test_mlflow_down_gives_503_and_health_names_it(settings: Settings) -> None:
    down = settings.model_copy(update={"mlflow_tracking_uri": "http://127.0.0.1:9"})
    with TestClient(create_app(down)) as api:
        response = api.post("/custom_classifier/job_status", json={"experiment_name": "x"})
        assert response.status_code == 503
        assert (
            "MLflow tracking server at http://127.0.0.1:9 is unreachable"
            in (response.json()["error"])
        )
        health = api.get("/health")
        assert health.status_code == 503
        assert health.json()["s3"] == "ok"
        assert health.json()["mlflow"].startswith("down")


def test_s3_down_gives_503(settings: Settings, experiment_name: str) -> None:
    down = settings.model_copy(update={"s3_endpoint_url": "http://127.0.0.1:9"})
    with TestClient(create_app(down)) as api:
        response = _process(api, ["a", "b"], "data", experiment_name)
        assert response.status_code == 503
        assert "S3" in response.json()["error"]
        assert api.get("/health").json()["s3"].startswith("down")
    assert MlflowClient().get_experiment_by_name(experiment_name) is None


def test_health_is_ok_when_everything_is_up(api: TestClient) -> None:
    response = api.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "s3": "ok", "mlflow": "ok"}


def test_a_running_job_reports_its_phase_percent_and_eta(
    api: TestClient, topics_dataset: str, experiment_name: str
) -> None:
    # given: a training started through the API
    started = _process(api, ["sports", "weather"], topics_dataset, experiment_name)
    run_id = started.json()["data"]["info"]["run_id"]
    # when: its status is polled while it runs
    seen: list[dict[str, Any]] = []

    def ended() -> bool:
        runs = api.post("/custom_classifier/job_status", json={"experiment_name": experiment_name})
        run: dict[str, Any] = runs.json()[0]
        seen.append(run)
        return run["status"] in {"FINISHED", "FAILED"}

    wait_until(ended, timeout=180, what="training run", every=0.1)
    # then: while RUNNING it said what it was doing, with a percent that never went back
    running = [run for run in seen if run["status"] == "RUNNING" and run["phase"]]
    assert running, seen[:3]
    phases = {run["phase"] for run in running}
    assert phases <= {"reading", "splitting", "training", "tuning", "exporting", "evaluating",
                      "logging_model", "registering", "done"}, phases  # fmt: skip
    percents = [run["progress_percent"] for run in running if run["progress_percent"] is not None]
    assert percents == sorted(percents)
    assert all(0 <= p <= 100 for p in percents) and any(0 < p < 100 for p in percents)
    assert all(run["eta_seconds"] >= 0 for run in running if run["eta_seconds"] is not None)
    # and the job's own record of it: candidates named, percent rising to 100 at the end
    final = seen[-1]
    assert final["status"] == "FINISHED" and final["phase"] == "done", final
    assert final["progress_percent"] == 100.0 and final["eta_seconds"] is None
    history = MlflowClient().get_metric_history(run_id, "progress_percent")
    values = [m.value for m in sorted(history, key=lambda m: m.timestamp)]
    assert len(values) >= 3 and values == sorted(values) and values[-1] == 100.0
    detail = api.get(f"/custom_classifier/runs/{run_id}").json()["data"]
    assert detail["phase"] == "done"


def test_experiments_lists_every_experiment_by_name_but_the_deleted(
    api: TestClient, experiment_name: str
) -> None:
    client = MlflowClient()
    names = [f"{experiment_name}-b", f"{experiment_name}-A", f"{experiment_name}-gone"]
    for name in names:
        client.create_experiment(name)
    gone = api.post("/custom_classifier/experiment/soft_delete", json={"experiment_name": names[2]})
    assert gone.status_code == 200, gone.text
    listed = [e["experiment_name"] for e in api.get("/custom_classifier/experiments").json()]
    assert [n for n in listed if n.startswith(experiment_name)] == names[1::-1]
    assert "Default" not in listed
    assert listed == sorted(listed, key=str.lower)

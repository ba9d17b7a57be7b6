"""Deletes touch only what they name: a hard delete purges one experiment (never another's
soft-deleted runs or logged models, across tenants too), soft deletes can be restored, and
every experiment registers into a model of its own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient
from mlflow.tracking import _get_store

from functions.api.app import create_app
from functions.core.config import Settings
from tests.conftest import MlflowServer, train_tiny
from tests.support import DATA_BUCKET, TOPICS, admin_cli, keyword_tree, upload_tree, wait_until

API = "/custom_classifier"


def _logged_model_exists(backend_store_uri: str, model_id: str) -> bool:
    store = _get_store(backend_store_uri)
    try:
        store.get_logged_model(model_id, allow_deleted=True)
    except Exception:
        return False
    return True


def _soft_deleted_run_and_logged_model(client: MlflowClient, experiment_id: str) -> tuple[str, str]:
    run_id = client.create_run(experiment_id).info.run_id
    client.delete_run(run_id)
    model_id = client.create_logged_model(experiment_id).model_id
    client.delete_logged_model(model_id)
    return run_id, model_id


def test_hard_deleting_one_experiment_keeps_every_other_experiments_deleted_runs(
    api: TestClient, s3: Any, mlflow_server: MlflowServer, tiny_base_model: str,
    tmp_path: Path, dataset_prefix: str, experiment_name: str,
) -> None:  # fmt: skip
    # given: experiment "keep" with a registered champion, a soft-deleted run and a deleted
    # logged model; experiment "other" with its own soft-deleted run
    client = MlflowClient()
    upload_tree(s3, DATA_BUCKET, dataset_prefix, keyword_tree(TOPICS, 8))
    champion = train_tiny(dataset_prefix, experiment_name, tiny_base_model, tmp_path, mode="tfidf")
    keep_id = client.get_run(champion).info.experiment_id
    kept_run, kept_model = _soft_deleted_run_and_logged_model(client, keep_id)
    other = f"{experiment_name}-other"
    other_id = client.create_experiment(other)
    purged_run, purged_model = _soft_deleted_run_and_logged_model(client, other_id)

    # when: "other" is hard-deleted
    answer = api.post(f"{API}/experiment/hard_delete", json={"experiment_name": other})

    # then: only "other" is gone; "keep" still has its deleted run, its deleted logged model,
    # its registered version, and its champion still answers
    assert answer.status_code == 200, answer.text
    assert "rows purged" in answer.json()["status"]
    assert client.get_run(kept_run).info.lifecycle_stage == "deleted"
    assert _logged_model_exists(mlflow_server.backend_store_uri, kept_model)
    assert not _logged_model_exists(mlflow_server.backend_store_uri, purged_model)
    with pytest.raises(Exception, match=r"not found|does not exist"):
        client.get_run(purged_run)
    assert client.search_model_versions(f"run_id='{champion}'")
    reference = f"models:/{experiment_name}-classifier@champion"
    served = api.post(f"{API}/predict", json={"runid": reference, "text": "goal match"})
    assert served.status_code == 200, served.text

    # and the soft-deleted run can still be restored
    restored = api.post(f"{API}/run/restore", json={"run_id": kept_run})
    assert restored.status_code == 200, restored.text
    listed = api.post(f"{API}/job_status", json={"experiment_name": experiment_name}).json()
    assert kept_run in {r["run_id"] for r in listed}


def test_one_tenants_hard_delete_keeps_another_tenants_deleted_runs(
    secured: Settings, mlflow_server: MlflowServer
) -> None:
    keys = {t: json.loads(admin_cli("create-key", "--tenant", t))["api_key"]
            for t in ("acme", "globex")}  # fmt: skip
    client = MlflowClient()
    with TestClient(create_app(secured)) as api:
        # given: acme soft-deleted a run of its "news"; globex has a "news" of its own
        acme_id = client.create_experiment("acme__news")
        acme_run = client.create_run(acme_id, tags={"custom_classifier.tenant": "acme"})
        acme_run_id = acme_run.info.run_id
        acme_model = client.create_logged_model(acme_id).model_id
        client.delete_logged_model(acme_model)
        acme = {"x-api-key": keys["acme"]}
        assert api.post(f"{API}/run/soft_delete", json={"run_id": acme_run_id},
                        headers=acme).status_code == 200  # fmt: skip
        client.create_experiment("globex__news")
        # when: globex hard-deletes its "news"
        hard = api.post(f"{API}/experiment/hard_delete", json={"experiment_name": "news"},
                        headers={"x-api-key": keys["globex"]})  # fmt: skip
        assert hard.status_code == 200, hard.text
        # then: acme's deleted run and logged model are intact, and acme can restore the run
        assert client.get_run(acme_run_id).info.lifecycle_stage == "deleted"
        assert _logged_model_exists(mlflow_server.backend_store_uri, acme_model)
        globex_try = api.post(f"{API}/run/restore", json={"run_id": acme_run_id},
                              headers={"x-api-key": keys["globex"]})  # fmt: skip
        assert globex_try.status_code == 404
        back = api.post(f"{API}/run/restore", json={"run_id": acme_run_id}, headers=acme)
        assert back.status_code == 200, back.text
        assert client.get_run(acme_run_id).info.lifecycle_stage == "active"


def test_soft_deletes_can_be_restored(api: TestClient, experiment_name: str) -> None:
    client = MlflowClient()
    experiment_id = client.create_experiment(experiment_name)
    run_id = client.create_run(experiment_id).info.run_id
    body = {"experiment_name": experiment_name}

    # a run: hidden, restored, and a second restore is a conflict
    assert api.post(f"{API}/run/soft_delete", json={"run_id": run_id}).status_code == 200
    assert api.get(f"{API}/runs/{run_id}").status_code == 404
    assert api.post(f"{API}/run/restore", json={"run_id": run_id}).status_code == 200
    assert api.get(f"{API}/runs/{run_id}").status_code == 200
    again = api.post(f"{API}/run/restore", json={"run_id": run_id})
    assert again.status_code == 409
    assert "not deleted" in again.json()["error"]
    assert api.post(f"{API}/run/restore", json={"run_id": "0" * 32}).status_code == 404

    # an experiment: a deleted one's run cannot come back alone; the experiment can, with it
    assert api.post(f"{API}/experiment/soft_delete", json=body).status_code == 200
    assert api.post(f"{API}/job_status", json=body).status_code == 404
    alone = api.post(f"{API}/run/restore", json={"run_id": run_id})
    assert alone.status_code == 409
    assert "restore the experiment" in alone.json()["error"]
    restored = api.post(f"{API}/experiment/restore", json=body)
    assert restored.status_code == 200, restored.text
    assert [r["run_id"] for r in api.post(f"{API}/job_status", json=body).json()] == [run_id]
    assert api.post(f"{API}/experiment/restore", json=body).status_code == 409
    missing = {"experiment_name": f"{experiment_name}-x"}
    unknown = api.post(f"{API}/experiment/restore", json=missing)
    assert unknown.status_code == 404


def _train(api: TestClient, prefix: str, experiment: str) -> Any:
    body = {"labels": sorted(TOPICS), "path": prefix, "experiment_name": experiment,
            "mode": "tfidf"}  # fmt: skip
    return api.post(f"{API}/process", json=body)


def _finished(api: TestClient, experiment: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        runs = api.post(f"{API}/job_status", json={"experiment_name": experiment}).json()
        return runs[0] if runs and runs[0]["status"] in {"FINISHED", "FAILED"} else None

    run: dict[str, Any] = wait_until(done, timeout=180, what="training", every=1)
    assert run["status"] == "FINISHED", run
    return run


def test_experiments_whose_names_once_shared_a_slug_get_models_of_their_own(
    api: TestClient, s3: Any, dataset_prefix: str, experiment_name: str
) -> None:
    upload_tree(s3, DATA_BUCKET, dataset_prefix, keyword_tree(TOPICS, 8))
    unicode_name = f"{experiment_name} ui ünïcode 名前"
    ascii_name = f"{experiment_name}-ui-n-code"  # what the old slug made of the first
    first = _train(api, dataset_prefix, unicode_name)
    second = _train(api, dataset_prefix, ascii_name)
    assert first.status_code == second.status_code == 200, (first.text, second.text)
    runs = {name: _finished(api, name) for name in (unicode_name, ascii_name)}
    assert runs[unicode_name]["model_name"] == f"{unicode_name}-classifier"
    assert runs[ascii_name]["model_name"] == f"{ascii_name}-classifier"
    client = MlflowClient()
    for name, run in runs.items():
        champion = client.get_model_version_by_alias(f"{name}-classifier", "champion")
        assert champion.run_id == run["run_id"]
    detail = api.get(f"{API}/runs/{runs[unicode_name]['run_id']}").json()["data"]
    assert detail["model_name"] == f"{unicode_name}-classifier"

    # hard-deleting one leaves the other's champion where it was
    gone = api.post(f"{API}/experiment/hard_delete", json={"experiment_name": ascii_name})
    assert gone.status_code == 200
    kept = client.get_model_version_by_alias(f"{unicode_name}-classifier", "champion")
    assert kept.run_id == runs[unicode_name]["run_id"]
    served = api.post(f"{API}/predict", json={
        "runid": f"models:/{unicode_name}-classifier@champion", "text": "rain storm"})  # fmt: skip
    assert served.status_code == 200, served.text


def test_a_model_name_another_experiment_holds_is_refused_with_409(
    api: TestClient, s3: Any, dataset_prefix: str, experiment_name: str
) -> None:
    upload_tree(s3, DATA_BUCKET, dataset_prefix, keyword_tree(TOPICS, 8))
    holder = f"{experiment_name}-a-b"
    assert _train(api, dataset_prefix, holder).status_code == 200
    # "a/b" would register as "a-b-classifier": the first experiment's model
    refused = _train(api, dataset_prefix, f"{experiment_name}-a/b")
    assert refused.status_code == 409, refused.text
    assert f"experiment {holder!r}" in refused.json()["error"]
    assert f"{holder}-classifier" in refused.json()["error"]
    assert MlflowClient().get_experiment_by_name(f"{experiment_name}-a/b") is None
    _finished(api, holder)

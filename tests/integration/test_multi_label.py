"""Multi-label datasets in the folder layout, end to end: /process with multi_label ->
the training job -> predict and batch answer every label over its threshold."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient
from mlflow import MlflowClient

from functions.core.config import Settings
from tests.support import DATA_BUCKET, TICKETS, list_keys, multi_label_tree, upload_tree, wait_until

API = "/custom_classifier"


def _wait(api: TestClient, experiment: str) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        run: dict[str, Any] = api.post(f"{API}/job_status",
                                       json={"experiment_name": experiment}).json()[0]  # fmt: skip
        return run if run["status"] in {"FINISHED", "FAILED"} else None

    result: dict[str, Any] = wait_until(finished, timeout=240, what="training run", every=1)
    return result


def test_multi_label_folders_train_predict_and_batch_every_label_over_its_threshold(
    api: TestClient, settings: Settings, s3: Any, dataset_prefix: str, experiment_name: str
) -> None:
    # given: 48 tickets, half with two labels (one file under both folders), and a ticket
    # whose copies differ
    tree = multi_label_tree(TICKETS, 48)
    tree["billing"]["conflict.txt"] = b"refund my invoice please"
    tree["bug"]["conflict.txt"] = b"the app crashes with an error"
    upload_tree(s3, DATA_BUCKET, dataset_prefix, tree)
    body = {"labels": list(TICKETS), "path": dataset_prefix, "experiment_name": experiment_name,
            "mode": "tfidf"}  # fmt: skip

    # when: trained as single-label, such a layout is refused before anything exists
    refused = api.post(f"{API}/process", json=body)
    assert refused.status_code == 422, refused.text
    assert "24 documents are filed under several label folders" in refused.json()["error"]
    assert "multi_label: true" in refused.json()["error"]
    assert MlflowClient().get_experiment_by_name(experiment_name) is None

    # when: trained with multi_label
    started = api.post(f"{API}/process", json={**body, "multi_label": True})

    # then: each label counts its tickets; both copies of the conflicting one are listed
    assert started.status_code == 200, started.text
    assert started.json()["data"]["dataset"]["documents_per_label"] == {
        "billing": 24, "bug": 24, "praise": 24,
    }  # fmt: skip
    conflict = {f"{dataset_prefix}/billing/conflict.txt", f"{dataset_prefix}/bug/conflict.txt"}
    assert set(started.json()["list_id_not_treated"]) == conflict
    run = _wait(api, experiment_name)
    assert run["status"] == "FINISHED", run
    assert run["registered"] is True
    run_id = run["run_id"]
    detail = api.get(f"{API}/runs/{run_id}").json()["data"]
    metrics = detail["metrics"]
    assert metrics["documents_not_treated"] == 2  # the job found the same conflict
    assert detail["params"]["multi_label"] == "True"
    for name in ("test_micro_f1", "test_macro_f1", "test_hamming_loss", "test_subset_accuracy",
                 "test_label_cardinality", "candidate_tfidf_val_micro_f1"):  # fmt: skip
        assert name in metrics, name
    assert metrics["test_micro_f1"] >= 0.8
    assert detail["report"]["multi_label"] is True
    assert "evaluation/label_confusion.png" in detail["artifacts"]
    thresholds = {label: metrics[f"threshold_{label}"] for label in TICKETS}

    # when: a ticket about a crash that charged twice is classified
    answer = api.post(f"{API}/predict", json={
        "runid": run_id, "text": "hello the app crash gave an error and I was charged twice, refund"
    }).json()["data"]  # fmt: skip

    # then: both labels, every label's probability, each answered at its stored threshold
    assert {"billing", "bug"} <= set(answer["labels"])
    assert set(answer["scores"]) == set(TICKETS)
    assert answer["labels"] == [t for t in TICKETS if answer["scores"][t] >= thresholds[t]]
    assert answer["abstained"] is False
    assert answer["label"] == max(answer["scores"], key=answer["scores"].get)
    # and: the audit log keeps the labels it answered
    audited = json.loads(settings.audit_log_path.read_text().splitlines()[-1])
    assert audited["labels"] == answer["labels"]

    # when: what it got wrong is asked for, by a label it missed
    missed = api.get(f"{API}/runs/{run_id}/test_predictions",
                     params={"missed_label": "bug", "limit": 1000})  # fmt: skip
    assert missed.status_code == 200, missed.text
    assert all("bug" in r["true_labels"] and "bug" not in r["predicted_labels"]
               for r in missed.json()["data"]["rows"])  # fmt: skip

    # when: a folder of new tickets is batch-predicted
    upload_tree(s3, DATA_BUCKET, f"{dataset_prefix}-new", {"inbox": {
        "a.txt": b"refund the invoice, the payment failed with an error",
        "b.txt": b"thanks, I love the excellent support",
    }})  # fmt: skip
    job = api.post(f"{API}/batch_predict", json={
        "runid": run_id, "input_path": f"{dataset_prefix}-new",
        "output_path": f"{dataset_prefix}-out",
    }).json()["data"]  # fmt: skip

    def completed() -> dict[str, Any] | None:
        status = api.get(f"{API}/batch_predict/{job['job_id']}").json()["data"]
        return status if status["status"] in {"COMPLETED", "FAILED"} else None

    assert wait_until(completed, timeout=120, what="batch job", every=1)["status"] == "COMPLETED"
    rows = {}
    for key in list_keys(s3, DATA_BUCKET, f"{dataset_prefix}-out/"):
        if key.endswith(".jsonl"):
            text = s3.get_object(Bucket=DATA_BUCKET, Key=key)["Body"].read().decode()
            rows.update({r["key"].rsplit("/", 1)[1]: r for r in map(json.loads, text.splitlines())})
    # then: the same fields as predict
    assert "praise" in rows["b.txt"]["labels"] and "praise" not in rows["a.txt"]["labels"]
    assert set(rows["a.txt"]["scores"]) == set(TICKETS)
    assert rows["a.txt"]["abstained"] is False

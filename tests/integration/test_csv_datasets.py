"""Comprehend-format CSV datasets (`label,text` and `label1|label2,text` rows) through
/process -> the training job -> predict, the run's document viewer, and the CSV errors."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient

from tests.support import DATA_BUCKET, TICKETS, multi_label_tree, wait_until

API = "/custom_classifier"


def _csv(tree: dict[str, dict[str, bytes]], delimiter: str, extra: bytes = b"") -> bytes:
    """The tickets of a folder-layout tree as CSV rows, a ticket's labels joined."""
    labels: dict[str, list[str]] = {}
    texts: dict[str, bytes] = {}
    for label, docs in tree.items():
        for name, body in docs.items():
            labels.setdefault(name, []).append(label)
            texts[name] = body
    rows = [f'{delimiter.join(labels[n])},"{texts[n].decode()}"' for n in sorted(texts)]
    return "\n".join(rows).encode() + b"\n" + extra


def _train(api: TestClient, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    started = api.post(f"{API}/process", json=body)
    assert started.status_code == 200, started.text

    def finished() -> dict[str, Any] | None:
        run: dict[str, Any] = api.post(f"{API}/job_status", json={
            "experiment_name": body["experiment_name"]}).json()[0]  # fmt: skip
        return run if run["status"] in {"FINISHED", "FAILED"} else None

    run = wait_until(finished, timeout=240, what="training run", every=1)
    assert run["status"] == "FINISHED", run
    return started.json(), run


def test_a_multi_class_csv_trains_lists_bad_rows_by_line_and_opens_a_row(
    api: TestClient, s3: Any, dataset_prefix: str, experiment_name: str
) -> None:
    # given: one-label tickets as label,text rows, and three rows that cannot be used
    single = {label: {f"{label}-{n}": body for n, body in docs.items()}
              for label, docs in multi_label_tree(TICKETS, 30).items()}  # fmt: skip
    key = f"{dataset_prefix}/tickets.csv"
    raw = _csv(single, "|", b"sales,not a label of this training\n,no label\nbug\n")
    s3.put_object(Bucket=DATA_BUCKET, Key=key, Body=raw)
    lines = raw.decode().count("\n")
    # when
    started, run = _train(api, {"labels": list(TICKETS), "path": key, "mode": "tfidf",
                                "experiment_name": experiment_name})  # fmt: skip
    # then: rows a label, and the unusable rows by line number
    assert started["data"]["dataset"]["documents_per_label"] == {
        "billing": 15, "bug": 15, "praise": 15,
    }  # fmt: skip
    assert started["list_id_not_treated"] == [f"{key}#L{n}" for n in (lines - 2, lines - 1, lines)]
    reasons = [d["reason"] for d in started["data"]["dataset"]["not_treated"]]
    assert reasons[0] == f"line {lines - 2}: label 'sales' is not one of the training's labels"
    assert run["registered"] is True
    answer = api.post(f"{API}/predict", json={"runid": run["run_id"],
                                              "text": "please refund the invoice"})  # fmt: skip
    assert answer.json()["data"]["label"] == "billing"
    # and: a document the run was evaluated on opens as its row's text
    rows = api.get(f"{API}/runs/{run['run_id']}/test_predictions").json()["data"]["rows"]
    opened = api.get(f"{API}/runs/{run['run_id']}/document", params={"key": rows[0]["key"]})
    assert opened.status_code == 200, opened.text
    assert rows[0]["key"].startswith(f"{key}#L")
    assert opened.json()["data"]["text"] in raw.decode()


def test_a_multi_label_csv_with_its_own_label_delimiter_answers_labels(
    api: TestClient, s3: Any, dataset_prefix: str, experiment_name: str
) -> None:
    key = f"{dataset_prefix}/tickets.csv"
    s3.put_object(Bucket=DATA_BUCKET, Key=key, Body=_csv(multi_label_tree(TICKETS, 48), ";"))
    offered = api.get(f"{API}/datasets/labels", params={"path": key}).json()["data"]
    assert {f["label"] for f in offered} >= set(TICKETS)  # ";"-joined rows offer their parts too
    started, run = _train(api, {"labels": list(TICKETS), "path": key, "mode": "tfidf",
                                "experiment_name": experiment_name, "multi_label": True,
                                "label_delimiter": ";"})  # fmt: skip
    assert started["data"]["dataset"]["documents_per_label"] == {
        "billing": 24, "bug": 24, "praise": 24,
    }  # fmt: skip
    answer = api.post(f"{API}/predict", json={
        "runid": run["run_id"], "text": "the app crash gave an error and charged twice, refund"
    }).json()["data"]  # fmt: skip
    assert {"billing", "bug"} <= set(answer["labels"])


@pytest.mark.parametrize(
    ("raw", "extra", "message"),
    [
        ("billing,caf\u00e9\n".encode("latin-1") * 30, {}, "the CSV is not UTF-8 (byte 0xe9"),
        (b"billing;refund\nbug;crash\n" * 20, {}, "(the rows look ';'-separated)"),
        (b"billing,refund\n" * 30 + b"bug,crash\n", {}, "'bug' has 1"),
        (b"billing,refund\nbug,crash\n" * 20, {"label_delimiter": ","}, "label_delimiter"),
        (None, {}, "there is no CSV file at"),
    ],
)  # fmt: skip
def test_a_csv_that_cannot_train_is_a_422_before_any_run(
    api: TestClient, s3: Any, dataset_prefix: str, experiment_name: str,
    raw: bytes | None, extra: dict[str, Any], message: str,
) -> None:  # fmt: skip
    key = f"{dataset_prefix}/train.csv"
    if raw is not None:
        s3.put_object(Bucket=DATA_BUCKET, Key=key, Body=raw)
    body = {"labels": ["billing", "bug"], "path": key, "experiment_name": experiment_name}
    response = api.post(f"{API}/process", json={**body, **extra})
    assert response.status_code == 422, response.text
    assert message in response.json()["error"]
    assert MlflowClient().get_experiment_by_name(experiment_name) is None

"""`custom-classifier` against the API running as its own process, as a CI pipeline uses it."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
from click.testing import CliRunner, Result
from mlflow import MlflowClient

from functions.cli import main
from tests.conftest import LiveApi
from tests.support import (
    DATA_BUCKET,
    TOPICS,
    docx_bytes,
    encrypted_pdf_bytes,
    keyword_tree,
    list_keys,
    mislabelled_tree,
    pdf_bytes,
)


def _cli(api: LiveApi, *args: str) -> Result:
    return CliRunner().invoke(main, ["--url", api.url, "--json", *args], catch_exceptions=False)


def _json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_upload_train_status_predict_batch_promote_delete(
    live_api: LiveApi, tmp_path: Path, dataset_prefix: str, experiment_name: str, s3: Any
) -> None:
    # given: a local folder of labelled documents
    folder = tmp_path / "docs"
    for label, docs in keyword_tree(TOPICS, 8).items():
        (folder / label).mkdir(parents=True)
        for name, body in docs.items():
            (folder / label / name).write_bytes(body)
    (folder / "sports" / ".DS_Store").write_bytes(b"junk")
    # and documents as customers have them: a Word file and a PDF, trained on as they are
    (folder / "sports" / "report.docx").write_bytes(docx_bytes("the striker scored a goal"))
    (folder / "weather" / "forecast.pdf").write_bytes(pdf_bytes("rain and storm, cloud"))
    # when / then: upload, then again (nothing new to send)
    uploaded = _json(_cli(live_api, "upload", str(folder), dataset_prefix))
    assert (uploaded["uploaded"], uploaded["skipped"]) == (18, 0)
    assert [r["path"] for r in uploaded["rejected"]] == ["sports/.DS_Store"]
    again = _json(_cli(live_api, "upload", str(folder), dataset_prefix))
    assert (again["uploaded"], again["skipped"]) == (0, 18)
    # train on every label folder and wait for the registered model
    train = (
        "train",
        dataset_prefix,
        "-e",
        experiment_name,
        "--mode",
        "tfidf",
        "--idempotency-key",
        f"{experiment_name}-1",
    )
    started = _json(_cli(live_api, *train))
    # the same command again (a retry) waits on the same run instead of starting another
    run = _json(_cli(live_api, *train, "--wait", "--poll", "0.5"))
    assert run["run_id"] == started["data"]["info"]["run_id"]
    finished = _cli(live_api, "cancel", run["run_id"], "--reason", "too late")
    assert finished.exit_code == 1 and "only a queued or running run" in finished.output
    assert run["status"] == "FINISHED" and run["registered"]
    job_log = live_api.settings.work_dir / started["data"]["job_id"] / "job.log"
    job_lines = [json.loads(line) for line in job_log.read_text().splitlines()
                 if line.startswith('{"event"')]  # fmt: skip
    assert job_lines and all(line["run_id"] == run["run_id"] for line in job_lines[1:])
    assert {line["service"] for line in job_lines} == {"job-train"}
    runs = _json(_cli(live_api, "status", experiment_name, "--watch", "--poll", "0.5"))
    assert [r["run_id"] for r in runs] == [run["run_id"]]
    predicted = _json(_cli(live_api, "predict", run["run_id"], "goal striker", "rain storm"))
    assert [p["label"] for p in predicted] == ["sports", "weather"]
    # the traffic so far against the training data: one hour, two predictions, too few
    watched = CliRunner().invoke(main, ["--url", live_api.url, "drift", run["run_id"]])
    assert watched.exit_code == 0, watched.output
    assert re.search(r"\t2 predictions\tdrift AUC [01]\.\d\d\t\d+% out of scope\t", watched.stdout)
    assert "too few to judge" in watched.stdout
    # what it got wrong when evaluated (out of fold over all 18 documents at 9 a label)
    evaluated = _json(_cli(live_api, "mistakes", run["run_id"], "--all"))
    assert evaluated["documents"] == len(evaluated["rows"]) == 18
    assert {r["key"].split("/")[1] for r in evaluated["rows"]} == {"sports", "weather"}
    listed = CliRunner().invoke(main, ["--url", live_api.url, "mistakes", run["run_id"]])
    assert listed.exit_code == 0, listed.output
    assert f"{evaluated['wrong']} of 18 wrong (" in listed.stdout
    assert "cross-validation, out of fold, over all 18 documents" in listed.stdout
    # a batch over the dataset and a document it cannot use: treated / not treated, and why
    s3.put_object(Bucket=DATA_BUCKET, Key=f"{dataset_prefix}/sports/empty.txt", Body=b"")
    # and a locked PDF it cannot read
    s3.put_object(Bucket=DATA_BUCKET, Key=f"{dataset_prefix}/sports/locked.pdf",
                  Body=encrypted_pdf_bytes("goal striker"))  # fmt: skip
    batch = CliRunner().invoke(main, ["--url", live_api.url, "batch-predict", run["run_id"],
                                      dataset_prefix, f"{dataset_prefix}-out", "--wait", "--poll",
                                      "0.5"], catch_exceptions=False)  # fmt: skip
    assert batch.exit_code == 0, batch.output
    line = (
        f"COMPLETED: 18 treated, 2 not treated (of 20) -> s3://{DATA_BUCKET}/{dataset_prefix}-out"
    )
    assert batch.stdout.startswith("batch-") and batch.stdout.rstrip().endswith(f" {line}")
    assert f"not treated {dataset_prefix}/sports/empty.txt: empty" in batch.stderr
    assert (f"not treated {dataset_prefix}/sports/locked.pdf: encrypted PDF (needs a password)"
            in batch.stderr)  # fmt: skip
    # a file classified as it is: a PDF sent whole, read by the API
    (tmp_path / "forecast.pdf").write_bytes(pdf_bytes("rain storm forecast cloud"))
    filed = _json(
        _cli(live_api, "predict", run["run_id"], "--file", str(tmp_path / "forecast.pdf"))
    )
    assert [(p["label"], p["format"]) for p in filed] == [("weather", "pdf")]
    # what to label next in a folder: ranked, one line each, best first
    suggested = CliRunner().invoke(main, ["--url", live_api.url, "suggest", run["run_id"],
                                          f"{dataset_prefix}/weather", "-n", "2", "--poll",
                                          "0.5"], catch_exceptions=False)  # fmt: skip
    assert suggested.exit_code == 0, suggested.output
    ranked = suggested.stdout.strip().splitlines()
    assert [line.split("\t")[0] for line in ranked] == ["1", "2"]
    assert all(line.split("\t")[1].startswith(f"{dataset_prefix}/weather/") for line in ranked)
    assert all(re.search(r"\tguess \w+ \([01]\.\d{3}, margin [01]\.\d{3}\)$", line)
               for line in ranked)  # fmt: skip
    promoted = _json(_cli(live_api, "promote", run["run_id"]))
    assert promoted["alias"] == "champion"
    alias = f"models:/{promoted['registered_model']}@champion"
    assert _json(_cli(live_api, "predict", alias, "goal"))[0]["label"] == "sports"
    hidden = _json(_cli(live_api, "delete", "experiment", experiment_name))
    assert "soft-deleted" in hidden["status"]
    assert _cli(live_api, "status", experiment_name).exit_code == 1
    back = _json(_cli(live_api, "restore", "experiment", experiment_name))
    assert "restored" in back["status"]
    assert _json(_cli(live_api, "status", experiment_name))[0]["run_id"] == run["run_id"]
    deleted = _json(_cli(live_api, "delete", "experiment", experiment_name, "--hard", "--yes"))
    assert "deleted" in deleted["status"]
    assert "2 batch job records removed" in deleted["status"]
    assert _cli(live_api, "status", experiment_name).exit_code == 1
    # the dataset: asked first (answered no: nothing removed), then removed with --yes
    kept = CliRunner().invoke(main, ["--url", live_api.url, "delete", "dataset", dataset_prefix],
                              input="n\n")  # fmt: skip
    assert kept.exit_code == 1 and list_keys(s3, DATA_BUCKET, f"{dataset_prefix}/")
    removed = _json(_cli(live_api, "delete", "dataset", dataset_prefix, "--yes"))
    assert removed["data"]["objects_removed"] == 20 + 5  # and the suggest job's output
    assert list_keys(s3, DATA_BUCKET, f"{dataset_prefix}/") == []


def test_failures_exit_non_zero_with_the_reason(live_api: LiveApi, tmp_path: Path) -> None:
    unknown = _cli(live_api, "predict", "0" * 32, "text")
    assert unknown.exit_code == 1
    assert "404" in unknown.output
    down = CliRunner().invoke(main, ["--url", "http://127.0.0.1:9", "status", "x"])
    assert down.exit_code == 1
    assert "cannot reach" in down.output
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _cli(live_api, "upload", str(empty), "ds").exit_code == 2
    no_labels = _cli(live_api, "train", "no-such-dataset", "-e", "x")
    assert no_labels.exit_code == 1
    assert "at least two distinct labels" in no_labels.output


def test_a_run_below_the_bar_says_which_bar_it_missed_and_is_registered_at_the_users_bar(
    live_api: LiveApi, tmp_path: Path, dataset_prefix: str, experiment_name: str
) -> None:
    # given: two labels whose documents are each label's words, a quarter of them filed
    # under the other label (learnable, never perfectly)
    for label, docs in mislabelled_tree(TOPICS, 12, 3).items():
        (tmp_path / label).mkdir()
        for name, body in docs.items():
            (tmp_path / label / name).write_bytes(body)
    assert _cli(live_api, "upload", str(tmp_path), dataset_prefix).exit_code == 0
    # when: trained and waited on, as a user would, at a bar of 0.99
    trained = CliRunner().invoke(main, ["--url", live_api.url, "train", dataset_prefix, "-e",
                                        experiment_name, "--mode", "tfidf", "--min-macro-f1",
                                        "0.99", "--wait", "--poll", "0.5"])  # fmt: skip
    # then: exit 1, the run's line saying which bar it missed, and how to set another
    assert trained.exit_code == 1, trained.output
    assert re.search(r" FINISHED .*not registered: macro-F1 0\.\d{4} \(95% interval",
                     trained.stdout)  # fmt: skip
    assert "below the bar 0.9900 by" in trained.stdout
    run_id = re.search(r"run (\w+) did not produce a registered model", trained.output)[1]  # type: ignore[index]
    highest = re.search(rf"promote {run_id} --min-macro-f1 (0\.\d\d)` registers it \(its "
                        r"estimate passes bars up to (0\.\d{4})\)", trained.output)  # fmt: skip
    assert highest and float(highest[1]) <= float(highest[2]) < 0.99, trained.output
    # and while it waited, the run's line as it went (not a silent wait)
    assert re.search(rf"^{run_id}  RUNNING\b", trained.stderr, re.MULTILINE), trained.stderr
    # and: the bar it missed registers nothing; one its estimate passes registers the run
    refused = _cli(live_api, "promote", run_id, "--min-macro-f1", "0.99")
    assert refused.exit_code == 1 and "passes bars up to 0." in refused.output, refused.output
    # (several asking at once register it once: each answers the run's one version)
    ask = {"run_id": run_id, "min_macro_f1": 0.5}
    with ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(
                lambda _: requests.post(
                    f"{live_api.url}/custom_classifier/promote", json=ask, timeout=60
                ),
                range(4),
            )
        )
    assert [a.json()["data"]["version"] for a in answers] == ["1"] * 4, [a.text for a in answers]
    versions = MlflowClient(live_api.settings.mlflow_tracking_uri).search_model_versions(
        f"name='{experiment_name}-classifier'"
    )
    assert [v.version for v in versions] == ["1"]
    promoted = _cli(live_api, "promote", run_id, "--min-macro-f1", "0.5")
    assert promoted.exit_code == 0, promoted.output
    assert json.loads(promoted.output) == {"registered_model": f"{experiment_name}-classifier",
                                           "version": "1", "alias": "champion"}  # fmt: skip
    status = json.loads(_cli(live_api, "--json", "status", experiment_name).output)[0]
    assert status["registered"] and status["gate"] == "passed"
    assert "registered by request at the bar 0.5000" in status["gate_reason"]
    answer = _cli(live_api, "predict", f"models:/{experiment_name}-classifier@champion",
                  "rain and storm in the forecast")  # fmt: skip
    assert answer.exit_code == 0 and "weather" in answer.output, answer.output


def test_api_logs_are_json_lines_with_request_ids(live_api: LiveApi) -> None:
    answer = CliRunner().invoke(main, ["--url", live_api.url, "status", "nothing-here"])
    assert answer.exit_code == 1
    lines = [json.loads(line) for line in live_api.log.read_text().splitlines() if line.strip()]
    failed = [line for line in lines if line.get("event") == "request failed"]
    assert failed and failed[-1]["status"] == 404
    assert failed[-1]["request_id"] and failed[-1]["service"] == "api"
    assert all("timestamp" in line and "level" in line for line in lines)

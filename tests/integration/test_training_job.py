"""The training job against moto S3 and a real MLflow server."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow import MlflowClient

from tests.conftest import train_tiny
from tests.support import (
    ARTIFACTS_BUCKET,
    BBC_LABELS,
    DATA_BUCKET,
    TOPICS,
    bbc_root,
    bbc_slice,
    docx_bytes,
    encrypted_pdf_bytes,
    keyword_tree,
    list_keys,
    pdf_bytes,
    upload_tree,
    wait_until,
)
from training_job.__main__ import main
from training_job.tracking import (
    CHAMPION_ALIAS,
    TAG_FAILURE,
    TAG_GATE,
    TAG_PHASE,
    TAG_PROMOTION,
)

# The end-to-end slice is small (20 documents a label), so the stated floor is modest;
# bench/train_bbc.py measures the full corpus.
E2E_MACRO_F1_FLOOR = 0.8
JUNK_BINARY = bytes(range(256)) * 8
SPORTS = {
    "sports": ["football", "goal", "match", "striker"],
    "weather": ["rain", "storm", "sunny", "forecast"],
}


def _job_args(prefix: str, labels: list[str], experiment: str, **extra: Any) -> list[str]:
    args = [
        "train",
        "--data_uri",
        f"s3://{DATA_BUCKET}/{prefix}",
        "--labels",
        json.dumps(labels),
        "--experiment_name",
        experiment,
    ]
    for key, value in extra.items():
        args += [f"--{key}", str(value)]
    return args


@pytest.fixture
def sm_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """SageMaker's /opt/ml, moved into a temp folder."""
    monkeypatch.setenv("SM_ROOT", str(tmp_path / "opt-ml"))
    return tmp_path / "opt-ml"


def _only_run(experiment: str) -> Any:
    client = MlflowClient()
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    return runs[0]


def _artifact_json(run_id: str, path: str) -> Any:
    return json.loads(mlflow.artifacts.load_text(f"runs:/{run_id}/{path}"))


@pytest.mark.usefixtures("mlflow_uri")
# Fine-tuning on BBC takes minutes on 2 cores: make slow runs it; every kind's own
# train-register-serve test stays in make test.
@pytest.mark.parametrize("mode", [pytest.param("finetune", marks=pytest.mark.slow), "auto"])
def test_job_on_bbc_slice_registers_champion_and_lists_unusable_documents(
    s3: Any, sm_root: Path, dataset_prefix: str, experiment_name: str, mode: str
) -> None:
    # given: a BBC slice with its latin-1 file, a binary file and an empty file; 30 a label
    # so that validation and test hold 30 documents each (no cross-validated estimate)
    tree = bbc_slice(30, extra=("sports/199.txt",))
    tree["tech"]["junk.bin"] = JUNK_BINARY
    tree["business"]["empty.txt"] = b""
    # and documents as customers have them: a PDF, a Word file (named .txt), a locked PDF
    sports, business = (sorted((bbc_root() / label).iterdir())[40].read_text(errors="replace")
                        for label in ("sports", "business"))  # fmt: skip
    tree["sports"]["report.pdf"] = pdf_bytes(sports.encode("latin-1", "replace").decode("latin-1"))
    tree["business"]["memo.txt"] = docx_bytes(business)
    tree["politics"]["locked.pdf"] = encrypted_pdf_bytes("minutes of the cabinet")
    upload_tree(s3, DATA_BUCKET, dataset_prefix, tree)

    # when
    code = main(
        _job_args(dataset_prefix, BBC_LABELS, experiment_name, mode=mode, min_train_steps=60,
                  val_fraction=0.2, test_fraction=0.2, max_windows=2,
                  contrastive_max_seconds=5)  # auto: contrastive tuning is tested on its own
    )  # fmt: skip

    # then: the run finished with metrics above the floor
    assert code == 0
    run = _only_run(experiment_name)
    assert run.info.status == "FINISHED"
    metrics = run.data.metrics
    for name in ("test_accuracy", "test_macro_f1", "test_roc_auc", "test_pr_auc", "test_f1_tech"):
        assert name in metrics
    assert metrics["test_macro_f1"] >= E2E_MACRO_F1_FLOOR
    assert run.data.params["label2id"] == str({label: i for i, label in enumerate(BBC_LABELS)})
    assert run.data.params["id2label"] == str(dict(enumerate(BBC_LABELS)))
    assert len(run.data.params["dataset_sha256"]) == 64
    assert run.data.tags[TAG_GATE] == "passed"
    # and: no bar named, five labels: 0.4 of the way from chance (1/5) to 1
    assert metrics["registration_bar"] == pytest.approx(0.52)
    assert "the bar 0.5200 (the default: 0.40 of the way from chance, 0.2000, to 1)" in \
        run.data.tags["custom_classifier.gate_reason"]  # fmt: skip
    # and: the confusion matrix and the report are objects on S3
    keys = list_keys(s3, ARTIFACTS_BUCKET)
    run_keys = [k for k in keys if f"/{run.info.run_id}/artifacts/" in k]
    assert any(k.endswith("evaluation/confusion_matrix.png") for k in run_keys)
    assert any(k.endswith("evaluation/classification_report.json") for k in run_keys)
    # and: unusable documents are counted and listed, the latin-1 one was decoded
    report = _artifact_json(run.info.run_id, "dataset/data_report.json")
    not_treated = {item["key"]: item["reason"] for item in report["list_id_not_treated"]}
    assert not_treated == {
        f"{dataset_prefix}/tech/junk.bin": "binary",
        f"{dataset_prefix}/business/empty.txt": "empty",
        f"{dataset_prefix}/politics/locked.pdf": "encrypted PDF (needs a password)",
    }
    assert report["number_documents_treated"] == 153
    assert report["decoded_with_fallback"] == [f"{dataset_prefix}/sports/199.txt"]
    # and: the PDF and the Word file were read by content, each listed with what read it
    assert report["formats_per_label"]["sports"] == {"text": 31, "pdf": 1}
    assert report["formats_per_label"]["business"] == {"text": 30, "docx": 1}
    extracted = {item["key"]: item for item in report["extracted"]}
    assert extracted[f"{dataset_prefix}/sports/report.pdf"]["extractor"] == "pypdf"
    assert extracted[f"{dataset_prefix}/business/memo.txt"]["format"] == "docx"
    assert extracted[f"{dataset_prefix}/business/memo.txt"]["chars"] >= len(business) - 10
    manifest = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/dataset/manifest.jsonl")
    assert len(manifest.strip().splitlines()) == 153
    # and: the registered champion is this run's model, and it predicts a known label
    name = f"{experiment_name}-classifier"
    champion = MlflowClient().get_model_version_by_alias(name, CHAMPION_ALIAS)
    assert champion.run_id == run.info.run_id
    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    predicted = model.predict(["The striker scored twice as the league leaders won the match."])
    row = predicted.iloc[0]
    assert row["label"] in BBC_LABELS
    assert row["label"] == BBC_LABELS[int(row["prediction"])]
    assert 0.0 < row["score"] <= 1.0
    assert not (sm_root / "output" / "failure").exists()


@pytest.mark.usefixtures("mlflow_uri")
def test_a_retrain_reads_extracted_texts_from_the_cache(
    s3: Any, sm_root: Path, dataset_prefix: str, experiment_name: str
) -> None:
    # given: keyword documents with a PDF and a Word file a label
    tree = keyword_tree(TOPICS, 8)
    tree["sports"]["match.pdf"] = pdf_bytes("the striker scored a goal in the league match")
    tree["weather"]["forecast.docx"] = docx_bytes("rain and a storm in the forecast")
    upload_tree(s3, DATA_BUCKET, dataset_prefix, tree)
    cache = f"s3://{ARTIFACTS_BUCKET}/extracted/{experiment_name}"
    reports = []
    # when: the same dataset is trained twice
    for attempt in ("first", "again"):
        experiment = f"{experiment_name}-{attempt}"
        args = _job_args(dataset_prefix, list(TOPICS), experiment, mode="tfidf",
                         extraction_cache_uri=cache)  # fmt: skip
        assert main(args) == 0
        reports.append(_artifact_json(_only_run(experiment).info.run_id,
                                      "dataset/data_report.json"))  # fmt: skip
    # then: the first run extracted both and kept them; the second read them back
    assert reports[0]["extraction_cache"] == {"hits": 0, "misses": 2, "errors": 0}
    assert reports[1]["extraction_cache"] == {"hits": 2, "misses": 0, "errors": 0}
    assert len(list_keys(s3, ARTIFACTS_BUCKET, f"extracted/{experiment_name}/")) == 2
    assert reports[0]["extracted"] == reports[1]["extracted"]
    assert reports[0]["dataset_sha256"] == reports[1]["dataset_sha256"]


def _assert_failed(experiment: str, sm_root: Path, reason_part: str) -> None:
    run = _only_run(experiment)
    assert run.info.status == "FAILED"
    assert reason_part in run.data.tags[TAG_FAILURE]
    assert reason_part in (sm_root / "output" / "failure").read_text()
    name = f"{experiment}-classifier"
    assert MlflowClient().search_model_versions(f"name='{name}'") == []


@pytest.mark.usefixtures("mlflow_uri")
def test_one_label_fails_the_run(
    s3: Any, sm_root: Path, dataset_prefix: str, experiment_name: str
) -> None:
    upload_tree(s3, DATA_BUCKET, dataset_prefix, keyword_tree(SPORTS, 6))
    code = main(_job_args(dataset_prefix, ["sports"], experiment_name))
    assert code == 1
    _assert_failed(experiment_name, sm_root, "at least two distinct labels")


@pytest.mark.usefixtures("mlflow_uri")
def test_missing_label_folder_fails_the_run_naming_it(
    s3: Any, sm_root: Path, dataset_prefix: str, experiment_name: str
) -> None:
    upload_tree(s3, DATA_BUCKET, dataset_prefix, keyword_tree(SPORTS, 6))
    code = main(_job_args(dataset_prefix, ["sports", "weather", "politics"], experiment_name))
    assert code == 1
    _assert_failed(experiment_name, sm_root, "'politics': 0")


@pytest.mark.usefixtures("mlflow_uri")
def test_all_junk_documents_fail_the_run_and_are_listed(
    s3: Any, sm_root: Path, dataset_prefix: str, experiment_name: str
) -> None:
    tree = {label: {f"{i}.bin": JUNK_BINARY for i in range(4)} for label in SPORTS}
    upload_tree(s3, DATA_BUCKET, dataset_prefix, tree)
    code = main(_job_args(dataset_prefix, list(SPORTS), experiment_name))
    assert code == 1
    _assert_failed(experiment_name, sm_root, "too few")
    run = _only_run(experiment_name)
    report = _artifact_json(run.info.run_id, "dataset/data_report.json")
    assert report["number_documents_non_treated"] == 8


@pytest.mark.usefixtures("mlflow_uri")
def test_job_logs_into_the_run_it_is_given_and_fails_the_gate_without_registering(
    s3: Any, sm_root: Path, dataset_prefix: str, experiment_name: str, tiny_base_model: str
) -> None:
    # given: a run created beforehand (as the API does) and an unreachable bar
    upload_tree(s3, DATA_BUCKET, dataset_prefix, keyword_tree(SPORTS, 8))
    client = MlflowClient()
    experiment_id = client.create_experiment(experiment_name)
    run_id = client.create_run(experiment_id, run_name="training_classifier-test").info.run_id
    client.log_param(run_id, "label2id", str({"sports": 0, "weather": 1}))
    # when
    code = main(
        _job_args(
            dataset_prefix,
            list(SPORTS),
            experiment_name,
            run_id=run_id,
            base_model=tiny_base_model,
            min_macro_f1=1.01,
            epochs=2,
            min_train_steps=0,
        )
    )
    # then: the run is FINISHED, says why it was not registered, and nothing is registered
    assert code == 0
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags[TAG_GATE] == "failed"
    assert "is below the bar 1.0100 by" in run.data.tags["custom_classifier.gate_reason"]
    assert client.search_model_versions(f"name='{experiment_name}-classifier'") == []
    assert (sm_root / "model" / "classifier" / "classifier.json").is_file()


def test_job_killed_mid_training_ends_failed_with_reason(
    s3: Any,
    mlflow_uri: str,
    tmp_path: Path,
    dataset_prefix: str,
    experiment_name: str,
    tiny_base_model: str,
) -> None:
    # given: a job running as its own process, with far more epochs than it will get
    upload_tree(s3, DATA_BUCKET, dataset_prefix, keyword_tree(SPORTS, 8))
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "SM_ROOT": str(tmp_path / "opt-ml"), "TMPDIR": str(scratch)}
    args = _job_args(
        dataset_prefix,
        list(SPORTS),
        experiment_name,
        base_model=tiny_base_model,
        mode="finetune",
        epochs=100000,
        max_epochs=100000,
        early_stopping_patience=100000,
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "training_job", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = MlflowClient()

    def training_started() -> bool:
        exp = client.get_experiment_by_name(experiment_name)
        runs = client.search_runs([exp.experiment_id]) if exp else []
        return bool(runs) and runs[0].data.tags.get(TAG_PHASE) == "training"

    wait_until(training_started, timeout=120, what="training phase")
    # when: SageMaker stops the job (SIGTERM), wherever it is (even inside torch's import,
    # where an exception raised into native code once aborted the process)
    process.terminate()
    # then: it leaves as a failure, says why, and takes its temporary files with it
    assert process.wait(timeout=60) == 1
    _assert_failed(experiment_name, tmp_path / "opt-ml", "terminated by signal 15")
    assert list(scratch.iterdir()) == []


def test_small_dataset_is_judged_on_a_cross_validated_estimate_and_registers(
    s3: Any, mlflow_uri: str, sm_root: Path, dataset_prefix: str, experiment_name: str,
    tiny_base_model: str,
) -> None:  # fmt: skip
    # given: 8 documents a label (a test split would hold 2), and the service's 0.7 bar
    upload_tree(s3, DATA_BUCKET, dataset_prefix, keyword_tree(SPORTS, 8))
    # when
    code = main(_job_args(dataset_prefix, list(SPORTS), experiment_name, mode="tfidf",
                          base_model=tiny_base_model, min_macro_f1=0.7))  # fmt: skip
    # then: every document is in the out-of-fold estimate, which a good model passes
    assert code == 0
    run = _only_run(experiment_name)
    metrics, tags = run.data.metrics, run.data.tags
    assert run.data.params["n_test"] == "0"
    assert metrics["estimate_documents"] == 16
    assert (
        "cross-validation, out of fold, over all 16 documents" in tags["custom_classifier.estimate"]
    )
    assert metrics["test_macro_f1_low"] <= metrics["test_macro_f1"] <= metrics["test_macro_f1_high"]
    assert metrics["majority_macro_f1"] == pytest.approx(1 / 3)  # 2 * 0.5 / 1.5 / 2 labels
    assert metrics["calibration_documents"] == 16  # the temperature comes from the folds too
    assert tags[TAG_GATE] == "passed", tags["custom_classifier.gate_reason"]
    assert "clearly beats the majority-class baseline" in tags["custom_classifier.gate_reason"]
    assert MlflowClient().get_model_version_by_alias(f"{experiment_name}-classifier",
                                                      CHAMPION_ALIAS)  # fmt: skip


def test_a_model_no_better_than_the_majority_class_is_refused_saying_by_how_much(
    api: Any, s3: Any, sm_root: Path, dataset_prefix: str, experiment_name: str,
    tiny_base_model: str,
) -> None:  # fmt: skip
    # given: labels the words do not decide (both drawn from one vocabulary), and no bar
    rng = random.Random(0)
    vocabulary = [f"word{i}" for i in range(12)]
    upload_tree(s3, DATA_BUCKET, dataset_prefix, {
        label: {f"{i:03d}.txt": " ".join(rng.choices(vocabulary, k=6)).encode()
                for i in range(12)}
        for label in SPORTS
    })  # fmt: skip
    # when
    code = main(_job_args(dataset_prefix, list(SPORTS), experiment_name, mode="tfidf",
                          base_model=tiny_base_model, min_macro_f1=0))  # fmt: skip
    # then: the run finished, registered nothing, and says which bar it missed
    assert code == 0
    tags = _only_run(experiment_name).data.tags
    assert tags[TAG_GATE] == "failed"
    reason = tags["custom_classifier.gate_reason"]
    assert "does not clearly beat the majority-class baseline" in reason
    assert MlflowClient().search_model_versions(f"name='{experiment_name}-classifier'") == []
    # and job_status tells the user the same
    body = {"experiment_name": experiment_name}
    [item] = api.post("/custom_classifier/job_status", json=body).json()
    assert (item["gate"], item["gate_reason"]) == ("failed", reason)
    assert item["passes_bar_up_to"] is None  # no bar would register it


def test_promote_if_better_moves_champion_only_for_a_clearly_better_model(
    s3: Any,
    mlflow_uri: str,
    tiny_base_model: str,
    tmp_path: Path,
    experiment_name: str,
    dataset_prefix: str,
) -> None:
    # given: a champion trained on the labels swapped (it answers weather for sports)
    correct = keyword_tree(TOPICS, 20)
    swapped = {"sports": correct["weather"], "weather": correct["sports"]}
    swapped_prefix, correct_prefix = f"{dataset_prefix}-swapped", f"{dataset_prefix}-correct"
    upload_tree(s3, DATA_BUCKET, swapped_prefix, swapped)
    upload_tree(s3, DATA_BUCKET, correct_prefix, correct)
    client = MlflowClient()
    name = f"{experiment_name}-classifier"
    first = train_tiny(swapped_prefix, experiment_name, tiny_base_model, tmp_path / "1",
                       mode="tfidf")  # fmt: skip
    assert client.get_model_version_by_alias(name, CHAMPION_ALIAS).run_id == first
    # when: a model of the right labels is trained with promote=if_better
    second = train_tiny(correct_prefix, experiment_name, tiny_base_model, tmp_path / "2",
                        mode="tfidf", promote="if_better")  # fmt: skip
    # then: it beats the champion on the same held-out documents and takes the alias
    run = client.get_run(second)
    assert run.data.tags[TAG_PROMOTION].startswith("promoted: macro-F1 +"), run.data.tags
    assert run.data.metrics["champion_macro_f1_difference_low"] > 0
    assert client.get_model_version_by_alias(name, CHAMPION_ALIAS).run_id == second
    # when: the same model again, which cannot beat itself
    third = train_tiny(correct_prefix, experiment_name, tiny_base_model, tmp_path / "3",
                       mode="tfidf", promote="if_better")  # fmt: skip
    # then: registered without the alias, saying why; the champion stays
    run = client.get_run(third)
    assert run.data.tags[TAG_PROMOTION].startswith("not promoted: macro-F1 +0.0000 over "
                                                   f"{name} v2"), run.data.tags  # fmt: skip
    assert run.data.tags["custom_classifier.registered_model"] == f"{name}/3"
    assert client.get_model_version_by_alias(name, CHAMPION_ALIAS).run_id == second

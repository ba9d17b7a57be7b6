"""Candidate models (tfidf, head, finetune), automatic selection, time budget, abstention."""

from __future__ import annotations

import json
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import mlflow
import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient

from functions.api.app import create_app
from functions.core.config import Settings
from tests.conftest import TrainedModel, train_tiny
from tests.support import DATA_BUCKET, TOPICS, keyword_tree, predict_in_fresh_process, upload_tree
from training_job import kinds
from training_job.candidates import Candidate, choose, plan, select_model
from training_job.config import Hyperparameters
from training_job.data import Document
from training_job.kinds import contrastive
from training_job.kinds.base import SelectionData
from training_job.progress import TAG_PHASE_DETAIL, Progress
from training_job.split import Split, stratified_split
from training_job.tracking import (
    TAG_CHOICE,
    TAG_HPO,
    TAG_MODEL_KIND,
    TAG_RUNTIME,
    TAG_RUNTIME_REASON,
    TAG_SKIPPED,
)

# Kinds served by onnxruntime (an ensemble of them, or of them and tf-idf, too).
ONNX_KINDS = {"head", "contrastive", "finetune", "ensemble"}
# The packages each kind's logged model needs besides numpy, pandas and mlflow-skinny.
REQUIREMENTS = {"tfidf": {"scikit-learn"}, "head": {"onnxruntime", "tokenizers", "scikit-learn"},
                "contrastive": {"onnxruntime", "tokenizers", "scikit-learn"},
                "finetune": {"onnxruntime", "tokenizers"}}  # fmt: skip


def _run(experiment: str) -> Any:
    client = MlflowClient()
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    return client.search_runs([experiment_id])[0]


@pytest.mark.parametrize("mode", kinds.NAMES)
def test_each_mode_trains_registers_and_serves_through_pyfunc(
    s3: Any,
    mlflow_uri: str,
    tiny_base_model: str,
    tmp_path: Path,
    dataset_prefix: str,
    experiment_name: str,
    mode: str,
) -> None:
    upload_tree(s3, DATA_BUCKET, dataset_prefix, keyword_tree(TOPICS, 10))
    run_id = train_tiny(dataset_prefix, experiment_name, tiny_base_model, tmp_path, mode=mode)
    run = MlflowClient().get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags[TAG_MODEL_KIND] == mode
    assert f"candidate_{mode}_val_macro_f1" in run.data.metrics
    assert run.data.params["mode"] == mode
    predicted = mlflow.pyfunc.load_model(f"runs:/{run_id}/model").predict(["rain", "goal"])
    assert set(predicted["label"]) <= set(TOPICS)
    # a kind that runs a transformer is served by onnxruntime where its answers agree
    runtime = run.data.tags[TAG_RUNTIME]
    classifier = f"runs:/{run_id}/model/artifacts/classifier"
    served = Path(mlflow.artifacts.download_artifacts(classifier, dst_path=str(tmp_path / "s")))
    label, heavy = predict_in_fresh_process(served, "rain")
    assert label == predicted["label"][0]
    if mode in ONNX_KINDS:
        assert runtime in {"onnx-int8", "onnx-fp32"}, run.data.tags[TAG_RUNTIME_REASON]
        assert run.data.metrics["onnx_fp32_agreement"] >= 0.995
        assert heavy == []  # neither torch nor transformers
    else:
        assert runtime == "native"
    # the model declares what loading it imports, pinned to what it was trained with
    needed = Path(mlflow.pyfunc.get_model_dependencies(f"runs:/{run_id}/model"))
    pins = dict(line.split("==") for line in needed.read_text().split())
    expected = REQUIREMENTS.get(mode) or set().union(*REQUIREMENTS.values())
    pyfunc = {"numpy", "pandas", "mlflow-skinny"}  # not the whole of MLflow
    assert pyfunc <= set(pins) <= pyfunc | expected
    assert pins.get("onnxruntime", version("onnxruntime")) == version("onnxruntime")
    if mode != "ensemble":
        assert set(pins) - pyfunc == expected


def test_auto_picks_tfidf_on_keyword_labels_and_says_why(
    s3: Any,
    mlflow_uri: str,
    tiny_base_model: str,
    tmp_path: Path,
    dataset_prefix: str,
    experiment_name: str,
) -> None:
    # given: labels decided by keywords, a handful of documents each; contrastive tuning
    # allowed no time (its choice on small data is tested in tests/unit/test_planning.py)
    upload_tree(s3, DATA_BUCKET, dataset_prefix, keyword_tree(TOPICS, 10))
    # when
    run_id = train_tiny(dataset_prefix, experiment_name, tiny_base_model, tmp_path,
                        contrastive_max_seconds="0.001")  # fmt: skip
    # then: tf-idf, the cheapest, scores 1.0 and is kept; a perfect score on 20 documents
    # still leaves one document of room, so the cheap head is fitted too
    run = MlflowClient().get_run(run_id)
    assert run.data.tags[TAG_MODEL_KIND] == "tfidf"
    assert run.data.metrics["candidate_tfidf_val_macro_f1"] == pytest.approx(1.0)
    assert "candidate_head_val_macro_f1" in run.data.metrics
    assert run.data.tags[TAG_CHOICE] == "the best selection macro-F1 (1.0000)"
    assert "does not fit" in run.data.tags[f"{TAG_SKIPPED}.contrastive"]
    assert "candidate_contrastive_estimated_seconds" in run.data.metrics
    assert "does not pay off" in run.data.tags[f"{TAG_SKIPPED}.finetune"]
    assert run.data.metrics["test_macro_f1"] == pytest.approx(1.0)


def test_finetuning_that_cannot_fit_is_skipped_with_the_reason_and_tried_otherwise(
    s3: Any,
    mlflow_uri: str,
    tiny_base_model: str,
    tmp_path: Path,
    dataset_prefix: str,
    experiment_name: str,
) -> None:
    # given: enough documents to compare on validation, but a time budget fine-tuning
    # cannot meet (a perfect score leaving too little room: tests/unit/test_planning.py)
    upload_tree(s3, DATA_BUCKET, dataset_prefix, keyword_tree(TOPICS, 100))
    run_id = train_tiny(dataset_prefix, experiment_name, tiny_base_model, tmp_path,
                        time_budget_seconds="0.001")  # fmt: skip
    run = MlflowClient().get_run(run_id)
    assert "time budget" in run.data.tags[f"{TAG_SKIPPED}.finetune"]
    assert "candidate_finetune_val_macro_f1" not in run.data.metrics

    # when: the same data, every kind tried (the tiny model is fast), fine-tuning competes
    run_id = train_tiny(dataset_prefix, f"{experiment_name}-free", tiny_base_model, tmp_path,
                        min_gain_per_minute="0")  # fmt: skip
    run = MlflowClient().get_run(run_id)
    assert 0.0 <= run.data.metrics["candidate_finetune_val_macro_f1"] <= 1.0
    assert f"{TAG_SKIPPED}.finetune" not in run.data.tags


def _candidate(kind: str, f1: float) -> Candidate:
    return Candidate(kind=kind, classifier=None, selection_f1=f1, seconds=1.0)  # type: ignore[arg-type]


def test_selection_prefers_macro_f1_then_the_faster_model() -> None:
    assert choose([_candidate("tfidf", 0.8), _candidate("head", 0.9)]).kind == "head"
    assert choose([_candidate("finetune", 0.9), _candidate("head", 0.9)]).kind == "head"
    assert choose([_candidate("head", 0.95), _candidate("tfidf", 0.95)]).kind == "tfidf"


def test_process_passes_mode_and_rejects_unknown_ones(
    api: TestClient, s3: Any, dataset_prefix: str, experiment_name: str
) -> None:
    upload_tree(s3, DATA_BUCKET, dataset_prefix, keyword_tree(TOPICS, 8))
    body = {"labels": list(TOPICS), "path": dataset_prefix, "experiment_name": experiment_name}
    bad = api.post("/custom_classifier/process", json={**body, "mode": "magic"})
    assert bad.status_code == 422
    assert "mode" in bad.json()["error"]
    negative = api.post("/custom_classifier/process", json={**body, "time_budget_seconds": -1})
    assert negative.status_code == 422
    too_many = api.post("/custom_classifier/process", json={**body, "hpo_trials": 101})
    assert too_many.status_code == 422
    assert "hpo_trials must be between 0 and 100" in too_many.json()["error"]
    assert MlflowClient().get_experiment_by_name(experiment_name) is None
    ok = api.post("/custom_classifier/process", json={**body, "mode": "tfidf"})
    assert ok.status_code == 200


def test_predictions_below_the_threshold_are_marked_abstained(
    settings: Settings, trained_model: TrainedModel
) -> None:
    cautious = settings.model_copy(update={"abstain_below": 1.01})
    with TestClient(create_app(cautious)) as api:
        body = {"runid": trained_model.run_id, "texts": ["goal", "rain"]}
        data = api.post("/custom_classifier/predict", json=body).json()["data"]
    assert [item["abstained"] for item in data] == [True, True]
    assert all(item["label"] in TOPICS for item in data)


def _split(train_per_label: int | dict[str, int], validation: int) -> Split:
    def docs(n: int | dict[str, int], tag: str) -> list[Document]:
        return [
            Document(f"{tag}/{label}/{i}", label, "text", 4, "0", "utf-8")
            for label in TOPICS
            for i in range(n if isinstance(n, int) else n[label])
        ]

    half = validation // 2
    return Split(docs(train_per_label, "train"), docs(half, "val"), docs(half, "test"))


FOLDS = "scored by cross-validation"  # why an ensemble is not tried on small validation
ALL_KINDS = ("tfidf", "head", "contrastive", "finetune", "ensemble")


@pytest.mark.parametrize(
    ("train_per_label", "validation", "planned", "skipped"),
    [
        (10, 40, ["tfidf", "head", "contrastive", "ensemble"], {"finetune": "does not pay off"}),
        # a small validation set: fine-tuning is planned (compared by folds), no ensemble
        (40, 10, ["tfidf", "head", "contrastive", "finetune"], {"ensemble": FOLDS}),
        (40, 40, [*ALL_KINDS], {}),
        # one rare label in a dataset that is not few-shot: fine-tuning is still tried
        ({"sports": 70, "weather": 6}, 40, [*ALL_KINDS], {}),
        # many documents a label: contrastive tuning is the few-shot model
        (60, 40, ["tfidf", "head", "finetune", "ensemble"], {"contrastive": "few-shot model"}),
    ],
)
def test_auto_plans_each_kind_only_where_it_can_pay_off_and_be_compared(
    train_per_label: int | dict[str, int], validation: int, planned: list[str],
    skipped: dict[str, str],
) -> None:  # fmt: skip
    kinds, why = plan(Hyperparameters(labels=list(TOPICS)), _split(train_per_label, validation))
    assert kinds == planned
    assert set(why) == set(skipped)
    assert all(reason in why[kind] for kind, reason in skipped.items())
    assert plan(Hyperparameters(mode="head"), _split(10, 4)) == (["head"], {})
    # an ensemble asked for is planned after the kinds it combines, on any validation
    members, _ = plan(Hyperparameters(mode="ensemble"), _split(10, 4))
    assert members == ["tfidf", "head", "contrastive", "ensemble"]


def test_hpo_trials_are_logged_and_the_best_model_is_kept(
    s3: Any,
    mlflow_uri: str,
    tiny_base_model: str,
    tmp_path: Path,
    dataset_prefix: str,
    experiment_name: str,
) -> None:
    # given: a dataset where the head's regularisation matters little
    upload_tree(s3, DATA_BUCKET, dataset_prefix, keyword_tree(TOPICS, 10))
    # when: four Optuna trials on the head
    run_id = train_tiny(dataset_prefix, experiment_name, tiny_base_model, tmp_path,
                        mode="head", hpo_trials="4")  # fmt: skip
    # then: each trial is a step, the table is an artifact, the summary says what was kept
    client = MlflowClient()
    run = client.get_run(run_id)
    steps = client.get_metric_history(run_id, "hpo_trial_macro_f1")
    assert sorted(m.step for m in steps) == [1, 2, 3, 4]
    assert run.data.tags[TAG_HPO].startswith("4 trials on head: kept")
    assert run.data.metrics["hpo_best_macro_f1"] == max(
        [run.data.metrics["candidate_head_val_macro_f1"], *(m.value for m in steps)]
    )
    assert "hpo_best_head_c" in run.data.params
    table = json.loads(
        Path(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/hpo/trials.json")).read_text()
    )
    assert [t["number"] for t in table["trials"]] == [0, 1, 2, 3, 4]
    assert run.data.tags[TAG_MODEL_KIND] == "head"


def _keyword_split(per_label: int) -> Split:
    tree = keyword_tree(TOPICS, per_label)
    docs = [
        Document(f"{label}/{name}", label, body.decode(), len(body), "0", "utf-8")
        for label, files in tree.items()
        for name, body in files.items()
    ]
    return stratified_split(docs, 0.15, 0.0, seed=1)


def _recorded_progress() -> tuple[list[str], Progress]:
    """The run's progress as the job writes it, every detail kept (its clock moves 10 s a
    reading, so no step is held back)."""
    details: list[str] = []
    ticks = iter(range(0, 100_000, 10))
    progress = Progress(lambda tags, metrics: details.append(tags[TAG_PHASE_DETAIL]),
                        clock=lambda: float(next(ticks)))  # fmt: skip
    return details, progress


def test_contrastive_tuning_logs_its_steps_and_pairs_and_is_scored_by_folds(
    tiny_base_model: str,
) -> None:
    # given: 8 documents a label, so validation is small
    split = _keyword_split(8)
    hp = Hyperparameters(labels=list(TOPICS), mode="contrastive", base_model=tiny_base_model,
                         options={"contrastive_max_steps": 4})  # fmt: skip
    details, progress = _recorded_progress()
    # when
    selection = select_model(hp, list(TOPICS), split, lambda e, m: None, time.monotonic(),
                             progress)  # fmt: skip
    # then: the steps follow the cap, the score is out-of-fold, the model predicts labels
    winner = selection.winner
    assert winner.kind == "contrastive"
    assert winner.details["steps"] == 4
    # and: each tuning's steps were told as they went, not only the candidate's start
    told = [d for d in details if " · " in d]
    assert told[0] == "candidate 1 of 1: contrastive · fold 1 of 3: step 1 of 4"
    last_steps = {f"fold {k} of 3: step 4 of 4" for k in (1, 2, 3)} | {"all documents: step 4 of 4"}
    assert last_steps <= {d.split(" · ")[1] for d in told}
    assert winner.details["pairs"] == 4 * 16 * 15 // 2  # every pair of each batch of 16
    assert winner.details["folds"] == 3
    assert 0.0 <= winner.selection_f1 <= 1.0
    assert {p.label for p in winner.classifier.predict(["rain", "goal"])} <= set(TOPICS)


@pytest.mark.parametrize(("per_label", "steps", "rate"), [(8, 2, 1e-4), (12, 8, 5e-5)])
def test_contrastive_tuning_takes_half_the_epochs_at_twice_the_rate_where_a_batch_holds_all(
    tiny_base_model: str, per_label: int, steps: int, rate: float
) -> None:
    # given: 2 labels, 16 documents (one batch of 16 holds them all) or 24 (two batches)
    split = _keyword_split(per_label)
    options = {"contrastive_epochs": 4, "contrastive_learning_rate": 5e-5}
    hp = Hyperparameters(labels=list(TOPICS), mode="contrastive", base_model=tiny_base_model,
                         options=options)  # fmt: skip
    # when
    winner = select_model(hp, list(TOPICS), split, lambda e, m: None, time.monotonic()).winner
    # then: whole-set steps: 2 epochs of one step at 1e-4; else 4 epochs of 2 steps at 5e-5
    assert winner.details["steps"] == steps
    assert winner.details["learning_rate"] == pytest.approx(rate)


def test_contrastive_estimate_counts_each_steps_documents_and_update(
    tiny_base_model: str,
) -> None:
    # given: 12 documents a label, 24 in all: the final tuning takes 2 full batches of 16
    # and each fold's 16 one (3 folds); 4 epochs; measured units, injected: a full batch's
    # passes 0.5 s, an update 0.1 s, loading and embedding 1 s a tuning
    hp = Hyperparameters(labels=list(TOPICS), mode="contrastive", base_model=tiny_base_model,
                         options={"contrastive_epochs": 4})  # fmt: skip
    units = contrastive._Timings(load=0.5, batch=0.5, update=0.1, embed_all=0.5)

    def estimate(split: Split) -> float:
        trainer = kinds.get("contrastive").trainer(SelectionData(hp, list(TOPICS), split,
                                                                 lambda e, m: None))  # fmt: skip
        trainer.__dict__["timings"] = units
        return trainer.cost()

    # when / then: 8 steps of 24 documents (3/4 full) and 3 x 4 steps of 16 (all full)
    final, folds = 8 * (0.5 * 24 / 32 + 0.1), 3 * 4 * (0.5 + 0.1)
    assert estimate(_keyword_split(12)) == pytest.approx(final + folds + 4 * 1.0)
    # and: scored on a validation split of 36 (a test split too): one tuning of the 200
    # documents, no folds: 4 epochs of 13 steps, 200 documents in 13 batches of 16
    large = _keyword_split(120)
    scored = Split(large.train[40:], large.validation, large.train[:40])
    assert estimate(scored) == pytest.approx(4 * 13 * (0.5 * 200 / 208 + 0.1) + 1.0)


@pytest.mark.parametrize("windows", [None, 1])
def test_contrastive_model_embeds_its_own_number_of_windows_a_document(
    tiny_base_model: str, windows: int | None
) -> None:
    # given: the job's windows (at most 32 a document); the kind's own 4 by default, or 1
    options: dict[str, int] = {"contrastive_max_steps": 1}
    if windows is not None:
        options["contrastive_max_windows"] = windows
    hp = Hyperparameters(labels=list(TOPICS), mode="contrastive", base_model=tiny_base_model,
                         options=options)  # fmt: skip
    # when
    winner = select_model(hp, list(TOPICS), _keyword_split(8), lambda e, m: None,
                          time.monotonic()).winner  # fmt: skip
    # then: the served model reads that many windows of a long text, and predicts
    assert winner.classifier.config.max_windows == (windows or 4)
    assert {p.label for p in winner.classifier.predict(["rain " * 600])} <= set(TOPICS)


def test_contrastive_tuning_trains_on_documents_with_several_labels(
    tiny_base_model: str,
) -> None:
    # given: 8 sports, 8 weather and 8 documents filed under both (their keywords mixed)
    tree = keyword_tree(TOPICS, 8)
    docs = [
        Document(f"{label}/{name}", label, body.decode(), len(body), "0", "utf-8", (label,))
        for label, files in tree.items()
        for name, body in files.items()
    ]
    docs += [
        Document(f"both/{i}", "sports", f"{a.text} {b.text}", 0, "0", "utf-8", tuple(TOPICS))
        for i, (a, b) in enumerate(zip(docs[:8], docs[8:], strict=True))
    ]
    split = stratified_split(docs, 0.15, 0.0, seed=1)
    hp = Hyperparameters(labels=list(TOPICS), mode="contrastive", multi_label=True,
                         base_model=tiny_base_model,
                         options={"contrastive_max_steps": 4})  # fmt: skip
    # when
    selection = select_model(hp, list(TOPICS), split, lambda e, m: None, time.monotonic())
    # then: tuned on the 0/1 label rows, scored by folds, answering label sets
    winner = selection.winner
    assert winner.kind == "contrastive"
    assert winner.details["steps"] == 4
    assert winner.details["folds"] == 3
    assert winner.held_out is not None and winner.held_out.logits.shape == (len(docs), 2)
    answered = winner.classifier.predict(["rain goal storm match"])[0]
    assert answered.labels is not None and set(answered.labels) <= set(TOPICS)


def test_auto_skips_contrastive_tuning_when_one_pass_does_not_fit_the_budget(
    tiny_base_model: str,
) -> None:
    # given: a budget already spent when selection starts
    split = _keyword_split(8)
    hp = Hyperparameters(labels=list(TOPICS), base_model=tiny_base_model, time_budget_seconds=1)
    # when
    selection = select_model(hp, list(TOPICS), split, lambda e, m: None, time.monotonic() - 60)
    # then: the cheapest kind still ran, the contrastive kind says why it did not
    assert selection.candidates[0].kind == "tfidf"
    assert "does not fit" in selection.skipped["contrastive"]


def test_finetuning_scored_by_folds_picks_no_epoch_on_the_documents_it_is_judged_on(
    tiny_base_model: str,
) -> None:
    # given: 8 documents a label, so validation is small and fine-tuning is scored by folds
    split = _keyword_split(8)
    hp = Hyperparameters(labels=list(TOPICS), mode="finetune", base_model=tiny_base_model,
                         options={"epochs": 3, "min_train_steps": 1})  # fmt: skip
    epochs: list[tuple[int, dict[str, float]]] = []
    details, progress = _recorded_progress()
    # when
    selection = select_model(hp, list(TOPICS), split, lambda e, m: epochs.append((e, m)),
                             time.monotonic(), progress)  # fmt: skip
    # then: out-of-fold, calibrated on every document
    winner = selection.winner
    documents = len(split.train) + len(split.validation)
    assert winner.details["folds"] == 3
    assert winner.details["calibration_documents"] == documents
    assert winner.held_out is not None and len(winner.held_out.rows) == documents
    # and: the model served trained its planned epochs on every document, none of them
    # kept or stopped on a handful of validation documents
    assert [epoch for epoch, _ in epochs] == [1, 2, 3]
    assert all(set(metrics) == {"train_loss"} for _, metrics in epochs)
    # and: each fold's and the final training's steps were told as they went
    told = {d.split(" · ")[1] for d in details if " · " in d}
    assert {"fold 1 of 3: epoch 1: step 1 of 1", "fold 3 of 3: epoch 3: step 1 of 1",
            "all documents: epoch 3: step 1 of 1"} <= told, told  # fmt: skip
    assert {p.label for p in winner.classifier.predict(["rain", "goal"])} <= set(TOPICS)

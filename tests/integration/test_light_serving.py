"""A plain MLflow client loads each kind's model with only the packages the model declares
(`mlflow.pyfunc.get_model_dependencies`): a fresh venv with mlflow-skinny and those pins, no
torch, loads and predicts, and `mlflow models serve --env-manager local` answers.

Slow (pip installs into a new venv): `make slow` and .ci/run run it, `make test` does not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import mlflow
import pytest

from tests.conftest import free_port, train_tiny
from tests.support import (
    DATA_BUCKET,
    HEAVY_RUNTIMES,
    TOPICS,
    keyword_tree,
    upload_tree,
    wait_until,
)

pytestmark = pytest.mark.slow

# In the order their needs grow: scikit-learn; onnxruntime + tokenizers; both.
KINDS = ("tfidf", "finetune", "head")
TEXTS = ["rain and storm", "the striker scored a goal"]


def _requirements(model: Path) -> str:
    """The model's declared requirements file (mlflow-skinny and its kind's pins)."""
    return str(mlflow.pyfunc.get_model_dependencies(str(model)))


@pytest.fixture(scope="module")
def models(
    s3: Any, mlflow_uri: str, tiny_base_model: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[Path, list[str]]]:
    """Each kind's logged model on local disk, and its labels for TEXTS as the job's own
    environment (torch and all) answers."""
    prefix = "ds-light-serving"
    upload_tree(s3, DATA_BUCKET, prefix, keyword_tree(TOPICS, 12))
    found = {}
    for kind in KINDS:
        root = tmp_path_factory.mktemp(kind)
        run_id = train_tiny(prefix, f"exp-light-{kind}", tiny_base_model, root, mode=kind)
        folder = mlflow.artifacts.download_artifacts(f"runs:/{run_id}/model",
                                                     dst_path=str(root / "model"))  # fmt: skip
        labels = mlflow.pyfunc.load_model(folder).predict(TEXTS)["label"].tolist()
        found[kind] = (Path(folder), labels)
    return found


@pytest.fixture(scope="module")
def light_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new, empty venv."""
    venv = tmp_path_factory.mktemp("light") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    return venv


def _pip(venv: Path, *packages: str) -> None:
    subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "-q", *packages],
                   check=True, capture_output=True, timeout=900)  # fmt: skip


def _in_venv(venv: Path, script: str) -> Any:
    out = subprocess.run([str(venv / "bin/python"), "-c", script], capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_each_kind_loads_with_only_its_declared_packages(
    models: dict[str, tuple[Path, list[str]]], light_venv: Path
) -> None:
    for kind in KINDS:
        folder, expected = models[kind]
        # given: the venv holds what this kind's model declares (and the kinds' before it):
        # `pip install -r` of its requirements, which name mlflow-skinny
        _pip(light_venv, "-r", _requirements(folder))
        # when: a plain MLflow client loads and asks it
        script = (
            "import json, sys, mlflow.pyfunc\n"
            f"model = mlflow.pyfunc.load_model({str(folder)!r})\n"
            f"labels = model.predict({TEXTS!r})['label'].tolist()\n"
            f"print(json.dumps([labels, [m for m in {HEAVY_RUNTIMES!r} if m in sys.modules]]))"
        )
        labels, heavy = _in_venv(light_venv, script)
        # then: the answers the job's environment gave, with no torch anywhere
        assert labels == expected, kind
        assert heavy == [], kind
    # and the venv holds neither torch nor the full MLflow distribution
    installed = ("import json, importlib.metadata as m\n"
                 "print(json.dumps([d.name.lower() for d in m.distributions()]))")  # fmt: skip
    names = set(_in_venv(light_venv, installed))
    assert "mlflow-skinny" in names
    assert not names & {"torch", "transformers", "mlflow"}


def test_mlflow_models_serve_answers_invocations_without_torch(
    models: dict[str, tuple[Path, list[str]]], light_venv: Path, tmp_path: Path
) -> None:
    folder, expected = models["head"]
    _pip(light_venv, "-r", _requirements(folder))
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    # as in an activated venv: the server runs the venv's uvicorn from PATH
    path = f"{light_venv / 'bin'}:{os.environ['PATH']}"
    server = subprocess.Popen(
        [str(light_venv / "bin/mlflow"), "models", "serve", "-m", str(folder),
         "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PATH": path},
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"

        def up_or_ended() -> bool:
            return server.poll() is not None or httpx.get(f"{url}/ping").status_code == 200

        wait_until(up_or_ended, 120, "mlflow models serve")
        assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
        response = httpx.post(f"{url}/invocations", json={"inputs": TEXTS}, timeout=60)
        assert response.status_code == 200, response.text
        answers = response.json()["predictions"]
        assert [answer["label"] for answer in answers] == expected
        assert all(0.0 < answer["score"] <= 1.0 for answer in answers)
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()

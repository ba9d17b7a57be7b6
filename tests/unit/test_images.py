"""The Dockerfiles and compose.yaml, checked without a Docker engine: entrypoints run,
handlers import, what is copied exists, pins agree with pyproject.toml, compose validates."""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from cfnlint.decode import decode_str

from functions.core.config import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = [ROOT / "functions" / "Dockerfile", ROOT / "training_job" / "Dockerfile",
               ROOT / "iac" / "mlflow" / "Dockerfile"]  # fmt: skip


def _instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", path.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def _last(path: Path, instruction: str, stage: str | None = None) -> Any:
    value = None
    current = None
    for name, argument in _instructions(path):
        if name == "FROM":
            current = argument.split(" AS ")[-1] if " AS " in argument else None
        if name == instruction and (stage is None or current == stage):
            value = json.loads(argument)
    return value


def test_training_image_follows_the_sagemaker_contract(tmp_path: Path) -> None:
    dockerfile = ROOT / "training_job" / "Dockerfile"
    entrypoint = _last(dockerfile, "ENTRYPOINT", stage="training")
    assert entrypoint == ["python", "-m", "training_job"]
    assert _last(dockerfile, "CMD", stage="training") == ["train"]
    # when: the entrypoint runs as SageMaker would (`train`), with no data in /opt/ml
    (tmp_path / "input" / "config").mkdir(parents=True)
    (tmp_path / "input" / "config" / "hyperparameters.json").write_text(
        json.dumps({"labels": '["a", "b"]', "experiment_name": "x"})
    )
    env = {**os.environ, "SM_ROOT": str(tmp_path), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, *entrypoint[1:], "train"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    # then: it fails as the contract says: exit 1 and the reason in /opt/ml/output/failure
    assert done.returncode == 1, done.stderr[-2000:]
    assert "no data" in (tmp_path / "output" / "failure").read_text()


def test_training_image_runs_batch_jobs_too(tmp_path: Path) -> None:
    env = {**os.environ, "SM_ROOT": str(tmp_path), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "training_job", "batch"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 1
    assert "expected s3://bucket/prefix" in (tmp_path / "output" / "failure").read_text()


def test_lambda_image_handlers_resolve() -> None:
    commands = [_last(ROOT / "functions" / "Dockerfile", "CMD")]
    template, _ = decode_str((ROOT / "template.yaml").read_text())
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            commands.append(resource["Properties"]["ImageConfig"]["Command"])
            assert resource["Metadata"]["Dockerfile"] == "functions/Dockerfile"
    for (dotted,) in commands:
        module, _, name = dotted.rpartition(".")
        assert callable(getattr(importlib.import_module(module), name)), dotted


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_dockerfile_copies_what_exists_and_pins_what_pyproject_pins(dockerfile: Path) -> None:
    context = ROOT if dockerfile.parent.name in {"functions", "training_job"} else dockerfile.parent
    for name, argument in _instructions(dockerfile):
        if name == "COPY":
            for source in argument.split()[:-1]:
                assert (context / source).exists(), f"{dockerfile}: COPY {source}"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins = {
        requirement.split("==")[0]: requirement.split("==")[1]
        for group in pyproject["project"]["optional-dependencies"].values()
        for requirement in group
        if "==" in requirement
    }
    for package, version in re.findall(r"([a-z][a-z0-9-]+)==([0-9][0-9.]*)",
                                       dockerfile.read_text()):  # fmt: skip
        if package in pins:
            assert pins[package] == version, f"{dockerfile}: {package}=={version}"
    for extra in re.findall(r"\[([a-z,-]+)\]", dockerfile.read_text()):
        assert set(extra.split(",")) <= set(pyproject["project"]["optional-dependencies"])


def test_the_functions_image_installs_no_torch_unless_its_torch_target_is_chosen() -> None:
    dockerfile = ROOT / "functions" / "Dockerfile"
    stages = [argument.split(" AS ")[-1] for name, argument in _instructions(dockerfile)
              if name == "FROM"]  # fmt: skip
    assert stages == ["functions", "functions-torch"]
    # every function deploys the first stage, whose extras hold no torch or transformers
    template, _ = decode_str((ROOT / "template.yaml").read_text())
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            assert resource["Metadata"]["DockerBuildTarget"] == "functions"
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    installed = re.findall(
        r'\[([a-z,-]+)\]"', dockerfile.read_text().split(" AS functions-torch")[0]
    )
    assert installed == ["api,serve"]
    names = {re.split(r"[=<>\[]", requirement)[0]
             for extra in installed[0].split(",")
             for requirement in extras["optional-dependencies"][extra]}  # fmt: skip
    assert not names & {"torch", "transformers", "sentence-transformers", "setfit"}
    assert {"onnxruntime", "tokenizers", "scikit-learn"} <= names


@pytest.mark.skipif(shutil.which("hadolint") is None, reason="hadolint is not installed")
@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_hadolint(dockerfile: Path) -> None:
    done = subprocess.run(["hadolint", "--failure-threshold", "error", str(dockerfile)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout


def test_compose_services_build_from_real_dockerfiles_with_known_settings() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    names = {f"{ENV_PREFIX}{field.upper()}" for field in Settings.model_fields}
    assert {"s3", "postgres", "mlflow", "api", "trigger"} <= set(compose["services"])
    for name, service in compose["services"].items():
        env = service.get("environment", {})
        assert {k for k in env if k.startswith(ENV_PREFIX)} <= names, name
        build = service.get("build")
        if build:
            dockerfile = ROOT / build["context"] / build.get("dockerfile", "Dockerfile")
            assert dockerfile.exists(), name
            if "target" in build:
                assert f" AS {build['target']}" in dockerfile.read_text(), name


def _compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True,
                                 check=False).returncode == 0:  # fmt: skip
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


@pytest.mark.skipif(_compose_command() is None, reason="no docker compose here")
def test_compose_config_validates() -> None:
    command = _compose_command()
    assert command is not None
    done = subprocess.run([*command, "-f", str(ROOT / "compose.yaml"), "config", "-q"],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr

"""Hyperparameters and paths as the SageMaker contract hands them over."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training_job.config import Hyperparameters, JobPaths, load_hyperparameters, parse_args
from training_job.kinds.base import read_options
from training_job.kinds.finetune import FinetuneOptions


def test_sagemaker_string_hyperparameters_are_coerced() -> None:
    hp = Hyperparameters.from_mapping(
        {"labels": '["a", "b"]', "epochs": "5", "learning_rate": "3e-5", "seed": "7"}
    )
    assert hp.labels == ["a", "b"]
    assert hp.seed == 7
    # a kind's own hyperparameters are read as the types its module declares
    options = read_options(FinetuneOptions, hp)
    assert (options.epochs, options.learning_rate) == (5, 3e-5)


def test_unknown_or_unreadable_hyperparameters_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown hyperparameters: colour"):
        Hyperparameters.from_mapping({"colour": "red"})
    with pytest.raises(ValueError, match="'epochs'"):
        Hyperparameters.from_mapping({"epochs": "many"})
    with pytest.raises(ValueError, match="'labels'"):
        Hyperparameters.from_mapping({"labels": '{"a": 1}'})


def test_file_then_sm_hps_then_arguments_win_in_that_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SM_ROOT", str(tmp_path))
    paths = JobPaths.from_env()
    paths.hyperparameters.parent.mkdir(parents=True)
    paths.hyperparameters.write_text(json.dumps({"epochs": "1", "seed": "1", "batch_size": "4"}))
    monkeypatch.setenv("SM_HPS", json.dumps({"seed": 2, "batch_size": 8}))
    hp = load_hyperparameters(paths, parse_args(["train", "--batch_size", "32"]))
    options = read_options(FinetuneOptions, hp)
    assert (options.epochs, hp.seed, options.batch_size) == (1, 2, 32)
    assert paths.model_dir == tmp_path / "model"
    assert paths.failure_file == tmp_path / "output" / "failure"


def test_channel_and_model_dir_follow_sagemaker_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SM_CHANNEL_TRAINING", "/data/in")
    monkeypatch.setenv("SM_MODEL_DIR", "/data/model")
    paths = JobPaths.from_env()
    assert paths.channel == Path("/data/in")
    assert paths.model_dir == Path("/data/model")


def test_argument_forms() -> None:
    assert parse_args(["--a=1", "--b-c", "2"]) == {"a": "1", "b_c": "2"}
    with pytest.raises(ValueError, match="missing value for --a"):
        parse_args(["--a"])
    with pytest.raises(ValueError, match="unexpected argument"):
        parse_args(["stray"])


def test_a_batch_process_takes_the_shards_its_platform_gives_it(tmp_path: Path) -> None:
    from training_job.batch import assigned_shards

    channel = tmp_path / "shards"
    # a local process or an ECS task: the index its launcher set
    assert assigned_shards(3, channel, {"JOB_SHARD_INDEX": "2"}) == [2]
    with pytest.raises(ValueError, match="not a shard of 3"):
        assigned_shards(3, channel, {"JOB_SHARD_INDEX": "3"})
    # no shard given: one process does them all
    assert assigned_shards(3, channel, {}) == [0, 1, 2]
    # a SageMaker instance: the descriptors its channel received, however many
    channel.mkdir()
    for name in ("shard-00000", "shard-00002", "shard-00007", "notes.txt"):
        (channel / name).write_text("{}")
    assert assigned_shards(3, channel, {}) == [0, 2]


def test_training_runs_on_the_cpu_unless_the_machine_has_a_gpu() -> None:
    import torch

    from training_job.device import training_device

    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert training_device("auto") == expected
    assert training_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="one of auto, cpu, cuda"):
        training_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            training_device("cuda")
    assert Hyperparameters().device == "auto"


def test_mixed_precision_follows_what_the_device_computes_natively() -> None:
    import torch

    from training_job.device import uses_bf16

    native = bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)())
    assert uses_bf16("auto", "cpu") is native
    assert uses_bf16("bf16", "cpu") is True
    assert uses_bf16("fp32", "cpu") is False
    with pytest.raises(ValueError, match="one of auto, bf16, fp32"):
        uses_bf16("fp16", "cpu")

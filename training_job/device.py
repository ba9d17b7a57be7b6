"""Where torch trains: a GPU when the machine has one, else the CPU.

The CUDA image (training_job/Dockerfile, `--build-arg TORCH_INDEX=...cu128`) on a SageMaker
`ml.g5`/`ml.g6` instance has one; the default CPU image and this machine do not. Models
always come back to the CPU once trained: ONNX export, the scope and serving run there.
"""

from __future__ import annotations

from typing import Any

DEVICES = ("auto", "cpu", "cuda")


def training_device(asked: str) -> str:
    """ "cuda" or "cpu" for a job's `device` hyperparameter ("auto": CUDA where available)."""
    import torch

    if asked not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {asked!r}")
    available = torch.cuda.is_available()
    if asked == "cuda" and not available:
        raise ValueError("device cuda was asked for, but this machine has no CUDA device")
    return "cuda" if asked != "cpu" and available else "cpu"


def synchronize(device: Any) -> None:
    """Wait for the device's queued work (a GPU runs asynchronously): before reading a clock."""
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)

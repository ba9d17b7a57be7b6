"""Where torch trains: a GPU when the machine has one, else the CPU.

The CUDA image (training_job/Dockerfile, `--build-arg TORCH_INDEX=...cu128`) on a SageMaker
`ml.g5`/`ml.g6` instance has one; the default CPU image and this machine do not. Models
always come back to the CPU once trained: ONNX export, the scope and serving run there.
"""

from __future__ import annotations

from typing import Any

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "bf16", "fp32")


def training_device(asked: str) -> str:
    """ "cuda" or "cpu" for a job's `device` hyperparameter ("auto": CUDA where available)."""
    import torch

    if asked not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {asked!r}")
    available = torch.cuda.is_available()
    if asked == "cuda" and not available:
        raise ValueError("device cuda was asked for, but this machine has no CUDA device")
    return "cuda" if asked != "cpu" and available else "cpu"


def uses_bf16(precision: str, device: str) -> bool:
    """Whether torch trains in bfloat16 mixed precision on `device` ("cpu" or "cuda") for a
    precision setting ("auto": where the device computes bfloat16 natively, a GPU that
    supports it or a CPU with AVX512-BF16; elsewhere it is emulated, slower)."""
    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision == "bf16"
    if device == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    native = getattr(torch.cpu, "_is_avx512_bf16_supported", None)  # private: absent -> fp32
    return bool(native is not None and native())


def synchronize(device: Any) -> None:
    """Wait for the device's queued work (a GPU runs asynchronously): before reading a clock."""
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)

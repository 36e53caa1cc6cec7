"""The one place that turns a user's --device into a torch device and a compute dtype."""
from __future__ import annotations

import torch

from .errors import ClrfaceError


def pick_device(name: str = "auto") -> torch.device:
    """'auto' takes the first CUDA GPU when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ClrfaceError(f"--device {name} asked for, but torch sees no CUDA GPU; use --device cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ClrfaceError(f"unknown --device {name!r}; use auto, cpu, cuda or cuda:N") from None


def compute_dtype(device: torch.device) -> torch.dtype:
    """bf16 on GPUs that support it, fp16 on older GPUs, fp32 on the CPU."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32

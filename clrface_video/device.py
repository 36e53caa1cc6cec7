"""The one place that turns a user's --device into a torch device and a compute dtype."""
from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch

from .errors import OptionError


def pick_device(name: str = "auto") -> torch.device:
    """'auto' takes the first CUDA GPU when there is one, else the CPU; 'cpu', 'cuda' and 'cuda:N' ask for one.

    Other torch device types (mps, xpu, ...) are refused with a one-line error: the restorer is built and
    tested for CUDA and the CPU only. Errors are OptionErrors, so that each front end names the option its way
    (device=, --device)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise OptionError("device", f"must be auto, cpu, cuda or cuda:N (only NVIDIA GPUs, through CUDA, and the CPU "
                                    f"are supported), got {name!r}")
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise OptionError("device", f"is {name!r}, but torch sees no CUDA GPU; use cpu (or auto)")
        if device.index is not None and device.index >= count:
            raise OptionError("device", f"is {name!r}, but torch sees {count} CUDA GPU(s): cuda:0 to cuda:{count - 1}")
    return device


def gpu_index(device: torch.device | str | None) -> int | None:
    """The CUDA GPU that `device` names, or None for the CPU (or no device): 'cuda:N' is N, a plain 'cuda'
    the current GPU, as torch reads it. What onnxruntime's CUDA provider is handed, so the detector runs
    on the restorer's GPU."""
    if not device:
        return None
    device = torch.device(device)
    if device.type != "cuda":
        return None
    if device.index is not None:
        return device.index
    return torch.cuda.current_device() if torch.cuda.is_available() else 0


def same_device_name(device: torch.device | str) -> str:
    """One name per device, for caches keyed by it: 'cuda' (the current GPU) becomes 'cuda:N'."""
    index = gpu_index(device)
    return str(torch.device(device)) if index is None else f"cuda:{index}"


def training_autocast(device: torch.device) -> AbstractContextManager:
    """Mixed precision for training: bf16 autocast on GPUs that support it. Elsewhere fp32: fp16 would need
    loss scaling, which the training loop does not do."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def compute_dtype(device: torch.device) -> torch.dtype:
    """bf16 on GPUs that support it, fp16 on older GPUs, fp32 on the CPU."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32

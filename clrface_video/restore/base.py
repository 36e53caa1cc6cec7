"""The restorer contract and the registry that maps --model names to restorers."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch

from ..errors import ModelOptionError

if TYPE_CHECKING:
    from .temporal import TrackMemory


@dataclass(frozen=True)
class RestoreBatch:
    """One batch of aligned faces for a restorer.

    crops: (N, S, S, 3) uint8 RGB faces aligned to the FFHQ-style template at S = restorer.resolution.
    identity: (N, D) float32 L2-normalised identity targets (the track's embedding), or None to
        let the restorer take them from each crop (per-frame identity).
    seeds: (N,) int64 noise seeds (the track's seed, so a still face gets the same sample), or None.
    tracks: (N,) int64 track ids, in frame order per track; used with memory.
    memory: the video's latent-smoothing state (restore.temporal.TrackMemory), or None for none;
        restorers without latents ignore it.
    snap: quantise the final latent against the codebook before decoding (the method's last step);
        False decodes the latent as the prior left it, which changes less from frame to frame.
    guidance: a restorer with identity guidance runs it; False skips it for this batch (faster; identity
        is then not needed).
    gate: a restorer with a blend gate (restore.gate) keeps of each face the share its gate chooses;
        False keeps every restored face whole (the pipeline does so when --strength is a number).
    gate_memory: the video's share-smoothing state (a TrackMemory over the gate's shares, with tracks),
        or None to take each face's share as the gate gives it.
    check_interrupt: called at each sampler step, so that a host's cancel (ComfyUI's Cancel) stops a batch
        within a step instead of after the whole batch (16 faces: half a minute on a CPU); it raises to
        stop. Restorers without steps (the baseline, which takes milliseconds) need not call it.
    on_step: called after each sampler step with the share of the batch done, 0..1 (a host's progress bar moves
        within a batch); the caller counts the batch whole once restore returns. Restorers without steps need
        not call it.
    """

    crops: np.ndarray
    identity: np.ndarray | None = None
    seeds: np.ndarray | None = None
    tracks: np.ndarray | None = None
    memory: TrackMemory | None = None
    snap: bool = True
    guidance: bool = True
    gate: bool = True
    gate_memory: TrackMemory | None = None
    check_interrupt: Callable[[], None] | None = None
    on_step: Callable[[float], None] | None = None


class Restorer(Protocol):
    """Anything that restores a batch of aligned faces. Moves to its device once per batch."""

    name: str
    resolution: int  # side S of the aligned crops it takes and returns
    uses_identity: bool  # False: the pipeline need not compute per-track identity embeddings for it

    def restore(self, batch: RestoreBatch) -> np.ndarray:
        """Return (N, S, S, 3) uint8 RGB restored faces, in the order of batch.crops."""
        ...


@dataclass(frozen=True)
class RestorerSpec:
    name: str
    description: str
    # factory(device=torch.device, fidelity=float, path=str|None), plus compile=True when the user asks for it
    factory: Callable[..., Restorer]


_REGISTRY: dict[str, RestorerSpec] = {}


def register_restorer(name: str, description: str) -> Callable[[Callable[..., Restorer]], Callable[..., Restorer]]:
    def wrap(factory: Callable[..., Restorer]) -> Callable[..., Restorer]:
        _REGISTRY[name] = RestorerSpec(name, description, factory)
        return factory

    return wrap


def available_restorers() -> dict[str, RestorerSpec]:
    _load_builtin()
    return dict(_REGISTRY)


def check_model_name(model: str, *, on_disk: bool = False) -> None:
    """A ModelOptionError (a ModelError naming the option as the front end does) unless `model` names a restorer
    make_restorer can build: 'auto', a registered name or a .safetensors path (checked cheaply, before any model
    is loaded). on_disk: the path must also be a file here, for a job that loads it in this process; a rerun with
    nothing left to do loads no model, and took a mistyped path for done."""
    _load_builtin()
    if model != "auto" and model not in _REGISTRY and not model.endswith(".safetensors"):
        names = ", ".join(sorted(_REGISTRY))
        raise ModelOptionError("model", f"must be one of: {names}, or a .safetensors path, got {model!r}")
    if on_disk and model.endswith(".safetensors") and not Path(model).is_file():
        raise ModelOptionError("model", f"names {model}, which does not exist")


def make_restorer(model: str, *, device: torch.device, fidelity: float = 0.5, compile: bool = False) -> Restorer:
    """Build a restorer from a registered name, 'auto', or a path to CLR-Face .safetensors weights.

    compile: ask for torch.compile of the restorer's network; passed to the factory only when True, so
        factories without the keyword (plugins written before it) keep working.
    """
    _load_builtin()
    extra = {"compile": True} if compile else {}
    if model.endswith(".safetensors"):
        return _REGISTRY["clrface"].factory(device=device, fidelity=fidelity, path=model, **extra)
    if model == "auto":
        model = default_model_name()
    check_model_name(model)
    return _REGISTRY[model].factory(device=device, fidelity=fidelity, path=None, **extra)


def default_model_name() -> str:
    """What `--model auto` builds: the shipped CLR-Face model where its weights are installed, else the baseline."""
    _load_builtin()
    return "clrface" if "clrface" in _REGISTRY and _shipped_clrface_present() else "baseline-bicubic-sharpen"


def _shipped_clrface_present() -> bool:
    from .restorer import SHIPPED_WEIGHTS

    return SHIPPED_WEIGHTS.is_file()


def _load_builtin() -> None:
    from . import baseline  # noqa: F401  (registers itself)

    try:
        from . import restorer  # noqa: F401  (registers 'clrface' when the model is present)
    except ImportError:
        pass

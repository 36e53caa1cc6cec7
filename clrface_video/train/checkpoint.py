"""A stage folder's files: its state (JSON), weights (safetensors) and optimizer state, saved and loaded."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..atomic import atomic

if TYPE_CHECKING:
    from .stages import Stage


@dataclass(frozen=True)
class StageState:
    """Optimizer-free training state of one stage, stored as JSON next to its checkpoint."""

    stage: str
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # batches of `epoch` already consumed, skipped on resume
    seconds: float = 0.0
    done: bool = False
    over: dict[str, int] = field(default_factory=dict)  # gate: the other stages' steps it was trained over


def save_json(path: Path, data: dict) -> None:
    with atomic(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1))


def load_state(stage_dir: Path, stage: str) -> StageState:
    path = stage_dir / "state.json"
    if not path.is_file():
        return StageState(stage)
    return StageState(**json.loads(path.read_text()))


def save_state(stage_dir: Path, state: StageState) -> None:
    save_json(stage_dir / "state.json", asdict(state))


def save_optimizers(path: Path, optimizers: dict[str, torch.optim.Optimizer]) -> None:
    """Our own resume file inside the run folder (torch.save; only ever read back by load_optimizers)."""
    with atomic(path) as tmp:
        torch.save({k: o.state_dict() for k, o in optimizers.items()}, tmp)


def load_optimizers(path: Path, optimizers: dict[str, torch.optim.Optimizer]) -> set[str]:
    """Load the optimizers' states saved by save_optimizers; returns the names loaded (none where the file
    is absent, or a new optimizer such as a discriminator's is not in it: those keep fresh states)."""
    if not path.is_file():
        return set()
    states = torch.load(path, map_location="cpu", weights_only=True)
    for k, o in optimizers.items():
        if k in states:
            o.load_state_dict(states[k])
    return set(optimizers) & set(states)


def save_module(path: Path, module: nn.Module) -> None:
    from safetensors.torch import save_file

    with atomic(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}, str(tmp))


def load_module(path: Path, module: nn.Module) -> bool:
    from safetensors.torch import load_file

    if not path.is_file():
        return False
    module.load_state_dict(load_file(str(path)))
    return True


def save_checkpoint(sdir: Path, stage: Stage, state: StageState) -> None:
    save_module(sdir / "weights.safetensors", stage.trained)
    for name, module in stage.extra_modules().items():
        save_module(sdir / f"{name}.safetensors", module)
    save_optimizers(sdir / "optim.pt", stage.optimizers)
    save_state(sdir, state)

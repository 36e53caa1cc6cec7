"""Context: what every training stage is handed (model, data, device, options, run folder), one per call."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..restore.model import CLRFaceConfig, CLRFaceModel
from .ddp import Dist
from .options import Echo, LossWeights, TrainOptions


@dataclass
class Context:
    """What every stage needs: the model, data, device and the run folder (mutable holder, per call)."""

    run_dir: Path
    data_dir: Path
    cfg: CLRFaceConfig
    model: CLRFaceModel
    device: torch.device
    world: Dist
    options: TrainOptions
    weights: LossWeights
    echo: Echo | None
    identity_net: nn.Module | None = None
    start_step: int = 0  # the step this call resumes from (re-seeds the stage's noise generators)
    preview_split: str = "heldout"  # the faces of the preview grids ('train' when none are held out)

    def stage_dir(self, stage: str) -> Path:
        path = self.run_dir / stage
        path.mkdir(parents=True, exist_ok=True)
        return path

    def identity(self) -> nn.Module:
        if self.identity_net is None:
            from ..faces.identity import load_identity_encoder

            self.identity_net = load_identity_encoder(str(self.device))
        return self.identity_net

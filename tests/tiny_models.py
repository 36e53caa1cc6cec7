"""Tiny stand-ins shared by the model tests (not the components under test)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from clrface_video.restore.model import CLRFaceConfig, CLRFaceModel


class TinyIdentity(nn.Module):
    """Stand-in for faces.identity.IdentityEncoder: (N, 3, S, S) in [0, 1] -> (N, 16) unit vectors."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.fc = nn.Linear(8 * 4 * 4, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.fc(F.adaptive_avg_pool2d(torch.tanh(self.conv(x)), 4).flatten(1)), dim=1)


def randomised_model(cfg: CLRFaceConfig | None = None) -> CLRFaceModel:
    """A CLRFaceModel (tiny by default) seeded with 0, its zero-initialised output layers of the score
    network and the IRN drawn at random so that outputs depend on every module; in eval mode."""
    torch.manual_seed(0)
    model = CLRFaceModel(cfg or CLRFaceConfig.tiny())
    with torch.no_grad():
        model.score_net.conv_out.weight.normal_(std=0.05)
        model.irn.conv_out.weight.normal_(std=0.05)
    return model.eval()


def register_guidance_recorder(name: str) -> list[bool]:
    """Register, under `name`, the classical baseline wrapped to note each batch's `guidance` switch; returns
    the list it appends to (for tests that an option reaches the restorer)."""
    from clrface_video.restore.base import RestoreBatch, register_restorer
    from clrface_video.restore.baseline import BicubicSharpenRestorer

    asked: list[bool] = []

    class Recorder(BicubicSharpenRestorer):
        def restore(self, batch: RestoreBatch) -> np.ndarray:
            asked.append(batch.guidance)
            return super().restore(batch)

    register_restorer(name, "test only")(lambda device, fidelity=0.5, path=None: Recorder())
    return asked

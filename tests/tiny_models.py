"""Tiny stand-ins shared by the model tests (not the components under test)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class TinyIdentity(nn.Module):
    """Stand-in for faces.identity.IdentityEncoder: (N, 3, S, S) in [0, 1] -> (N, 16) unit vectors."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.fc = nn.Linear(8 * 4 * 4, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.fc(F.adaptive_avg_pool2d(torch.tanh(self.conv(x)), 4).flatten(1)), dim=1)

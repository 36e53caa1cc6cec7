"""A classical baseline restorer (edge-preserving denoise plus unsharp mask): no learning, honest about it.

Its registered name, baseline-bicubic-sharpen, is kept for the scripts and reports that use it."""
from __future__ import annotations

import numpy as np
import torch

from ..opencv import cv2
from .base import RestoreBatch, register_restorer


class BicubicSharpenRestorer:
    """Denoise lightly, then sharpen with an unsharp mask; stronger sharpening at low fidelity.

    It is the reference the learned model must beat, never presented as the model.
    """

    name = "baseline-bicubic-sharpen"
    uses_identity = False

    def __init__(self, resolution: int = 128, fidelity: float = 0.5) -> None:
        self.resolution = resolution
        self.amount = 0.4 + 1.2 * (1.0 - fidelity)

    def restore(self, batch: RestoreBatch) -> np.ndarray:
        out = np.empty_like(batch.crops)
        for i, crop in enumerate(batch.crops):
            smooth = cv2.bilateralFilter(crop, 5, 20, 3)
            blur = cv2.GaussianBlur(smooth, (0, 0), 1.5).astype(np.float32)
            sharp = smooth.astype(np.float32) + self.amount * (smooth.astype(np.float32) - blur)
            out[i] = np.clip(sharp + 0.5, 0, 255).astype(np.uint8)
        return out


@register_restorer("baseline-bicubic-sharpen", "classical unsharp-mask baseline, not a learned model")
def _make(device: torch.device, fidelity: float = 0.5, path: str | None = None,
          compile: bool = False) -> BicubicSharpenRestorer:
    """compile is ignored: there is no network to compile."""
    return BicubicSharpenRestorer(fidelity=fidelity)

"""The blend gate: how much of each restored face to keep over its degraded input, learnt per face."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class GateConfig:
    """channels: one stride-2 conv per entry; the result is pooled (mean and log energy) to one share per face.

    init_share: the share an untrained gate gives every face.
    inputs: what the gate looks at. "degraded": the degraded face only, so a face's share does not depend on
    its restoration and --fidelity keeps moving the output toward the input monotonically; "both": the
    degraded face, the restoration and their difference (the first shipped gate).
    """

    channels: tuple[int, ...] = (16, 32, 64, 64)
    init_share: float = 0.75
    inputs: str = "degraded"

    # what files written before a field existed were made with (read by restore.model._from_dict)
    LEGACY: ClassVar[dict[str, object]] = {"inputs": "both"}

    def __post_init__(self) -> None:
        if self.inputs not in ("degraded", "both"):
            raise ValueError(f"gate inputs must be 'degraded' or 'both', got {self.inputs!r}")

    @classmethod
    def tiny(cls) -> GateConfig:
        return cls(channels=(4, 8))


class BlendGate(nn.Module):
    """(degraded, restored) faces, (N, 3, R, R) in [-1, 1] -> (N,) share w in [0, 1] of the restoration to keep
    (restored is not looked at when cfg.inputs is "degraded").

    The output is lq + w (restored - lq). The gate is a small product addition on top of the method,
    trained after it (train --stage gate) toward each training face's best share (best_share): a face
    that is already clean gets w near 0, so a small model's softer face does not replace a sharper input.
    """

    def __init__(self, cfg: GateConfig) -> None:
        super().__init__()
        self.cfg = cfg
        layers: list[nn.Module] = []
        ch = 3 if cfg.inputs == "degraded" else 9  # lq; or lq, restored and their difference
        for out_ch in cfg.channels:
            layers += [nn.Conv2d(ch, out_ch, 3, stride=2, padding=1), nn.SiLU()]
            ch = out_ch
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(2 * ch, 1)
        nn.init.zeros_(self.head.weight)
        share = min(max(cfg.init_share, 1e-3), 1 - 1e-3)
        nn.init.constant_(self.head.bias, float(torch.logit(torch.tensor(share))))

    def logits(self, lq: torch.Tensor, restored: torch.Tensor | None) -> torch.Tensor:
        """(N,) log-odds of the share for the faces as given, one view (what the gate stage trains)."""
        x = lq if self.cfg.inputs == "degraded" else torch.cat([lq, restored, restored - lq], dim=1)
        h = self.features(x).float()
        # mean and log energy per channel: noise and detail levels span decades, which a log keeps in scale
        pooled = torch.cat([h.mean(dim=(2, 3)), torch.log(h.pow(2).mean(dim=(2, 3)) + 1e-4)], dim=1)
        return self.head(pooled.to(self.head.weight.dtype)).squeeze(1)

    def forward(self, lq: torch.Tensor, restored: torch.Tensor | None) -> torch.Tensor:
        """(N,) share: the log-odds averaged over the face's VIEWS (mirrored, shifted by a pixel), so a
        face gets the same share whichever way round it is and wherever its crop falls to the pixel."""
        views = [self.logits(view(lq, flip, dx, dy), None if restored is None else view(restored, flip, dx, dy))
                 for flip, dx, dy in VIEWS]
        return torch.sigmoid(torch.stack(views).mean(dim=0))


# The views a share is averaged over: the face and its mirror image, each as aligned and moved by one pixel
# right, down, and both. One trained view alone changes its share by 0.1-0.2 between a face and its mirror
# image or a one-pixel shift of the crop (benchmarks/gate_share.py), as much as from frame to frame.
VIEWS = tuple((flip, dx, dy) for flip in (False, True) for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)))


def view(x: torch.Tensor, flip: bool, dx: int, dy: int) -> torch.Tensor:
    """(N, C, H, W) mirrored left-right when flip, then moved dx pixels right and dy down (edges repeated)."""
    if flip:
        x = x.flip(3)
    if dx or dy:
        h, w = x.shape[2:]
        x = F.pad(x, (dx, 0, dy, 0), mode="replicate")[:, :, :h, :w]
    return x


def blend(lq: torch.Tensor, restored: torch.Tensor, share: torch.Tensor) -> torch.Tensor:
    """lq + share (restored - lq), share (N,) per face."""
    return lq + share.to(lq.dtype).view(-1, 1, 1, 1) * (restored - lq)


def best_share(lq: torch.Tensor, restored: torch.Tensor, hq: torch.Tensor) -> torch.Tensor:
    """(N,) the share in [0, 1] whose blend is closest to the clean face hq (least squares, per face)."""
    step, want = (restored - lq).float().flatten(1), (hq - lq).float().flatten(1)
    return ((step * want).sum(1) / step.pow(2).sum(1).clamp_min(1e-8)).clamp(0.0, 1.0)


def gate_loss(logits: torch.Tensor, lq: torch.Tensor, restored: torch.Tensor, hq: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the gate's share against each face's best share (best_share): the gradient does
    not vanish where the share saturates, as it would training the blend's error directly."""
    return F.binary_cross_entropy_with_logits(logits.float(), best_share(lq, restored, hq))


def blend_log_mse(lq: torch.Tensor, restored: torch.Tensor, share: torch.Tensor, hq: torch.Tensor) -> torch.Tensor:
    """Mean over faces of log10 MSE of the blend against the clean face, in [-1, 1] units (for the logs)."""
    mse = F.mse_loss(blend(lq.float(), restored.float(), share.float()), hq.float(), reduction="none").mean(dim=(1, 2, 3))
    return torch.log10(mse + 1e-5).mean()

"""Latent smoothing along a track: an exponential moving average of each track's final latent, frame to frame."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class TrackMemory:
    """One video's smoothing state: the last smoothed latent of every track seen so far.

    strength a in [0, 1): s_t = a * s_(t-1) + (1 - a) * z_t, starting from a track's first latent;
    0 leaves latents unchanged. Faces of one track must reach smooth() in frame order, within a
    batch and from batch to batch (the pipeline restores them in that order). A face that moves or
    talks is averaged with its previous frames too: keep a small (0.3-0.6) for such footage.
    """

    strength: float
    latents: dict[int, torch.Tensor] = field(default_factory=dict)  # most recently updated last
    max_tracks: int = 256  # tracks kept; the least recently seen is forgotten (a track that comes back restarts)

    def __post_init__(self) -> None:
        if not 0.0 <= self.strength < 1.0:
            raise ValueError(f"smoothing strength must be in [0, 1), got {self.strength}")

    def smooth(self, z: torch.Tensor, tracks: np.ndarray) -> torch.Tensor:
        """(N, C, H, W) latents of faces with track ids (N,) -> smoothed latents; updates the state."""
        if self.strength == 0.0 or len(z) == 0:
            return z
        a, out = self.strength, z.clone()
        for track in np.unique(tracks):
            index = torch.from_numpy(np.flatnonzero(tracks == track)).to(z.device)
            seq = z.index_select(0, index).float()  # (k, C, H, W), this track's faces in frame order
            k = len(seq)
            j = torch.arange(k, device=z.device, dtype=torch.float32)
            lag = j[:, None] - j[None, :]
            # s_j = a^(j+1) s_prev + sum_{i<=j} (1 - a) a^(j-i) z_i: the recursion unrolled as one matmul
            weights = torch.where(lag >= 0, (1.0 - a) * a ** lag.clamp(min=0), torch.zeros_like(lag))
            previous = self.latents.get(int(track))
            start = seq[0] if previous is None else previous
            smoothed = torch.einsum("ji,i...->j...", weights, seq) + (a ** (j + 1)).view(-1, 1, 1, 1) * start
            out.index_copy_(0, index, smoothed.to(z.dtype))
            self.latents.pop(int(track), None)
            self.latents[int(track)] = smoothed[-1]
        while len(self.latents) > self.max_tracks:
            self.latents.pop(next(iter(self.latents)))
        return out

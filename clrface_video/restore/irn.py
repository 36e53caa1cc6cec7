"""The Identity Recovery Network: a small image-to-image UNet, LQ face -> identity-recovered estimate."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .vqgan import Downsample, ResBlock, Upsample, group_norm


@dataclass(frozen=True)
class IRNConfig:
    """channel_mult: one UNet level per entry (len - 1 downsamplings); the resolution must divide by
    2 ** (len - 1)."""

    in_channels: int = 3
    base_channels: int = 32
    channel_mult: tuple[int, ...] = (1, 2, 4)
    num_res_blocks: int = 1

    @classmethod
    def small_128(cls) -> IRNConfig:
        """About 1M parameters; 128 px faces."""
        return cls(base_channels=24, channel_mult=(1, 2, 3, 4), num_res_blocks=1)

    @classmethod
    def tiny(cls) -> IRNConfig:
        return cls(base_channels=8, channel_mult=(1, 2), num_res_blocks=1)


class IRN(nn.Module):
    """x_irn = x_lq + UNet(x_lq): (N, 3, R, R) in [-1, 1] -> (N, 3, R, R) (not clamped).

    The last conv starts at zero, so an untrained IRN is the identity map.
    """

    def __init__(self, cfg: IRNConfig) -> None:
        super().__init__()
        self.cfg = cfg
        chs = [cfg.base_channels * m for m in cfg.channel_mult]
        self.conv_in = nn.Conv2d(cfg.in_channels, chs[0], 3, padding=1)
        self.enc = nn.ModuleList()
        self.dec = nn.ModuleList()
        ch = chs[0]
        for out_ch in chs:
            blocks = [ResBlock(ch, out_ch)] + [ResBlock(out_ch, out_ch) for _ in range(cfg.num_res_blocks - 1)]
            self.enc.append(nn.Sequential(*blocks))
            ch = out_ch
        self.downs = nn.ModuleList(Downsample(c) for c in chs[:-1])
        self.mid = ResBlock(ch, ch)
        for level in reversed(range(len(chs))):
            self.dec.append(ResBlock(ch + chs[level], chs[level]))
            ch = chs[level]
        self.ups = nn.ModuleList(Upsample(c) for c in reversed(chs[1:]))
        self.norm_out = group_norm(ch)
        self.conv_out = nn.Conv2d(ch, cfg.in_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        skips = []
        for level, block in enumerate(self.enc):
            h = block(h)
            skips.append(h)
            if level < len(self.downs):
                h = self.downs[level](h)
        h = self.mid(h)
        for i, block in enumerate(self.dec):
            h = block(torch.cat([h, skips.pop()], dim=1))
            if i < len(self.ups):
                h = self.ups[i](h)
        return x + self.conv_out(F.silu(self.norm_out(h)))

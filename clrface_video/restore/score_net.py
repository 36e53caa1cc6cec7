"""A small conditional UNet over VQGAN latents: s(z_t, z_d, sigma), the network inside the denoiser."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .vqgan import Downsample, ResBlock, Upsample, group_norm


@dataclass(frozen=True)
class ScoreNetConfig:
    """latent_channels: C of the VQGAN latent (z_t and z_d each have C channels; the net sees 2C).
    channel_mult: one UNet level per entry (len - 1 downsamplings); attention at the lowest level.
    emb_dim: width of the noise embedding that FiLM-modulates every block.
    """

    latent_channels: int = 4
    base_channels: int = 64
    channel_mult: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 1
    emb_dim: int = 128
    attention: bool = True
    dropout: float = 0.0

    @classmethod
    def small_128(cls) -> ScoreNetConfig:
        """About 2M parameters over 4 x 32 x 32 latents."""
        return cls(latent_channels=4, base_channels=48, channel_mult=(1, 2, 2), num_res_blocks=1, emb_dim=128)

    @classmethod
    def tiny(cls) -> ScoreNetConfig:
        return cls(latent_channels=4, base_channels=8, channel_mult=(1, 2), num_res_blocks=1, emb_dim=16)


class FourierEmbedding(nn.Module):
    """Sinusoidal embedding of c_noise = log(sigma) / 4 (EDM), then a 2-layer MLP: (N,) -> (N, dim)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        half = dim // 2
        self.register_buffer("freqs", torch.exp(-math.log(1000.0) * torch.arange(half) / half), persistent=False)
        self.mlp = nn.Sequential(nn.Linear(2 * half, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, sigma: torch.Tensor) -> torch.Tensor:
        c_noise = sigma.float().log() / 4.0
        angles = 100.0 * c_noise[:, None] * self.freqs[None]
        emb = torch.cat([angles.cos(), angles.sin()], dim=1)
        return self.mlp(emb.to(self.mlp[0].weight.dtype))


class SelfAttention(nn.Module):
    """Single-head spatial self-attention with a residual: (N, C, H, W) -> (N, C, H, W)."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.norm = group_norm(ch)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj = nn.Conv2d(ch, ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3, c, h * w).transpose(-1, -2).unbind(1)
        out = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]
        return x + self.proj(out.transpose(-1, -2).reshape(n, c, h, w))


class ScoreNet(nn.Module):
    """UNet predicting the EDM network output F(c_in z_t; z_d, sigma).

    forward(z_t: (N, C, h, w), z_d: (N, C, h, w), sigma: (N,) or scalar) -> (N, C, h, w).
    z_d (the degraded face's latent) is concatenated to z_t along channels; sigma enters through a
    sinusoidal embedding of log(sigma) that FiLM-modulates every residual block.
    h and w must be divisible by 2 ** (len(channel_mult) - 1).
    """

    def __init__(self, cfg: ScoreNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        chs = [cfg.base_channels * m for m in cfg.channel_mult]
        e = cfg.emb_dim
        self.embed = FourierEmbedding(e)
        self.conv_in = nn.Conv2d(2 * cfg.latent_channels, chs[0], 3, padding=1)
        self.down = nn.ModuleList()
        skips = [chs[0]]
        ch = chs[0]
        for level, out_ch in enumerate(chs):
            for _ in range(cfg.num_res_blocks):
                self.down.append(ResBlock(ch, out_ch, e, cfg.dropout))
                ch = out_ch
                skips.append(ch)
            if level < len(chs) - 1:
                self.down.append(Downsample(ch))
                skips.append(ch)
        self.mid1 = ResBlock(ch, ch, e, cfg.dropout)
        self.attn = SelfAttention(ch) if cfg.attention else nn.Identity()
        self.mid2 = ResBlock(ch, ch, e, cfg.dropout)
        self.up = nn.ModuleList()
        for level, out_ch in reversed(list(enumerate(chs))):
            for _ in range(cfg.num_res_blocks + 1):
                self.up.append(ResBlock(ch + skips.pop(), out_ch, e, cfg.dropout))
                ch = out_ch
            if level > 0:
                self.up.append(Upsample(ch))
        self.norm_out = group_norm(ch)
        self.conv_out = nn.Conv2d(ch, cfg.latent_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, z_t: torch.Tensor, z_d: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        sigma = torch.as_tensor(sigma, device=z_t.device).reshape(-1).expand(z_t.shape[0])
        emb = self.embed(sigma)
        h = self.conv_in(torch.cat([z_t, z_d.to(z_t.dtype)], dim=1))
        hs = [h]
        for block in self.down:
            h = block(h, emb) if isinstance(block, ResBlock) else block(h)
            hs.append(h)
        h = self.mid2(self.attn(self.mid1(h, emb)), emb)
        for block in self.up:
            if isinstance(block, ResBlock):
                h = block(torch.cat([h, hs.pop()], dim=1), emb)
            else:
                h = block(h)
        return self.conv_out(F.silu(self.norm_out(h)))

"""A plain VQGAN autoencoder (encoder, l2-normalised codebook, decoder) and the conv blocks it shares."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with 8 groups when the channels allow it, else one group per channel count divisor."""
    groups = 8 if channels % 8 == 0 else (4 if channels % 4 == 0 else 1)
    return nn.GroupNorm(groups, channels, eps=1e-6)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice with a skip; with emb_dim > 0 the second norm is FiLM/AdaGN-modulated.

    forward(x: (N, Cin, H, W), emb: (N, emb_dim) or None) -> (N, Cout, H, W)
    """

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int = 0, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = group_norm(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.norm2 = group_norm(out_ch)
        self.emb = nn.Linear(emb_dim, 2 * out_ch) if emb_dim > 0 else None
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.norm2(h)
        if self.emb is not None and emb is not None:
            scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
            h = h * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class Downsample(nn.Module):
    """Stride-2 3x3 conv: (N, C, H, W) -> (N, C, H/2, W/2)."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


# Which of a 3x3 kernel's rows (columns) fall on each input row (column) of a stride-2 4x4 transposed conv:
# after a nearest x2, an even output row's window reads input rows i-1, i, i (kernel row 0 on i-1, rows 1 and 2
# on i), an odd one's i, i, i+1 (rows 0 and 1 on i, row 2 on i+1); tap u of the transposed kernel is the sum of
# the kernel rows marked in row u.
UPSAMPLE_TAPS = ((0, 0, 1), (0, 1, 1), (1, 1, 0), (1, 0, 0))


class Upsample(nn.Module):
    """Nearest x2 then 3x3 conv: (N, C, H, W) -> (N, C, 2H, 2W).

    Run as the stride-2 4x4 transposed conv it equals (weights summed by UPSAMPLE_TAPS; the same function up to
    float rounding, and the same parameters): a 3x3 conv over the doubled picture makes 9 multiply-adds an output
    pixel and channel where the 2 x 2 input pixels its window covers need 4, 2.25x the work. The shipped
    decoder's two were a third of its own (1.36 of 4.18 GFLOP a face by torch.utils.flop_counter), and the
    identity guidance runs the decoder forward and back at every solver step.
    """

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.conv.weight  # summed in float32 at least (a half-precision model's too), float64 kept
        taps = torch.tensor(UPSAMPLE_TAPS, dtype=torch.promote_types(weight.dtype, torch.float32), device=x.device)
        kernel = torch.einsum("ua,oiab,vb->iouv", taps, weight.to(taps.dtype), taps)
        return F.conv_transpose2d(x, kernel.to(x.dtype), self.conv.bias, stride=2, padding=1)


@dataclass(frozen=True)
class VQGANConfig:
    """Shape of the autoencoder. Downsampling factor f = 2 ** (len(channel_mult) - 1).

    The latent is (latent_channels, resolution / f, resolution / f); every latent vector is
    l2-normalised, and so are the codebook_size codes it is quantised against (cosine lookup).
    beta weighs the commitment loss.
    """

    resolution: int = 128
    in_channels: int = 3
    base_channels: int = 32
    channel_mult: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 1
    latent_channels: int = 4
    codebook_size: int = 512
    beta: float = 0.25

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.channel_mult) - 1)

    @property
    def latent_resolution(self) -> int:
        return self.resolution // self.downsample_factor

    @classmethod
    def small_128(cls) -> VQGANConfig:
        """The shipped model: 128 px faces -> 4 x 32 x 32 latents (f = 4), 512 codes; trainable on a CPU."""
        return cls(resolution=128, base_channels=24, channel_mult=(1, 2, 4), num_res_blocks=1,
                   latent_channels=4, codebook_size=512)

    @classmethod
    def base_256(cls) -> VQGANConfig:
        """256 px faces -> 8 x 64 x 64 latents (f = 4), 1024 codes; for users with larger data and GPUs."""
        return cls(resolution=256, base_channels=64, channel_mult=(1, 2, 2), num_res_blocks=2,
                   latent_channels=8, codebook_size=1024)

    @classmethod
    def base_512(cls) -> VQGANConfig:
        """512 px faces (FFHQ) -> 8 x 64 x 64 latents (f = 8), 1024 codes."""
        return cls(resolution=512, base_channels=64, channel_mult=(1, 2, 2, 4), num_res_blocks=2,
                   latent_channels=8, codebook_size=1024)

    @classmethod
    def tiny(cls) -> VQGANConfig:
        """For tests: 32 px -> 4 x 8 x 8, a few thousand parameters."""
        return cls(resolution=32, base_channels=8, channel_mult=(1, 2, 2), num_res_blocks=1,
                   latent_channels=4, codebook_size=16)


@dataclass(frozen=True)
class VQOutput:
    """Result of quantisation.

    z_q: (N, C, h, w) quantised latent with straight-through gradient to the input latent.
    indices: (N, h, w) int64 code indices.
    codebook_loss: scalar, ||sg(z) - e||^2 (moves the codes).
    commitment_loss: scalar, beta * ||z - sg(e)||^2 (moves the encoder).
    """

    z_q: torch.Tensor
    indices: torch.Tensor
    codebook_loss: torch.Tensor
    commitment_loss: torch.Tensor


class Encoder(nn.Module):
    """(N, 3, R, R) -> (N, C, R/f, R/f), unnormalised."""

    def __init__(self, cfg: VQGANConfig) -> None:
        super().__init__()
        chs = [cfg.base_channels * m for m in cfg.channel_mult]
        self.conv_in = nn.Conv2d(cfg.in_channels, chs[0], 3, padding=1)
        layers: list[nn.Module] = []
        ch = chs[0]
        for level, out_ch in enumerate(chs):
            for _ in range(cfg.num_res_blocks):
                layers.append(ResBlock(ch, out_ch))
                ch = out_ch
            if level < len(chs) - 1:
                layers.append(Downsample(ch))
        layers.append(ResBlock(ch, ch))
        self.body = nn.Sequential(*layers)
        self.norm_out = group_norm(ch)
        self.conv_out = nn.Conv2d(ch, cfg.latent_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_out(F.silu(self.norm_out(self.body(self.conv_in(x)))))


class Decoder(nn.Module):
    """(N, C, R/f, R/f) -> (N, 3, R, R) in roughly [-1, 1] (not clamped)."""

    def __init__(self, cfg: VQGANConfig) -> None:
        super().__init__()
        chs = [cfg.base_channels * m for m in cfg.channel_mult][::-1]
        ch = chs[0]
        self.conv_in = nn.Conv2d(cfg.latent_channels, ch, 3, padding=1)
        layers: list[nn.Module] = [ResBlock(ch, ch)]
        for level, out_ch in enumerate(chs):
            for _ in range(cfg.num_res_blocks + 1):
                layers.append(ResBlock(ch, out_ch))
                ch = out_ch
            if level < len(chs) - 1:
                layers.append(Upsample(ch))
        self.body = nn.Sequential(*layers)
        self.norm_out = group_norm(ch)
        self.conv_out = nn.Conv2d(ch, cfg.in_channels, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.conv_out(F.silu(self.norm_out(self.body(self.conv_in(z)))))


class VQGAN(nn.Module):
    """Encoder, l2-normalised codebook and decoder. Images are (N, 3, R, R) in [-1, 1].

    The codes live on the unit sphere, like the latents, which keeps the lookup stable (no
    dead-code explosion from scale drift) and gives latents a known scale (elements ~ 1/sqrt(C))
    for the diffusion prior.
    """

    def __init__(self, cfg: VQGANConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.codebook = nn.Embedding(cfg.codebook_size, cfg.latent_channels)
        nn.init.normal_(self.codebook.weight)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, R, R) in [-1, 1] -> pre-quantisation latent z (N, C, R/f, R/f), unit norm along C."""
        return F.normalize(self.encoder(x), dim=1)

    def codes(self) -> torch.Tensor:
        """(K, C) l2-normalised codebook."""
        return F.normalize(self.codebook.weight, dim=1)

    def quantize(self, z: torch.Tensor) -> VQOutput:
        """Nearest code by cosine similarity; straight-through gradient (dz_q/dz = identity)."""
        zn = F.normalize(z, dim=1)
        n, c, h, w = z.shape
        flat = zn.permute(0, 2, 3, 1).reshape(-1, c)
        codes = self.codes().to(flat.dtype)
        indices = (flat @ codes.t()).argmax(dim=1)
        q = codes[indices].view(n, h, w, c).permute(0, 3, 1, 2)
        codebook_loss = F.mse_loss(q, zn.detach())
        commitment_loss = self.cfg.beta * F.mse_loss(zn, q.detach())
        z_q = z + (q - z).detach()
        return VQOutput(z_q=z_q, indices=indices.view(n, h, w), codebook_loss=codebook_loss,
                        commitment_loss=commitment_loss)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """(N, h, w) int64 -> (N, C, h, w) codes."""
        return self.codes()[indices].permute(0, 3, 1, 2)

    def decode(self, z_q: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) latent -> (N, 3, R, R) image in roughly [-1, 1]."""
        return self.decoder(z_q)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, VQOutput]:
        """Reconstruct x through the codebook: (recon (N, 3, R, R), VQOutput)."""
        vq = self.quantize(self.encode(x))
        return self.decode(vq.z_q), vq

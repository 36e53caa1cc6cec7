"""Training losses that work offline: L1, PatchGAN hinge + feature matching, codebook/commitment, identity."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ..restore.guidance import embed_images
from ..restore.guidance import identity_loss as per_face_identity_loss


@dataclass(frozen=True)
class DiscriminatorConfig:
    """A PatchGAN (Isola et al. 2017) with spectral norm (Miyato et al. 2018): n_layers stride-2 convs."""

    in_channels: int = 3
    base_channels: int = 32
    n_layers: int = 3
    max_channels: int = 256


class PatchDiscriminator(nn.Module):
    """(N, 3, R, R) in [-1, 1] -> (logits (N, 1, R/2^n, R/2^n), features: list of intermediate maps)."""

    def __init__(self, cfg: DiscriminatorConfig = DiscriminatorConfig()) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        ch_in, ch = cfg.in_channels, cfg.base_channels
        for _ in range(cfg.n_layers):
            layers.append(spectral_norm(nn.Conv2d(ch_in, ch, 4, stride=2, padding=1)))
            ch_in, ch = ch, min(ch * 2, cfg.max_channels)
        layers.append(spectral_norm(nn.Conv2d(ch_in, ch_in, 3, padding=1)))
        self.layers = nn.ModuleList(layers)
        self.head = spectral_norm(nn.Conv2d(ch_in, 1, 3, padding=1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        features = []
        for layer in self.layers:
            x = F.leaky_relu(layer(x), 0.2)
            features.append(x)
        return self.head(x), features


def hinge_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator hinge loss: E[relu(1 - D(real))] + E[relu(1 + D(fake))]."""
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


def hinge_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator hinge loss: -E[D(fake)]."""
    return -fake_logits.mean()


def feature_matching_loss(real_features: list[torch.Tensor], fake_features: list[torch.Tensor]) -> torch.Tensor:
    """Mean L1 between the discriminator features of real (held fixed) and fake images, over layers."""
    losses = [F.l1_loss(fake, real.detach()) for real, fake in zip(real_features, fake_features)]
    return torch.stack(losses).mean()


def pixel_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(output.float(), target.float())


def codebook_loss(vq: object) -> torch.Tensor:
    """codebook + commitment terms of a VQOutput (the commitment term already carries beta)."""
    return vq.codebook_loss + vq.commitment_loss  # type: ignore[attr-defined]


def identity_loss(encoder: nn.Module, output: torch.Tensor, target: torch.Tensor | None = None, *,
                  target_embedding: torch.Tensor | None = None) -> torch.Tensor:
    """Mean 1 - cos(E(output), E(target)) over the batch (the guidance's per-face loss); the target side carries
    no gradient."""
    if target_embedding is None:
        if target is None:
            raise ValueError("identity_loss needs a target image or a target embedding")
        with torch.no_grad():
            target_embedding = embed_images(encoder, target)
    return per_face_identity_loss(embed_images(encoder, output), target_embedding.detach()).mean()


def mask_sparsity(mask_logits: torch.Tensor) -> torch.Tensor:
    """Mean of sigmoid(logits): the share of the latent the guidance may touch (L1 of the soft mask)."""
    return torch.sigmoid(mask_logits).mean()

"""Identity guidance: the latent mask gates the gradient, the loss pulls toward the target, inference mode is fine."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from clrface_video.restore.guidance import LatentMask, embed_images, identity_guidance, identity_loss
from clrface_video.restore.vqgan import VQGAN, VQGANConfig
from tests.tiny_models import TinyIdentity


def _setup() -> tuple[VQGAN, TinyIdentity, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    vq = VQGAN(VQGANConfig.tiny()).requires_grad_(False)
    ident = TinyIdentity().requires_grad_(False)
    z = F.normalize(torch.randn(2, 4, 8, 8), dim=1)
    target = F.normalize(torch.randn(2, 16), dim=1)
    return vq, ident, z, target


def test_zero_mask_gives_zero_guidance() -> None:
    vq, ident, z, target = _setup()
    g = identity_guidance(vq.decode, ident, target, torch.zeros(1, 4, 8, 8), 1.0)(z, z, torch.full((2,), 0.5))
    assert g.shape == z.shape and torch.count_nonzero(g) == 0


def test_gradient_only_where_mask_is_nonzero() -> None:
    vq, ident, z, target = _setup()
    mask = torch.zeros(1, 4, 8, 8)
    mask[:, 1:3, 2:6, 1:5] = torch.rand(1, 2, 4, 4) + 0.1
    g = identity_guidance(vq.decode, ident, target, mask, 1.0)(z, z, torch.full((2,), 0.5))
    inside = (mask > 0).expand_as(g)
    assert torch.count_nonzero(g[~inside]) == 0
    assert (g[inside] != 0).float().mean() > 0.9


def test_latent_mask_minus_infinity_blocks_channels() -> None:
    vq, ident, z, target = _setup()
    mask = LatentMask(4, 8, factored=True)
    with torch.no_grad():
        mask.channel_logits[:, :2] = float("-inf")
    m = mask()
    assert torch.count_nonzero(m[:, :2]) == 0 and (m[:, 2:] > 0).all()
    g = identity_guidance(vq.decode, ident, target, m, 1.0)(z, z, torch.full((2,), 0.5))
    assert torch.count_nonzero(g[:, :2]) == 0 and torch.count_nonzero(g[:, 2:]) > 0


def test_guidance_step_lowers_identity_loss_and_scales_with_weight() -> None:
    vq, ident, z, target = _setup()
    sigma = torch.full((2,), 0.5)
    ones = torch.ones(1, 4, 8, 8)
    loss = lambda latent: identity_loss(embed_images(ident, vq.decode(latent)), target)
    g1 = identity_guidance(vq.decode, ident, target, ones, 0.01)(z, z, sigma)
    g2 = identity_guidance(vq.decode, ident, target, ones, 0.02)(z, z, sigma)
    assert torch.allclose(g2, 2 * g1, rtol=1e-4, atol=1e-9)
    stepped = z + sigma.view(-1, 1, 1, 1) ** 2 * g1  # what the samplers do with the score term
    assert (loss(stepped) < loss(z)).all()
    # the denoised shift has RMS equal to the weight, whatever sigma
    shift = sigma.view(-1, 1, 1, 1) ** 2 * g1
    assert torch.allclose(shift.pow(2).flatten(1).mean(1).sqrt(), torch.full((2,), 0.01), rtol=1e-3)


def test_per_sample_weight_and_inference_mode() -> None:
    vq, ident, z, target = _setup()
    with torch.inference_mode():
        hook = identity_guidance(vq.decode, ident, target, torch.ones(1, 4, 8, 8), torch.tensor([0.0, 0.05]))
        g = hook(z.clone(), z.clone(), torch.full((2,), 1.0))
    assert torch.count_nonzero(g[0]) == 0 and torch.count_nonzero(g[1]) > 0


def test_embed_images_resizes_and_maps_to_unit_range() -> None:
    seen: list[torch.Tensor] = []

    class Probe(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(x)
            return F.normalize(x.flatten(1)[:, :4] + 1e-3, dim=1)

    emb = embed_images(Probe(), torch.full((2, 3, 32, 32), -1.0), size=16)
    assert seen[0].shape == (2, 3, 16, 16) and seen[0].max() == 0 and emb.shape == (2, 4)

"""CLR-Face modules on tiny configurations: shapes, gradients, straight-through quantisation, presets."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from clrface_video.restore.denoiser import Denoiser
from clrface_video.restore.guidance import LatentMask
from clrface_video.restore.irn import IRN, IRNConfig
from clrface_video.restore.model import CLRFaceConfig, CLRFaceModel
from clrface_video.restore.score_net import ScoreNet, ScoreNetConfig
from clrface_video.restore.vqgan import VQGAN, Upsample, VQGANConfig

torch.manual_seed(0)


def _grads_everywhere(module: torch.nn.Module) -> None:
    for name, p in module.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), f"no finite gradient for {name}"


def test_vqgan_shapes_and_gradients() -> None:
    cfg = VQGANConfig.tiny()
    vq = VQGAN(cfg)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    z = vq.encode(x)
    assert z.shape == (2, cfg.latent_channels, 32 // cfg.downsample_factor, 32 // cfg.downsample_factor)
    assert torch.allclose(z.norm(dim=1), torch.ones(2, 8, 8), atol=1e-5)
    recon, out = vq(x)
    assert recon.shape == x.shape and out.indices.shape == (2, 8, 8) and out.indices.dtype == torch.int64
    ((recon - x).abs().mean() + out.codebook_loss + out.commitment_loss).backward()
    _grads_everywhere(vq)


@pytest.mark.parametrize("size", [(8, 8), (5, 7)])
def test_upsample_is_nearest_then_conv_with_fewer_multiply_adds(size: tuple[int, int]) -> None:
    """The decoder's upsampling, run at every guided solver step, computes what its parameters mean (nearest x2,
    then their 3x3 conv: values and every gradient, up to float rounding) in under half the multiply-adds."""
    up = Upsample(8)
    x = torch.randn(2, 8, *size, requires_grad=True)
    params = (x, up.conv.weight, up.conv.bias)
    meant = up.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
    with FlopCounterMode(display=False) as counter:
        out = up(x)
    assert out.shape == meant.shape == (2, 8, 2 * size[0], 2 * size[1])
    assert torch.allclose(out, meant, atol=1e-5)
    for got, want in zip(torch.autograd.grad(out.square().sum(), params),
                         torch.autograd.grad(meant.square().sum(), params), strict=True):
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-4)
    over_doubled = 2 * 2 * 8 * 8 * 9 * (2 * size[0]) * (2 * size[1])  # 2 flops a multiply-add
    assert counter.get_total_flops() <= 0.5 * over_doubled


def test_upsample_keeps_a_float64_models_precision() -> None:
    """The transposed kernel was summed in float32 whatever the model's dtype: a float64 model (gradcheck's) came
    out 7.8e-8 off nearest x2 + conv, float32's rounding."""
    up = Upsample(8).double()
    x = torch.randn(2, 8, 5, 7, dtype=torch.float64)
    meant = up.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
    assert up(x).dtype == torch.float64
    assert torch.allclose(up(x), meant, rtol=0, atol=1e-12)


def test_quantize_is_nearest_code_with_straight_through_gradient() -> None:
    vq = VQGAN(VQGANConfig.tiny())
    z = torch.nn.functional.normalize(torch.randn(2, 4, 8, 8), dim=1).requires_grad_(True)
    out = vq.quantize(z)
    codes = vq.codes()
    sims = torch.einsum("nchw,kc->nkhw", z.detach(), codes)
    assert torch.equal(out.indices, sims.argmax(dim=1))
    assert torch.allclose(out.z_q.detach(), vq.lookup(out.indices), atol=1e-6)
    weights = torch.randn_like(z)
    (out.z_q * weights).sum().backward()
    assert torch.allclose(z.grad, weights)  # straight-through: dz_q/dz = identity
    again = vq.quantize(out.z_q.detach())
    assert torch.equal(again.indices, out.indices)  # codes quantise to themselves


def test_codebook_and_commitment_losses_move_their_own_side() -> None:
    vq = VQGAN(VQGANConfig.tiny())
    z = torch.nn.functional.normalize(torch.randn(2, 4, 8, 8), dim=1).requires_grad_(True)
    out = vq.quantize(z)
    out.codebook_loss.backward(retain_graph=True)
    assert z.grad is None or z.grad.abs().sum() == 0
    assert vq.codebook.weight.grad.abs().sum() > 0
    vq.codebook.weight.grad = None
    out.commitment_loss.backward()
    assert z.grad.abs().sum() > 0 and vq.codebook.weight.grad is None


@pytest.mark.parametrize("preset,res,latent", [("small_128", 128, (4, 32, 32)), ("base_256", 256, (8, 64, 64)),
                                               ("base_512", 512, (8, 64, 64))])
def test_vqgan_presets(preset: str, res: int, latent: tuple[int, int, int]) -> None:
    cfg = getattr(VQGANConfig, preset)()
    assert cfg.resolution == res and (cfg.latent_channels, cfg.latent_resolution, cfg.latent_resolution) == latent
    if preset == "small_128":
        assert cfg.downsample_factor == 4
        with torch.inference_mode():
            assert VQGAN(cfg).encode(torch.zeros(1, 3, 128, 128)).shape == (1, *latent)


def test_score_net_and_denoiser_shapes_gradients_and_loss() -> None:
    cfg = ScoreNetConfig.tiny()
    net = ScoreNet(cfg)
    den = Denoiser(net, sigma_data=0.5)
    x0, zd = torch.randn(3, 4, 8, 8) * 0.5, torch.randn(3, 4, 8, 8) * 0.5
    sigma = torch.tensor([0.05, 1.0, 20.0])
    assert net(x0, zd, sigma).shape == x0.shape
    assert den(x0, sigma, zd).shape == x0.shape
    assert den(x0, 0.7, zd).shape == x0.shape  # scalar sigma broadcast
    # zero-initialised output layer: the untrained denoiser is c_skip * x
    c_skip = 0.25 / (sigma ** 2 + 0.25)
    assert torch.allclose(den(x0, sigma, zd), c_skip.view(-1, 1, 1, 1) * x0, atol=1e-6)
    loss = den.loss(x0, zd, sigma, torch.randn_like(x0))
    assert loss.shape == (3,) and torch.isfinite(loss).all()
    loss.mean().backward()
    assert net.conv_out.weight.grad.abs().sum() > 0
    # after one step away from zero init every parameter receives gradient
    with torch.no_grad():
        net.conv_out.weight.normal_(std=0.1)
    net.zero_grad()
    den.loss(x0, zd, sigma, torch.randn_like(x0)).mean().backward()
    _grads_everywhere(net)


def test_denoiser_loss_is_edm_weighted_error() -> None:
    den = Denoiser(ScoreNet(ScoreNetConfig.tiny()), sigma_data=0.5)
    with torch.no_grad():
        den.inner.conv_out.weight.normal_(std=0.1)
    x0, zd, noise = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    sigma = torch.tensor([0.3, 2.0])
    with torch.no_grad():
        pred = den(x0 + sigma.view(-1, 1, 1, 1) * noise, sigma, zd)
        weight = (sigma ** 2 + 0.25) / (sigma * 0.5) ** 2
        expected = weight * (pred - x0).pow(2).flatten(1).mean(1)
        assert torch.allclose(den.loss(x0, zd, sigma, noise), expected, rtol=1e-4)


def test_irn_is_residual_and_trainable() -> None:
    irn = IRN(IRNConfig.tiny())
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert torch.equal(irn(x), x)  # zero-initialised residual: identity before training
    with torch.no_grad():
        irn.conv_out.weight.normal_(std=0.1)
    y = irn(x)
    assert y.shape == x.shape and not torch.equal(y, x)
    (y - x).pow(2).mean().backward()
    _grads_everywhere(irn)
    small = IRN(IRNConfig.small_128())
    assert 0.5e6 < sum(p.numel() for p in small.parameters()) < 2e6


def test_latent_mask_shapes_and_gradients() -> None:
    for factored in (True, False):
        mask = LatentMask(4, 8, factored=factored)
        m = mask()
        assert m.shape == (1, 4, 8, 8) and torch.allclose(m, torch.full_like(m, 0.5))
        m.sum().backward()
        _grads_everywhere(mask)


def test_model_sizes_fit_cpu_training() -> None:
    model = CLRFaceModel(CLRFaceConfig.small_128())
    count = lambda m: sum(p.numel() for p in m.parameters())
    assert 1e6 <= count(model.score_net) <= 3e6
    assert count(model.vqgan) < 2e6
    tiny = CLRFaceModel(CLRFaceConfig.tiny())
    assert count(tiny) < 200_000


def test_config_rejects_mismatched_latents() -> None:
    with pytest.raises(ValueError, match="latent_channels"):
        CLRFaceConfig(score=ScoreNetConfig(latent_channels=8))

"""Schedules and samplers: grids, truncation, convergence to a known x0, and the guidance hook."""
from __future__ import annotations

import pytest
import torch

from clrface_video.restore.samplers import SAMPLERS, guided_denoise, sample_dpmpp_2m, sample_euler
from clrface_video.restore.schedules import karras_sigmas, sample_sigmas_lognormal, sigma_at, truncate_sigmas


def test_karras_grid() -> None:
    s = karras_sigmas(10, 0.02, 10.0)
    assert s.shape == (11,) and s[-1] == 0
    assert torch.isclose(s[0], torch.tensor(10.0)) and torch.isclose(s[-2], torch.tensor(0.02))
    assert (s[1:] < s[:-1]).all()
    assert karras_sigmas(1, 0.02, 10.0).tolist() == pytest.approx([10.0, 0.0])
    with pytest.raises(ValueError):
        karras_sigmas(0, 0.02, 10.0)


def test_truncate_keeps_the_tail() -> None:
    s = karras_sigmas(10, 0.02, 10.0)
    assert truncate_sigmas(s, 0.0).tolist() == [0.0]
    assert torch.equal(truncate_sigmas(s, 1.0), s)
    assert torch.equal(truncate_sigmas(s, 0.3), s[-4:])
    assert torch.equal(truncate_sigmas(s, 0.25), s[-4:])  # ceil(2.5) = 3 steps
    lengths = [len(truncate_sigmas(s, t / 20)) for t in range(21)]
    assert lengths == sorted(lengths)
    with pytest.raises(ValueError):
        truncate_sigmas(s, 1.5)


def test_sigma_at_and_lognormal() -> None:
    assert sigma_at(0.0, 0.02, 10) == 0.0
    assert sigma_at(1.0, 0.02, 10) == pytest.approx(10.0)
    assert sigma_at(0.3, 0.02, 10) < sigma_at(0.6, 0.02, 10)
    g = torch.Generator().manual_seed(0)
    s = sample_sigmas_lognormal(20000, -1.2, 1.2, generator=g)
    assert (s > 0).all() and s.log().mean().item() == pytest.approx(-1.2, abs=0.05)
    assert s.log().std().item() == pytest.approx(1.2, abs=0.05)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_sampler_converges_to_known_x0(name: str) -> None:
    x0 = torch.randn(2, 4, 8, 8)
    model = lambda x, sigma: x0.expand_as(x)
    sigmas = karras_sigmas(6, 0.02, 10.0)
    x = x0 + sigmas[0] * torch.randn_like(x0)
    seen: list[int] = []
    out = SAMPLERS[name](model, x, sigmas, callback=lambda i, x, s, d: seen.append(i))
    assert torch.allclose(out, x0, atol=1e-5)
    assert seen == list(range(6))


@pytest.mark.parametrize("sampler,order", [(sample_euler, 1), (sample_dpmpp_2m, 2)])
def test_sampler_on_gaussian_data_converges_at_its_order(sampler, order: int) -> None:
    """Data N(mu, s^2): D(x; sigma) is known in closed form and the ODE maps x_T to mu + s (x_T - mu) / sqrt(s^2+T^2).

    Doubling the steps divides the error by about 2 ** order.
    """
    mu, s = 0.3, 0.5
    model = lambda x, sigma: mu + (x - mu) * s**2 / (s**2 + sigma.view(-1, 1, 1, 1) ** 2)
    noise = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    errors = []
    for n in (20, 40, 80):
        sigmas = karras_sigmas(n, 0.002, 5.0)
        x_t = mu + sigmas[0] * noise
        exact = mu + (x_t - mu) * s / torch.sqrt(s**2 + sigmas[0] ** 2)
        errors.append((sampler(model, x_t, sigmas) - exact).abs().max().item())
    assert errors[-1] < 0.03
    assert errors[1] / errors[2] > 0.8 * 2**order and errors[0] / errors[1] > 0.8 * 2**order


def test_dpmpp_2m_beats_euler_at_few_steps() -> None:
    mu, s = 0.3, 0.5
    model = lambda x, sigma: mu + (x - mu) * s**2 / (s**2 + sigma.view(-1, 1, 1, 1) ** 2)
    sigmas = karras_sigmas(5, 0.02, 5.0)
    x_t = mu + sigmas[0] * torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    exact = mu + (x_t - mu) * s / torch.sqrt(s**2 + sigmas[0] ** 2)
    err = lambda f: (f(model, x_t, sigmas) - exact).abs().max().item()
    assert err(sample_dpmpp_2m) < err(sample_euler)


def test_guidance_is_added_to_the_score() -> None:
    x = torch.randn(2, 4, 8, 8)
    d = torch.randn(2, 4, 8, 8)
    g = torch.randn(2, 4, 8, 8)
    sigma = torch.tensor(0.7)
    out = guided_denoise(lambda x, s: d, x, sigma, lambda x_, d_, s_: g)
    score_plain = (d - x) / sigma**2
    score_guided = (out - x) / sigma**2
    assert torch.allclose(score_guided, score_plain + g, atol=1e-5)


def test_guidance_moves_samples_and_zero_guidance_does_not() -> None:
    x0 = torch.zeros(1, 4, 8, 8)
    model = lambda x, sigma: x0.expand_as(x)
    sigmas = karras_sigmas(4, 0.02, 1.0)
    x = torch.randn(1, 4, 8, 8)
    plain = sample_dpmpp_2m(model, x, sigmas)
    zero = sample_dpmpp_2m(model, x, sigmas, guidance=lambda x, d, s: torch.zeros_like(x))
    pushed = sample_dpmpp_2m(model, x, sigmas, guidance=lambda x, d, s: 0.1 / s.view(-1, 1, 1, 1) ** 2 * torch.ones_like(x))
    assert torch.equal(plain, zero)
    assert (pushed - plain).mean() > 0.05


def test_empty_grid_returns_start() -> None:
    x = torch.randn(1, 4, 8, 8)
    for sampler in SAMPLERS.values():
        assert torch.equal(sampler(lambda x, s: x * 0, x, torch.zeros(1)), x)

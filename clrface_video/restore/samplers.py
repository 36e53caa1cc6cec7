"""ODE samplers as short pure functions over one contract: denoiser(x, sigma) -> x0 estimate.

Every sampler takes the denoiser, a start tensor x (already noised to sigmas[0]), a decreasing sigma
grid ending in 0 (schedules.karras_sigmas / truncate_sigmas), an optional
callback(i, x, sigma, denoised) and an optional guidance(x, denoised, sigma) -> g, a term added to the
score grad log p(x) before the solver step. Since score = (denoised - x) / sigma^2, adding g to the
score is adding sigma^2 g to the denoised estimate, which is what the solvers consume.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Guidance = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
Callback = Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], None]
Sampler = Callable[..., torch.Tensor]  # (denoiser, x, sigmas, *, callback=None, guidance=None) -> x at sigma 0


def guided_denoise(model: Denoiser, x: torch.Tensor, sigma: torch.Tensor,
                   guidance: Guidance | None = None) -> torch.Tensor:
    """model(x, sigma) with the guidance term folded in: denoised + sigma^2 * guidance(x, denoised, sigma)."""
    s = sigma * x.new_ones(x.shape[0], dtype=torch.float32)
    denoised = model(x, s)
    if guidance is not None:
        denoised = denoised + (sigma ** 2) * guidance(x, denoised, s).to(denoised.dtype)
    return denoised


@torch.no_grad()
def sample_euler(model: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, *,
                 callback: Callback | None = None, guidance: Guidance | None = None) -> torch.Tensor:
    """Euler on the probability-flow ODE dx/dsigma = (x - D(x)) / sigma (Karras et al. 2022, alg. 1).

    In the sigma parameterisation this is exactly deterministic DDIM (Song et al. 2021, eq. 12).
    """
    for i in range(len(sigmas) - 1):
        denoised = guided_denoise(model, x, sigmas[i], guidance)
        if callback is not None:
            callback(i, x, sigmas[i], denoised)
        d = (x - denoised) / sigmas[i]
        x = x + d * (sigmas[i + 1] - sigmas[i])
    return x


sample_ddim = sample_euler


@torch.no_grad()
def sample_dpmpp_2m(model: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, *,
                    callback: Callback | None = None, guidance: Guidance | None = None) -> torch.Tensor:
    """DPM-Solver++(2M), the multistep second-order data-prediction solver (Lu et al. 2022, alg. 2).

    With lambda = -log sigma and h = lambda_next - lambda: x_next = (sigma_next / sigma) x - expm1(-h) D,
    where D is the current estimate (first step, last step) or the extrapolation
    (1 + 1/2r) D_i - (1/2r) D_{i-1} with r = h_last / h.
    """
    old_denoised, h_last = None, None
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = guided_denoise(model, x, sigma, guidance)
        if callback is not None:
            callback(i, x, sigma, denoised)
        if sigma_next == 0:
            x = denoised
            break
        h = sigma.log() - sigma_next.log()
        d = denoised
        if old_denoised is not None and h_last is not None:
            r = h_last / h
            d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
        x = (sigma_next / sigma) * x - torch.expm1(-h) * d
        old_denoised, h_last = denoised, h
    return x


SAMPLERS: dict[str, Sampler] = {
    "euler": sample_euler,
    "ddim": sample_ddim,
    "dpmpp_2m": sample_dpmpp_2m,
}

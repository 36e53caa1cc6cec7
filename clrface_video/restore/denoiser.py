"""Karras/EDM preconditioning: the one wrapper turning ScoreNet into denoiser(x, sigma, cond) -> x0 estimate."""
from __future__ import annotations

import torch
from torch import nn


def _bcast(sigma: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    """sigma as (N, 1, 1, 1) on x's device (scalar sigmas are broadcast to the batch)."""
    s = torch.as_tensor(sigma, device=x.device, dtype=torch.float32).reshape(-1)
    return s.expand(x.shape[0]).view(-1, 1, 1, 1)


class Denoiser(nn.Module):
    """D(x; sigma, cond) = c_skip x + c_out F(c_in x; cond, sigma)  (Karras et al. 2022, EDM, table 1).

    inner: a network F(x_in: (N,C,h,w), cond: (N,C,h,w), sigma: (N,)) -> (N,C,h,w), here ScoreNet.
    sigma_data: the standard deviation of clean latents (about 1/sqrt(C) for unit-norm latents).
    forward(x: (N,C,h,w), sigma: (N,) or float, cond: (N,C,h,w)) -> denoised (N,C,h,w).
    """

    def __init__(self, inner: nn.Module, sigma_data: float = 0.5) -> None:
        super().__init__()
        self.inner = inner
        self.sigma_data = float(sigma_data)

    def scalings(self, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(c_skip, c_out, c_in), each shaped like sigma."""
        sd2 = self.sigma_data ** 2
        c_skip = sd2 / (sigma ** 2 + sd2)
        c_out = sigma * self.sigma_data / (sigma ** 2 + sd2).sqrt()
        c_in = 1.0 / (sigma ** 2 + sd2).sqrt()
        return c_skip, c_out, c_in

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float, cond: torch.Tensor) -> torch.Tensor:
        s = _bcast(sigma, x)
        c_skip, c_out, c_in = self.scalings(s)
        out = self.inner((c_in * x).to(x.dtype), cond, s.reshape(-1))
        return (c_skip * x + c_out * out).to(x.dtype)

    def loss(self, x0: torch.Tensor, z_d: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """EDM training loss per sample, shape (N,).

        x0: clean latents (N,C,h,w); z_d: degraded-face latents (N,C,h,w); sigma: (N,) noise levels
        (see schedules.sample_sigmas_lognormal); noise: standard normal (N,C,h,w).
        Equals lambda(sigma) * ||D(x0 + sigma noise) - x0||^2 with the EDM weighting, written as an
        unweighted MSE on the network output against its effective target.
        """
        s = _bcast(sigma, x0)
        c_skip, c_out, c_in = self.scalings(s)
        noised = x0 + s * noise
        out = self.inner((c_in * noised).to(x0.dtype), z_d, s.reshape(-1))
        target = (x0 - c_skip * noised) / c_out
        return (out.float() - target.float()).pow(2).flatten(1).mean(dim=1)

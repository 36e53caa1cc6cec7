"""Noise-level grids for sampling and noise-level draws for training: pure functions, no state."""
from __future__ import annotations

import math

import torch


def karras_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0,
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """The EDM grid (Karras et al. 2022, eq. 5): n sigmas from sigma_max down to sigma_min, then 0.

    Returns (n + 1,) float32, strictly decreasing, last element 0.
    """
    if n < 1:
        raise ValueError(f"karras_sigmas needs n >= 1 steps, got {n}")
    ramp = torch.linspace(0, 1, n, dtype=torch.float64) if n > 1 else torch.zeros(1, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sigmas = (hi + ramp * (lo - hi)) ** rho
    return torch.cat([sigmas, sigmas.new_zeros(1)]).float().to(device)


def truncate_sigmas(sigmas: torch.Tensor, t_star: float) -> torch.Tensor:
    """Start from an intermediate step (SDEdit, Meng et al. 2022): keep the last ceil(t_star * n) steps.

    sigmas: (n + 1,) decreasing grid ending in 0. t_star in [0, 1]: 1 keeps the whole grid, 0 keeps
    only the final 0 (no noise added, no solver step). Returns (k + 1,) with k = ceil(t_star * n).
    """
    if not 0.0 <= t_star <= 1.0:
        raise ValueError(f"t_star must be in [0, 1], got {t_star}")
    n = len(sigmas) - 1
    k = min(n, math.ceil(t_star * n - 1e-9))
    return sigmas[n - k:]


def sigma_at(t: float, sigma_min: float, sigma_max: float, rho: float = 7.0) -> float:
    """The continuous Karras ramp: t = 1 -> sigma_max, t -> 0+ -> sigma_min, t = 0 -> 0."""
    if t <= 0.0:
        return 0.0
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return float((lo + t * (hi - lo)) ** rho)


def sample_sigmas_lognormal(n: int, p_mean: float = -1.2, p_std: float = 1.2,
                            generator: torch.Generator | None = None,
                            device: torch.device | str = "cpu") -> torch.Tensor:
    """Training noise levels (EDM, Karras et al. 2022, table 1): log sigma ~ N(p_mean, p_std^2). (n,)"""
    z = torch.randn(n, generator=generator, dtype=torch.float32)
    return (p_mean + p_std * z).exp().to(device)

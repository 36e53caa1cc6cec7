"""Identity guidance: a learnable latent mask and the masked identity-loss gradient added to the score."""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


class LatentMask(nn.Module):
    """Learnable gate over the latent, M = sigmoid(logits) in [0, 1], shape (1, C, h, w).

    factored=True: logits = channel logits (1, C, 1, 1) + spatial logits (1, 1, h, w) (C + h*w
    parameters, which a small mask-training stage can fit); factored=False: full (1, C, h, w) logits.
    Logits of -inf give an exact zero (the gradient is then blocked there).
    """

    def __init__(self, channels: int, size: int, factored: bool = True, init_logit: float = 0.0) -> None:
        super().__init__()
        self.factored = factored
        if factored:
            self.channel_logits = nn.Parameter(torch.full((1, channels, 1, 1), float(init_logit)))
            self.spatial_logits = nn.Parameter(torch.zeros(1, 1, size, size))
        else:
            self.logits = nn.Parameter(torch.full((1, channels, size, size), float(init_logit)))

    def forward(self) -> torch.Tensor:
        """(1, C, h, w) mask in [0, 1]."""
        if self.factored:
            return torch.sigmoid(self.channel_logits + self.spatial_logits)
        return torch.sigmoid(self.logits)


def autograd_ready(module: nn.Module) -> nn.Module:
    """`module` with every parameter and buffer made in torch.inference_mode replaced by a normal copy, in place.

    The guidance takes a gradient through the decoder and the recognition network, which autograd refuses
    for inference tensors; hosts such as ComfyUI build and run nodes inside inference mode."""
    with torch.inference_mode(False):
        for part in module.modules():
            for name, param in list(part._parameters.items()):
                if param is not None and param.is_inference():
                    part._parameters[name] = nn.Parameter(param.clone(), requires_grad=param.requires_grad)
            for name, buffer in list(part._buffers.items()):
                if buffer is not None and buffer.is_inference():
                    part._buffers[name] = buffer.clone()
    return module


def identity_loss(embedding: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample 1 - cos(embedding, target): (N, D), (N, D) -> (N,)."""
    return 1.0 - F.cosine_similarity(embedding.float(), target.float(), dim=1)


def embed_images(identity_net: nn.Module, images: torch.Tensor, size: int | None = None) -> torch.Tensor:
    """Images (N, 3, R, R) in [-1, 1] -> identity embeddings (N, D), via the net's [0, 1] input at side size."""
    x = ((images.float() + 1.0) / 2.0).clamp(0.0, 1.0)
    if size is not None and x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=False)
    return identity_net(x)


def identity_guidance(decode: Callable[[torch.Tensor], torch.Tensor], identity_net: nn.Module,
                      target: torch.Tensor, mask: torch.Tensor, weight: float | torch.Tensor,
                      image_size: int | None = None,
                      ) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """Build the guidance hook g(x, denoised, sigma) for samplers.

    decode: latent (N, C, h, w) -> image (N, 3, R, R) in [-1, 1] (the VQGAN decoder).
    identity_net: (N, 3, S, S) in [0, 1] -> (N, D) L2-normalised embeddings; image_size = S (None: R).
    target: (N, D) identity embeddings to pull toward; mask: (1 or N, C, h, w) in [0, 1];
    weight: scalar or (N,) guidance strength, in latent units per step.

    The hook decodes the predicted clean latent, takes L = 1 - cos(embed(decode(denoised)), target),
    and returns the score term g = -weight * mask * grad / (rms(grad) sigma^2): the samplers add g to
    the score, which moves the denoised latent by -weight * mask * grad / rms(grad), a step whose
    size does not depend on sigma or on the scale of the recognition network's gradient.
    Where the mask is zero, g is exactly zero. Runs with gradients enabled even inside
    torch.inference_mode (inputs are cloned into normal tensors).
    """

    def guidance(x: torch.Tensor, denoised: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(False), torch.enable_grad():
            z0 = denoised.detach().clone().requires_grad_(True)
            tgt = target.detach().clone()
            loss = identity_loss(embed_images(identity_net, decode(z0), image_size), tgt).sum()
            (grad,) = torch.autograd.grad(loss, z0)
        grad = grad.float()
        rms = grad.pow(2).flatten(1).mean(dim=1).sqrt().clamp_min(1e-12).view(-1, 1, 1, 1)
        w = torch.as_tensor(weight, dtype=torch.float32, device=grad.device).reshape(-1, 1, 1, 1)
        s2 = sigma.float().reshape(-1, 1, 1, 1).pow(2)
        return -(w * mask.float() * grad / rms / s2).to(denoised.dtype)

    return guidance

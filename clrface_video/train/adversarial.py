"""The adversarial update the autoencoder, decoder and (optionally) IRN stages share: hinge GAN and feature matching."""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch
from torch import nn

from ..device import training_autocast
from .checkpoint import load_module
from .ddp import broadcast_module
from .losses import PatchDiscriminator, feature_matching_loss, hinge_d_loss, hinge_g_loss
from .stage_context import Context


class AdversarialStage(Protocol):
    """A stage trained against a discriminator (stages.AutoencoderStage, stages.DecoderStage, stages.IRNStage)."""

    ctx: Context
    disc: nn.Module | None  # None until attach_discriminator gives it one
    params: list[nn.Parameter]
    d_params: list[nn.Parameter]
    optimizers: dict[str, torch.optim.Optimizer]
    lr_origin: dict[str, int]

    def update(self, name: str, loss: torch.Tensor, params: list[nn.Parameter], step: int) -> None: ...


def attach_discriminator(stage: AdversarialStage, lr: float, start_from: Path | None = None) -> None:
    """Give `stage` a new patch discriminator (its weights from `start_from` where that file exists), the same
    on every rank, and its Adam optimizer "disc", whose learning-rate warm-up starts at disc_start (the step it
    first trains; loop.run_stage moves it to where a resumed run gives it a fresh optimizer)."""
    ctx = stage.ctx
    stage.disc = PatchDiscriminator().to(ctx.device).train()
    if start_from is not None:
        load_module(start_from, stage.disc)
    broadcast_module(stage.disc, ctx.world)
    stage.d_params = list(stage.disc.parameters())
    stage.optimizers["disc"] = torch.optim.Adam(stage.d_params, lr, betas=(0.5, 0.9))
    stage.lr_origin["disc"] = ctx.weights.disc_start


def adversarial_update(stage: AdversarialStage, fake: torch.Tensor, real: torch.Tensor,
                       losses: dict[str, torch.Tensor], step: int,
                       total: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The generator update on `total` (default: the sum of `losses`), and one discriminator update "d" from
    the step the discriminator starts (lr_origin["disc"]). For the disc_warmup steps after that start the
    discriminator trains alone, the generator frozen; from then on the generator's update also has the
    weighted hinge GAN "g" and feature-matching "fm" terms. Returns the losses with those added."""
    w = stage.ctx.weights
    disc = discriminator_of(stage)
    total = sum(losses.values()) if total is None else total
    disc_from = stage.lr_origin["disc"]
    disc_on, warming_up = step >= disc_from, disc_from <= step < disc_from + w.disc_warmup
    if disc_on and not warming_up:
        with training_autocast(stage.ctx.device):
            losses = {**losses, **generator_losses(disc, fake, real)}
        total = total + w.gan * losses["g"] + w.feature_matching * losses["fm"]
    if not warming_up:  # while the discriminator warms up the generator stays as it is
        stage.update("main", total, stage.params, step)
    if disc_on:
        losses["d"] = discriminator_step(stage, fake, real, step)
    return losses


def discriminator_of(stage: AdversarialStage) -> nn.Module:
    """stage.disc, or a one-line error where attach_discriminator has not given the stage one."""
    if stage.disc is None:
        raise RuntimeError(f"{type(stage).__name__} has no discriminator: call attach_discriminator first")
    return stage.disc


def generator_losses(disc: nn.Module, fake: torch.Tensor, real: torch.Tensor) -> dict[str, torch.Tensor]:
    """Hinge generator loss "g" and feature matching "fm" of `fake`, the discriminator frozen for it."""
    disc.requires_grad_(False)
    fake_logits, fake_feats = disc(fake)
    with torch.no_grad():
        _, real_feats = disc(real)
    return {"g": hinge_g_loss(fake_logits.float()), "fm": feature_matching_loss(real_feats, fake_feats)}


def discriminator_step(stage: AdversarialStage, fake: torch.Tensor, real: torch.Tensor,
                       step: int) -> torch.Tensor:
    """One hinge update of stage.disc on real vs the detached fake; returns the loss."""
    disc = discriminator_of(stage)
    disc.requires_grad_(True)
    with training_autocast(stage.ctx.device):
        real_logits, _ = disc(real)
        fake_logits, _ = disc(fake.detach())
        loss = hinge_d_loss(real_logits.float(), fake_logits.float())
    stage.update("disc", loss, stage.d_params, step)
    return loss

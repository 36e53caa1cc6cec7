"""The CLR-Face training stages: what each trains, its losses per step, and its preview."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..device import training_autocast
from ..restore.gate import VIEWS, best_share, blend, blend_log_mse, gate_loss, view
from ..restore.model import CLRFaceModel, Knobs, fidelity_to_knobs
from ..restore.schedules import karras_sigmas, sample_sigmas_lognormal, truncate_sigmas
from .adversarial import adversarial_update, attach_discriminator
from .ddp import sync_gradients
from .losses import (
    codebook_loss,
    identity_loss,
    mask_sparsity,
    pixel_loss,
)
from .run_folder import STAGE_MODULE
from .stage_context import Context


def lr_at(step: int, base: float, warmup: int = 25) -> float:
    """Linear warm-up over `warmup` steps from step 0, then constant (CPU runs are too short for a decay
    to matter); steps before 0 get the first warm-up rate."""
    return base * min(1.0, (max(step, 0) + 1) / max(warmup, 1))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


# ----------------------------------------------------------------------------- one step per stage


class Stage:
    """One stage: the modules it trains, its optimizers and its step. Subclasses fill step()."""

    name = ""
    needs_lq = True
    light_prob = 0.0  # share of training faces degraded lightly (degrade.LIGHT) instead of with the full recipe
    disc: nn.Module | None = None  # the adversarial stages' discriminator (adversarial.attach_discriminator)

    def __init__(self, ctx: Context, lr: float) -> None:
        self.ctx = ctx
        self.model = ctx.model
        self.model.requires_grad_(False)
        self.trained = getattr(self.model, STAGE_MODULE[self.name])
        self.trained.requires_grad_(True).train()
        self.params = [p for p in self.trained.parameters() if p.requires_grad]
        self.optimizers: dict[str, torch.optim.Optimizer] = {"main": torch.optim.Adam(self.params, lr, betas=(0.9, 0.99))}
        self.lr = lr
        self.lr_origin = {"main": 0}  # per optimizer: the step its learning-rate warm-up starts from

    def extra_modules(self) -> dict[str, nn.Module]:
        """Modules checkpointed beside the trained one: the discriminator, where the stage has one."""
        return {} if self.disc is None else {"disc": self.disc}

    def update(self, name: str, loss: torch.Tensor, params: list[nn.Parameter], step: int) -> None:
        opt = self.optimizers[name]
        set_lr(opt, lr_at(step - self.lr_origin.get(name, 0), self.lr))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        sync_gradients(params, self.ctx.world)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    def step(self, hq: torch.Tensor, lq: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    @torch.no_grad()
    def preview(self, hq: torch.Tensor, lq: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class AutoencoderStage(Stage):
    """VQGAN on clean faces: L1 + codebook/commitment, then hinge GAN + feature matching after a warm-up."""

    name, needs_lq = "autoencoder", False

    def __init__(self, ctx: Context, lr: float) -> None:
        super().__init__(ctx, lr)
        self.optimizers["main"] = torch.optim.Adam(self.params, lr, betas=(0.5, 0.9))
        attach_discriminator(self, lr)
        self.generator = torch.Generator().manual_seed(ctx.options.seed * 15_485_863 + ctx.world.rank + 1_000_003 * ctx.start_step)

    def random_crop(self, x: torch.Tensor) -> torch.Tensor:
        """One random square crop of side options.crop for the whole batch (the VQGAN is fully convolutional)."""
        side, size = self.ctx.options.crop, x.shape[-1]
        if side is None or side >= size:
            return x
        f = self.ctx.cfg.vqgan.downsample_factor
        side = max(f, side // f * f)
        top, left = (int(v) * f for v in torch.randint(0, (size - side) // f + 1, (2,), generator=self.generator))
        return x[..., top:top + side, left:left + side]

    def step(self, hq: torch.Tensor, lq: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        hq = self.random_crop(hq)
        with training_autocast(self.ctx.device):
            recon, vq = self.model.vqgan(hq)
            losses = {"l1": pixel_loss(recon, hq), "vq": codebook_loss(vq)}
        losses = adversarial_update(self, recon, hq, losses, step)
        losses["codes"] = torch.tensor(float(vq.indices.unique().numel()))
        return losses

    @torch.no_grad()
    def preview(self, hq: torch.Tensor, lq: torch.Tensor) -> torch.Tensor:
        return self.model.vqgan(hq)[0]


@torch.no_grad()
def sample_at_random(model: CLRFaceModel, lq: torch.Tensor,
                     generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, Knobs, bool]:
    """The sampler's latents for degraded faces as `restore` makes them, at a fidelity drawn from
    `generator`, without identity guidance: (final unsnapped latent, IRN estimate, knobs, whether to snap,
    drawn as photos do and videos do not, half the time)."""
    from ..restore.restorer import sample_latents
    from ..restore.samplers import SAMPLERS

    cfg = model.cfg
    fidelity, snap = torch.rand(2, generator=generator).tolist()
    knobs = fidelity_to_knobs(cfg, fidelity)
    z, x_irn = sample_latents(model, lq, knobs, lambda shape: torch.randn(shape, generator=generator).to(lq.device),
                              SAMPLERS[cfg.sampler], model.denoiser)
    return z, x_irn, knobs, snap < 0.5


@torch.no_grad()
def restored_latents(model: CLRFaceModel, lq: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """What `--decoder-input restored` decodes: sample_at_random's final latent, snapped to the codebook
    when the draw says so."""
    z, _, _, snap = sample_at_random(model, lq, generator)
    return model.vqgan.quantize(z).z_q if snap else z


class DecoderStage(Stage):
    """VQGAN decoder fine-tune on whole faces, encoder and codebook frozen: the codes, and so the prior
    trained on them, stay valid. L1, then hinge GAN + feature matching from step disc_start (the
    discriminator starts from the autoencoder stage's when the run folder has one).

    options.decoder_input picks what is decoded: "clean", the clean face's codes (mends what crop training
    leaves at the full face size; the adversarial terms give back the detail L1 averages away), or
    "restored", the latents the sampler makes from the degraded face (sample_latents at a random fidelity,
    no identity guidance, snapped to the codebook half the time as photos are and videos are not), so the
    decoder learns to turn the prior's smooth latents into the clean face.
    """

    name = "decoder"

    def __init__(self, ctx: Context, lr: float) -> None:
        super().__init__(ctx, lr)
        self.needs_lq = ctx.options.decoder_input == "restored"
        self.trained.requires_grad_(False)
        self.trained.decoder.requires_grad_(True)
        self.params = list(self.trained.decoder.parameters())
        self.optimizers = {"main": torch.optim.Adam(self.params, lr, betas=(0.5, 0.9))}
        attach_discriminator(self, lr, start_from=ctx.run_dir / "autoencoder" / "disc.safetensors")
        self.model.irn.eval()
        self.model.denoiser.eval()
        self.generator = torch.Generator().manual_seed(ctx.options.seed * 32_452_843 + ctx.world.rank + 1_000_003 * ctx.start_step)

    @torch.no_grad()
    def latents(self, hq: torch.Tensor, lq: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """What the decoder is trained to turn into hq (see the class docstring)."""
        if not self.needs_lq:
            return self.trained.quantize(self.trained.encode(hq)).z_q
        return restored_latents(self.model, lq, generator)

    def step(self, hq: torch.Tensor, lq: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        with training_autocast(self.ctx.device):
            z = self.latents(hq, lq, self.generator)
            recon = self.trained.decode(z)
            losses = {"l1": pixel_loss(recon, hq)}
        return adversarial_update(self, recon, hq, losses, step)

    @torch.no_grad()
    def preview(self, hq: torch.Tensor, lq: torch.Tensor) -> torch.Tensor:
        return self.trained.decode(self.latents(hq, lq, torch.Generator().manual_seed(0)))


class IRNStage(Stage):
    """Identity Recovery Network: LQ -> HQ estimate with L1 + identity (1 - cos FaceNet) loss; with
    weights.irn_adversarial, also hinge GAN + feature matching from step disc_start against a patch
    discriminator of its own (L1 alone averages the plausible clean faces into a blur)."""

    name = "irn"

    def __init__(self, ctx: Context, lr: float) -> None:
        super().__init__(ctx, lr)
        if ctx.weights.irn_adversarial:
            attach_discriminator(self, lr)

    def step(self, hq: torch.Tensor, lq: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        w = self.ctx.weights
        with training_autocast(self.ctx.device):
            x = self.model.irn(lq)
            losses = {"l1": pixel_loss(x, hq)}
            if w.identity > 0:
                n = w.identity_samples or len(x)
                losses["id"] = identity_loss(self.ctx.identity(), x[:n], hq[:n])
        total = losses["l1"] + w.identity * losses.get("id", 0.0)
        if self.disc is not None:
            return adversarial_update(self, x, hq, losses, step, total=total)
        self.update("main", total, self.params, step)
        return losses

    @torch.no_grad()
    def preview(self, hq: torch.Tensor, lq: torch.Tensor) -> torch.Tensor:
        return self.model.irn(lq)


class PriorStage(Stage):
    """Score prior over clean pre-quantisation latents conditioned on the LQ latent (EDM loss); VQGAN frozen."""

    name = "prior"

    def __init__(self, ctx: Context, lr: float) -> None:
        super().__init__(ctx, lr)
        self.model.vqgan.eval()
        self.generator = torch.Generator().manual_seed(ctx.options.seed * 7919 + ctx.world.rank + 1_000_003 * ctx.start_step)

    def step(self, hq: torch.Tensor, lq: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        with training_autocast(self.ctx.device):
            with torch.no_grad():
                z0 = self.model.vqgan.encode(hq).float()
                z_d = self.model.vqgan.encode(lq)
                draws = max(1, self.ctx.weights.prior_draws)
                z0, z_d = z0.repeat(draws, 1, 1, 1), z_d.repeat(draws, 1, 1, 1)
            sigma = sample_sigmas_lognormal(len(z0), generator=self.generator, device=hq.device)
            noise = torch.randn(z0.shape, generator=self.generator).to(hq.device)
            loss = self.model.denoiser.loss(z0, z_d, sigma, noise).mean()
        self.update("main", loss, self.params, step)
        return {"edm": loss}

    @torch.no_grad()
    def preview(self, hq: torch.Tensor, lq: torch.Tensor) -> torch.Tensor:
        from ..restore.restorer import sample_latents
        from ..restore.samplers import sample_euler

        m, generator = self.model, torch.Generator().manual_seed(0)
        z, _ = sample_latents(m, lq, fidelity_to_knobs(self.ctx.cfg, 0.5),
                              lambda shape: torch.randn(shape, generator=generator).to(lq.device), sample_euler,
                              m.denoiser)
        return m.vqgan.decode(m.vqgan.quantize(z).z_q)


class MaskStage(Stage):
    """Latent mask: unroll guided denoising from a noised IRN-estimate latent; L1 + identity + sparsity."""

    name = "mask"

    def __init__(self, ctx: Context, lr: float) -> None:
        super().__init__(ctx, lr)
        self.model.eval()
        self.model.mask.requires_grad_(True)
        self.generator = torch.Generator().manual_seed(ctx.options.seed * 104_729 + ctx.world.rank + 1_000_003 * ctx.start_step)

    def restore(self, lq: torch.Tensor, fidelity: float, with_grad: bool) -> torch.Tensor:
        """A few guided Euler steps from the IRN latent at t*; the last denoised latent, decoded."""
        from ..restore.guidance import embed_images, identity_guidance
        from ..restore.samplers import guided_denoise

        m, cfg, w = self.model, self.ctx.cfg, self.ctx.weights
        knobs = fidelity_to_knobs(cfg, fidelity)
        sigmas = truncate_sigmas(karras_sigmas(knobs.steps, cfg.sigma_min, cfg.sigma_max, cfg.rho), knobs.t_star)
        sigmas = sigmas[: w.mask_unroll + 1].to(lq.device)
        with torch.no_grad():
            z_d = m.vqgan.encode(lq)
            x_irn = m.irn(lq)
            target = embed_images(self.ctx.identity(), x_irn, cfg.identity_size).float()
            z = m.vqgan.encode(x_irn)
        noise = torch.randn(z.shape, generator=self.generator).to(z.device)
        x = z + sigmas[0] * noise
        with torch.set_grad_enabled(with_grad):
            guidance = identity_guidance(m.vqgan.decode, self.ctx.identity(), target, m.mask(),
                                         max(knobs.guidance_weight, 1e-3), cfg.identity_size)
            denoised = x
            for i in range(len(sigmas) - 1):
                denoised = guided_denoise(lambda v, s: m.denoiser(v, s, z_d), x, sigmas[i], guidance)
                if sigmas[i + 1] > 0:
                    x = x + (x - denoised) / sigmas[i] * (sigmas[i + 1] - sigmas[i])
            return m.vqgan.decode(m.vqgan.quantize(denoised).z_q)

    def step(self, hq: torch.Tensor, lq: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        w = self.ctx.weights
        out = self.restore(lq, w.mask_fidelity, with_grad=True)
        losses = {"l1": pixel_loss(out, hq), "id": identity_loss(self.ctx.identity(), out, hq),
                  "sparsity": mask_sparsity(self.mask_logits())}
        total = losses["l1"] + w.mask_identity * losses["id"] + w.mask_sparsity * losses["sparsity"]
        self.update("main", total, self.params, step)
        losses["mask_mean"] = self.model.mask().mean().detach()
        return losses

    def mask_logits(self) -> torch.Tensor:
        mask = self.model.mask
        if mask.factored:
            return mask.channel_logits + mask.spatial_logits
        return mask.logits

    @torch.no_grad()
    def preview(self, hq: torch.Tensor, lq: torch.Tensor) -> torch.Tensor:
        return self.restore(lq, self.ctx.weights.mask_fidelity, with_grad=False).detach()


class GateStage(Stage):
    """Blend gate (restore.gate) over the frozen model. Each degraded face is restored as `restore` does
    (sample_latents and decode_latents at a random fidelity, snapped half the time, no identity guidance),
    and the gate learns the share of that restoration to keep over the input: each face's best share
    (restore.gate.best_share, the least-squares blend against the clean face) is its target. Restoring
    costs far more than the gate, so each step's faces join a replay of the most recent ones
    (weights.gate_replay) and the gate takes weights.gate_updates steps on 32 faces drawn from it. Half
    the faces are degraded lightly (degrade.LIGHT), so the gate also sees faces the model would make
    worse: clean, sharp or large ones scaled down to the crop. Each update sees its faces in one of the
    views the restorer averages the share over (restore.gate.VIEWS), so it learns to give them one share.
    """

    name, light_prob = "gate", 0.5

    def __init__(self, ctx: Context, lr: float) -> None:
        super().__init__(ctx, lr)
        self.model.eval()
        self.trained.train()
        self.generator = torch.Generator().manual_seed(ctx.options.seed * 15_485_863 + ctx.world.rank + 1_000_003 * ctx.start_step)
        self.replay: list[torch.Tensor] = []  # lq, restored, hq of the most recent faces (not checkpointed)

    @torch.no_grad()
    def restored(self, lq: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        from ..restore.restorer import decode_latents

        z, x_irn, knobs, snap = sample_at_random(self.model, lq, generator)
        return decode_latents(self.model, z, x_irn, knobs, snap).clamp(-1, 1)

    def step(self, hq: torch.Tensor, lq: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        out = self.restored(lq, self.generator)
        with torch.no_grad():  # how this new batch fares before the gate learns from it
            share = self.trained(lq, out)
            logs = {"share": share.mean(), "best_share": best_share(lq, out, hq).mean(),
                    "log_mse": blend_log_mse(lq, out, share, hq),
                    "log_mse_whole": blend_log_mse(lq, out, torch.ones_like(share), hq)}
        # restoring is the expensive part: each batch joins a replay of recent ones the gate learns from
        self.replay = [torch.cat([kept, new])[-self.ctx.weights.gate_replay:] for kept, new in zip(self.replay, (lq, out, hq))] \
            if self.replay else [lq, out, hq]
        for _ in range(self.ctx.weights.gate_updates):
            pick = torch.randint(len(self.replay[0]), (min(32, len(self.replay[0])),), generator=self.generator)
            # one of the views the gate's share is averaged over (restore.gate.VIEWS), the same for all three
            flip, dx, dy = VIEWS[int(torch.randint(len(VIEWS), (1,), generator=self.generator))]
            r_lq, r_out, r_hq = (view(t[pick.to(t.device)], flip, dx, dy) for t in self.replay)
            loss = gate_loss(self.trained.logits(r_lq, r_out), r_lq, r_out, r_hq)
            self.update("main", loss, self.params, step)
        return {"bce": loss.detach(), **logs}

    @torch.no_grad()
    def preview(self, hq: torch.Tensor, lq: torch.Tensor) -> torch.Tensor:
        out = self.restored(lq, torch.Generator().manual_seed(0))
        return blend(lq, out, self.trained(lq, out))


STAGES: dict[str, Callable[[Context, float], Stage]] = {
    "autoencoder": AutoencoderStage, "decoder": DecoderStage, "irn": IRNStage, "prior": PriorStage,
    "mask": MaskStage, "gate": GateStage}

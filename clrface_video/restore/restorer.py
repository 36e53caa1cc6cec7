"""CLRFaceRestorer: a batch of aligned LQ crops -> restored crops, the CLR-Face sampling story in numbered steps."""
from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..device import compute_dtype
from ..errors import ClrfaceError, ModelError, option_name
from .base import RestoreBatch, register_restorer
from .gate import blend
from .guidance import autograd_ready, embed_images, identity_guidance
from .model import CLRFaceModel, Knobs, fidelity_to_knobs, read_metadata
from .padding import flat_padding, hide_padding, restore_padding
from .samplers import SAMPLERS, Callback, Guidance, Sampler
from .schedules import karras_sigmas, truncate_sigmas

log = logging.getLogger(__name__)
SHIPPED_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "clrface-128.safetensors"


def seeded_noise(seeds: np.ndarray, shape: tuple[int, ...]) -> torch.Tensor:
    """(N, *shape) float32 standard normal on the CPU, row i drawn from torch.Generator(seed i).

    The same seed gives the same noise whatever the batch, the device or the row, which is what keeps a
    still face in a track still from frame to frame.
    """
    out = torch.empty((len(seeds), *shape), dtype=torch.float32)
    gen = torch.Generator(device="cpu")
    for i, seed in enumerate(seeds.tolist()):  # one tiny draw per face, not a model call
        gen.manual_seed(int(seed) & 0xFFFF_FFFF_FFFF_FFFF)
        out[i] = torch.randn(shape, generator=gen)
    return out


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, C, H, W) with reflect padding; the kernel spans +-3 sigma."""
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = (k / k.sum()).to(x.dtype)
    c = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def sample_latents(model: CLRFaceModel, lq: torch.Tensor, knobs: Knobs,
                   noise: Callable[[tuple[int, ...]], torch.Tensor], sampler: Sampler, denoiser: nn.Module, *,
                   guidance: Callable[[torch.Tensor], Guidance | None] | None = None,
                   callback: Callback | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Steps 2-5 of the method for a batch of degraded faces in [-1, 1]: (final unsnapped latent, IRN estimate).

    The degraded face is encoded (the condition z_d), the IRN estimate encoded (the start point), noised to
    sigma(t*) with noise(shape), and run down the truncated Karras grid by sampler over denoiser(x, sigma, z_d);
    guidance(x_irn) gives the identity-guidance hook (or None); callback is the sampler's, called at each step.
    Shared by the restorer and the training stage that tunes the decoder on what the sampler really hands it.
    """
    z_d = model.vqgan.encode(lq)
    x_irn = model.irn(lq).clamp(-1.0, 1.0)
    z = model.vqgan.encode(x_irn)
    sigmas = sigma_grid(model, knobs, lq.device)
    if len(sigmas) > 1:
        z = z + sigmas[0] * noise(tuple(z.shape))
        hook = guidance(x_irn) if guidance is not None else None
        z = sampler(lambda x, sigma: denoiser(x, sigma, z_d), z, sigmas, guidance=hook, callback=callback)
    return z, x_irn


def sigma_grid(model: CLRFaceModel, knobs: Knobs, device: torch.device) -> torch.Tensor:
    """The truncated Karras grid the sampler runs down: len - 1 sampler steps (0 at t* = 0)."""
    cfg = model.cfg
    full = karras_sigmas(knobs.steps, cfg.sigma_min, cfg.sigma_max, cfg.rho, device=device)
    return truncate_sigmas(full, knobs.t_star)


def step_callback(batch: RestoreBatch, steps: int) -> Callback | None:
    """The sampler's callback for a batch of `steps` steps: the host's cancel check, then the share of the batch
    done (step i + 1 of steps + 1, the last part being the decoding after the sampler), or None for neither."""
    check, on_step = batch.check_interrupt, batch.on_step
    if check is None and on_step is None:
        return None

    def callback(i: int, *_: torch.Tensor) -> None:
        if check is not None:
            check()
        if on_step is not None:
            on_step((i + 1) / (steps + 1))
    return callback


def decode_latents(model: CLRFaceModel, z: torch.Tensor, x_irn: torch.Tensor, knobs: Knobs, snap: bool) -> torch.Tensor:
    """Steps 6-7: the final latent (quantised first when snap), decoded, with its colour and shading below
    knobs.anchor_sigma taken from the IRN estimate (when the model asks for it). Shared with the gate stage."""
    out = model.vqgan.decode(model.vqgan.quantize(z).z_q if snap else z)
    if knobs.anchor_sigma > 0:
        out = out - gaussian_blur(out, knobs.anchor_sigma) + gaussian_blur(x_irn, knobs.anchor_sigma)
    return out


class CLRFaceRestorer:
    """Restores (N, R, R, 3) uint8 aligned faces with a CLRFaceModel.

    model: the trained model (moved to device once, eval, channels-last, device.compute_dtype).
    fidelity: 0..1, mapped to (t*, guidance weight, steps) by fidelity_to_knobs; knobs overrides it.
    identity_net: (N, 3, S, S) in [0, 1] -> (N, D) L2-normalised (faces.identity.IdentityEncoder), a
        function that loads one when a batch first asks for guidance (so a job run without it never loads
        it), or None to run without identity guidance.
    compile: wrap the score network in torch.compile (worth it on GPUs for long videos).
    hide_padding: blur where flat padding reaching a crop's border meets the picture before the networks see
        the crop, and put the padding back after (restore.padding); False shows them the crop as it is.
    """

    name = "clrface"

    def __init__(self, model: CLRFaceModel, device: torch.device | str = "cpu", fidelity: float = 0.5, *,
                 identity_net: nn.Module | Callable[[], nn.Module | None] | None = None, knobs: Knobs | None = None,
                 compile: bool = False, hide_padding: bool = True) -> None:
        self.device = torch.device(device)
        self.dtype = compute_dtype(self.device)
        self.cfg = model.cfg
        self.resolution = model.cfg.resolution
        self.knobs = knobs or fidelity_to_knobs(model.cfg, fidelity)
        self.model = model.to(self.device, self.dtype).to(memory_format=torch.channels_last).eval()
        self.model.requires_grad_(False)
        self.identity_net: nn.Module | None = None
        self._load_identity: Callable[[], nn.Module | None] | None = None
        if isinstance(identity_net, nn.Module):
            self._use_identity(identity_net)
        else:
            self._load_identity = identity_net
        self.hide_padding = hide_padding
        self.sampler = SAMPLERS[model.cfg.sampler]
        self.denoiser: nn.Module = self.model.denoiser
        if compile:
            self.denoiser = torch.compile(self.model.denoiser)  # type: ignore[assignment]

    def _use_identity(self, net: nn.Module) -> None:
        self.identity_net = net.to(self.device).eval()
        autograd_ready(self.model)  # the guidance's gradient runs through both, whoever built them
        autograd_ready(self.identity_net)

    @property
    def uses_identity(self) -> bool:
        """Whether batch.identity is used (identity guidance is on), so the pipeline need not embed tracks otherwise."""
        has_net = self.identity_net is not None or self._load_identity is not None
        return has_net and self.knobs.guidance_weight > 0

    @torch.inference_mode()
    def restore(self, batch: RestoreBatch, knobs: Knobs | None = None) -> np.ndarray:
        """(N, R, R, 3) uint8 -> (N, R, R, 3) uint8, in order; knobs overrides the restorer's for one call."""
        n = self._check(batch)
        if n == 0:
            return np.empty_like(batch.crops)
        knobs, m = knobs or self.knobs, self.model
        # 1. to the device once: (N, 3, R, R) in [-1, 1], channels-last, compute dtype
        pixels = torch.from_numpy(np.ascontiguousarray(batch.crops)).to(self.device, non_blocking=True).permute(0, 3, 1, 2)
        scaled = pixels.float() / 127.5 - 1.0  # float32 once: bf16 would round the grey levels padding compares
        lq = scaled.to(self.dtype).contiguous(memory_format=torch.channels_last)
        # 1b. flat padding reaching the crop's border (a pre-aligned clip's fill, a letterbox bar): its edge with
        #     the picture blurred, so the networks judge the face's blur by the face (restore.padding)
        padding = flat_padding(scaled) if self.hide_padding else None
        seen = hide_padding(lq, padding) if padding is not None else lq
        # 2-5. the IRN estimate, noised to t* with per-face seeded noise, then the guided reverse process
        seeds = batch.seeds if batch.seeds is not None else np.full(n, self.cfg.seed, dtype=np.int64)

        def noise(shape: tuple[int, ...]) -> torch.Tensor:
            drawn = seeded_noise(np.asarray(seeds), shape[1:]).to(self.device, self.dtype)
            return drawn.contiguous(memory_format=torch.channels_last)

        weight = knobs.guidance_weight if batch.guidance else 0.0
        steps = len(sigma_grid(m, knobs, self.device)) - 1
        z, x_irn = sample_latents(m, seen, knobs, noise, self.sampler, self.denoiser,
                                  guidance=lambda x_irn: self._guidance(batch, x_irn, weight),
                                  callback=step_callback(batch, steps))
        # 6. optional smoothing along each track
        if batch.memory is not None and batch.tracks is not None:
            z = batch.memory.smooth(z, np.asarray(batch.tracks))
        # 7. quantise against the codebook (unless the batch asks not to), decode, anchor to the IRN estimate
        out = decode_latents(m, z, x_irn, knobs, batch.snap)
        # 8. the blend gate, where the model has one: of each face, keep the share of the restoration it
        #    chooses over the degraded input (a face that needs nothing keeps its input)
        out = out.clamp(-1, 1)
        if m.gate is not None and batch.gate:
            share = m.gate(seen, out)
            if batch.gate_memory is not None and batch.tracks is not None:  # video: steady along each track
                share = batch.gate_memory.smooth(share.view(-1, 1, 1, 1), np.asarray(batch.tracks)).view(-1)
            out = blend(lq, out, share)
        # 8b. the padding's own pixels back
        if padding is not None:
            out = restore_padding(out, lq, padding)
        # 9. back to uint8 (N, R, R, 3)
        out = ((out.float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
        return out.permute(0, 2, 3, 1).cpu().numpy()

    def _guidance(self, batch: RestoreBatch, x_irn: torch.Tensor, weight: float) -> Guidance | None:
        """The identity-guidance hook, or None without an identity network or with zero weight."""
        if weight <= 0.0:
            return None
        if self.identity_net is None and self._load_identity is not None:  # the first guided batch
            with torch.inference_mode(False):
                net = self._load_identity()
                self._load_identity = None
                if net is not None:
                    self._use_identity(net)
        if self.identity_net is None:
            return None
        if batch.identity is not None:
            target = torch.as_tensor(np.asarray(batch.identity, dtype=np.float32), device=self.device)
        else:
            target = embed_images(self.identity_net, x_irn, self.cfg.identity_size).float()
        mask = self.model.mask().to(self.dtype)
        return identity_guidance(self.model.vqgan.decode, self.identity_net, target, mask, weight,
                                 self.cfg.identity_size)

    def _check(self, batch: RestoreBatch) -> int:
        crops, r = batch.crops, self.resolution
        if not isinstance(crops, np.ndarray) or crops.dtype != np.uint8 or crops.ndim != 4 \
                or crops.shape[1:] != (r, r, 3):
            shape = getattr(crops, "shape", None)
            raise ClrfaceError(f"the clrface restorer takes (N, {r}, {r}, 3) uint8 aligned crops, got "
                               f"{shape} {getattr(crops, 'dtype', type(crops).__name__)}; align faces at size {r}")
        n = crops.shape[0]
        if batch.identity is not None and (np.ndim(batch.identity) != 2 or len(batch.identity) != n):
            raise ClrfaceError(f"RestoreBatch.identity must be (N, D) with N = {n}, got {np.shape(batch.identity)}")
        if batch.seeds is not None and np.shape(batch.seeds) != (n,):
            raise ClrfaceError(f"RestoreBatch.seeds must be (N,) with N = {n}, got {np.shape(batch.seeds)}")
        if batch.tracks is not None and np.shape(batch.tracks) != (n,):
            raise ClrfaceError(f"RestoreBatch.tracks must be (N,) with N = {n}, got {np.shape(batch.tracks)}")
        return n


def default_identity_net(device: torch.device) -> nn.Module | None:
    """The FaceNet identity encoder from faces.identity, or None (no guidance) when it cannot be loaded."""
    from ..faces.identity import identity_encoder_or_none

    return identity_encoder_or_none(str(device))


@register_restorer("clrface", "CLR-Face: VQGAN latent diffusion prior with identity guidance (shipped 128 px model)")
def make_clrface(device: torch.device, fidelity: float = 0.5, path: str | None = None,
                 compile: bool = False) -> CLRFaceRestorer:
    """Load `path` or the shipped weights; raises ModelError when the file is missing or unreadable."""
    weights = Path(path) if path is not None else SHIPPED_WEIGHTS
    if not weights.is_file():
        if path is None:
            raise ModelError(f"the shipped CLR-Face weights are missing ({weights}); reinstall clrface-video "
                             f"or pass {option_name('model')} PATH.safetensors")
        raise ModelError(f"CLR-Face weights not found: {weights}")
    model = CLRFaceModel.load(weights)
    untrained = [s for s in read_metadata(weights).get("untrained_stages", "").split(",") if s]
    if untrained:  # exported with stages missing: those networks are as initialised
        log.warning("%s was exported with stages never trained (%s), which keep their initial weights: its faces "
                    "will be poor (noise where the irn or prior is one of them); train them and export again",
                    weights.name, ", ".join(untrained))
    return CLRFaceRestorer(model, device, fidelity, identity_net=lambda: default_identity_net(device), compile=compile)

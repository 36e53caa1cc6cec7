"""The CLR-Face model: config, modules (VQGAN, score prior, IRN, latent mask, blend gate), safetensors I/O, fidelity knobs."""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..atomic import atomic
from ..errors import ClrfaceError, ModelError, option_name
from .denoiser import Denoiser
from .gate import BlendGate, GateConfig
from .guidance import LatentMask
from .irn import IRN, IRNConfig
from .score_net import ScoreNet, ScoreNetConfig
from .vqgan import VQGAN, VQGANConfig

FORMAT = "clrface"
FORMAT_VERSION = "1"


@dataclass(frozen=True)
class Knobs:
    """What one --fidelity value means for the sampler.

    t_star: fraction in [0, 1] of the `steps`-step Karras grid that is run (0: no noise, output is the
    decoded IRN estimate; 1: start from sigma_max). guidance_weight: identity-guidance step size in
    latent units. steps: length of the full sigma grid. anchor_sigma: Gaussian sigma in pixels below which
    the output's colour and shading are taken from the IRN estimate (0: off; smaller: closer to it).
    """

    t_star: float
    guidance_weight: float
    steps: int
    anchor_sigma: float = 0.0


@dataclass(frozen=True)
class CLRFaceConfig:
    """Everything needed to rebuild a CLRFaceModel; stored as JSON inside the weights file.

    fidelity f in [0, 1] maps linearly (see fidelity_to_knobs): t* = t_star_range[1] - f * (span),
    guidance weight = guidance_range[1] - f * (span), anchor sigma = anchor_range[1] - f * (span).
    anchor_range: (0, 0) turns low-frequency anchoring off; a small model whose autoencoder shifts colour
    and shading ships a non-zero range. identity_size: side the decoded face is resized to
    before the identity network (None: the network takes the crop as is, as faces.identity does).
    gate: the blend gate (restore.gate), a product addition trained after the method's stages; None: every
    restored face is kept whole.
    """

    vqgan: VQGANConfig = field(default_factory=VQGANConfig.small_128)
    score: ScoreNetConfig = field(default_factory=ScoreNetConfig.small_128)
    irn: IRNConfig = field(default_factory=IRNConfig.small_128)
    mask_factored: bool = True
    sigma_data: float = 0.5
    sigma_min: float = 0.02
    sigma_max: float = 10.0
    rho: float = 7.0
    steps: int = 10
    sampler: str = "dpmpp_2m"
    t_star_range: tuple[float, float] = (0.2, 0.6)
    guidance_range: tuple[float, float] = (0.0, 0.05)
    anchor_range: tuple[float, float] = (0.0, 0.0)
    identity_size: int | None = None
    seed: int = 0
    gate: GateConfig | None = field(default=None, metadata={"config": GateConfig})

    @property
    def resolution(self) -> int:
        return self.vqgan.resolution

    @classmethod
    def small_128(cls) -> CLRFaceConfig:
        """The shipped configuration: 128 px, 4 x 32 x 32 latents, CPU-trainable."""
        return cls()

    @classmethod
    def tiny(cls) -> CLRFaceConfig:
        """For tests: 32 px faces, 4 x 8 x 8 latents, a few thousand parameters per module."""
        return cls(vqgan=VQGANConfig.tiny(), score=ScoreNetConfig.tiny(), irn=IRNConfig.tiny(),
                   steps=4)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CLRFaceConfig:
        return _from_dict(cls, data)

    def __post_init__(self) -> None:
        if self.score.latent_channels != self.vqgan.latent_channels:
            raise ValueError(f"score.latent_channels {self.score.latent_channels} != "
                             f"vqgan.latent_channels {self.vqgan.latent_channels}")
        if not (0 <= self.t_star_range[0] <= self.t_star_range[1] <= 1):
            raise ValueError(f"t_star_range must be ordered within [0, 1], got {self.t_star_range}")
        if not (0 <= self.guidance_range[0] <= self.guidance_range[1]):
            raise ValueError(f"guidance_range must be ordered and >= 0, got {self.guidance_range}")
        if not (0 <= self.anchor_range[0] <= self.anchor_range[1]):
            raise ValueError(f"anchor_range must be ordered and >= 0, got {self.anchor_range}")


def _from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Rebuild a (nested) frozen config dataclass from JSON data; lists become tuples; unknown keys fail;
    a key the data lacks takes the class's LEGACY value where it has one (what older files were made with),
    else its default."""
    known = {f.name: f for f in fields(cls)}
    unknown = set(data) - set(known)
    if unknown:
        raise ModelError(f"weights config has unknown fields {sorted(unknown)} for {cls.__name__}; "
                         "the file was made by a newer clrface-video")
    kwargs: dict[str, Any] = {k: v for k, v in getattr(cls, "LEGACY", {}).items() if k not in data}
    for name, value in data.items():
        default = getattr(cls(), name)
        nested = type(default) if is_dataclass(default) else known[name].metadata.get("config")
        if nested is not None and isinstance(value, dict):
            kwargs[name] = _from_dict(nested, value)
        elif isinstance(value, list):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    return cls(**kwargs)


class CLRFaceModel(nn.Module):
    """vqgan (E, codebook, D), denoiser (EDM wrapper around score_net), irn, mask, gate (or None); no identity network.

    The identity network (FaceNet) is not part of these weights: it ships separately and is passed to
    the restorer.
    """

    def __init__(self, cfg: CLRFaceConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.vqgan = VQGAN(cfg.vqgan)
        self.denoiser = Denoiser(ScoreNet(cfg.score), sigma_data=cfg.sigma_data)
        self.irn = IRN(cfg.irn)
        self.mask = LatentMask(cfg.vqgan.latent_channels, cfg.vqgan.latent_resolution, factored=cfg.mask_factored)
        self.gate = BlendGate(cfg.gate) if cfg.gate is not None else None

    @property
    def score_net(self) -> ScoreNet:
        return self.denoiser.inner  # type: ignore[return-value]

    def fidelity_to_knobs(self, fidelity: float) -> Knobs:
        return fidelity_to_knobs(self.cfg, fidelity)

    def save(self, path: str | Path, *, fp16: bool = False, extra_metadata: dict[str, str] | None = None) -> None:
        """Write the weights as safetensors, the config as JSON metadata; fp16=True halves the file for shipping."""
        from safetensors.torch import save_file

        dtype = torch.float16 if fp16 else torch.float32
        state = {k: (v.to(dtype) if v.is_floating_point() else v).detach().cpu().contiguous()
                 for k, v in self.state_dict().items()}
        metadata = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": json.dumps(self.cfg.to_dict()),
                    "dtype": str(dtype).removeprefix("torch.")}
        metadata.update(extra_metadata or {})
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic(path) as tmp:
            save_file(state, str(tmp), metadata=metadata)

    @classmethod
    def load(cls, path: str | Path, map_location: str | torch.device = "cpu") -> CLRFaceModel:
        """Rebuild the model from a file written by save(); weights come back as float32. Raises ModelError."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file, safe_open

        path = Path(path)
        if not path.is_file():
            raise ModelError(f"CLR-Face weights not found: {path}")
        try:
            with safe_open(str(path), framework="pt") as f:
                metadata = f.metadata() or {}
            state = load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise ModelError(f"cannot read CLR-Face weights {path}: {exc}") from None
        if metadata.get("format") != FORMAT or "config" not in metadata:
            raise ModelError(f"{path} is not a CLR-Face weights file (no clrface config in its metadata)")
        try:
            cfg = CLRFaceConfig.from_dict(json.loads(metadata["config"]))
        except (ValueError, TypeError) as exc:  # a field out of range, or of the wrong kind
            raise ModelError(f"{path} has an invalid config: {exc}") from None
        model = cls(cfg)
        state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
        try:
            missing, unexpected = model.load_state_dict(state, strict=False)
        except RuntimeError as exc:  # a tensor whose shape the config does not give
            mismatch = next((line.strip() for line in str(exc).splitlines() if "size mismatch" in line), str(exc))
            raise ModelError(f"{path} does not match its config: {mismatch}") from None
        if missing or unexpected:
            raise ModelError(f"{path} does not match its config: missing {missing[:3]}, unexpected {unexpected[:3]}")
        return model.to(map_location).eval()


def read_metadata(path: str | Path) -> dict[str, str]:
    """The safetensors metadata of a weights file (config JSON, format, dtype, anything the trainer added)."""
    from safetensors.torch import safe_open

    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def fidelity_to_knobs(cfg: CLRFaceConfig, fidelity: float) -> Knobs:
    """Map --fidelity in [0, 1] to sampler knobs; higher fidelity stays closer to the input.

    t* = t_hi - f (t_hi - t_lo) and weight = g_hi - f (g_hi - g_lo), both non-increasing in f:
    fidelity 0 adds the most noise (trusts the prior most) and pulls hardest toward the identity;
    fidelity 1 starts nearest the IRN estimate with the least guidance. steps is cfg.steps. The anchor
    sigma shrinks with f as well, so more of the output's low frequencies come from the IRN estimate.
    """
    if not (isinstance(fidelity, (int, float)) and math.isfinite(fidelity) and 0.0 <= fidelity <= 1.0):
        raise ClrfaceError(f"{option_name('fidelity')} must be a number in [0, 1], got {fidelity!r}")
    t_lo, t_hi = cfg.t_star_range
    g_lo, g_hi = cfg.guidance_range
    a_lo, a_hi = cfg.anchor_range
    return Knobs(t_star=t_hi - fidelity * (t_hi - t_lo), guidance_weight=g_hi - fidelity * (g_hi - g_lo),
                 steps=cfg.steps, anchor_sigma=a_hi - fidelity * (a_hi - a_lo))

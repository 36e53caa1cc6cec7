"""What a training run is asked to do: the command line's options, each stage's defaults, the loss weights."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

Echo = Callable[[str], None]


@dataclass(frozen=True)
class TrainOptions:
    """Command-line options of `clrface-video train`; None means the stage's default."""

    config: str = "small_128"
    max_minutes: float | None = None
    steps: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    device: str = "auto"
    seed: int = 0
    log_every: int = 20
    resume: bool = False
    workers: int | None = None
    threads: int | None = None  # torch intra-op threads (None: torch's default)
    crop: int | None = None  # autoencoder: random square crops of this side instead of whole faces
    codec_prob: float | None = None  # share of compressed faces given x264 artefacts (None: DegradeConfig's)
    flat_prob: float = 0.1  # share of degraded training pairs given a flat region in both faces (degrade.paint_flat_region)
    checkpoint_minutes: float = 5.0
    init_from: Path | None = None  # an exported model that seeds a new run folder (see init_run_from_model)
    decoder_input: str = "clean"  # decoder stage: "clean" codes or "restored" sampler latents (DecoderStage)
    gate_inputs: str | None = None  # gate stage: GateConfig.inputs of the gate to fit (None: the run's, or a new default)


@dataclass(frozen=True)
class StageDefaults:
    """Per-stage defaults, used where the command line leaves an option unset."""

    batch_size: int
    lr: float
    steps: int


DEFAULTS = {
    "autoencoder": StageDefaults(batch_size=8, lr=2e-4, steps=100_000),
    "decoder": StageDefaults(batch_size=8, lr=1e-4, steps=20_000),
    "irn": StageDefaults(batch_size=8, lr=2e-4, steps=50_000),
    "prior": StageDefaults(batch_size=16, lr=2e-4, steps=100_000),
    "mask": StageDefaults(batch_size=4, lr=5e-2, steps=2_000),
    "gate": StageDefaults(batch_size=8, lr=3e-3, steps=3_000),
}


@dataclass(frozen=True)
class LossWeights:
    """Weights of the loss terms; the discriminator starts at step disc_start of the autoencoder and decoder stages,
    and of the IRN stage when irn_adversarial is set (or where a resumed run gives it a new one), and the
    adversarial terms disc_warmup steps later."""

    gan: float = 0.1
    feature_matching: float = 1.0
    disc_start: int = 2_000
    disc_warmup: int = 0  # steps the discriminator trains alone, the generator frozen, before the adversarial terms
    identity: float = 0.1
    irn_adversarial: bool = False  # IRN: add the gan and feature_matching terms against its own patch discriminator
    prior_draws: int = 1  # prior: noise levels drawn per encoded (clean, degraded) pair; >1 amortises encoding
    identity_samples: int = 0  # IRN: identity loss on the first n faces of each batch only (0: all); CPU saver
    mask_identity: float = 1.0
    mask_sparsity: float = 0.01
    mask_unroll: int = 2
    mask_fidelity: float = 0.5
    gate_replay: int = 1024  # gate: the most recent restored faces kept for its updates
    gate_updates: int = 4  # gate: optimizer steps per new batch of restored faces, each on 32 faces from the replay

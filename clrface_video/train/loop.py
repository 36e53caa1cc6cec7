"""The shared training loop: options, run folder, checkpoints, resume, logging, time budget, DDP helpers."""
from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler

from ..errors import ClrfaceError
from ..restore.gate import GateConfig
from ..restore.irn import IRNConfig
from ..restore.model import CLRFaceConfig, CLRFaceModel
from ..restore.score_net import ScoreNetConfig
from ..restore.vqgan import VQGANConfig

Echo = Callable[[str], None]

log = logging.getLogger(__name__)


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
    checkpoint_minutes: float = 5.0
    init_from: Path | None = None  # an exported model that seeds a new run folder (see init_run_from_model)
    decoder_input: str = "clean"  # decoder stage: "clean" codes or "restored" sampler latents (DecoderStage)
    gate_inputs: str | None = None  # gate stage: GateConfig.inputs of the gate to fit (None: the run's, or a new default)


@dataclass(frozen=True)
class StageState:
    """Optimizer-free training state of one stage, stored as JSON next to its checkpoint."""

    stage: str
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # batches of `epoch` already consumed, skipped on resume
    seconds: float = 0.0
    done: bool = False
    over: dict[str, int] = field(default_factory=dict)  # gate: the other stages' steps it was trained over


@dataclass(frozen=True)
class Dist:
    """rank / world size of a torchrun launch (world 1 when not distributed)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False  # init_distributed opened the process group (and finish_distributed closes it)

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> Dist:
    """init_process_group when launched by torchrun with WORLD_SIZE > 1 (nccl on CUDA, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    opened = not dist.is_initialized()
    if opened:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), opened)


def finish_distributed(world: Dist) -> None:
    """Wait for every rank, then close the process group init_distributed opened, so no rank leaves while
    another still talks to it (a gloo rank whose peer has exited can abort at shutdown)."""
    if world.world > 1 and dist.is_initialized():
        dist.barrier()
        if world.owns_group:
            dist.destroy_process_group()


def barrier(world: Dist) -> None:
    """Wait for every rank (no-op in a single process)."""
    if world.world > 1:
        dist.barrier()


def sync_gradients(params: list[nn.Parameter], world: Dist) -> None:
    """Average gradients over ranks (data-parallel); no-op in a single process.

    Every rank runs the same graph, so the set of parameters with a gradient is the same everywhere.
    """
    if world.world <= 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world.world
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def broadcast_module(module: nn.Module, world: Dist) -> None:
    """Start every rank from rank 0's weights."""
    if world.world > 1:
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, 0)


def endless_batches(dataset: Dataset, batch_size: int, *, seed: int, start_epoch: int, world: Dist,
                    workers: int, skip_batches: int = 0) -> Iterator[tuple[int, int, tuple[torch.Tensor, ...]]]:
    """(epoch, batch index in epoch, batch) forever; epoch e shuffles with seed + e and re-seeds the
    degradations. The first `skip_batches` batches of start_epoch are skipped (resume mid-epoch)."""
    epoch = start_epoch
    while True:
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        if world.world > 1:
            sampler: torch.utils.data.Sampler = DistributedSampler(dataset, world.world, world.rank, shuffle=True,
                                                                   seed=seed, drop_last=True)
            sampler.set_epoch(epoch)
        else:
            sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
        skip = skip_batches if epoch == start_epoch else 0
        indices = list(sampler)[skip * batch_size:]
        loader = DataLoader(dataset, batch_size=batch_size, sampler=indices, num_workers=workers, drop_last=True,
                            persistent_workers=False, pin_memory=False)
        batches = 0
        for batches, batch in enumerate(loader, skip + 1):
            yield epoch, batches, batch
        if batches == 0 and skip == 0:  # fewer faces than one batch (per process): every epoch would be empty
            raise ClrfaceError(f"{len(dataset)} training faces give no full batch of {batch_size}"
                               f"{f' on each of {world.world} processes' if world.world > 1 else ''}; "
                               "add faces or lower --batch-size")
        epoch += 1


class RunLog:
    """Appends one JSON line per logged step to RUN/<stage>/log.jsonl and echoes a summary line."""

    def __init__(self, path: Path, echo: Echo | None, enabled: bool) -> None:
        self.path = path
        self.echo = echo
        self.enabled = enabled
        self.sums: dict[str, float] = {}
        self.count = 0

    def add(self, losses: dict[str, float]) -> None:
        for k, v in losses.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v)
        self.count += 1

    def flush(self, stage: str, step: int, seconds: float, extra: dict[str, float] | None = None) -> dict[str, float]:
        means = {k: v / max(self.count, 1) for k, v in self.sums.items()}
        self.sums, self.count = {}, 0
        if self.enabled:
            record = {"stage": stage, "step": step, "minutes": round(seconds / 60, 3), **means, **(extra or {})}
            with open(self.path, "a") as fh:
                fh.write(json.dumps(record) + "\n")
            if self.echo:
                body = " ".join(f"{k}={v:.4f}" for k, v in means.items())
                self.echo(f"[{stage}] step {step} {seconds / 60:.1f} min {body}")
        return means


def save_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


def load_state(stage_dir: Path, stage: str) -> StageState:
    path = stage_dir / "state.json"
    if not path.is_file():
        return StageState(stage)
    return StageState(**json.loads(path.read_text()))


def save_state(stage_dir: Path, state: StageState) -> None:
    save_json(stage_dir / "state.json", asdict(state))


def save_optimizers(path: Path, optimizers: dict[str, torch.optim.Optimizer]) -> None:
    """Our own resume file inside the run folder (torch.save; only ever read back by load_optimizers)."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save({k: o.state_dict() for k, o in optimizers.items()}, tmp)
    tmp.replace(path)


def load_optimizers(path: Path, optimizers: dict[str, torch.optim.Optimizer]) -> bool:
    """Load the optimizers' states saved by save_optimizers; False when the file is absent (fresh states)."""
    if not path.is_file():
        return False
    states = torch.load(path, map_location="cpu", weights_only=True)
    for k, o in optimizers.items():
        if k in states:
            o.load_state_dict(states[k])
    return True


def save_module(path: Path, module: nn.Module) -> None:
    from safetensors.torch import save_file

    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}, str(tmp))
    tmp.replace(path)


def load_module(path: Path, module: nn.Module) -> bool:
    from safetensors.torch import load_file

    if not path.is_file():
        return False
    module.load_state_dict(load_file(str(path)))
    return True


@dataclass(frozen=True)
class Budget:
    """When a stage stops: after `steps` optimizer steps in total, or `minutes` of wall time in this call."""

    steps: int
    minutes: float | None

    def over(self, step: int, started: float) -> bool:
        if step >= self.steps:
            return True
        return self.minutes is not None and (time.monotonic() - started) / 60.0 >= self.minutes


def set_seed(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % (2 ** 32))


def lr_at(step: int, base: float, warmup: int = 25) -> float:
    """Linear warm-up over `warmup` steps from step 0, then constant (CPU runs are too short for a decay
    to matter); steps before 0 get the first warm-up rate."""
    return base * min(1.0, (max(step, 0) + 1) / max(warmup, 1))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def finite(losses: dict[str, torch.Tensor]) -> bool:
    return all(math.isfinite(float(v.detach()) if torch.is_tensor(v) else float(v)) for v in losses.values())


# ----------------------------------------------------------------------------- run folder and export

# decoder (optional) saves the whole VQGAN after the autoencoder: loaded second, it replaces the decoder.
# gate (optional) is the blend gate over the finished model, a module only runs that train it have.
STAGE_ORDER = ("autoencoder", "decoder", "irn", "prior", "mask", "gate")
STAGE_MODULE = {"autoencoder": "vqgan", "decoder": "vqgan", "irn": "irn", "prior": "denoiser", "mask": "mask",
                "gate": "gate"}
OPTIONAL_STAGES = ("decoder", "gate")


def make_config(name: str) -> CLRFaceConfig:
    """The named CLRFaceConfig preset; base_256 / base_512 are built here from the module presets."""
    if name in ("tiny", "small_128"):
        return getattr(CLRFaceConfig, name)()
    vq = {"base_256": VQGANConfig.base_256, "base_512": VQGANConfig.base_512}[name]()
    return CLRFaceConfig(vqgan=vq, score=ScoreNetConfig(latent_channels=vq.latent_channels, base_channels=96),
                         irn=IRNConfig(base_channels=32, channel_mult=(1, 2, 4, 4)),
                         identity_size=160)


def gate_of_other_kind(cfg: CLRFaceConfig, inputs: str | None) -> bool:
    """Whether cfg has a blend gate that looks at other inputs than `inputs` (None: any kind will do)."""
    return cfg.gate is not None and inputs not in (None, cfg.gate.inputs)


def add_gate(run_dir: Path, name: str, inputs: str | None = None) -> CLRFaceConfig:
    """The run's config with a blend gate (restore.gate) added, written back, for the gate stage: the gate is
    an add-on, so a run (or a model it was seeded from) trained without one takes it without changing anything else.

    inputs: what the gate looks at (GateConfig.inputs; None: the run's gate as it is, or a new gate's default).
    A run whose gate looks at other inputs takes a new one only while that gate is untrained.
    """
    cfg = load_run_config(run_dir, name)
    if gate_of_other_kind(cfg, inputs):
        if load_state(run_dir / "gate", "gate").step > 0:
            raise ClrfaceError(f"{run_dir} holds a blend gate trained on --gate-inputs {cfg.gate.inputs}; "
                               "start a new --run-dir (with --init-from, a file's gate of the other kind is replaced)")
        cfg = replace(cfg, gate=None)
    if cfg.gate is None:
        gate = GateConfig.tiny() if name == "tiny" else GateConfig()
        cfg = replace(cfg, gate=gate if inputs is None else replace(gate, inputs=inputs))
        path = run_dir / "config.json"
        save_json(path, {**json.loads(path.read_text()), "model": cfg.to_dict()})
    return cfg


def load_run_config(run_dir: Path, name: str) -> CLRFaceConfig:
    """The run's config (written on the first call; later calls must not change it)."""
    path = run_dir / "config.json"
    if path.is_file():
        data = json.loads(path.read_text())
        if data.get("preset") != name:
            raise ClrfaceError(f"{run_dir} was started with --config {data.get('preset')}, not {name}")
        return CLRFaceConfig.from_dict(data["model"])
    cfg = make_config(name)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_json(path, {"preset": name, "model": cfg.to_dict()})
    return cfg


def init_run_from_model(run_dir: Path, model_path: Path, preset: str, gate_inputs: str | None = None) -> dict[str, int]:
    """Seed a new run folder from an exported model file: config.json from the file's config, and every
    stage the file was trained in as that stage's checkpoint (its weights, and its step count from the
    file's training metadata) with no optimizer or discriminator state. `train --resume` then continues
    each stage from there. Returns {stage: step}. Refuses a folder that already has a config.json.

    gate_inputs: a file's blend gate that looks at other inputs is left out (the gate stage fits a new one).
    """
    from ..errors import ModelError
    from ..restore.model import read_metadata

    run_dir = Path(run_dir)
    if (run_dir / "config.json").is_file():
        raise ClrfaceError(f"{run_dir} is already a run folder; --init-from starts a new one (drop it to continue)")
    try:
        model = CLRFaceModel.load(model_path)
    except ModelError as exc:
        raise ClrfaceError(str(exc)) from None
    cfg, want = model.cfg, make_config(preset)
    if gate_of_other_kind(cfg, gate_inputs):
        cfg = replace(cfg, gate=None)
    if (cfg.vqgan, cfg.score, cfg.irn, cfg.mask_factored) != (want.vqgan, want.score, want.irn, want.mask_factored):
        raise ClrfaceError(f"{model_path} is not a --config {preset} model (its architecture differs); "
                           "pass the --config it was trained with")
    meta = read_metadata(model_path)
    training = json.loads(meta.get("training", "{}"))
    untrained = set(filter(None, meta.get("untrained_stages", "").split(",")))
    run_dir.mkdir(parents=True, exist_ok=True)
    steps = {}
    for stage in STAGE_ORDER:
        if stage in untrained or (stage in OPTIONAL_STAGES and stage not in training) or \
                (stage == "gate" and cfg.gate is None):  # a gate of the other kind is left out
            continue
        sdir = run_dir / stage
        sdir.mkdir(exist_ok=True)
        save_module(sdir / "weights.safetensors", getattr(model, STAGE_MODULE[stage]))
        steps[stage] = int(training.get(stage, {}).get("step", 0))
        minutes = float(training.get(stage, {}).get("minutes", 0.0))
        over = {s: n for s, n in steps.items() if s != stage} if stage == "gate" else {}  # the file's own stages
        save_state(sdir, StageState(stage, step=steps[stage], seconds=minutes * 60.0, over=over))
    save_json(run_dir / "config.json", {"preset": preset, "model": cfg.to_dict(), "init_from": str(model_path)})
    return steps


def load_finished_stages(model: CLRFaceModel, run_dir: Path) -> list[str]:
    """Load every stage's weights found in the run folder into the model; returns the stages loaded."""
    loaded = []
    for stage in STAGE_ORDER:
        module = getattr(model, STAGE_MODULE[stage])
        if module is not None and load_module(run_dir / stage / "weights.safetensors", module):
            loaded.append(stage)
    return loaded


def stale_gate(run_dir: Path) -> bool:
    """Whether the run's blend gate cannot be exported: never trained, or trained over other weights than
    the run's (a stage trained since: the gate learnt those restorations, not these; logged as a warning)."""
    gate = load_state(run_dir / "gate", "gate")
    if gate.step == 0:
        return True
    moved = [s for s, n in gate.over.items() if load_state(run_dir / s, s).step != n]
    if moved:
        log.warning("%s: the blend gate was trained over other %s weights and is left out of the export; "
                    "train --stage gate again to fit one to these", run_dir, " and ".join(moved))
    return bool(moved)


def export_model(run_dir: Path, out: Path, *, fp16: bool = True, anchor_range: tuple[float, float] | None = None,
                 t_star_range: tuple[float, float] | None = None) -> int:
    """Assemble the stages of a run folder into one CLRFaceModel safetensors file; returns its size in bytes.

    anchor_range, t_star_range: inference-time fidelity mappings stored with the weights (None: the run's).
    """
    run_dir, out = Path(run_dir), Path(out)
    if not (run_dir / "config.json").is_file():
        raise ClrfaceError(f"{run_dir} is not a run folder (no config.json); give the --run-dir of `clrface-video train`")
    if out.suffix != ".safetensors":
        raise ClrfaceError(f"{out.name}: name the exported model NAME.safetensors")
    if out.resolve().parent != run_dir.resolve() and out.resolve().is_relative_to(run_dir.resolve()):
        raise ClrfaceError(f"{out} is inside a stage folder of {run_dir}, among its checkpoints; export it elsewhere")
    data = json.loads((run_dir / "config.json").read_text())
    cfg = CLRFaceConfig.from_dict(data["model"])
    if anchor_range is not None:
        cfg = replace(cfg, anchor_range=(float(anchor_range[0]), float(anchor_range[1])))
    if t_star_range is not None:
        cfg = replace(cfg, t_star_range=(float(t_star_range[0]), float(t_star_range[1])))
    if cfg.gate is not None and stale_gate(run_dir):
        cfg = replace(cfg, gate=None)  # an untrained gate, or one fitted to other weights: leave it out
    model = CLRFaceModel(cfg)
    loaded = load_finished_stages(model, run_dir)
    missing = [s for s in STAGE_ORDER if s not in loaded and s not in OPTIONAL_STAGES]
    if "autoencoder" in missing:
        raise ClrfaceError(f"{run_dir} has no trained autoencoder; train --stage autoencoder first")
    if missing:
        log.warning("%s: %s never trained; the exported model keeps their initial weights", run_dir,
                    ", ".join(missing))
    states = {s: load_state(run_dir / s, s) for s in loaded}
    meta = {"training": json.dumps({s: {"step": st.step, "minutes": round(st.seconds / 60, 1)}
                                    for s, st in states.items()}),
            "untrained_stages": ",".join(missing)}
    model.save(out, fp16=fp16, extra_metadata=meta)
    return Path(out).stat().st_size

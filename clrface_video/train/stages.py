"""Staged CLR-Face training over one run folder: per-stage defaults, the loop, checkpoints, and train_stages()."""
from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..device import pick_device
from ..errors import ClrfaceError
from ..restore.model import CLRFaceConfig, CLRFaceModel, read_metadata
from . import loop
from .data import FaceDataset, check_prepared, fixed_pairs, to_tensor, to_uint8
from .degrade import DegradeConfig
from .loop import (
    STAGE_ORDER,
    Budget,
    Echo,
    RunLog,
    StageState,
    TrainOptions,
    add_gate,
    export_model,
    load_finished_stages,
    load_run_config,
    make_config,
)
from .steps import STAGES, Context, LossWeights, Stage

__all__ = ["STAGE_ORDER", "LossWeights", "TrainOptions", "export_model", "make_config", "train_stages"]


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


# ----------------------------------------------------------------------------- the loop


def save_preview(path: Path, stage: Stage, hq: np.ndarray, lq: np.ndarray, device: torch.device) -> None:
    """A PNG grid: rows of clean, degraded and the stage's output for a few fixed held-out faces."""
    import cv2

    out = to_uint8(stage.preview(to_tensor(hq).to(device), to_tensor(lq).to(device)))
    rows = [np.concatenate(list(a), axis=1) for a in (hq, lq if stage.needs_lq else hq, out)]
    cv2.imwrite(str(path), np.concatenate(rows, axis=0)[..., ::-1])


def run_stage(ctx: Context, stage_name: str) -> StageState:
    """Train one stage until its step count or time budget; checkpoints, logs and previews in RUN/<stage>/."""
    opts, defaults = ctx.options, DEFAULTS[stage_name]
    sdir = ctx.stage_dir(stage_name)
    state = loop.load_state(sdir, stage_name)
    if state.step > 0 and not opts.resume:
        raise ClrfaceError(f"{sdir} already holds {state.step} steps of '{stage_name}'; pass --resume or a new --run")
    ctx.start_step = state.step if opts.resume else 0
    stage = STAGES[stage_name](ctx, opts.lr or defaults.lr)
    if opts.resume and state.step > 0:
        loop.load_module(sdir / "weights.safetensors", stage.trained)
        for name, module in stage.extra_modules().items():
            loop.load_module(sdir / f"{name}.safetensors", module)
        if not loop.load_optimizers(sdir / "optim.pt", stage.optimizers):  # seeded by --init-from
            stage.lr_origin = {k: max(v, state.step) for k, v in stage.lr_origin.items()}
    loop.broadcast_module(stage.trained, ctx.world)
    # the gate fits the restorations of the other stages as they are now; export checks they still are
    over = {s: loop.load_state(ctx.run_dir / s, s).step for s in loop.STAGE_ORDER if s != "gate"} \
        if stage_name == "gate" else {}
    over = {s: n for s, n in over.items() if n > 0}
    budget = Budget(opts.steps or defaults.steps, opts.max_minutes)
    if budget.over(state.step, time.monotonic()):
        return state
    batch_size = opts.batch_size or defaults.batch_size
    degrade_config = DegradeConfig(light_prob=stage.light_prob)
    if opts.codec_prob is not None:
        degrade_config = replace(degrade_config, codec_prob=opts.codec_prob)
    data = FaceDataset(ctx.data_dir, "train", seed=opts.seed, degrade=stage.needs_lq, degrade_config=degrade_config)
    workers = opts.workers if opts.workers is not None else (4 if ctx.device.type == "cuda" else 0)
    batches = loop.endless_batches(data, batch_size, seed=opts.seed, start_epoch=state.epoch, world=ctx.world,
                                   workers=workers, skip_batches=state.batch_in_epoch)
    preview_hq, preview_lq = fixed_pairs(ctx.data_dir, ctx.preview_split, count=8, degrade_config=degrade_config)
    log = RunLog(sdir / "log.jsonl", ctx.echo, ctx.world.main)
    if ctx.world.main and ctx.echo:
        ctx.echo(f"[{stage_name}] {len(data)} faces, batch {batch_size} x {ctx.world.world}, from step {state.step}, "
                 f"{sum(p.numel() for p in stage.params) / 1e6:.2f} M trained parameters, device {ctx.device}")
    t0 = seg_start = last_ckpt = time.monotonic()
    step, epoch, in_epoch = state.step, state.epoch, state.batch_in_epoch
    for epoch, in_epoch, (hq, lq) in batches:
        hq, lq = hq.to(ctx.device, non_blocking=True), lq.to(ctx.device, non_blocking=True)
        losses = stage.step(hq, lq, step)
        if not loop.finite(losses):
            raise FloatingPointError(f"[{stage_name}] non-finite loss at step {step}: "
                                     f"{ {k: float(v) for k, v in losses.items()} }")
        step += 1
        log.add({k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in losses.items()})
        stop = budget.over(step, t0)
        if step % opts.log_every == 0 or stop:
            log.flush(stage_name, step, state.seconds + time.monotonic() - seg_start)
        if stop or time.monotonic() - last_ckpt > opts.checkpoint_minutes * 60:
            state = StageState(stage_name, step, epoch, in_epoch, state.seconds + time.monotonic() - seg_start,
                               done=step >= budget.steps, over=over)
            seg_start = last_ckpt = time.monotonic()
            if ctx.world.main:
                save_checkpoint(sdir, stage, state)
                save_preview(sdir / f"preview_{step:06d}.png", stage, preview_hq, preview_lq, ctx.device)
            if stop:
                break
    return state


def save_checkpoint(sdir: Path, stage: Stage, state: StageState) -> None:
    loop.save_module(sdir / "weights.safetensors", stage.trained)
    for name, module in stage.extra_modules().items():
        loop.save_module(sdir / f"{name}.safetensors", module)
    loop.save_optimizers(sdir / "optim.pt", stage.optimizers)
    loop.save_state(sdir, state)


# what a stage builds on: it needs these trained first, in the run folder or earlier in the same call
NEEDS = {"prior": ("autoencoder",), "decoder": ("autoencoder",), "mask": ("autoencoder", "irn", "prior"),
         "gate": ("autoencoder", "irn", "prior")}


def check_stage_order(run_dir: Path, stages: Sequence[str], options: TrainOptions) -> None:
    """Refuse a stage whose inputs were never trained (a prior over a random autoencoder learns nothing useful)."""
    for i, name in enumerate(stages):
        needs = NEEDS.get(name, ()) + (("irn", "prior") if name == "decoder" and options.decoder_input == "restored"
                                       else ())
        untrained = [s for s in needs if s not in stages[:i] and loop.load_state(run_dir / s, s).step == 0]
        if untrained:
            raise ClrfaceError(f"--stage {name} builds on {', '.join(untrained)}, not trained in {run_dir}; "
                               f"train {' and '.join(untrained)} first (or --stage all)")


def _model_config(path: Path | None) -> CLRFaceConfig | None:
    """The config stored in an exported model (the one --init-from starts a run from), or None."""
    if path is None:
        return None
    try:
        return CLRFaceConfig.from_dict(json.loads(read_metadata(path)["config"]))
    except Exception:  # noqa: BLE001 - any unreadable file: init_run_from_model says what is wrong with it
        return None


def train_stages(data_dir: Path, run_dir: Path, stages: Sequence[str], options: TrainOptions,
                 echo: Echo | None = print, weights: LossWeights | None = None,
                 identity_net: nn.Module | None = None) -> dict[str, StageState]:
    """Run the named stages in order; each starts from the weights of every earlier stage in the run folder.

    identity_net: the frozen recognition network for the identity losses (default: FaceNet, faces.identity).
    """
    weights = weights or LossWeights()
    device = pick_device(options.device)
    if options.threads is not None:
        torch.set_num_threads(options.threads)
    world = loop.init_distributed(device)
    torch.backends.cudnn.benchmark = device.type == "cuda"  # fixed input shapes: let cuDNN pick kernels once
    if device.type == "cuda" and world.world > 1:
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    loop.set_seed(options.seed + world.rank)
    started = (Path(run_dir) / "config.json").is_file()
    if options.resume and options.init_from is None and not started:
        raise ClrfaceError(f"--resume: {run_dir} is not a run folder (no config.json); leave --resume out to start it")
    if options.init_from is None:
        check_stage_order(Path(run_dir), stages, options)
    planned = load_run_config(Path(run_dir), options.config) if started else \
        _model_config(options.init_from) or make_config(options.config)
    preview_split = check_prepared(Path(data_dir), planned.resolution,  # before the run folder is touched
                                   max(options.batch_size or DEFAULTS[name].batch_size for name in stages))
    if options.init_from is not None:
        options = replace(options, resume=True)
    if world.main:  # rank 0 writes config.json; the others read it once it is there
        if options.init_from is not None:
            seeded = loop.init_run_from_model(Path(run_dir), Path(options.init_from), options.config,
                                              options.gate_inputs if "gate" in stages else None)
            if echo:
                echo(f"{run_dir}: started from {options.init_from} (" +
                     ", ".join(f"{s} at step {n}" for s, n in seeded.items()) + ")")
        load_run_config(Path(run_dir), options.config)
        if "gate" in stages:
            add_gate(Path(run_dir), options.config, options.gate_inputs)
    loop.barrier(world)
    cfg = load_run_config(Path(run_dir), options.config)
    results = {}
    for name in stages:
        model = CLRFaceModel(cfg)
        load_finished_stages(model, Path(run_dir))
        ctx = Context(Path(run_dir), Path(data_dir), cfg, model.to(device), device, world, options, weights, echo,
                      identity_net, preview_split=preview_split)
        results[name] = run_stage(ctx, name)
    loop.finish_distributed(world)
    return results

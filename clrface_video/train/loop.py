"""The training loop of one stage: batches, steps, logs, the time budget, checkpoints and previews."""
from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler

from ..errors import ClrfaceError
from .checkpoint import StageState, load_module, load_optimizers, load_state, save_checkpoint
from .data import FaceDataset, fixed_pairs, to_tensor, to_uint8
from .ddp import Dist, any_rank, broadcast_module
from .degrade import DegradeConfig
from .options import DEFAULTS, Echo
from .run_folder import moved_since, over_now
from .stage_context import Context
from .stages import STAGES, Stage


def endless_batches(dataset: Dataset, batch_size: int, *, seed: int, start_epoch: int, world: Dist,
                    workers: int, skip_batches: int = 0) -> Iterator[tuple[int, int, tuple[torch.Tensor, ...]]]:
    """(epoch, batch index in epoch, batch) forever; epoch e shuffles with seed + e and re-seeds the
    degradations. The first `skip_batches` batches of start_epoch are skipped (resume mid-epoch).

    One loader serves every epoch: items are asked for as (epoch, index), so its workers start once instead
    of once per epoch (where workers are spawned, as on Windows and macOS, each start copied the dataset)."""

    numbers: deque[tuple[int, int]] = deque()  # (epoch, batch number) of each batch asked for, in order

    def batches() -> Iterator[list[tuple[int, int]]]:
        epoch = start_epoch
        while True:
            if world.world > 1:
                sampler: torch.utils.data.Sampler = DistributedSampler(dataset, world.world, world.rank,
                                                                       shuffle=True, seed=seed, drop_last=True)
                sampler.set_epoch(epoch)
            else:
                sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
            order = list(sampler)
            full = len(order) // batch_size
            if full == 0:  # fewer faces than one batch (per process): every epoch would be empty
                raise ClrfaceError(f"{len(dataset)} training faces give no full batch of {batch_size}"
                                   f"{f' on each of {world.world} processes' if world.world > 1 else ''}; "
                                   "add faces or lower --batch-size")
            for b in range(skip_batches if epoch == start_epoch else 0, full):
                numbers.append((epoch, b + 1))
                yield [(epoch, i) for i in order[b * batch_size:(b + 1) * batch_size]]
            epoch += 1

    # the loader hands batches back in the order it asked for them (it may ask a few ahead)
    for batch in DataLoader(EpochItems(dataset), batch_sampler=batches(), num_workers=workers, pin_memory=False):
        epoch, number = numbers.popleft()
        yield epoch, number, batch


class EpochItems(Dataset):
    """A dataset's items asked for as (epoch, index): its item_at(epoch, index) where it has one (the
    degradations of an epoch are seeded by it), else dataset[index]."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        item_at = getattr(self.dataset, "item_at", None)
        return item_at(epoch, index) if item_at is not None else self.dataset[index]


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


def finite(losses: dict[str, torch.Tensor]) -> bool:
    return all(math.isfinite(float(v.detach()) if torch.is_tensor(v) else float(v)) for v in losses.values())


def save_preview(path: Path, stage: Stage, hq: np.ndarray, lq: np.ndarray, device: torch.device) -> None:
    """A PNG grid: rows of clean, degraded and the stage's output for a few fixed held-out faces."""
    from ..io import cv_files

    out = to_uint8(stage.preview(to_tensor(hq).to(device), to_tensor(lq).to(device)))
    rows = [np.concatenate(list(a), axis=1) for a in (hq, lq if stage.needs_lq else hq, out)]
    cv_files.imwrite(path, np.concatenate(rows, axis=0)[..., ::-1])


def run_stage(ctx: Context, stage_name: str) -> StageState:
    """Train one stage until its step count or time budget; checkpoints, logs and previews in RUN/<stage>/."""
    opts, defaults = ctx.options, DEFAULTS[stage_name]
    sdir = ctx.stage_dir(stage_name)
    state = load_state(sdir, stage_name)
    if state.step > 0 and not opts.resume:
        raise ClrfaceError(f"{sdir} already holds {state.step} steps of '{stage_name}'; pass --resume or a new --run")
    ctx.start_step = state.step if opts.resume else 0
    stage = STAGES[stage_name](ctx, opts.lr or defaults.lr)
    resuming = opts.resume and state.step > 0
    stale = moved_since(ctx.run_dir, stage_name) if resuming else []
    if stale and ctx.world.main and ctx.echo:  # a decoder tuned over an earlier autoencoder: tune this one
        ctx.echo(f"[{stage_name}] {' and '.join(stale)} trained on since this stage was: it goes on over them "
                 "as they are now, with new optimizers")
    loaded: set[str] = set()  # the optimizers resumed; the others (all, in a folder seeded by --init-from) are new
    if resuming and not stale:
        load_module(sdir / "weights.safetensors", stage.trained)
        for name, module in stage.extra_modules().items():
            load_module(sdir / f"{name}.safetensors", module)
        loaded = load_optimizers(sdir / "optim.pt", stage.optimizers)
    if resuming:  # a new optimizer's learning rate warms up again from here (a new discriminator starts here)
        stage.lr_origin = {k: v if k in loaded else max(v, state.step) for k, v in stage.lr_origin.items()}
    broadcast_module(stage.trained, ctx.world)
    # what the stage is trained over (the gate: every other stage's restorations; the decoder: the
    # autoencoder it overrides) as it is now; export and later stages check it still is
    over = over_now(ctx.run_dir, stage_name)
    # a stage fitted again over stages that moved gets its default steps anew: a gate seeded by --init-from
    # (the shipped one is at step 6460 of its default 3000) was otherwise refused as done, and left out of export
    budget = Budget(opts.steps or defaults.steps + (state.step if stale else 0), opts.max_minutes)
    if budget.over(state.step, time.monotonic()):
        if ctx.world.main and ctx.echo:
            ctx.echo(f"[{stage_name}] already at step {state.step} of its {budget.steps}: nothing to train "
                     "(raise --steps to go on)")
        return state
    batch_size = opts.batch_size or defaults.batch_size
    degrade_config = DegradeConfig(light_prob=stage.light_prob)
    if opts.codec_prob is not None:
        degrade_config = replace(degrade_config, codec_prob=opts.codec_prob)
    data = FaceDataset(ctx.data_dir, "train", seed=opts.seed, degrade=stage.needs_lq,
                       degrade_config=degrade_config, flat_prob=opts.flat_prob)
    workers = opts.workers if opts.workers is not None else (4 if ctx.device.type == "cuda" else 0)
    batches = endless_batches(data, batch_size, seed=opts.seed, start_epoch=state.epoch, world=ctx.world,
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
        if not finite(losses):
            raise FloatingPointError(f"[{stage_name}] non-finite loss at step {step}: "
                                     f"{ {k: float(v) for k, v in losses.items()} }")
        step += 1
        log.add({k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in losses.items()})
        stop = any_rank(budget.over(step, t0), ctx.world, ctx.device)  # --max-minutes: each rank's own clock
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

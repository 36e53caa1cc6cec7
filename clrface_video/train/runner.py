"""clrface-video train: the named stages in order over one run folder, each from the weights of those before."""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from ..device import pick_device
from ..errors import ClrfaceError
from ..restore.model import CLRFaceConfig, CLRFaceModel, read_metadata
from .checkpoint import StageState, load_state
from .data import check_prepared
from .ddp import barrier, finish_distributed, init_distributed
from .loop import run_stage, set_seed
from .options import DEFAULTS, Echo, LossWeights, TrainOptions
from .run_folder import (
    add_gate,
    check_preset,
    init_run_from_model,
    load_finished_stages,
    load_run_config,
    preset_config,
)
from .stage_context import Context

# what a stage builds on: it needs these trained first, in the run folder or earlier in the same call
NEEDS = {"prior": ("autoencoder",), "decoder": ("autoencoder",), "mask": ("autoencoder", "irn", "prior"),
         "gate": ("autoencoder", "irn", "prior")}


def check_stage_order(run_dir: Path, stages: Sequence[str], options: TrainOptions) -> None:
    """Refuse a stage whose inputs were never trained (a prior over a random autoencoder learns nothing useful)."""
    for i, name in enumerate(stages):
        needs = NEEDS.get(name, ()) + (("irn", "prior") if name == "decoder" and options.decoder_input == "restored"
                                       else ())
        untrained = [s for s in needs if s not in stages[:i] and load_state(run_dir / s, s).step == 0]
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
    world = init_distributed(device)
    torch.backends.cudnn.benchmark = device.type == "cuda"  # fixed input shapes: let cuDNN pick kernels once
    if device.type == "cuda" and world.world > 1:
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    set_seed(options.seed + world.rank)
    started = (Path(run_dir) / "config.json").is_file()
    if options.resume and options.init_from is None and not started:
        raise ClrfaceError(f"--resume: {run_dir} is not a run folder (no config.json); leave --resume out to start it")
    if options.init_from is None:
        check_stage_order(Path(run_dir), stages, options)
    planned = load_run_config(Path(run_dir), options.config) if started else \
        _model_config(options.init_from) or preset_config(options.config)
    if options.init_from is not None and not started:
        check_preset(planned, options.config, Path(options.init_from))  # before the data is judged by its size
    preview_split = check_prepared(Path(data_dir), planned.resolution,  # before the run folder is touched
                                   max(options.batch_size or DEFAULTS[name].batch_size for name in stages))
    if options.init_from is not None:
        options = replace(options, resume=True)
    if world.main:  # rank 0 writes config.json; the others read it once it is there
        if options.init_from is not None:
            seeded = init_run_from_model(Path(run_dir), Path(options.init_from), options.config,
                                              options.gate_inputs if "gate" in stages else None)
            if echo:
                echo(f"{run_dir}: started from {options.init_from} (" +
                     ", ".join(f"{s} at step {n}" for s, n in seeded.items()) + ")")
        load_run_config(Path(run_dir), options.config)
        if "gate" in stages:
            add_gate(Path(run_dir), options.config, options.gate_inputs)
    barrier(world)
    cfg = load_run_config(Path(run_dir), options.config)
    results = {}
    for name in stages:
        model = CLRFaceModel(cfg)
        load_finished_stages(model, Path(run_dir), training=stages)
        ctx = Context(Path(run_dir), Path(data_dir), cfg, model.to(device), device, world, options, weights, echo,
                      identity_net, preview_split=preview_split)
        results[name] = run_stage(ctx, name)
        barrier(world)  # rank 0 has written this stage's weights before any rank loads them for the next
    finish_distributed(world)
    return results

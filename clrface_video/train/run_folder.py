"""A run folder: its model config (presets, gates), seeding from an exported model, finished stages, export."""
from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from ..errors import ClrfaceError, listed
from ..restore.gate import GateConfig
from ..restore.irn import IRNConfig
from ..restore.model import CLRFaceConfig, CLRFaceModel
from ..restore.score_net import ScoreNetConfig
from ..restore.vqgan import VQGANConfig
from .checkpoint import StageState, load_module, load_state, save_json, save_module, save_state

log = logging.getLogger(__name__)


# decoder (optional) saves the whole VQGAN after the autoencoder: loaded second, it replaces the decoder.
# gate (optional) is the blend gate over the finished model, a module only runs that train it have.
STAGE_ORDER = ("autoencoder", "decoder", "irn", "prior", "mask", "gate")


# stages trained over others' weights, which they supersede or depend on: the steps of those stages are
# recorded with them (StageState.over) so a stage trained over weights that have moved since is known stale
# (the prior learns the autoencoder's latents; the mask unrolls the prior over them from the IRN's estimate; the
# IRN works on pixels alone)
TRAINED_OVER = {"decoder": ("autoencoder",), "prior": ("autoencoder",), "mask": ("autoencoder", "irn", "prior"),
                "gate": tuple(s for s in STAGE_ORDER if s != "gate")}

STAGE_MODULE = {"autoencoder": "vqgan", "decoder": "vqgan", "irn": "irn", "prior": "denoiser", "mask": "mask",
                "gate": "gate"}


OPTIONAL_STAGES = ("decoder", "gate")


def preset_config(name: str) -> CLRFaceConfig:
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
    cfg = preset_config(name)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_json(path, {"preset": name, "model": cfg.to_dict()})
    return cfg


def check_preset(cfg: CLRFaceConfig, preset: str, model_path: Path) -> None:
    """A model file's config (an --init-from file's) has the architecture of --config `preset`."""
    want = preset_config(preset)
    if (cfg.vqgan, cfg.score, cfg.irn, cfg.mask_factored) != (want.vqgan, want.score, want.irn, want.mask_factored):
        size = f"a {cfg.resolution} px model, " if cfg.resolution != want.resolution else ""
        raise ClrfaceError(f"{model_path} is not a --config {preset} model ({size}its architecture differs); "
                           "pass the --config it was trained with")


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
    cfg = model.cfg
    if gate_of_other_kind(cfg, gate_inputs):
        cfg = replace(cfg, gate=None)
    check_preset(cfg, preset, model_path)
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
        over = {s: n for s, n in steps.items() if s in TRAINED_OVER.get(stage, ())}  # the file's own stages
        save_state(sdir, StageState(stage, step=steps[stage], seconds=minutes * 60.0, over=over))
    save_json(run_dir / "config.json", {"preset": preset, "model": cfg.to_dict(), "init_from": str(model_path)})
    return steps


def over_now(run_dir: Path, stage: str) -> dict[str, int]:
    """The steps, now, of the trained stages `stage` is trained over (TRAINED_OVER), to record with it."""
    steps = {s: load_state(run_dir / s, s).step for s in TRAINED_OVER.get(stage, ())}
    return {s: n for s, n in steps.items() if n > 0}


def moved_since(run_dir: Path, stage: str) -> list[str]:
    """The stages trained on since `stage` was trained over them (none for a state saved without a record)."""
    state = load_state(run_dir / stage, stage)
    return [s for s, n in state.over.items() if load_state(run_dir / s, s).step != n]


def load_finished_stages(model: CLRFaceModel, run_dir: Path, training: Sequence[str] = ()) -> list[str]:
    """Load every stage's weights found in the run folder into the model; returns the stages loaded.

    A decoder fine-tune holds the whole autoencoder and overrides it, unless the autoencoder was trained on
    since (then its copy is stale and left out, with a warning unless it is among the stages `training`)."""
    loaded = []
    for stage in STAGE_ORDER:
        module = getattr(model, STAGE_MODULE[stage])
        if stage == "decoder" and moved_since(run_dir, stage):
            if stage not in training:
                log.warning("%s: the decoder fine-tune was trained over an earlier autoencoder and is left out; "
                            "train --stage decoder --resume to tune this one", run_dir)
            continue
        if module is not None and load_module(run_dir / stage / "weights.safetensors", module):
            loaded.append(stage)
    return loaded


def stale_gate(run_dir: Path) -> bool:
    """Whether the run's blend gate cannot be exported: never trained, or trained over other weights than
    the run's (a stage trained since: the gate learnt those restorations, not these; export warns)."""
    return load_state(run_dir / "gate", "gate").step == 0 or bool(moved_since(run_dir, "gate"))


def warn_stale(run_dir: Path, stages: Sequence[str]) -> None:
    """One warning naming the exported stages trained over weights that have moved since (a prior over an
    earlier autoencoder's latents no longer matches its decoder), in the order to train them again."""
    moved = {stage: moved_since(run_dir, stage) for stage in stages if stage != "decoder"}  # decoder: left out
    stale = [s for s in STAGE_ORDER if moved.get(s)]
    if not stale:
        return
    since = [s for s in STAGE_ORDER if any(s in m for m in moved.values())]
    log.warning("%s: %s trained on after %s %s trained over %s%s; train %s again%s with --resume (without "
                "--steps, its default steps more)", run_dir, listed(since), listed(stale),
                "was" if len(stale) == 1 else "were", "it" if len(since) == 1 else "them",
                " (the gate is left out of the export)" if "gate" in stale else "",
                listed([f"--stage {s}" for s in stale]), ", in that order, each" if len(stale) > 1 else "")


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
    gated = cfg.gate is not None and load_state(run_dir / "gate", "gate").step > 0
    if cfg.gate is not None and stale_gate(run_dir):
        cfg = replace(cfg, gate=None)  # an untrained gate, or one fitted to other weights: leave it out
    model = CLRFaceModel(cfg)
    loaded = load_finished_stages(model, run_dir)
    warn_stale(run_dir, loaded + ["gate"] * gated)
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

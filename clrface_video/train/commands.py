"""Click commands for training: prepare-faces, train, export (registered into the main CLI by cli.py)."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from .degrade import DegradeConfig
from .options import LossWeights, TrainOptions

LOSSES = LossWeights()  # the defaults the help names

STAGES = ("autoencoder", "decoder", "irn", "prior", "mask", "gate", "all")
ALL = ("autoencoder", "irn", "prior", "mask", "gate")  # --stage all; decoder is an optional fine-tune
CONFIGS = ("tiny", "small_128", "base_256", "base_512")


@click.command("prepare-faces")
@click.argument("src_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--size", default=128, show_default=True, type=click.IntRange(16, 1024),
              help="Side of the aligned crops (the model resolution)")
@click.option("--holdout-fraction", default=0.05, show_default=True, type=click.FloatRange(0.0, 1.0),
              help="Share of LFW identities kept out of training (by name hash)")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64), help="Detector processes")
def prepare_faces_command(src_dir: Path, out_dir: Path, size: int, holdout_fraction: float, workers: int) -> None:
    """Detect, align and write the largest face of every image in SRC_DIR to OUT_DIR, with manifest.csv."""
    from .prepare import PrepareConfig, prepare_faces  # detector and PyAV: training itself needs neither

    config = PrepareConfig(size=size, holdout_fraction=holdout_fraction, workers=workers)
    rows = prepare_faces(src_dir, out_dir, config, progress=click.echo)
    held = {r.identity for r in rows if r.split == "heldout"}
    click.echo(f"wrote {len(rows)} faces to {out_dir} ({sum(r.split == 'train' for r in rows)} train, "
               f"{len(rows) - sum(r.split == 'train' for r in rows)} held out from {len(held)} identities)")


@click.command("train")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--stage", type=click.Choice(STAGES), default="all", show_default=True,
              help="all = autoencoder, irn, prior, mask, gate in order; decoder is an optional whole-face fine-tune "
                   "of the autoencoder's decoder (L1, adversarial from --disc-start; encoder and codebook frozen); "
                   "gate learns how much of each restored face to keep over its input")
@click.option("--run-dir", "--run", "run_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="run folder: checkpoints, logs, sample grids (under torchrun spell it --run-dir: torchrun "
                   "reads --run as its own --run-path)")
@click.option("--config", "config_name", type=click.Choice(CONFIGS), default="small_128", show_default=True)
@click.option("--max-minutes", type=click.FloatRange(0.0, min_open=True), default=None,
              help="wall-clock budget per stage")
@click.option("--steps", type=click.IntRange(1), default=None, help="optimizer steps per stage (total, with resume)")
@click.option("--batch-size", type=click.IntRange(1), default=None)
@click.option("--lr", type=float, default=None)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=click.IntRange(1), default=None,
              help="torch CPU threads (on a shared CPU, 1 can beat oversubscribed 2)")
@click.option("--disc-start", type=click.IntRange(0), default=None,
              help="autoencoder / decoder / adversarial irn: step at which the adversarial + feature-matching losses start "
                   f"(default {LOSSES.disc_start})")
@click.option("--disc-warmup", type=click.IntRange(0), default=0, show_default=True,
              help="autoencoder / decoder / adversarial irn: steps the discriminator trains alone, the network it "
                   "judges frozen, before the adversarial losses start (a head start for a new discriminator; it "
                   "starts at --disc-start, or where a resumed or --init-from run gives it a new one)")
@click.option("--gan-weight", type=click.FloatRange(0.0), default=None,
              help=f"autoencoder / decoder / adversarial irn: weight of the hinge GAN loss (default {LOSSES.gan})")
@click.option("--feature-matching-weight", type=click.FloatRange(0.0), default=None,
              help="autoencoder / decoder / adversarial irn: weight of the discriminator feature-matching loss "
                   f"(default {LOSSES.feature_matching})")
@click.option("--decoder-input", type=click.Choice(("clean", "restored")), default="clean", show_default=True,
              help="decoder: decode the clean face's codes, or the latents the sampler restores from the degraded "
                   "face (needs trained irn and prior stages in the run folder)")
@click.option("--gate-inputs", type=click.Choice(("degraded", "both")), default=None,
              help="gate stage: what the blend gate looks at, the degraded face alone (a new gate's default) or "
                   "also its restoration; a gate of the other kind in an --init-from file is replaced by a new one")
@click.option("--identity-weight", type=click.FloatRange(0.0), default=None,
              help=f"irn: weight of the FaceNet identity loss (default {LOSSES.identity}; 0 trains without FaceNet)")
@click.option("--irn-adversarial/--no-irn-adversarial", default=False, show_default=True,
              help="irn: also train against a patch discriminator of its own (hinge GAN and feature matching, from "
                   "--disc-start), for a sharper estimate than L1 alone gives")
@click.option("--identity-samples", type=click.IntRange(0), default=0, show_default=True,
              help="irn: identity loss on the first N faces of each batch only (0: all); saves CPU time")
@click.option("--noise-draws", type=click.IntRange(1), default=1, show_default=True,
              help="prior: noise levels per encoded face pair (amortises the VQGAN encoding on slow devices)")
@click.option("--crop", type=click.IntRange(8), default=None,
              help="autoencoder: train on random square crops of this side (fully convolutional; faster on CPU)")
@click.option("--codec-prob", type=click.FloatRange(0.0, 1.0), default=None,
              help="share of compressed training faces given x264 artefacts instead of JPEG "
                   f"(default {DegradeConfig().codec_prob}; "
                   "0 where PyAV is not installed)")
@click.option("--flat-region-prob", "flat_prob", type=click.FloatRange(0.0, 1.0), default=TrainOptions.flat_prob,
              show_default=True,
              help="share of degraded training faces given a flat, sharp-edged region (a padded frame's edge, a "
                   "letterbox bar), the same in the clean face, so the restorer judges blur from the face alone")
@click.option("--workers", type=click.IntRange(0), default=None,
              help="data-loader processes (default: 4 on CUDA, 0 on the CPU)")
@click.option("--log-every", type=click.IntRange(1), default=20, show_default=True)
@click.option("--resume/--no-resume", default=False, show_default=True, help="continue from the run folder")
@click.option("--init-from", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="start a new run folder from an exported model (the shipped one, say): its weights and step "
                   "counts become the stages' checkpoints and training continues from them (fresh optimizer "
                   "and discriminator states, a new learning-rate warm-up); give a new --seed for new data order")
def train_command(data_dir: Path, stage: str, run_dir: Path, config_name: str, max_minutes: float | None,
                  steps: int | None, batch_size: int | None, lr: float | None, device: str, seed: int,
                  threads: int | None, disc_start: int | None, disc_warmup: int, gan_weight: float | None,
                  feature_matching_weight: float | None, decoder_input: str, gate_inputs: str | None,
                  identity_weight: float | None, irn_adversarial: bool,
                  identity_samples: int, noise_draws: int, crop: int | None, codec_prob: float | None,
                  flat_prob: float, workers: int | None, log_every: int, resume: bool, init_from: Path | None) -> None:
    """Train the CLR-Face stages on a folder written by prepare-faces."""
    from .runner import train_stages

    options = TrainOptions(config=config_name, max_minutes=max_minutes, steps=steps, batch_size=batch_size, lr=lr,
                           device=device, seed=seed, log_every=log_every, resume=resume, threads=threads, crop=crop,
                           codec_prob=codec_prob, flat_prob=flat_prob, workers=workers, init_from=init_from,
                           decoder_input=decoder_input, gate_inputs=gate_inputs)
    weights = LossWeights(identity_samples=identity_samples, prior_draws=noise_draws, irn_adversarial=irn_adversarial,
                          disc_warmup=disc_warmup)
    if identity_weight is not None:
        weights = replace(weights, identity=identity_weight)
    if disc_start is not None:
        weights = replace(weights, disc_start=disc_start)
    if gan_weight is not None:
        weights = replace(weights, gan=gan_weight)
    if feature_matching_weight is not None:
        weights = replace(weights, feature_matching=feature_matching_weight)
    train_stages(data_dir, run_dir, ALL if stage == "all" else (stage,), options, echo=click.echo,
                 weights=weights)


def _ordered(ctx: click.Context, param: click.Parameter, value: tuple[float, float] | None):
    """A LO HI pair with LO at most HI (the figure at --fidelity 1, then at 0)."""
    if value is not None and value[0] > value[1]:
        raise click.BadParameter(f"{value[0]:g} {value[1]:g}: give LO first (the value at --fidelity 1, at most HI)")
    return value


@click.command("export")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--fp16/--fp32", default=True, show_default=True)
@click.option("--anchor-range", nargs=2, type=click.FloatRange(0.0), default=None, metavar="LO HI", callback=_ordered,
              help="Low-frequency anchoring to the IRN estimate, Gaussian sigma in pixels at --fidelity 1 and 0 "
                   "(default: the run's: off for a new run, the file's for an --init-from run; the shipped file "
                   "has 0.5 1.5); benchmarks/tune_anchor.py measures candidates")
@click.option("--t-star-range", nargs=2, type=click.FloatRange(0.0, 1.0), default=None, metavar="LO HI",
              callback=_ordered,
              help="The sampler's start time t* at --fidelity 1 and 0 (default: the run's: 0.2 0.6 for a new run, the "
                   "file's for an --init-from run; the shipped file has 0.4 0.8)")
def export_command(run_dir: Path, out: Path, fp16: bool, anchor_range: tuple[float, float] | None,
                   t_star_range: tuple[float, float] | None) -> None:
    """Assemble the stages of RUN_DIR into one CLRFaceModel safetensors file."""
    from .run_folder import export_model

    size = export_model(run_dir, out, fp16=fp16, anchor_range=anchor_range, t_star_range=t_star_range)
    click.echo(f"wrote {out} ({size / 1e6:.1f} MB)")

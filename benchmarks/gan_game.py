"""Does the adversarial term hold the decoder's detail? The decoder stage's GAN game in miniature, with and without it.

    python benchmarks/gan_game.py WEIGHTS DATA_DIR [--steps 400] [--faces 384] [--threads 2]

The training logs print the discriminator's hinge loss near 2.0 (chance) all through the autoencoder and
decoder stages. That reading alone cannot tell "the discriminator cannot learn" from "the decoder keeps
up with it". This script tells them apart on what the decoder stage (`train --stage decoder
--decoder-input restored`) trains on: the sampler's latents for degraded faces (stages.restored_latents,
training faces of DATA_DIR's train split degraded by the eval recipe), decoded toward the clean face.

Three runs of --steps steps (batch 8, Adam at the decoder stage's rate), each from WEIGHTS's decoder and a
fresh discriminator (train/losses.PatchDiscriminator):
  adversarial  the production update (train/adversarial.adversarial_update: L1 + hinge GAN + feature
               matching at the LossWeights defaults, then one discriminator step)
  L1 only      the decoder on L1 alone (the discriminator still trained, only watched)
  frozen       the decoder not trained; the discriminator trained against its decodes (the control:
               can this discriminator learn to tell them apart at all?)
At each quarter it prints, on held-out faces (DATA_DIR's heldout split): the L1 of the decodes to the
clean faces, their sharpness (variance of the Laplacian, the clean faces' printed for scale), and how
well the discriminator tells the clean faces from the decodes (the gap of its mean logits, and the share
of (clean, decode) pairs it orders right; 0.5 is chance).
"""
from __future__ import annotations

import argparse
import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

DECODER_LR = 1e-4  # train/options.py STAGE_DEFAULTS["decoder"]


@dataclass
class GameStage:
    """The AdversarialStage protocol (train/adversarial.py) over a decoder copy and a fresh discriminator."""

    decoder: nn.Module
    disc: nn.Module
    ctx: SimpleNamespace
    params: list[nn.Parameter] = field(init=False)
    d_params: list[nn.Parameter] = field(init=False)

    def __post_init__(self) -> None:
        self.params = list(self.decoder.parameters())
        self.d_params = list(self.disc.parameters())
        self.optimizers = {"main": torch.optim.Adam(self.params, DECODER_LR, betas=(0.5, 0.9)),
                           "disc": torch.optim.Adam(self.d_params, DECODER_LR, betas=(0.5, 0.9))}

    def update(self, name: str, loss: torch.Tensor, params: list[nn.Parameter], step: int) -> None:
        opt = self.optimizers[name]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)  # as train/stages.Stage.update
        opt.step()


def sampler_latents(model, clean: np.ndarray, seed: int) -> torch.Tensor:
    """The latents the decoder stage decodes (stages.restored_latents) for the clean faces degraded by the eval recipe."""
    from clrface_video.eval.paired import degrade_faces
    from clrface_video.train.data import to_tensor
    from clrface_video.train.stages import restored_latents

    degraded = to_tensor(degrade_faces(clean, seed))
    gen = torch.Generator().manual_seed(seed)
    return torch.cat([restored_latents(model, degraded[i:i + 32], gen) for i in range(0, len(degraded), 32)])


def watch(decoder: nn.Module, disc: nn.Module, clean: torch.Tensor, latents: torch.Tensor) -> str:
    """Held-out L1, sharpness of the decodes and the discriminator's separation of clean from decoded."""
    from clrface_video.eval.metrics import sharpness
    from clrface_video.train.data import to_uint8

    with torch.no_grad():
        fake = decoder(latents).clamp(-1, 1)
        real_logit = disc(clean)[0].mean(dim=(1, 2, 3))
        fake_logit = disc(fake)[0].mean(dim=(1, 2, 3))
    pairs = (real_logit[:, None] > fake_logit[None, :]).float().mean().item()
    sharp = np.mean([sharpness(f) for f in to_uint8(fake)])
    l1 = (fake - clean).abs().mean().item()
    return (f"L1 {l1:.4f}  sharpness {sharp:5.0f}  discriminator gap {(real_logit.mean() - fake_logit.mean()).item():+.3f}"
            f"  pairs right {pairs:.2f}")


def play(mode: str, model, train: tuple[torch.Tensor, torch.Tensor], heldout: tuple[torch.Tensor, torch.Tensor],
         steps: int, seed: int) -> None:
    from clrface_video.train.adversarial import adversarial_update, discriminator_step
    from clrface_video.train.losses import PatchDiscriminator, pixel_loss
    from clrface_video.train.options import LossWeights

    torch.manual_seed(seed)
    decoder = copy.deepcopy(model.vqgan.decoder).train().requires_grad_(True)
    weights = LossWeights(disc_start=0 if mode == "adversarial" else 10**9)
    stage = GameStage(decoder, PatchDiscriminator().train(), SimpleNamespace(weights=weights, device=torch.device("cpu")))
    gen, (clean, latents), t0 = torch.Generator().manual_seed(seed), train, time.monotonic()
    print(f"{mode}\n  step {0:5d}  {watch(decoder, stage.disc, *heldout)}", flush=True)
    for step in range(1, steps + 1):
        idx = torch.randint(0, len(clean), (8,), generator=gen)
        hq, z = clean[idx], latents[idx]
        if mode == "frozen":
            with torch.no_grad():
                fake = decoder(z)
        else:
            fake = decoder(z)
            adversarial_update(stage, fake, hq, {"l1": pixel_loss(fake, hq)}, step)  # L1 only: before disc_start
        if mode != "adversarial":  # the production update already took its discriminator step
            discriminator_step(stage, fake, hq, step)
        if step % max(1, steps // 4) == 0:
            print(f"  step {step:5d}  {watch(decoder, stage.disc, *heldout)}  ({time.monotonic() - t0:.0f} s)",
                  flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("weights", type=Path)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--faces", type=int, default=384, help="training faces the latents are made from")
    parser.add_argument("--heldout", type=int, default=48, help="held-out faces the figures are taken on")
    parser.add_argument("--modes", default="adversarial,L1 only,frozen")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    from clrface_video.eval.metrics import sharpness
    from clrface_video.restore.model import CLRFaceModel
    from clrface_video.train.data import load_crops, to_tensor
    from clrface_video.train.manifest import MANIFEST, read_manifest

    if not (args.data_dir / MANIFEST).is_file():
        parser.error(f"{args.data_dir} is not a prepare-faces folder (no {MANIFEST}); make it first with "
                     f"`clrface-video prepare-faces ../shared/data/faces-train {args.data_dir} --size 128`")
    if args.threads:
        torch.set_num_threads(args.threads)
    modes = [m.strip() for m in args.modes.split(",")]
    if unknown := set(modes) - {"adversarial", "L1 only", "frozen"}:
        parser.error(f"unknown --modes {sorted(unknown)}; choose from adversarial, L1 only, frozen")
    model = CLRFaceModel.load(args.weights).eval().requires_grad_(False)
    rows = read_manifest(args.data_dir / MANIFEST)
    train_rows = [r for r in rows if r.split != "heldout"][:args.faces]
    heldout_rows = [r for r in rows if r.split == "heldout"][:args.heldout]
    t0 = time.monotonic()
    train_faces, heldout_faces = load_crops(args.data_dir, train_rows), load_crops(args.data_dir, heldout_rows)
    train = (to_tensor(train_faces), sampler_latents(model, train_faces, args.seed + 1))
    heldout = (to_tensor(heldout_faces), sampler_latents(model, heldout_faces, args.seed + 2))
    print(f"{len(train_faces)} training and {len(heldout_faces)} held-out faces through the sampler in "
          f"{time.monotonic() - t0:.0f} s; clean held-out sharpness {np.mean([sharpness(f) for f in heldout_faces]):.0f}")
    for mode in modes:
        play(mode, model, train, heldout, args.steps, args.seed)


if __name__ == "__main__":
    main()

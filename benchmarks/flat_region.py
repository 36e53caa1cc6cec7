"""How a flat, sharp-edged region beside a face (a padded frame's edge, a letterbox bar) changes its restoration.

    python benchmarks/flat_region.py [WEIGHTS] [--data runs/data] [--count 48] [--threads 2] [--grid OUT.png]

The first COUNT held-out faces of a `prepare-faces` folder (eval_heldout.py's choice) are degraded three ways:
a Gaussian blur of sigma 3 px, of sigma 4 px, and the eval recipe (eval.paired, face i from default_rng((0, i))).
Each degraded face is restored as it is, and again with one flat region painted into it and into its clean face
alike (train.degrade.paint_flat_region, face i from default_rng((7, i))): the same face, the same blur, one sharp
straight edge more in the crop. PSNR is taken over the face region only, the pixels more than 4 px from the
painted region, so both columns score the same pixels. Methods: the degraded input, the IRN estimate alone,
the whole restoration at the default fidelity, and the gated one (as `restore --strength auto`); no identity
guidance (it does not see the region and costs CPU time). Each is run twice: on the crops as they are
(hide_padding=False) and as the restorer runs by default, with the band where such padding meets the picture
blurred before the networks see it and the padding put back after (restore.padding). A restorer that judges blur
from the face alone gains about as much with the region as without.
"""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch
from eval_heldout import heldout_faces

RECIPES = ("blur 3 px", "blur 4 px", "eval recipe")
MARGIN = 4  # px kept clear of the painted region's edge when scoring


def degraded(clean: np.ndarray, recipe: str) -> np.ndarray:
    from clrface_video.eval.paired import degrade_faces
    from clrface_video.train.degrade import gaussian_blur

    if recipe == "eval recipe":
        return degrade_faces(clean, 0)
    sigma = float(recipe.split()[1])
    return np.stack([gaussian_blur(face, sigma) for face in clean])


def painted(clean: np.ndarray, lq: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both faces of each pair with a flat region, and the mask of the pixels scored (far from the region)."""
    from clrface_video.train.degrade import paint_flat_region

    pairs = [paint_flat_region(c, d, np.random.default_rng((7, i))) for i, (c, d) in enumerate(zip(clean, lq))]
    hq, lq2 = np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
    # the region: where painting changed the clean face or the degraded one, grown by the margin
    touched = ((hq != clean).any(-1) | (lq2 != lq).any(-1)).astype(np.uint8)
    kernel = np.ones((2 * MARGIN + 1, 2 * MARGIN + 1), np.uint8)
    keep = np.stack([cv2.dilate(t, kernel) == 0 for t in touched])
    return hq, lq2, keep


def masked_psnr(out: np.ndarray, clean: np.ndarray, keep: np.ndarray) -> float:
    errors = [np.mean((o.astype(np.float64) - c)[k] ** 2) for o, c, k in zip(out, clean, keep)]
    return float(np.mean([10 * np.log10(255.0 ** 2 / max(e, 1e-10)) for e in errors]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", type=Path, nargs="?", default=None, help="default: the shipped checkpoint")
    parser.add_argument("--data", type=Path, default=Path("runs/data"), help="a prepare-faces folder")
    parser.add_argument("--count", type=int, default=48)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--grid", type=Path, default=None, help="write degraded / restored faces with the region")
    args = parser.parse_args()

    from clrface_video.restore.base import RestoreBatch
    from clrface_video.restore.model import CLRFaceModel, fidelity_to_knobs
    from clrface_video.restore.restorer import SHIPPED_WEIGHTS, CLRFaceRestorer

    torch.set_num_threads(args.threads)
    model = CLRFaceModel.load(args.weights or SHIPPED_WEIGHTS)
    _, clean = heldout_faces(args.data, args.count, model.cfg.resolution)
    restorers = {hide: CLRFaceRestorer(model, "cpu", identity_net=None, hide_padding=hide) for hide in (False, True)}
    knobs = fidelity_to_knobs(model.cfg, 0.5)
    methods = {"IRN alone": (replace(knobs, t_star=0.0), False), "whole": (knobs, False)}
    if model.gate is not None:
        methods["gated"] = (knobs, True)

    def run(lq: np.ndarray, knobs, gate: bool, hide: bool) -> np.ndarray:
        seeds, restorer = np.zeros(len(lq), np.int64), restorers[hide]
        return np.concatenate([restorer.restore(RestoreBatch(lq[i:i + 16], seeds=seeds[i:i + 16], gate=gate,
                                                             guidance=False), knobs)
                               for i in range(0, len(lq), 16)])

    print(f"{args.weights or SHIPPED_WEIGHTS}: {len(clean)} held-out faces; PSNR (dB) on the face region, "
          "without / with a flat region beside it")
    print(f"| recipe | input | {' | '.join(methods)} |")
    print("|---|" + "---|" * (1 + len(methods)))
    grid = []
    for recipe in RECIPES:
        lq = degraded(clean, recipe)
        hq2, lq2, keep = painted(clean, lq)
        for hide in (False, True):
            cells = [f"{masked_psnr(lq, clean, keep):.2f} / {masked_psnr(lq2, hq2, keep):.2f}"]
            for name, (k, gate) in methods.items():
                plain, flat = run(lq, k, gate, hide), run(lq2, k, gate, hide)
                cells.append(f"{masked_psnr(plain, clean, keep):.2f} / {masked_psnr(flat, hq2, keep):.2f}")
                if name == "whole":
                    grid.append(np.concatenate([np.concatenate([lq2[i], flat[i], hq2[i]], 1) for i in range(4)], 0))
            label = "padding hidden (the default)" if hide else "crop as it is (hide_padding=False)"
            print(f"| {recipe}, {label} | " + " | ".join(cells) + " |", flush=True)
    if args.grid:
        cv2.imwrite(str(args.grid), cv2.cvtColor(np.concatenate(grid, 1), cv2.COLOR_RGB2BGR))
        print(f"grid (per recipe, the crop as it is then the padding hidden: degraded with the region, restored "
              f"whole, clean): {args.grid}")


if __name__ == "__main__":
    main()

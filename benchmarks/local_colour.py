"""Whether pasting should take a face's local colour from its input: global colour match vs local chroma transfer.

    python benchmarks/local_colour.py DATA_DIR [--weights W] [--count 64] [--dim 1.0] [--threads N]

paste.match_colour matches the restored face's colour to the input globally (one gain and offset per channel),
so a local hue error of the model (a lip or cheek tinted wrong) passes through. The alternative measured here
moves the restored face's chroma (each channel minus its luma), blurred at sigma px, onto the input's blurred
chroma, after the global match: "local" in full, "soft" only by what the two differ beyond T (0..255 RGB units).
Held-out faces of a `prepare-faces` folder are degraded by the eval recipe (eval.paired), restored without
identity guidance at fidelity 0.5, and scored against the clean face on paste's colour region: mean CIELAB
a*b* distance (dab), mean L* distance (dL), PSNR; and dab on the mouth alone (a box around the template's
lips). --dim scales the clean faces' values first (0.35: a dim face in a dark room), before degrading.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch
from eval_heldout import batched, degraded_faces, heldout_faces

MOUTH_BOX = (0.70, 0.84, 0.36, 0.64)  # rows, then columns, as shares of the aligned crop (FFHQ template)
SIGMAS = (2.0, 4.0, 8.0)
SOFT = ((4.0, 4.0), (4.0, 12.0))  # (sigma, T)


def chroma(image: np.ndarray) -> np.ndarray:
    from clrface_video.faces.paste import LUMA_WEIGHTS

    return image - (image @ LUMA_WEIGHTS)[..., None]


def local_chroma(restored: np.ndarray, original: np.ndarray, sigma: float, threshold: float = 0.0) -> np.ndarray:
    """`restored` with its chroma blurred at sigma moved onto the original's, only beyond `threshold`."""
    shift = cv2.GaussianBlur(chroma(original) - chroma(restored), (0, 0), sigma)
    if threshold > 0:
        size = np.sqrt((shift ** 2).sum(-1, keepdims=True))
        shift = chroma(shift * np.maximum(size - threshold, 0.0) / np.maximum(size, 1e-6))
    return restored + shift


def lab(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.clip(image, 0, 255).astype(np.float32) / 255, cv2.COLOR_RGB2Lab)


def scores(out: np.ndarray, clean: np.ndarray, region: np.ndarray, mouth: np.ndarray) -> tuple[float, ...]:
    """(dab, dL, PSNR) over `region` and dab over `mouth` (both (S, S) weights) of one face."""
    got, want = lab(out), lab(clean.astype(np.float32))
    dab = np.sqrt(((got[..., 1:] - want[..., 1:]) ** 2).sum(-1))
    share, mouth_share = region / region.sum(), mouth / mouth.sum()
    mse = float((((out - clean) ** 2).mean(-1) * share).sum())
    return (float((dab * share).sum()), float((np.abs(got[..., 0] - want[..., 0]) * share).sum()),
            10 * np.log10(255 ** 2 / mse), float((dab * mouth_share).sum()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--weights", type=Path, default=None, help="default: the shipped model")
    parser.add_argument("--count", type=int, default=64)
    parser.add_argument("--dim", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from clrface_video.faces.paste import crop_masks, match_colour
    from clrface_video.restore.base import RestoreBatch
    from clrface_video.restore.model import CLRFaceModel
    from clrface_video.restore.restorer import SHIPPED_WEIGHTS, CLRFaceRestorer

    model = CLRFaceModel.load(args.weights or SHIPPED_WEIGHTS)
    size = model.cfg.resolution
    _, clean = heldout_faces(args.data_dir, args.count, size)
    clean = np.clip(clean * np.float32(args.dim), 0, 255).round().astype(np.uint8)
    degraded = degraded_faces(clean, 0, "eval")
    restorer = CLRFaceRestorer(model, "cpu", 0.5, identity_net=None)
    restored = batched(lambda x: restorer.restore(RestoreBatch(x, seeds=np.zeros(len(x), np.int64))), degraded, 16)
    region = crop_masks(size).colour
    top, bottom, left, right = (round(share * size) for share in MOUTH_BOX)
    mouth = np.zeros((size, size), np.float32)
    mouth[top:bottom, left:right] = 1.0
    methods = {"input": lambda out, inp: inp, "global match (paste today)": lambda out, inp: out}
    methods |= {f"local, sigma {s:g}": lambda out, inp, s=s: local_chroma(out, inp, s) for s in SIGMAS}
    methods |= {f"soft, sigma {s:g}, T {t:g}": lambda out, inp, s=s, t=t: local_chroma(out, inp, s, t) for s, t in SOFT}
    print(f"{len(clean)} held-out faces, values x{args.dim:g}, eval degradation\n")
    print("| method | dab (face) | dL (face) | PSNR (face) | dab (mouth) |\n|---|---|---|---|---|")
    for name, method in methods.items():
        rows = []
        for face, inp, out in zip(clean, degraded, restored):
            inp = inp.astype(np.float32)
            matched = match_colour(out.astype(np.float32), inp, region)
            rows.append(scores(np.clip(method(matched, inp), 0, 255), face, region, mouth))
        dab, dl, psnr, mouth_dab = np.mean(rows, axis=0)
        print(f"| {name} | {dab:.2f} | {dl:.2f} | {psnr:.2f} | {mouth_dab:.2f} |")


if __name__ == "__main__":
    main()

"""Held-out evaluation of a CLR-Face checkpoint on prepared faces: degraded input vs IRN vs full model.

    python benchmarks/eval_heldout.py WEIGHTS DATA_DIR [--count 96] [--seed 0] [--fidelity 0.5]
        [--recipe eval|light|none] [--no-guidance] [--threads N] [--json OUT.json] [--grid OUT.png]

DATA_DIR is a folder written by `clrface-video prepare-faces`; only its 'heldout' split is read (LFW
identities kept out of training by name hash). Faces are degraded with the eval recipe of
clrface_video.eval.paired (train/degrade.py defaults, face i drawn from default_rng((seed, i))); --recipe
light degrades them with train/degrade.py's LIGHT ranges instead (what a good camera, or a large face
scaled to the crop, leaves; JPEG always), none not at all. A face identical to its clean original counts
as 60 dB PSNR.
Methods: input (the degraded face), irn (the IRN estimate alone, decoded through nothing), autoencoder
(the clean face through the VQGAN: the ceiling of any output of this model), clrface (the full sampler
with identity guidance toward the IRN estimate's FaceNet embedding, as the restorer runs per frame; for a
model with a blend gate, "clrface" is the gated output, as `restore --strength auto` pastes it, and
"clrface, whole" the restoration kept whole, as `--strength 1`).
Figures: PSNR and SSIM against the clean face, identity cosine by the dlib judge (never trained against)
when it is installed, and sharpness (variance of the Laplacian; the clean faces' is printed below the
table: an output far under it is blurred, far over it noisy), and "to input", the mean absolute difference
from the degraded input in grey levels (what --fidelity moves; it falls as fidelity rises).
evaluate() is importable for the eval engineer's reports.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

PSNR_CAP = 60.0  # dB: an RMS error of a quarter grey level, far below what can be seen


@dataclass(frozen=True)
class MethodResult:
    method: str
    faces: int
    psnr: float
    ssim: float
    identity_judge: float  # NaN without the dlib judge
    sharpness: float  # mean variance of the Laplacian (metrics.sharpness)
    to_input: float  # mean absolute difference from the degraded input, grey levels (what --fidelity moves)
    seconds: float


def heldout_faces(data_dir: Path, count: int, size: int) -> tuple[list[str], np.ndarray]:
    """The first `count` held-out crops (manifest order), one per identity first, as (N, S, S, 3) uint8."""
    from clrface_video.train.data import load_crops
    from clrface_video.train.manifest import MANIFEST, read_manifest

    rows = [r for r in read_manifest(Path(data_dir) / MANIFEST) if r.split == "heldout"]
    seen: set[str] = set()
    first = [r for r in rows if not (r.identity in seen or seen.add(r.identity))]
    rest = [r for r in rows if r not in first]
    chosen = (first + rest)[:count]
    faces = load_crops(Path(data_dir), chosen)
    if faces.shape[1] != size:
        raise SystemExit(f"{data_dir} holds {faces.shape[1]} px crops; the model takes {size} px")
    return [r.file for r in chosen], faces


def batched(fn, faces: np.ndarray, batch_size: int) -> np.ndarray:
    return np.concatenate([fn(faces[i:i + batch_size]) for i in range(0, len(faces), batch_size)])


def score(method: str, out: np.ndarray, clean: np.ndarray, degraded: np.ndarray, seconds: float,
          judge: bool) -> MethodResult:
    from clrface_video.eval.metrics import psnr, ssim

    identity = float("nan")
    if judge:
        from clrface_video.eval.judge import identity_similarity

        identity = float(np.mean(identity_similarity(out, clean)))
    # a face identical to the clean one (the input under --recipe none) counts as PSNR_CAP dB, so means stay finite
    return MethodResult(method, len(out), float(np.mean([min(psnr(o, c), PSNR_CAP) for o, c in zip(out, clean)])),
                        float(np.mean([ssim(o, c) for o, c in zip(out, clean)])), identity,
                        mean_sharpness(out), float(np.abs(out.astype(np.float32) - degraded).mean()), seconds)


def mean_sharpness(faces: np.ndarray) -> float:
    from clrface_video.eval.metrics import sharpness

    return float(np.mean([sharpness(f) for f in faces]))


def judge_available() -> bool:
    try:
        from clrface_video.eval.judge import _load

        _load()
        return True
    except Exception:  # noqa: BLE001 - any failure means: no judge column
        return False


def degraded_faces(clean: np.ndarray, seed: int, recipe: str) -> np.ndarray:
    """The held-out faces degraded by `recipe`: eval (the eval recipe), light (degrade.LIGHT) or none."""
    from clrface_video.eval.paired import degrade_faces
    from clrface_video.train.degrade import LIGHT

    if recipe == "none":
        return clean.copy()
    # light: every face gets at least LIGHT's JPEG step, so none is left clean (that is what --recipe none is for)
    return degrade_faces(clean, seed, replace(LIGHT, compress_prob=1.0)) if recipe == "light" \
        else degrade_faces(clean, seed)


def evaluate(weights: Path, data_dir: Path, *, count: int = 96, seed: int = 0, fidelity: float = 0.5,
             guidance: bool = True, batch_size: int = 16, recipe: str = "eval",
             ) -> tuple[list[MethodResult], dict[str, np.ndarray]]:
    """Scores of input / irn / autoencoder / clrface on held-out faces, and the images (for a grid)."""
    from clrface_video.restore.base import RestoreBatch
    from clrface_video.restore.model import CLRFaceModel
    from clrface_video.restore.restorer import CLRFaceRestorer, default_identity_net
    from clrface_video.train.data import to_tensor, to_uint8

    model = CLRFaceModel.load(weights)
    _, clean = heldout_faces(data_dir, count, model.cfg.resolution)
    degraded = degraded_faces(clean, seed, recipe)
    judge = judge_available()
    images = {"clean": clean, "input": degraded}
    results = [score("input", degraded, clean, degraded, 0.0, judge)]
    with torch.inference_mode():
        for method, fn, src in (("irn", lambda x: to_uint8(model.irn(to_tensor(x))), degraded),
                                ("autoencoder", lambda x: to_uint8(model.vqgan(to_tensor(x))[0]), clean)):
            t = time.monotonic()
            images[method] = batched(fn, src, batch_size)
            results.append(score(method, images[method], clean, degraded, time.monotonic() - t, judge))
    identity_net = default_identity_net(torch.device("cpu")) if guidance else None
    restorer = CLRFaceRestorer(model, "cpu", fidelity, identity_net=identity_net)
    label = "clrface" if identity_net is not None else "clrface (no guidance)"
    for key, gate in (("clrface", True), ("clrface, whole", False))[: 2 if model.gate is not None else 1]:
        t = time.monotonic()
        images[key] = batched(lambda x, gate=gate: restorer.restore(
            RestoreBatch(x, seeds=np.zeros(len(x), np.int64), gate=gate)), degraded, batch_size)
        results.append(score(label + key.removeprefix("clrface"), images[key], clean, degraded,
                             time.monotonic() - t, judge))
    return results, images


def table(results: list[MethodResult]) -> str:
    lines = ["| method | faces | PSNR (dB) | SSIM | identity (dlib judge) | sharpness | to input | seconds |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r.method} | {r.faces} | {r.psnr:.2f} | {r.ssim:.3f} | {r.identity_judge:.3f} | "
                     f"{r.sharpness:.0f} | {r.to_input:.2f} | {r.seconds:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("weights", type=Path)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--count", type=int, default=96)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fidelity", type=float, default=0.5)
    parser.add_argument("--recipe", choices=("eval", "light", "none"), default="eval",
                        help="how the held-out faces are degraded (light: degrade.LIGHT; none: clean faces)")
    parser.add_argument("--no-guidance", action="store_true")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--grid", type=Path, default=None, help="PNG: clean / input / irn / clrface rows, 8 faces")
    args = parser.parse_args()
    if not (args.data_dir / "manifest.csv").is_file():
        parser.error(f"{args.data_dir} is not a prepare-faces folder (no manifest.csv); make it first with "
                     f"`clrface-video prepare-faces ../shared/data/faces-train {args.data_dir} --size 128`")
    if args.threads:
        torch.set_num_threads(args.threads)
    results, images = evaluate(args.weights, args.data_dir, count=args.count, seed=args.seed,
                               fidelity=args.fidelity, guidance=not args.no_guidance, recipe=args.recipe)
    clean_sharpness = mean_sharpness(images["clean"])
    print(table(results))
    print(f"\nclean faces: sharpness {clean_sharpness:.0f}")
    if args.json:
        args.json.write_text(json.dumps({"weights": str(args.weights), "count": args.count, "seed": args.seed,
                                         "recipe": args.recipe,
                                         "fidelity": args.fidelity, "clean_sharpness": clean_sharpness,
                                         "results": [asdict(r) for r in results]},
                                        indent=1))
    if args.grid:
        import cv2

        rows = [np.concatenate(list(images[k][:8]), axis=1) for k in ("clean", "input", "irn", "clrface")]
        cv2.imwrite(str(args.grid), np.concatenate(rows, axis=0)[..., ::-1])


if __name__ == "__main__":
    main()

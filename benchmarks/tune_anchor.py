"""Pick the low-frequency anchor, the start time t* and the guidance weight of a CLR-Face checkpoint on held-out faces the reports do not use.

    python benchmarks/tune_anchor.py WEIGHTS DATA_DIR [--start 200] [--count 48] [--sigmas 0,1,2,3]
        [--t-stars 0.2,0.4] [--guidance-weights 0,0.1] [--whole] [--threads 1]

Faces start..start+count of the held-out split (eval_heldout.py reports on the first 96), degraded with
the eval recipe, restored at each t*, identity-guidance weight (defaults: the checkpoint's own at
--fidelity 0.5) and anchor sigma; prints PSNR, the dlib identity and the sharpness (variance of the
Laplacian; the clean faces' is on the first line) per setting. PSNR alone rewards blur: read the three.
--whole scores the whole restored faces, without the checkpoint's blend gate.
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import torch
from eval_heldout import heldout_faces, mean_sharpness


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", type=Path)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--start", type=int, default=200)
    parser.add_argument("--count", type=int, default=48)
    parser.add_argument("--sigmas", default="0,1,2,3")
    parser.add_argument("--t-stars", default=None, help="comma-separated t* values (default: the checkpoint's)")
    parser.add_argument("--guidance-weights", default=None, help="comma-separated weights (default: the checkpoint's)")
    parser.add_argument("--whole", action="store_true", help="score whole restored faces (no blend gate)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    from clrface_video.eval.judge import identity_similarity
    from clrface_video.eval.metrics import psnr
    from clrface_video.eval.paired import degrade_faces
    from clrface_video.restore.base import RestoreBatch
    from clrface_video.restore.model import CLRFaceModel
    from clrface_video.restore.restorer import CLRFaceRestorer, default_identity_net

    torch.set_num_threads(args.threads)
    model = CLRFaceModel.load(args.weights)
    _, faces = heldout_faces(args.data_dir, args.start + args.count, model.cfg.resolution)
    clean = faces[args.start:]
    degraded = degrade_faces(clean, seed=0)
    restorer = CLRFaceRestorer(model, "cpu", 0.5, identity_net=default_identity_net(torch.device("cpu")))

    def figures(out: np.ndarray) -> str:
        p = np.mean([psnr(o, c) for o, c in zip(out, clean)])
        return (f"PSNR {p:.2f} dB, identity {identity_similarity(out, clean).mean():.3f}, "
                f"sharpness {mean_sharpness(out):.0f}")

    print(f"clean: sharpness {mean_sharpness(clean):.0f}")
    print(f"input: {figures(degraded)}")
    t_stars = [restorer.knobs.t_star] if args.t_stars is None else [float(t) for t in args.t_stars.split(",")]
    weights = [restorer.knobs.guidance_weight] if args.guidance_weights is None else \
        [float(w) for w in args.guidance_weights.split(",")]
    for t_star in t_stars:
        for weight in weights:
            for sigma in (float(s) for s in args.sigmas.split(",")):
                knobs = dataclasses.replace(restorer.knobs, t_star=t_star, guidance_weight=weight, anchor_sigma=sigma)
                out = np.concatenate([
                    restorer.restore(RestoreBatch(degraded[i:i + 16], seeds=np.arange(i, i + 16), gate=not args.whole),
                                     knobs) for i in range(0, len(degraded), 16)])
                print(f"t* {t_star:g}, guidance {weight:g}, anchor sigma {sigma:g}: {figures(out)}", flush=True)


if __name__ == "__main__":
    main()

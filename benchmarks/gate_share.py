"""How much of the restoration a checkpoint's blend gate keeps on a video's faces (`--strength auto`).

    python benchmarks/gate_share.py VIDEO [--frames 24] [--weights W.safetensors]

The first face of each of the first FRAMES frames is detected and aligned as the pipeline does, and the
gate's share (0: the input is kept, 1: the whole restored face) is printed per frame, before the
pipeline averages it along the track, with the mean and range. The gate looks at the degraded crop
only (session 10's kind), so no restoration is run; a gate that also looks at the restoration is
refused.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", type=Path)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--weights", type=Path, default=None, help="default: the shipped checkpoint")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    from clrface_video.eval.temporal import read_clip
    from clrface_video.faces.align import align_face
    from clrface_video.faces.detect import make_detector
    from clrface_video.restore.model import CLRFaceModel
    from clrface_video.restore.restorer import SHIPPED_WEIGHTS

    torch.set_num_threads(args.threads)
    model = CLRFaceModel.load(args.weights or SHIPPED_WEIGHTS).eval()
    if model.gate is None or model.gate.cfg.inputs != "degraded":
        raise SystemExit("this checkpoint has no blend gate that looks at the degraded face only")
    detector = make_detector()
    numbers, crops = [], []
    for frame in read_clip(args.video, args.frames):
        faces = detector.detect(frame.image)
        if faces:
            numbers.append(frame.index)
            crops.append(align_face(frame.image, faces[0].landmarks, model.cfg.resolution).image)
    if not crops:
        raise SystemExit(f"no face found in the first {args.frames} frames of {args.video}")
    lq = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    with torch.no_grad():
        shares = model.gate(lq, None).numpy()
    print(f"{args.video.name}: the gate's share of the restoration, first face of {len(crops)} frames")
    for number, share in zip(numbers, shares, strict=True):
        print(f"  frame {number:4d}  {share:.2f}")
    print(f"  mean {shares.mean():.2f}, range {shares.min():.2f}-{shares.max():.2f}")


if __name__ == "__main__":
    main()

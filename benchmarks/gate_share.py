"""How much of the restoration a checkpoint's blend gate keeps on a video's faces (`--strength auto`), and how steadily.

    python benchmarks/gate_share.py VIDEO [--frames 24] [--weights W.safetensors]

The first face of each of the first FRAMES frames is detected and aligned as the pipeline does. Printed
per frame: the share the restorer uses (0: the input is kept, 1: the whole restored face), before the
pipeline averages it along the track. Then, for that share and for the gate's single view (the crop as
aligned, as the gate stage trains it; restore.gate.VIEWS): the mean and range, the mean change from one
frame to the next, and the mean change when the crop is mirrored and moved by one pixel (which should
not change what a face needs). Last, the time the gate takes for all those crops in one batch, over its
eight views and over one. Only gates that look at the degraded crop alone (session 10 on) are measured,
so no restoration is run.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from timing import best_seconds


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
    from clrface_video.restore.gate import view
    from clrface_video.restore.model import CLRFaceModel
    from clrface_video.restore.restorer import SHIPPED_WEIGHTS

    torch.set_num_threads(args.threads)
    model = CLRFaceModel.load(args.weights or SHIPPED_WEIGHTS).eval()
    gate = model.gate
    if gate is None or gate.cfg.inputs != "degraded":
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
    moved = view(lq, True, 1, 0)  # mirrored, one pixel to the right
    with torch.no_grad():
        used, used_moved = gate(lq, None).numpy(), gate(moved, None).numpy()
        single, single_moved = torch.sigmoid(gate.logits(lq, None)).numpy(), torch.sigmoid(gate.logits(moved, None)).numpy()
    print(f"{args.video.name}: the gate's share of the restoration, first face of {len(crops)} frames")
    for number, share in zip(numbers, used, strict=True):
        print(f"  frame {number:4d}  {share:.2f}")
    for name, shares, other in (("the restorer's share", used, used_moved), ("one view", single, single_moved)):
        steps = np.abs(np.diff(shares)).mean() if len(shares) > 1 else 0.0
        print(f"  {name:21s} mean {shares.mean():.2f}, range {shares.min():.2f}-{shares.max():.2f}; "
              f"change frame to frame {steps:.3f}, mirrored and moved 1 px {np.abs(shares - other).mean():.3f}")
    with torch.no_grad():
        print(f"  gate time for {len(crops)} crops in one batch: eight views {best_seconds(lambda: gate(lq, None), 5) * 1e3:.1f} ms, "
              f"one view {best_seconds(lambda: gate.logits(lq, None), 5) * 1e3:.1f} ms")


if __name__ == "__main__":
    main()

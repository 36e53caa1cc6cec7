"""Milliseconds restore.padding.flat_padding takes for batches of 16 real aligned crops, against the flood fill it
replaced (a 3 x 3 max pool over the whole batch per step), and whether both give the same mask.

    python benchmarks/padding_speed.py [--clips keep_real_1,face_recognition_hamilton,...] [--frames 16] [--repeats 3]

Crops: the first face RetinaFace finds in each of the first FRAMES frames of each clip (../shared/data/videos),
aligned at 128 px as the pipeline does; 16 a batch, in clip order (a batch of one clip's faces, as in a restore).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F
from timing import best_seconds

from clrface_video.faces.align import align_face
from clrface_video.faces.detect import make_detector
from clrface_video.restore import padding

VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"
CLIPS = "keep_real_1,face_recognition_hamilton,liveportrait_s13,facenet_crowd_1080p"


def crops_of(clip: Path, frames: int) -> list[np.ndarray]:
    detector, crops = make_detector("retinaface"), []
    with av.open(str(clip)) as container:
        for _, frame in zip(range(frames), container.decode(video=0)):
            image = frame.to_ndarray(format="rgb24")
            faces = detector.detect(image)
            if faces:
                crops.append(align_face(image, faces[0].landmarks, 128).image)
    return crops


def max_pool_fill(flat: torch.Tensor, steps: int) -> torch.Tensor:
    """The replaced flood fill: grow from the border one 3 x 3 max pool at a time, checking every 8 steps."""
    region = torch.zeros_like(flat)
    region[..., 0, :] = region[..., -1, :] = region[..., :, 0] = region[..., :, -1] = 1.0
    region = region * flat
    for i in range(steps):
        grown = F.max_pool2d(region, 3, 1, 1) * flat
        if i % 8 == 7 and torch.equal(grown, region):
            break
        region = grown
    return region


def timings(x: torch.Tensor, repeats: int) -> str:
    """flat_padding's time for the batch `x` ((N, 3, R, R) in [-1, 1]), its flood fill's, the replaced fill's."""
    mean = F.avg_pool2d(x, padding.WINDOW, 1, padding.WINDOW // 2, count_include_pad=False)
    var = F.avg_pool2d(x * x, padding.WINDOW, 1, padding.WINDOW // 2, count_include_pad=False) - mean * mean
    flat = (var.amax(1, keepdim=True) < padding.FLAT_STD ** 2).float()
    steps = x.shape[-1]
    same = torch.equal(max_pool_fill(flat, steps), padding._reached_from_border(flat, steps))
    whole, old, new = (best_seconds(call, repeats) * 1000 for call in (
        lambda: padding.flat_padding(x), lambda: max_pool_fill(flat, steps),
        lambda: padding._reached_from_border(flat, steps)))
    return f"flat_padding {whole:.1f}, max-pool fill {old:.1f}, now {new:.1f}; same mask: {same}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", default=CLIPS)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    crops = [crop for name in args.clips.split(",") for crop in crops_of(VIDEOS / f"{name}.mp4", args.frames)]
    print(f"{len(crops)} crops, ms per batch of 16 (best of {args.repeats}): flat_padding, the max-pool fill it "
          "replaced, and the same flood fill now")
    for start in range(0, len(crops), 16):
        x = torch.from_numpy(np.stack(crops[start:start + 16])).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        print(f"  crops {start}-{start + len(x) - 1}: " + timings(x, args.repeats))


if __name__ == "__main__":
    main()

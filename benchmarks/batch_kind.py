"""Which batches restore_frames takes for separate pictures (api.separate_pictures): real clips' frames against
batches of unrelated photos, to check the rule a ComfyUI batch is restored by.

    python benchmarks/batch_kind.py ../shared/data [--frames 16] [--batches 50] [--seed 0]

For each clip in videos/, whether its first FRAMES frames are taken for pictures (they must not be), and how many of
its FRAMES-frame windows (up to 400 frames) are, with the most cuts in one window and the longest run of cuts in a
row. Then batches of FRAMES photos:
LFW faces of different people (random), LFW files in their listed order (up to 4 of a person together), and
the research photos in photos/ (random orders), each as a ComfyUI ImageBatch holds them, every picture at the first
one's size; the share of batches taken for pictures (and of those with every neighbour a cut), of neighbouring
pairs that are cuts, and the fewest cuts in one batch.
"""
from __future__ import annotations

import argparse
import random
from itertools import pairwise
from pathlib import Path

import numpy as np
from PIL import Image

from clrface_video.api import separate_pictures
from clrface_video.faces.shots import is_cut, thumbnail
from clrface_video.io.decode import read_frames
from clrface_video.io.pixels import to_uint8


def pictures(frames: list[np.ndarray]) -> bool:
    return separate_pictures(frames).pictures


def clips(folder: Path, count: int) -> None:
    print(f"clips: the first {count} frames, then every {count}-frame window of the first 400")
    for video in sorted(folder.glob("*.mp4")):
        frames = [to_uint8(frame.image) for frame, _ in zip(read_frames(video), range(400))]
        thumbs = [thumbnail(frame) for frame in frames]
        cuts = [is_cut(a, b) for a, b in pairwise(thumbs)]
        windows = [sum(cuts[start:start + count - 1]) for start in range(len(frames) - count + 1)]
        longest = run = 0
        for cut in cuts:
            run = run + 1 if cut else 0
            longest = max(longest, run)
        first = "pictures" if pictures(frames[:count]) else "video"
        taken = sum(pictures(frames[start:start + count]) for start in range(len(frames) - count + 1))
        print(f"  {video.name}: first {count}: {first}; windows taken for pictures {taken}/{len(windows)}, "
              f"most cuts in one {max(windows)}; cuts {sum(cuts)}, longest run {longest}")


def batches(name: str, files: list[list[Path]]) -> None:
    taken, cut_pairs, pairs, every, fewest = 0, 0, 0, 0, len(files[0])
    for batch in files:
        first = Image.open(batch[0]).convert("RGB")
        images = [np.asarray(first)] + [np.asarray(Image.open(f).convert("RGB").resize(first.size)) for f in batch[1:]]
        taken += pictures(images)
        thumbs = [thumbnail(image) for image in images]
        cuts = sum(is_cut(a, b) for a, b in pairwise(thumbs))
        cut_pairs, every, fewest = cut_pairs + cuts, every + (cuts == len(images) - 1), min(fewest, cuts)
        pairs += len(images) - 1
    print(f"  {name}: {taken}/{len(files)} batches taken for pictures ({every} with every neighbour a cut); "
          f"{cut_pairs}/{pairs} neighbouring pairs cuts, fewest in a batch {fewest}/{len(files[0]) - 1}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="the shared/data folder")
    parser.add_argument("--frames", type=int, default=16, help="frames (pictures) a batch")
    parser.add_argument("--batches", type=int, default=50, help="random photo batches of each kind")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    clips(args.data / "videos", args.frames)
    rng, n = random.Random(args.seed), args.frames
    people = sorted(p for p in (args.data / "faces-train" / "lfw").iterdir() if p.is_dir())
    listed = [f for person in people for f in sorted(person.iterdir())]
    photos = sorted((args.data / "photos").iterdir())
    print(f"photo batches of {n}")
    batches("LFW, different people", [[rng.choice(sorted(p.iterdir())) for p in rng.sample(people, n)]
                                      for _ in range(args.batches)])
    starts = rng.sample(range(len(listed) - n), args.batches)
    batches("LFW, in listed order", [listed[start:start + n] for start in starts])
    batches("research photos", [rng.sample(photos, n) for _ in range(args.batches)])


if __name__ == "__main__":
    main()

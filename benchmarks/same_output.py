"""Whether two restored videos hold the same pictures and sound: every decoded frame, pixel for pixel, and every
audio packet, byte for byte.

    python benchmarks/same_output.py A.mp4 B.mp4

Prints the number of frames and packets compared and the largest pixel difference; exits 1 when they differ.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from itertools import zip_longest
from pathlib import Path

import av
import numpy as np


def frames(path: Path) -> Iterator[tuple[int | None, np.ndarray]]:
    """(pts, RGB picture) of each video frame, one at a time."""
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            yield frame.pts, frame.to_ndarray(format="rgb24")


def audio_packets(path: Path) -> list[tuple[int | None, bytes]]:
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return []
        return [(packet.pts, bytes(packet)) for packet in container.demux(audio=0) if packet.size]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    args = parser.parse_args()
    worst, differ, count = 0, 0, 0
    for one, other in zip_longest(frames(args.a), frames(args.b)):
        count += 1
        if one is None or other is None or one[0] != other[0] or one[1].shape != other[1].shape:
            differ += 1
            continue
        gap = int(np.abs(one[1].astype(np.int16) - other[1]).max())
        worst, differ = max(worst, gap), differ + (gap > 0)
    sound_a, sound_b = audio_packets(args.a), audio_packets(args.b)
    same_sound = sound_a == sound_b
    print(f"{count} frames, {differ} differ (largest difference {worst} grey levels); "
          f"{len(sound_a)} audio packets, {'the same' if same_sound else 'NOT the same'}")
    sys.exit(0 if differ == 0 and same_sound else 1)


if __name__ == "__main__":
    main()

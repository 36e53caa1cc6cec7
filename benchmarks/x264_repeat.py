"""Encode the same frames several times in one process with plain PyAV and count the different outputs.

    python benchmarks/x264_repeat.py VIDEO [--frames 30] [--repeats 10] [--threads 1] [--codec libx264]
        [--perturb BYTE]

The frames are the first --frames of VIDEO, decoded once to RGB; every encode converts them to yuv420p
again and encodes them with the options `clrface-video restore` gives libx264 (--crf 18), with some Python
work between frames as in a restore, nothing of this project's code in between. It prints the MD5 of each
encode's packets and how many different streams came out.
With libx264 the streams differ from run to run (docs/results.md, "Stages around the model"); under
valgrind (`PYTHONMALLOC=malloc valgrind --track-origins=yes python benchmarks/x264_repeat.py VIDEO
--frames 12 --repeats 1`) memcheck reports uses of uninitialised values inside libx264, below
x264_encoder_encode, created by a stack allocation in libx264 (give valgrind the interpreter itself, not a
shell shim such as pyenv's).
"""
from __future__ import annotations

import argparse
import ctypes
import hashlib
import io
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

TIME_BASE = Fraction(1, 12800)
M_PERTURB = -6  # glibc's mallopt parameter


def first_frames(path: Path, count: int) -> list[np.ndarray]:
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == count:
                break
    return frames


def other_work(rng: np.random.Generator) -> list[int]:
    """What a restore does between two frames, in miniature: Python objects made and dropped."""
    return rng.integers(0, 1 << 30, 5000).tolist()


def encode(frames: list[np.ndarray], codec: str, threads: int, rng: np.random.Generator) -> bytes:
    """The encoded packets' bytes, one after another (not the container's, which may hold a random id)."""
    height, width = frames[0].shape[:2]
    packets = []
    with av.open(io.BytesIO(), "w", format="matroska") as out:
        stream = out.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = TIME_BASE
        stream.codec_context.thread_count = threads
        if codec == "libx264":
            stream.options = {"crf": "18", "x264-params": "force-cfr=1"}
        kept = []
        for index, rgb in enumerate(frames):
            kept.append(other_work(rng))
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = index * 512, TIME_BASE
            packets += [bytes(packet) for packet in stream.encode(frame)]
        packets += [bytes(packet) for packet in stream.encode(None)]
    return b"".join(packets)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video", type=Path)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="encoder threads (0: the encoder's own choice)")
    parser.add_argument("--codec", default="libx264", help="libx264, or ffv1 (lossless, for comparison)")
    parser.add_argument("--perturb", type=int, default=None, metavar="BYTE",
                        help="have glibc fill every new allocation from this byte (mallopt M_PERTURB) first")
    args = parser.parse_args()
    if args.perturb is not None:
        ctypes.CDLL("libc.so.6").mallopt(M_PERTURB, args.perturb)
    frames = first_frames(args.video, args.frames)
    rng = np.random.default_rng()
    digests = [hashlib.md5(encode(frames, args.codec, args.threads, rng)).hexdigest()[:12]
               for _ in range(args.repeats)]
    print(f"{args.video.name}: {len(frames)} frames, {args.codec}, {args.threads} thread(s): {' '.join(digests)}")
    print(f"{len(set(digests))} different output(s) in {args.repeats} encodes")


if __name__ == "__main__":
    main()

"""Bytes FFV1 takes with every frame a keyframe (and slice CRCs, version 3), as the writer now sets it, against
FFmpeg's default (a keyframe every 12 frames, the coder's state carried between them), on research clips.

    python benchmarks/ffv1_keyframes.py [--clips keep_real_1,facenet_crowd_1080p] [--frames 48]

Each clip's first FRAMES frames, as yuv420p, encoded both ways into Matroska in memory.
"""
from __future__ import annotations

import argparse
import io
from pathlib import Path

import av

VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"
ARCHIVAL = {"g": "1", "level": "3", "slicecrc": "1"}  # what io.output_stream gives ffv1


def encoded(frames: list[av.VideoFrame], options: dict[str, str]) -> tuple[int, int]:
    """(bytes, keyframes) of `frames` encoded by ffv1 with `options` into an in-memory .mkv."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="matroska") as out:
        stream = out.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = frames[0].width, frames[0].height, "yuv420p"
        stream.options = options
        for index, frame in enumerate(frames):
            frame.pts = index
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    buffer.seek(0)
    with av.open(buffer) as container:
        keys = sum(packet.is_keyframe for packet in container.demux(video=0) if packet.size)
    return len(buffer.getvalue()), keys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", default="keep_real_1,facenet_crowd_1080p")
    parser.add_argument("--frames", type=int, default=48)
    args = parser.parse_args()
    for name in args.clips.split(","):
        with av.open(str(VIDEOS / f"{name}.mp4")) as container:
            frames = []
            for frame in container.decode(video=0):
                frames.append(frame.reformat(format="yuv420p"))
                if len(frames) == args.frames:
                    break
        default, default_keys = encoded(frames, {})
        archival, archival_keys = encoded(frames, ARCHIVAL)
        print(f"{name}: {len(frames)} frames {frames[0].width}x{frames[0].height}: default {default:,} bytes "
              f"({default_keys} keyframes), archival {archival:,} bytes ({archival_keys} keyframes), "
              f"{100 * (archival / default - 1):+.1f}%")


if __name__ == "__main__":
    main()

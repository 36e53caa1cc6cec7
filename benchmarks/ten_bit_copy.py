"""A 10-bit copy of a video's first frames, to time the deep-frame path (uint16 frames) with stage_times.py.

    python benchmarks/ten_bit_copy.py VIDEO OUT.mp4 [--frames 40]

The research clips are all 8-bit, where phones' HDR clips and ProRes or DNxHR masters are 10-bit: such frames
are read as uint16 and converted to 8 bits for the detector every frame (io.pixels.to_uint8). The copy is
H.264 High 10 (yuv420p10le, libx264 crf 16, ultrafast), one frame per source frame at its rate, no audio.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import av


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--frames", type=int, default=40)
    args = parser.parse_args()
    with av.open(str(args.video)) as source, av.open(str(args.out), "w") as out:
        video = source.streams.video[0]
        stream = out.add_stream("libx264", rate=video.average_rate)
        stream.width, stream.height, stream.pix_fmt = video.width, video.height, "yuv420p10le"
        stream.options = {"crf": "16", "preset": "ultrafast"}
        written = 0
        for frame in source.decode(video=0):
            if written >= args.frames:
                break
            deep = frame.reformat(format="yuv420p10le")
            deep.pts, deep.time_base = written, 1 / video.average_rate
            out.mux(stream.encode(deep))
            written += 1
        out.mux(stream.encode(None))
    print(f"{args.out}: {written} frames, yuv420p10le")


if __name__ == "__main__":
    main()

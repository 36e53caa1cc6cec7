"""Time how long io.extent takes to measure a video whose file states no length, by its packets' times.

    python benchmarks/packet_scan.py VIDEO [--hours 2] [--repeats 3]

VIDEO's packets (all its streams, none decoded) are copied end to end, times shifted, into a Matroska written
live (no duration on the file, its streams or in a DURATION tag) until it lasts --hours, in a temporary folder
removed afterwards; then io.extent.extent reads it --repeats times (the file in the page cache after the
first). It prints the file's size, its packets, the length found and the fastest and slowest time: what a
rerun pays for such a file before it decides whether its output holds the stretch asked
(extent.MAX_SCANNED_BYTES bounds it).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import av

from clrface_video.io.extent import extent


def looped_live(source: Path, target: Path, seconds: float) -> int:
    """`source` copied end to end until it lasts `seconds`, into a live Matroska; the packets written."""
    with av.open(str(source)) as src:
        packets = [packet for packet in src.demux() if packet.dts is not None]
        spans = {}
        for stream in src.streams:
            own = [p for p in packets if p.stream is stream]
            spans[stream.index] = max(p.pts + p.duration for p in own) - min(p.dts for p in own)
        one = float(src.duration / av.time_base)
        with av.open(str(target), "w", options={"live": "1"}) as out:
            streams = {stream.index: out.add_stream_from_template(stream) for stream in src.streams}
            loops = max(1, round(seconds / one))
            for loop in range(loops):
                for packet in packets:
                    copy = av.Packet(bytes(packet))
                    shift = loop * spans[packet.stream.index]
                    copy.pts, copy.dts, copy.duration = packet.pts + shift, packet.dts + shift, packet.duration
                    copy.is_keyframe, copy.time_base = packet.is_keyframe, packet.time_base
                    copy.stream = streams[packet.stream.index]
                    out.mux(copy)
    return loops * len(packets)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video", type=Path)
    parser.add_argument("--hours", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        live = Path(folder) / "live.mkv"
        packets = looped_live(args.video, live, args.hours * 3600)
        times, found = [], None
        for _ in range(args.repeats):
            begin = time.perf_counter()
            found = extent(live)
            times.append(time.perf_counter() - begin)
        seconds = "unknown" if found is None or found.seconds is None else f"{float(found.seconds):.1f} s"
        print(f"{args.video.name} looped live: {live.stat().st_size / 2**20:.0f} MiB, {packets} packets, "
              f"video length found {seconds}, read in {min(times):.2f}-{max(times):.2f} s")


if __name__ == "__main__":
    main()

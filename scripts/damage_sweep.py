"""Count damage warnings over whole clips, where every one is a false alarm, whole and from a --start part way.

Why: io.damage says frames lost where a decoder gives none for a packet, marked corrupt or not, and a false
warning is worse than none. The clips: the research videos (../shared/data/videos, skipped where absent) as they
are and remuxed into .ts and .mkv, and clips made here of each kind tests/media.py makes (VFR, B-frames,
open-GOP MPEG-2, H.264 and HEVC, HEVC, interlaced, VP8 with alt-ref frames, VP9, AV1 where an encoder is present).
Each is read whole and from 1/3 and 2/3 of its length (a seek), as read_frames reads it. Usage:

    OMP_NUM_THREADS=1 PYTHONPATH=. python scripts/damage_sweep.py [--data ../shared/data/videos] [--keep FOLDER]
"""
from __future__ import annotations

import argparse
import logging
import tempfile
from contextlib import ExitStack
from fractions import Fraction
from pathlib import Path

import av

from clrface_video.io.damage import Damage
from clrface_video.io.decode import decoding, probe_video
from tests.media import clip_image, make_clip
from tests.ray_local import short_gop


def remux(source: Path, target: Path) -> Path:
    """The video of `source` copied into `target`'s container, packet for packet."""
    with av.open(str(source)) as src, av.open(str(target), "w") as out:
        video = out.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = video
                out.mux(packet)
    return target


def encoded(path: Path, codec: str, options: dict[str, str], frames: int = 72, vfr: bool = False) -> Path:
    """A 128x96 clip of `frames` at 24 fps (durations cycling 1, 2, 0.5 steps where `vfr`) with encoder options."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=24)
        stream.width, stream.height, stream.pix_fmt = 128, 96, "yuv420p"
        time_base = Fraction(1, 1000) if vfr else Fraction(1, 24)  # the codec's (a muxer changes the stream's)
        stream.time_base = stream.codec_context.time_base = time_base
        stream.options = options
        now = 0.0
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(clip_image(i, frames, (128, 96)), format="rgb24")
            frame = frame.reformat(format="yuv420p")
            frame.pts, frame.time_base = (round(now) if vfr else i), time_base
            now += 1000 / 24 * (1.0, 2.0, 0.5)[i % 3]
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def clips(folder: Path, data: Path) -> list[Path]:
    """The clips to read: the research videos and their remuxes, then the ones made in `folder`."""
    made = []
    for source in sorted(data.glob("*.mp4")):
        made += [source, remux(source, folder / f"{source.stem}.ts"), remux(source, folder / f"{source.stem}.mkv")]
    small = {"frames": 72, "size": (128, 96)}
    for suffix in (".mp4", ".mkv", ".mov", ".ts"):
        made += [make_clip(folder / f"plain{suffix}", **small), make_clip(folder / f"vfr{suffix}", vfr=True, **small),
                 make_clip(folder / f"gop8{suffix}", gop=8, **small)]
        made.append(short_gop(made[-3], folder / f"bframes{suffix}", 12))
    made.append(make_clip(folder / "tape.mpg", codec="mpeg2video", audio_codec="mp2", **small))
    for suffix in (".mp4", ".mkv", ".ts"):
        made += [make_clip(folder / f"hevc{suffix}", codec="libx265", audio=False, **small),
                 make_clip(folder / f"fields{suffix}", interlaced=True, audio=False, **small),
                 encoded(folder / f"h264_bf3{suffix}", "libx264", {"bf": "3", "g": "24"}),
                 encoded(folder / f"h264_bf3_vfr{suffix}", "libx264", {"bf": "3", "g": "24"}, vfr=True),
                 encoded(folder / f"h264_open{suffix}", "libx264", {"x264-params": "keyint=24:open-gop=1"}),
                 encoded(folder / f"hevc_open{suffix}", "libx265",
                         {"x265-params": "keyint=24:open-gop=1:bframes=4:log-level=error"})]
    for suffix in (".ts", ".mpg", ".mkv"):
        made.append(encoded(folder / f"mpeg2_open{suffix}", "mpeg2video", {"bf": "2", "g": "12"}))
    for suffix in (".mkv", ".webm"):
        made += [make_clip(folder / f"vp9{suffix}", codec="libvpx-vp9", audio=False, **small),
                 encoded(folder / f"vp8_altref{suffix}", "libvpx", {"auto-alt-ref": "1", "lag-in-frames": "16"})]
    av1 = next((name for name in ("libsvtav1", "libaom-av1") if name in av.codecs_available), None)
    if av1 is not None:
        options = {"preset": "12"} if av1 == "libsvtav1" else {"cpu-used": "8"}
        made += [encoded(folder / f"av1{suffix}", av1, options, frames=24) for suffix in (".mkv", ".mp4")]
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/videos"))
    parser.add_argument("--keep", type=Path, help="make the clips in this folder and leave them there")
    args = parser.parse_args()
    said: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: said.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("clrface_video").addHandler(handler)
    with tempfile.TemporaryDirectory() as temporary:
        folder = args.keep or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        runs = alarms = 0
        every = clips(folder, args.data)
        for path in every:
            seconds = probe_video(path).duration_s or 0
            for share in (0, 1 / 3, 2 / 3):
                said.clear()
                with ExitStack() as files:
                    timed = decoding(files, path, None, seconds * share if share else None, damage=Damage())[2]
                    frames = sum(1 for _ in timed)
                runs += 1
                if lines := [line for line in said if "damaged video" in line]:
                    alarms += 1
                    print(f"{path.name} from {share:.2f} ({frames} frames): {lines}")
    print(f"{alarms} false alarms in {runs} readings of {len(every)} clips")


if __name__ == "__main__":
    main()

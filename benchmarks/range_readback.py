"""Whether each output (encoder, container) the writer makes reads back at the full range it was written at.

    python benchmarks/range_readback.py [--depth 8|10|both] [--untagged]

For each pairing: a flat full-range BT.709 FFV1 clip (bands of Y 235, 128 and 30 at 8 bits, x4 at 10 bits;
neutral chroma; with --untagged its primaries, transfer and matrix unspecified, as a webcam's MJPEG) is
  - written as FFmpeg is asked to: the encoder's frames and stream tagged full range, the samples as they are
    (the output stream set up as io.output_stream.add_video_stream sets it up, its range then forced to full);
    printed: the range FFmpeg's decoder gives the frames back (2 full, 1 limited, 0 unspecified, which FFmpeg and
    io.decode read as limited) and their Y samples of the three bands;
  - copied by io.encode.VideoWriter (as `restore --codec NAME` writes it), read back by io.decode to RGB;
    printed: the three bands' 8-bit RGB (the source reads 235, 128, 30) and the range the output is tagged.
Run it with PYTHONPATH set to an older checkout to see that checkout's writer.
"""
from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import av
import numpy as np

from clrface_video.errors import ClrfaceError
from clrface_video.io.decode import probe_video, read_frames
from clrface_video.io.encode import VideoWriter
from clrface_video.io.output_stream import add_video_stream

LEVELS = (235, 128, 30)  # 8-bit full-range Y of the bands: near white, mid grey, near black
SIZE = (384, 144)  # three bands 128 wide; DNxHR opens at 256x144 and up
# (encoder, output suffix): --codec auto's choices (AUTO_CODECS, KEPT_CODECS, libx264, libx265 for HDR) and the
# encoders README names or the writer handles specially (mpeg4 anywhere, cfhd, mjpeg, libvpx)
PAIRINGS = [("libx264", s) for s in (".mp4", ".mkv", ".mov", ".ts", ".avi")] \
    + [("libx265", s) for s in (".mp4", ".mkv", ".mov", ".ts")] \
    + [("libsvtav1", s) for s in (".mp4", ".mkv", ".webm")] \
    + [("libvpx-vp9", s) for s in (".webm", ".mkv", ".mp4")] + [("libvpx", s) for s in (".webm", ".mkv")] \
    + [("ffv1", s) for s in (".mkv", ".mp4", ".avi", ".mxf")] \
    + [(c, s) for c in ("huffyuv", "ffvhuff", "utvideo") for s in (".avi", ".mov")] \
    + [("mpeg4", s) for s in (".avi", ".mp4", ".mov", ".mkv")] \
    + [("mpeg2video", s) for s in (".mpg", ".m2v", ".mxf", ".ts", ".mov", ".mkv")] + [("mpeg1video", ".mpg")] \
    + [("prores_ks", s) for s in (".mov", ".mkv", ".mxf")] + [("dnxhd", s) for s in (".mov", ".mxf")] \
    + [("cfhd", s) for s in (".mov", ".avi")] + [("mjpeg", s) for s in (".avi", ".mov", ".mkv")] \
    + [("dvvideo", ".dv"), ("dvvideo", ".avi"), ("dvvideo", ".mov"), ("dvvideo", ".mkv")]
DV_SIZE, DV_RATE = (720, 576), 25  # dvvideo codes PAL's frames only at this size and rate


def flat_source(path: Path, depth: int, size: tuple[int, int], fps: int, tags: int) -> Path:
    """A one-second full-range FFV1 clip of LEVELS bands (yuv420p or yuv420p10le), its primaries, transfer and
    matrix `tags` (1: BT.709, 2: unspecified)."""
    pix_fmt = "yuv420p" if depth == 8 else "yuv420p10le"
    dtype, scale = (np.uint8, 1) if depth == 8 else ("<u2", 4)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=fps)
        stream.width, stream.height, stream.pix_fmt = *size, pix_fmt
        ctx = stream.codec_context
        ctx.color_range, ctx.colorspace, ctx.color_primaries, ctx.color_trc = 2, tags, tags, tags
        for index in range(fps):
            frame = _bands(size, pix_fmt, dtype, scale)
            frame.color_range, frame.colorspace, frame.color_primaries, frame.color_trc = 2, tags, tags, tags
            frame.pts = index
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def _bands(size: tuple[int, int], pix_fmt: str, dtype: object, scale: int) -> av.VideoFrame:
    """A frame of `pix_fmt` with the LEVELS bands side by side (x `scale`), chroma neutral."""
    frame = av.VideoFrame(*size, pix_fmt)
    for index, plane in enumerate(frame.planes):
        samples = np.frombuffer(plane, dtype).reshape(plane.height, -1)[:, :plane.width]
        band = plane.width // len(LEVELS)
        for number, level in enumerate(LEVELS):
            samples[:, number * band:] = level * scale if index == 0 else 128 * scale
    return frame


def band_centres(width: int) -> list[int]:
    return [width * (2 * number + 1) // (2 * len(LEVELS)) for number in range(len(LEVELS))]


def written_full(src: Path, codec: str, suffix: str, folder: Path) -> str:
    """FFmpeg asked to write full range into (codec, suffix): the range it reads back and the bands' Y codes."""
    info = probe_video(src)
    path = folder / f"raw{suffix}"
    try:
        with av.open(str(path), "w") as out:
            stream = add_video_stream(out, info, codec, 18)
            stream.codec_context.color_range = 2
            source = av.open(str(src))
            for frame in source.decode(video=0):
                moved = frame.reformat(format=stream.pix_fmt)  # same depth and range: only the subsampling changes
                moved.color_range, moved.colorspace = 2, frame.colorspace
                moved.pts, moved.time_base = frame.pts, stream.codec_context.time_base
                out.mux(stream.encode(moved))
            source.close()
            out.mux(stream.encode(None))
        with av.open(str(path)) as back:
            frame = next(back.decode(video=0))
            bits = frame.format.components[0].bits
            luma = frame.planes[0]
            row = np.frombuffer(luma, np.uint8 if bits == 8 else "<u2")[:luma.width]
            codes = [int(row[x]) for x in band_centres(frame.width)]
            return f"{frame.format.name} range {int(frame.color_range)}: Y {codes}"
    except (av.error.FFmpegError, ValueError, ClrfaceError) as error:
        return f"not written ({str(error)[:60]})"


def through_writer(src: Path, codec: str, suffix: str, folder: Path) -> str:
    """VideoWriter's copy of `src` into (codec, suffix), read back by io.decode: the bands' 8-bit RGB."""
    info = probe_video(src)
    try:
        with VideoWriter(folder / f"out{suffix}", src, info, codec=codec) as writer:
            for frame in read_frames(src):
                writer.write(frame)
        back = next(read_frames(writer.output))
        image = back.image if back.image.dtype == np.uint8 else np.round(back.image / 257)
        rgb = [round(float(np.mean(image[info.height // 2, x]))) for x in band_centres(info.width)]
        return f"RGB {rgb}, tagged {probe_video(writer.output).color_range}"
    except (av.error.FFmpegError, ValueError, ClrfaceError) as error:
        return f"not written ({str(error)[:60]})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--depth", choices=("8", "10", "both"), default="both")
    parser.add_argument("--untagged", action="store_true", help="source primaries, transfer, matrix unspecified")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the writer's warnings are not the measurement
    depths = (8, 10) if args.depth == "both" else (int(args.depth),)
    print("| encoder | output | depth | FFmpeg asked for full range: decoded as | VideoWriter's copy via io.decode |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="range-readback-") as name:
        folder = Path(name)
        for depth in depths:
            sources = {}
            for codec, suffix in PAIRINGS:
                dv = codec == "dvvideo"
                if depth == 10 and (dv or not any(f.name.endswith(("10le",)) for f in
                                                  av.Codec(codec, "w").video_formats or [])):
                    continue
                key = (dv, depth)
                if key not in sources:
                    sources[key] = flat_source(folder / f"src{depth}{'dv' if dv else ''}.mkv", depth,
                                               DV_SIZE if dv else SIZE, DV_RATE if dv else 25,
                                               2 if args.untagged else 1)
                raw = written_full(sources[key], codec, suffix, folder)
                copied = through_writer(sources[key], codec, suffix, folder)
                print(f"| {codec} | {suffix} | {depth} | {raw} | {copied} |")


if __name__ == "__main__":
    main()

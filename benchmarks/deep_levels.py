"""The levels a 10-bit clip keeps when read to 16-bit RGB and written out, and the time reading and writing take.

    python benchmarks/deep_levels.py [--frames 6] [--size 1920x1080]

Builds, in a temporary folder, 10-bit BT.709 clips (FFV1) with flat patches: a limited-range yuv422p10le clip
(white 940, mid grey 502, a colour), a limited yuva444p10le clip (opaque and half transparent alpha) and a
limited gray10le clip. Printed, each patch's mean level (16-bit) against the exact BT.709 value:
  - read: as io.decode reads the frames (rgb48 / rgba64);
  - 16-bit PNG: after VideoWriter writes them as a 16-bit PNG sequence, read back as the file stores them;
  - copy: the mean Y, Cb, Cr (and alpha) shift of an FFV1 copy against the source, in 10-bit codes (0 = kept);
and the minimum milliseconds per frame of io.decode.frame_to_array and of the writer's RGB to YUV step, one
thread. Run it with PYTHONPATH set to an older checkout to see that checkout's figures.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

KR, KB = 0.2126, 0.0722  # BT.709
WHITE, GREY, COLOUR = (940, 512, 512), (502, 512, 512), (600, 400, 700)  # 10-bit limited Y, Cb, Cr
ALPHAS = (1023, 512)
REPEATS = 5  # timings: each frame read and written this many times, the minimum printed (a shared machine's other
# jobs stretch some runs)


def exact_rgb(y: int, cb: int, cr: int) -> np.ndarray:
    """BT.709 RGB (0..65535, float) of a 10-bit limited-range Y, Cb, Cr, clipped to the gamut."""
    luma, pb, pr = (y - 64) / 876, (cb - 512) / 896, (cr - 512) / 896
    red, blue = luma + 2 * (1 - KR) * pr, luma + 2 * (1 - KB) * pb
    green = (luma - KR * red - KB * blue) / (1 - KR - KB)
    return np.clip([red, green, blue], 0, 1) * 65535


def patches(width: int, height: int) -> list[tuple[slice, slice]]:
    """Three side-by-side patches, each a third of the width, their edges left out (chroma subsampling)."""
    third = width // 3
    return [(slice(8, height - 8), slice(i * third + 8, (i + 1) * third - 8)) for i in range(3)]


def make_clip(path: Path, pix_fmt: str, size: tuple[int, int], frames: int) -> None:
    """An FFV1 clip, limited range BT.709, with WHITE, GREY and COLOUR patches (a grey clip: their Y), the left
    half of an alpha plane at ALPHAS[0] and the right at ALPHAS[1]."""
    width, height = size
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=24)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.codec_context.color_range, stream.codec_context.colorspace = 1, 1
        for index in range(frames):
            frame = av.VideoFrame(width, height, pix_fmt)
            for number, plane in enumerate(frame.planes):
                samples = np.frombuffer(plane, "<u2").reshape(plane.height, -1)[:, :plane.width]
                if number == 3:
                    samples[:] = ALPHAS[1]
                    samples[:, :plane.width // 2] = ALPHAS[0]
                    continue
                third = plane.width * (width // 3) // width
                for patch, values in enumerate((WHITE, GREY, COLOUR)):
                    samples[:, patch * third:] = values[number]
            frame.color_range, frame.colorspace, frame.pts = 1, 1, index
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def planes(frame: av.VideoFrame) -> list[np.ndarray]:
    return [np.frombuffer(p, "<u2").reshape(p.height, -1)[:, :p.width].astype(np.float64) for p in frame.planes]


def copy(source: Path, target: Path, **options: object) -> Path:
    from clrface_video.io.decode import probe_video, read_frames
    from clrface_video.io.encode import VideoWriter

    info = probe_video(source)
    with VideoWriter(target, source, info, **options) as writer:
        for frame in read_frames(source, alpha=info.alpha):
            writer.write(frame)
    return writer.output


def copy_shift(source: Path, target: Path) -> list[float]:
    """The mean shift of each plane of `target` against `source`, in source codes, over all frames."""
    with av.open(str(source)) as a, av.open(str(target)) as b:
        shifts = [[float((q - p).mean()) for p, q in zip(planes(x), planes(y), strict=True)]
                  for x, y in zip(a.decode(video=0), b.decode(video=0), strict=True)]
    return list(np.mean(shifts, axis=0))


def main() -> None:
    from clrface_video.io.decode import read_frames

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--size", default="1920x1080")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    boxes = patches(*size)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        clip, alpha_clip, grey_clip = root / "in.mkv", root / "alpha.mkv", root / "grey.mkv"
        make_clip(clip, "yuv422p10le", size, args.frames)
        make_clip(alpha_clip, "yuva444p10le", size, 2)
        make_clip(grey_clip, "gray10le", size, 2)
        sequence = root / "png" / "f_%04d.png"
        sequence.parent.mkdir()
        copy(clip, sequence)
        with av.open(str(sequence.parent / "f_0001.png")) as container:
            png = next(container.decode(video=0)).to_ndarray(format="rgb48le")
        image = next(read_frames(clip)).image
        print(f"yuv422p10le limited BT.709, {size[0]}x{size[1]}: mean 16-bit R, G, B (exact)")
        for name, values, box in zip(("white", "mid grey", "colour"), (WHITE, GREY, COLOUR), boxes, strict=True):
            want = exact_rgb(*values)
            read, written = image[box].reshape(-1, 3).mean(axis=0), png[box].reshape(-1, 3).mean(axis=0)
            print(f"  {name:8s} {values}  exact {' '.join(f'{v:7.1f}' for v in want)}  read "
                  f"{' '.join(f'{v:7.1f}' for v in read)}  16-bit PNG {' '.join(f'{v:7.1f}' for v in written)}")
        y, cb, cr = copy_shift(clip, copy(clip, root / "copy.mkv", codec="ffv1"))
        print(f"  FFV1 copy, mean shift in 10-bit codes: Y {y:+.3f}  Cb {cb:+.3f}  Cr {cr:+.3f}")

        frame = next(read_frames(alpha_clip, alpha=True))
        print(f"yuva444p10le limited: alpha {ALPHAS} read as {int(frame.alpha[0, 0])}, {int(frame.alpha[0, -1])} "
              f"(exact {65535}, {round(ALPHAS[1] * 65535 / 1023)})")
        alpha_png = root / "alpha" / "f_%04d.png"
        alpha_png.parent.mkdir()
        copy(alpha_clip, alpha_png)
        with av.open(str(alpha_png.parent / "f_0001.png")) as container:
            stored = next(container.decode(video=0))
        stored_alpha = stored.to_ndarray()[..., 3]
        print(f"  16-bit PNG ({stored.format.name}) alpha {int(stored_alpha[0, 0])}, {int(stored_alpha[0, -1])}")
        shifts = copy_shift(alpha_clip, copy(alpha_clip, root / "alpha_copy.mkv", codec="ffv1"))
        print(f"  FFV1 copy, mean shift in 10-bit codes: Y {shifts[0]:+.3f}  Cb {shifts[1]:+.3f}  "
              f"Cr {shifts[2]:+.3f}  alpha {shifts[3]:+.3f}")
        (shift,) = copy_shift(grey_clip, copy(grey_clip, root / "grey_copy.mkv", codec="ffv1"))
        print(f"gray10le limited: FFV1 copy, mean shift {shift:+.3f} 10-bit codes")
        timing(clip, root)


def timing(clip: Path, root: Path) -> None:
    """Median ms per frame of io.decode.frame_to_array and of the writer's RGB to YUV (limited yuv422p10le)."""
    from clrface_video.io.decode import frame_to_array, probe_video, read_frames
    from clrface_video.io.encode import VideoWriter
    from clrface_video.types import Frame

    with av.open(str(clip)) as container:
        sources = list(container.decode(video=0))
    reads, writes = [], []
    images = [f.image for f in read_frames(clip)]
    with VideoWriter(root / "timing.mkv", clip, probe_video(clip), codec="ffv1") as writer:
        for _ in range(REPEATS):
            for index, (source, image) in enumerate(zip(sources, images, strict=True)):
                start = time.perf_counter()
                frame_to_array(source, True)
                reads.append(time.perf_counter() - start)
                start = time.perf_counter()
                writer._to_video_frame(Frame(image=image, index=index), Fraction(index, 24))
                writes.append(time.perf_counter() - start)
        writer.write(Frame(image=images[0], index=0))
    print(f"ms/frame, one thread, the minimum of {len(reads)}: read (frame_to_array) {1000 * min(reads):.1f}, "
          f"write (RGB to yuv422p10le) {1000 * min(writes):.1f}")


if __name__ == "__main__":
    main()

"""Image sequences (film scans: DPX, TIFF or PNG frames numbered by a printf counter) read and written as video."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from itertools import pairwise
from pathlib import Path

from clrface_video.errors import ClrfaceError, InputError
from clrface_video.types import SPAN_TOLERANCE, TimeSpan

# FFmpeg's image2 counter: %d, %04d, %06d, ... (not %20d: that is a URL-escaped space in a file name)
COUNTER = re.compile(r"%(?:0(\d+))?d")
DEFAULT_FPS = Fraction(24)  # film; --fps for anything else
# The still-image encoder for each sequence extension, and its RGB pixel formats by bit depth.
CODECS = {".dpx": "dpx", ".png": "png", ".tif": "tiff", ".tiff": "tiff"}
RGB_FORMATS = {("dpx", 8): "rgb24", ("dpx", 10): "gbrp10le", ("dpx", 12): "gbrp12le", ("dpx", 16): "rgb48le",
               ("png", 8): "rgb24", ("png", 16): "rgb48be", ("tiff", 8): "rgb24", ("tiff", 16): "rgb48le"}
RGBA_FORMATS = {("png", 8): "rgba", ("png", 16): "rgba64be", ("tiff", 8): "rgba", ("tiff", 16): "rgba64le"}
GRAY_FORMATS = {("dpx", 8): "gray", ("dpx", 16): "gray16le", ("png", 8): "gray", ("png", 16): "gray16be",
                ("tiff", 8): "gray", ("tiff", 16): "gray16le"}  # black-and-white film scans stay one channel


@dataclass(frozen=True)
class Sequence:
    """The frames of one numbered sequence on disk: pattern (with its counter), first number, count."""

    pattern: Path
    first: int
    count: int

    @property
    def first_file(self) -> Path:
        return frame_path(self.pattern, self.first)


def is_sequence(path: Path | str) -> bool:
    """True when the file name holds an image2 counter (scan_%06d.dpx), unless it names a video
    (`50%done.mp4`: frames are stills) or a file that is there under that very name."""
    from clrface_video.io.decode import VIDEO_EXTENSIONS  # decode reads sequences too

    path = Path(path)
    return COUNTER.search(path.name) is not None and path.suffix.lower() not in VIDEO_EXTENSIONS \
        and not path.is_file()


def frame_path(pattern: Path, number: int) -> Path:
    """The file of frame `number` of a sequence."""
    return pattern.with_name(COUNTER.sub(lambda m: f"{number:0{m.group(1) or 0}d}", pattern.name, count=1))


def frame_numbers(pattern: Path) -> list[int]:
    """The numbers of the frames on disk that match `pattern`, sorted ([] when none do)."""
    match = COUNTER.search(pattern.name)
    if match is None or not pattern.parent.is_dir():
        return []
    width = int(match.group(1) or 0)
    head, tail = re.escape(pattern.name[:match.start()]), re.escape(pattern.name[match.end():])
    digits = rf"(\d{{{width},}})" if width else r"(\d+)"
    wanted = re.compile(f"^{head}{digits}{tail}$")
    return sorted(int(m.group(1)) for p in pattern.parent.iterdir() if p.is_file() and (m := wanted.match(p.name)))


def find_sequence(pattern: Path) -> Sequence:
    """The numbered frames on disk that match `pattern`; InputError when there are none or a number is missing.

    image2 would stop at the first missing number and quietly leave out every frame after it.
    """
    match = COUNTER.search(pattern.name)
    if match is None:
        raise InputError(f"{pattern.name} has no frame counter (such as %06d)")
    numbers = frame_numbers(pattern)
    if not numbers:
        raise InputError(f"no frames match {pattern} (the counter is {match.group(0)})")
    missing = next((n + 1 for n, m in pairwise(numbers) if m != n + 1), None)
    if missing is not None:
        raise InputError(f"{frame_path(pattern, missing).name} is missing from the sequence {pattern.name} "
                         f"({len(numbers)} frames from {numbers[0]} to {numbers[-1]}); restore each unbroken run "
                         "on its own")
    empty = next((n for n in numbers if frame_path(pattern, n).stat().st_size == 0), None)
    if empty is not None:
        raise InputError(f"{frame_path(pattern, empty).name} is empty (0 bytes): frame {empty - numbers[0] + 1} of "
                         f"the {len(numbers)} of the sequence {pattern.name} cannot be read")
    return Sequence(pattern, numbers[0], len(numbers))


def unreadable_frame(pattern: Path, offset: int) -> InputError:
    """The error for frame `offset` (from the first) of a sequence, whose file does not decode (damaged, cut
    short): named, as a missing one is. Passed over as a damaged packet of a video is, it left every later frame
    written under the number before its own."""
    sequence = find_sequence(pattern)
    return InputError(f"{frame_path(pattern, sequence.first + offset).name} cannot be read (damaged or cut short): "
                      f"frame {offset + 1} of the {sequence.count} of the sequence {pattern.name}; scan it again, or "
                      "restore each unbroken run on its own")


def scan_rate(fps: Fraction | float | None) -> Fraction:
    """The rate a sequence is read at for --fps `fps` (24 when None), as the image2 demuxer is given it."""
    return Fraction(fps).limit_denominator(1001) if fps else DEFAULT_FPS


def first_number(source: Path, span: TimeSpan | None, fps: Fraction | None) -> int:
    """The number of the first frame a run from `source` writes into a sequence: a scan's own (its stretch's
    first, the frame on screen at its start, at `fps`: its numbers kept), else 1."""
    if not is_sequence(source):
        return 1
    first = find_sequence(source).first
    if span is not None and fps:
        first += math.floor((Fraction(span.start) + SPAN_TOLERANCE) * fps)
    return first


def open_options(sequence: Sequence, fps: Fraction | float | None) -> dict[str, str]:
    """image2 demuxer options for reading `sequence` at `fps` frames per second (24 when None)."""
    rate = scan_rate(fps)
    return {"framerate": f"{rate.numerator}/{rate.denominator}", "start_number": str(sequence.first)}


def sequence_codec(pattern: Path) -> str:
    """The encoder that writes frames named like `pattern` (ClrfaceError for an extension none writes)."""
    codec = CODECS.get(pattern.suffix.lower())
    if codec is None:
        raise ClrfaceError(f"cannot write an image sequence as {pattern.suffix or 'files without an extension'}; "
                         f"use {', '.join(sorted(CODECS))}")
    return codec


def sequence_pix_fmt(codec: str, bit_depth: int, gray: bool = False, alpha: bool = False) -> str:
    """The pixel format for `codec` closest to `bit_depth` (10-bit DPX stays 10-bit), one channel when `gray`,
    with an alpha plane when `alpha` and the format has one (PNG, TIFF)."""
    formats = RGBA_FORMATS if alpha and any(name == codec for name, _ in RGBA_FORMATS) else \
        GRAY_FORMATS if gray else RGB_FORMATS
    depths = sorted({depth for name, depth in formats if name == codec})
    depth = next((d for d in depths if d >= bit_depth), depths[-1])
    return formats[(codec, depth)]

"""WebP files: telling an animated one from a still one, the kinds of image data they hold, and an animation's settings."""
from __future__ import annotations

import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from PIL import Image

WEBP_SUFFIX = ".webp"
ANIMATION_FLAG = 0x02  # in the VP8X chunk's flags: ANIM and ANMF chunks follow
ANMF_HEADER = 16  # an ANMF chunk's frame position, size, duration and flags, before the frame's own chunks
ANMF_DURATION = 12  # where its duration (24 bits, milliseconds) lies in that header
LOSSLESS, LOSSY = b"VP8L", b"VP8 "


@dataclass(frozen=True)
class WebpAnimation:
    """What an animated WebP carries besides its frames.

    loop: how many times it plays (0: for ever). background: the canvas colour, RGBA.
    lossless: every frame is lossless (VP8L); mixed: some are and some are not (the encoder picks per frame).
    icc / exif / xmp: the file's ICC profile, EXIF and XMP, or None.
    """

    loop: int = 0
    background: tuple[int, int, int, int] = (0, 0, 0, 0)
    lossless: bool = False
    mixed: bool = False
    icc: bytes | None = None
    exif: bytes | None = None
    xmp: bytes | None = None


def _chunks(data: bytes, offset: int, end: int) -> list[tuple[bytes, int, int]]:
    """(type, data offset, data length) of the RIFF chunks in data[offset:end]."""
    found = []
    while offset + 8 <= end:
        kind, size = data[offset:offset + 4], struct.unpack("<I", data[offset + 4:offset + 8])[0]
        found.append((kind, offset + 8, size))
        offset += 8 + size + (size & 1)
    return found


def is_animated_webp(path: Path | str) -> bool:
    """Whether a .webp file is an animation (its VP8X header says so), which FFmpeg cannot decode."""
    path = Path(path)
    if path.suffix.lower() != WEBP_SUFFIX or not path.is_file():
        return False
    with open(path, "rb") as file:
        head = file.read(21)  # RIFF, size, WEBP, then VP8X, its size and its flags byte
    return len(head) == 21 and head[:4] == b"RIFF" and head[8:16] == b"WEBPVP8X" and bool(head[20] & ANIMATION_FLAG)


def is_webp_output(path: Path | str) -> bool:
    """Whether an output path names a WebP file (an animated WebP's own format)."""
    return Path(path).suffix.lower() == WEBP_SUFFIX


def frame_kinds(path: Path) -> set[bytes]:
    """The kinds of image data (LOSSLESS, LOSSY) the frames of an animated WebP hold, or a still one's picture."""
    data = path.read_bytes()
    kinds = set()
    for kind, start, size in _chunks(data, 12, len(data)):  # after "RIFF", the size and "WEBP"
        if kind in (LOSSLESS, LOSSY):
            kinds.add(kind)
        elif kind == b"ANMF":
            inner = _chunks(data, start + ANMF_HEADER, min(start + size, len(data)))
            kinds |= {k for k, _, _ in inner if k in (LOSSLESS, LOSSY)}
    return kinds


def webp_seconds(path: Path) -> Fraction | None:
    """How long an animated WebP plays once: its frames' durations (milliseconds, in each ANMF header) added up;
    None for a still one."""
    data = path.read_bytes()
    durations = [int.from_bytes(data[start + ANMF_DURATION:start + ANMF_DURATION + 3], "little")
                 for kind, start, _ in _chunks(data, 12, len(data)) if kind == b"ANMF"]
    return Fraction(sum(durations), 1000) if durations else None


def read_settings(path: Path, image: Image.Image) -> WebpAnimation:
    """An animated WebP's settings, from its chunks and the Pillow image opened on it."""
    kinds = frame_kinds(path)
    background = image.info.get("background", (0, 0, 0, 0))
    xmp = image.info.get("xmp")
    return WebpAnimation(
        loop=int(image.info.get("loop", 0)),
        background=tuple(background) if isinstance(background, tuple) and len(background) == 4 else (0, 0, 0, 0),
        lossless=kinds == {LOSSLESS}, mixed=len(kinds) > 1,
        icc=image.info.get("icc_profile") or None, exif=image.info.get("exif") or None,
        xmp=(xmp.encode() if isinstance(xmp, str) else xmp) or None)

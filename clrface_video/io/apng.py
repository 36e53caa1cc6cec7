"""Animated PNG output: the last frame keeps its own delay (FFmpeg's apng muxer repeats the one before it)."""
from __future__ import annotations

import struct
import zlib
from fractions import Fraction
from pathlib import Path

APNG_SUFFIXES = frozenset({".png", ".apng"})  # a video written to one .png file: an animated PNG


def is_apng_output(path: Path | str) -> bool:
    """Whether a video's output path names an animated PNG."""
    return Path(path).suffix.lower() in APNG_SUFFIXES


def set_last_delay(path: Path, seconds: Fraction) -> None:
    """Rewrite the delay of the last frame control chunk (fcTL) of the APNG at `path` to `seconds`, in place."""
    data = bytearray(path.read_bytes())
    at = data.rfind(b"fcTL")
    if at < 4:
        return
    length = struct.unpack(">I", data[at - 4:at])[0]
    body = at + 4  # sequence, width, height, x, y (4 bytes each), then delay_num, delay_den (2 bytes each)
    seconds = Fraction(seconds).limit_denominator(65535)
    while seconds.numerator > 65535:  # the longest delay a fcTL holds
        seconds = Fraction(min(seconds.numerator // 2, 65535), max(1, seconds.denominator // 2))
    data[body + 20:body + 24] = struct.pack(">HH", seconds.numerator, seconds.denominator)
    crc = zlib.crc32(bytes(data[at:body + length])) & 0xFFFFFFFF
    data[body + length:body + length + 4] = struct.pack(">I", crc)
    path.write_bytes(bytes(data))

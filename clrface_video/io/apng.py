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
    at, last = 8, None  # chunks follow the 8-byte signature: length, type, data, CRC
    while at + 8 <= len(data):
        length = struct.unpack(">I", data[at:at + 4])[0]
        if data[at + 4:at + 8] == b"fcTL":
            last = at
        at += 12 + length
    if last is None:
        return
    length, body = struct.unpack(">I", data[last:last + 4])[0], last + 8
    seconds = min(Fraction(seconds), Fraction(65535)).limit_denominator(65535)  # the longest delay a fcTL holds
    while seconds.numerator > 65535:
        seconds = Fraction(seconds).limit_denominator(max(1, seconds.denominator // 2))
    # sequence, width, height, x, y (4 bytes each), then the delay's numerator and denominator (2 bytes each)
    data[body + 20:body + 24] = struct.pack(">HH", seconds.numerator, seconds.denominator)
    crc = zlib.crc32(bytes(data[last + 4:body + length])) & 0xFFFFFFFF
    data[body + length:body + length + 4] = struct.pack(">I", crc)
    path.write_bytes(bytes(data))

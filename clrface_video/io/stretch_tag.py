"""Which stretch of its source an output holds, written into the output itself: a rerun reads it back, as a stretch's
times start at 0 and its frames alone cannot tell a still shot's start (io.stretch_start)."""
from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from clrface_video.io.quicktime import top_level
from clrface_video.types import SPAN_TOLERANCE, TimeSpan

# A file tag under this program's own name, which no user's tag is likely to take (Matroska stores tag names
# upper-case); no title or comment a player shows, and left out of the tags a later restore of the output copies
# (copies.MUXER_TAGS)
TAG = "CLRFACE_VIDEO_STRETCH"
# Muxers that write a tag of any name (measured: Matroska and WebM as SimpleTags, NUT and ASF as they are)
TAG_MUXERS = frozenset({"matroska", "webm", "nut", "asf"})
# FFmpeg's MP4 and QuickTime muxers write only the tags they know (title, comment, ... as iTunes items; any other
# name only with use_metadata_tags, which writes every tag, the title too, as a QuickTime key instead), so there the
# stretch goes into a private box appended after the moov: ISO 14496-12's uuid box, which a reader skips as it skips
# every box it does not know (FFmpeg does: tests/test_stretch_tag.py)
BOX_MUXERS = frozenset({"mp4", "mov", "ipod"})
BOX_UUID = uuid.UUID("6c1f3e52-9a0d-4c1e-8b7a-5f2d3c4b1a09").bytes
BOX_HEADER = struct.Struct(">I4s16s")
MAX_BOX = 256  # bytes: the box is read from this far before the file's end
WHOLE = "whole"


@dataclass(frozen=True)
class HeldStretch:
    """The stretch an output says it holds: from `start` seconds of its source, `duration` long (None: to the
    source's end); `whole`: all of it, no stretch asked."""

    start: Fraction
    duration: Fraction | None = None
    whole: bool = False

    def other_start(self, span: TimeSpan | None) -> str | None:
        """Why this output is not from the start `span` asks (0 for all of the video), or None: its length is
        judged on its own (io.extent.other_stretch)."""
        asked = Fraction(span.start) if span is not None else Fraction(0)
        if abs(self.start - asked) <= SPAN_TOLERANCE:
            return None
        return f"it holds the video from {_s(self.start)} s, not from {_s(asked)} s (as its stretch tag says)"


def describe(span: TimeSpan | None) -> str:
    """The tag's value: `whole`, or `start=S duration=D` in seconds (no duration: to the source's end)."""
    if span is None:
        return WHOLE
    duration = "" if span.end is None else f" duration={_s(Fraction(span.end) - Fraction(span.start))}"
    return f"start={_s(Fraction(span.start))}{duration}"


def parse(value: str) -> HeldStretch | None:
    """A tag's value read back (describe), or None where it is not one."""
    if value.strip() == WHOLE:
        return HeldStretch(Fraction(0), whole=True)
    try:
        fields = dict(field.split("=", 1) for field in value.split())
        duration = fields.pop("duration", None)
        start = Fraction(fields.pop("start"))
        return None if fields else HeldStretch(start, None if duration is None else Fraction(duration))
    except (KeyError, ValueError, ZeroDivisionError):
        return None


def tag(out: av.container.OutputContainer, span: TimeSpan | None) -> None:
    """The stretch as a file tag, where the muxer writes one (TAG_MUXERS), before the header is written."""
    if out.format.name in TAG_MUXERS:
        out.metadata[TAG] = describe(span)


def append_box(path: Path, muxer: str, span: TimeSpan | None) -> None:
    """The stretch as a uuid box at the end of a closed MP4 or QuickTime file (BOX_MUXERS) that its moov ends, as
    FFmpeg writes one: nothing in the file points past it, so no offset moves (a fragmented file's index, found
    from its last bytes, would be; it gets none)."""
    found = top_level(path).moov if muxer in BOX_MUXERS else None
    if found is None or found[1] != path.stat().st_size:
        return
    body = describe(span).encode()
    with path.open("ab") as file:
        file.write(BOX_HEADER.pack(BOX_HEADER.size + len(body), b"uuid", BOX_UUID) + body)


def held_stretch(path: Path) -> HeldStretch | None:
    """The stretch `path` says it holds (its tag, or its box at the end), or None where it says none: a container's that keeps
    no such tag (.avi, copies.TAGLESS_MUXERS), an image sequence's, or an output of a version that wrote none."""
    try:
        with path.open("rb") as file:
            file.seek(max(0, path.stat().st_size - MAX_BOX))
            tail = file.read()
        at = tail.rfind(b"uuid" + BOX_UUID) - 4
        if at >= 0 and BOX_HEADER.unpack_from(tail, at)[0] == len(tail) - at:
            return parse(tail[at + BOX_HEADER.size:].decode("utf-8", "replace"))
        with av.open(str(path)) as container:
            if container.format.name.split(",")[0] not in TAG_MUXERS:  # "matroska,webm"
                return None
            tags = {key.upper(): value for key, value in container.metadata.items()}
    except (OSError, av.error.FFmpegError):
        return None
    return parse(tags[TAG]) if TAG in tags else None


def _s(seconds: Fraction) -> str:
    """Seconds to the microsecond, without trailing zeros (0.5, 30, 1.25)."""
    return f"{float(seconds):.6f}".rstrip("0").rstrip(".")

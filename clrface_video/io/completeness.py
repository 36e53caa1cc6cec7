"""Whether a decoded video is whole: not cut short, no index past the end of the file, every frame of a GIF read
(checked before decoding), one frame size."""
from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import av

from clrface_video.errors import InputError, option_name
from clrface_video.io.apng import apng_frame_count
from clrface_video.io.gif_blocks import gif_break
from clrface_video.io.matroska_blocks import MATROSKA_FORMATS, whole_in_size
from clrface_video.io.photo_read import gif_frames
from clrface_video.io.program_stream import PS_FORMATS, cut_short, sound_end
from clrface_video.io.sequence import find_sequence, frame_path, is_sequence
from clrface_video.io.transport_stream import TS_FORMATS
from clrface_video.io.transport_stream import cut_short as transport_cut_short

SOUND_SLACK_S = 0.1  # sound that stops this much before the pictures or less is not named: about an audio frame's
# and a video frame's length, which a whole file's streams differ by as well
log = logging.getLogger(__name__)


def warn_if_cut_short(container: av.container.InputContainer, stream: av.video.stream.VideoStream, path: Path,
                      end_s: float | None) -> None:
    """Say that an MPEG-PS or MPEG-TS whose last packet is cut short (io.program_stream, io.transport_stream), or a
    GIF whose blocks stop short of its trailer (io.gif_blocks), is restored only up to `end_s` (its last frame's
    end, in the stream's seconds), and where an MPEG-PS's sound stops where that is earlier (the muxer stores sound
    beside later pictures, so the cut takes more of it: program_stream.sound_end): check_complete, at the end of a
    local read and of the Ray backend's last segment (distributed.segments.read_segment), which said nothing of
    it. None of them states its length, so what is there is restored, as players show it."""
    name = container.format.name
    if end_s is None:
        return
    start = float((stream.start_time or 0) * stream.time_base)
    if name == "gif" and (broken := gif_break(path)) is not None:  # a GIF's blocks, which state no length either
        cause = "its last frame is cut short: a copy or download cut off" if broken == "cut" else \
            "a byte stands where a block of its data must begin: damaged, and nothing past it can be read"
        log.warning("%s ends mid-stream (%s), so it is restored up to %.2f s, where its pictures stop", path.name,
                    cause, end_s - start)
        return
    if not (name in PS_FORMATS and cut_short(path) or name in TS_FORMATS and transport_cut_short(path)):
        return
    sound = sound_end(path) if container.streams.audio and name in PS_FORMATS else None
    earlier = sound is not None and sound < end_s - SOUND_SLACK_S
    log.warning("%s ends mid-stream (its last packet is cut short: a copy or recording cut off), so it is "
                "restored up to %.2f s, where its pictures stop%s; what came after is not in the file",
                path.name, end_s - start, f" (its sound stops at {sound - start:.2f} s)" if earlier else "")


def index_beyond_eof(stream: av.video.stream.VideoStream, path: Path) -> bool:
    """True when the container's sample index (mp4/mov moov), or an AVI's RIFF header, points past the end of
    the file."""
    if is_sequence(path):
        return False  # one file per frame: find_sequence checked that none is missing
    entries = stream.index_entries or []
    ends = [entry.pos + entry.size for entry in entries if entry.pos >= 0]
    return bool(ends) and max(ends) > path.stat().st_size or _riff_beyond_eof(path)


def _riff_beyond_eof(path: Path) -> bool:
    """True when an AVI's RIFF chunk says it is longer than the file (FFmpeg reads on until the data stops and
    rebuilds the lost index from what it found, so a cut file decodes short without an error). A size of 0 or
    0xFFFFFFFF is a recorder's placeholder, not a length."""
    with open(path, "rb") as file:
        head = file.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"AVI ":
        return False
    size = int.from_bytes(head[4:8], "little")
    return 0 < size < 0xFFFFFFFF and 8 + size > path.stat().st_size


def _declared_frames(path: Path) -> int | None:
    """The frame count a file states for certain: a numbered sequence's files, an animated PNG's acTL."""
    return find_sequence(path).count if is_sequence(path) else apng_frame_count(path)


def _declared_end_s(stream: av.video.stream.VideoStream) -> float | None:
    """The video stream's own declared length (matroska DURATION tag, or stream.duration)."""
    tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")
    if tag:
        try:
            hours, minutes, seconds = tag.split(":")
            return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
        except ValueError:
            pass
    if stream.duration is not None and stream.time_base is not None:
        return float((stream.start_time or 0) * stream.time_base + stream.duration * stream.time_base)
    return None


def check_frame_count(path: Path, decoded: int) -> None:
    """Raise InputError where a file that states its frame count (a numbered sequence, an animated PNG) decoded
    fewer, `decoded` counted from its first frame: check_complete, and the Ray backend once its segments are read
    (distributed.video), whose segments past the frames that decode read none ('a keyframe segment decoded to no
    frames; use --backend local', which refuses it too)."""
    declared = _declared_frames(path)
    if declared is None or decoded >= declared:
        return
    if is_sequence(path):
        stopped = frame_path(path, find_sequence(path).first + decoded).name
        raise InputError(f"{stopped} cannot be read: the sequence {path.name} stopped there, after {decoded} of "
                         f"its {declared} frames")
    raise InputError(f"{path.name} is truncated: decoding stopped after {decoded} of its {declared} frames")


def check_complete(container: av.container.InputContainer, stream: av.video.stream.VideoStream, path: Path,
                   frames: int, end_s: float | None, fps: Fraction | None, *, decoded: int | None) -> None:
    """Raise InputError when the file was cut short (decoding simply stops early otherwise).

    Only mp4/mov, matroska/webm and mxf store a trustworthy stream length; elsewhere (ts, mpg, avi)
    FFmpeg may estimate it from the bit rate, so only the index (and AVI's RIFF size) check applies. An MPEG-PS
    whose last packet is cut short (io.program_stream) is restored as far as it goes, with a warning: its length
    is not known, and what is there plays. A numbered
    sequence and an animated PNG state their frame count, which must all decode. frames: those read (a --start
    stretch's); decoded: the frames decoded from the file's first one, None after a seek (--start), which
    leaves the count unchecked. fps: the stream's frame rate (25 when None), for the slack allowed at the end.
    """
    if index_beyond_eof(stream, path):
        raise InputError(f"{path.name} is truncated: decoding stopped after {frames} frames")
    if decoded is not None:
        check_frame_count(path, decoded)
    warn_if_cut_short(container, stream, path, end_s)
    if not any(name in container.format.name for name in ("mov", "matroska", "mxf")):
        return
    declared = _declared_end_s(stream)
    rate = fps or Fraction(25)
    if declared is None or end_s is None or end_s >= declared - 3 / float(rate) - 0.05:
        return
    if container.format.name in MATROSKA_FORMATS and whole_in_size(path):
        raise InputError(f"{path.name} is damaged at {end_s:.2f} s: nothing after it can be read, though the file "
                         f"is whole in size ({frames} frames decoded of its {declared:.2f} s)")
    raise InputError(f"{path.name} is truncated: decoding stopped after {frames} frames "
                         f"({end_s:.2f} s of {declared:.2f} s)")


def check_gif_frames(container: av.container.InputContainer, path: Path) -> None:
    """Raise InputError when FFmpeg's GIF reader takes fewer frames from a GIF than it holds (Pillow's count): it
    joins frames stored without a graphic control block, as a GIF87a stores them, into one picture, one packet.
    Packets are counted, nothing decoded, before any frame is read: a --start stretch, a Ray segment and a whole
    run alike would otherwise restore the joined picture alone, without a word."""
    if container.format.name != "gif":
        return
    with av.open(str(path)) as again:
        packets = sum(1 for packet in again.demux(again.streams.video[0]) if packet.size)
    if packets < (held := gif_frames(path) or 0):
        raise InputError(f"{path.name} holds {held} frames, of which FFmpeg reads {packets} (it joins frames stored "
                         "without a graphic control block, as a GIF87a stores them, into one); save it again as a "
                         "GIF89a with frame delays, an animated PNG or a video")


def size_changed(path: Path, frame: av.VideoFrame, origin: int, counted: int | None, first: tuple[int, ...],
                 now: tuple[int, ...]) -> InputError:
    """The error for a frame whose size is not the first frame's: one output video cannot hold both. The frame is
    named by its number in the file: a sequence's pts counts its files from the first (origin), and `counted`
    (frames decoded from the file's first, None after a seek) a video's; else by its time."""
    sizes = f"{now[1]}x{now[0]}, where the first frame is {first[1]}x{first[0]}"
    if is_sequence(path) and frame.pts is not None:
        name = frame_path(path, find_sequence(path).first + frame.pts - origin).name
        return InputError(f"{name} is {sizes}: every frame of the sequence {path.name} must have one size")
    if counted is not None:
        where = f"frame {counted - 1}"
    else:
        where = f"a frame after {option_name('start')}" if frame.pts is None else f"{float((frame.pts - origin) * frame.time_base):.3f} s"
    return InputError(f"{path.name} changes its frame size at {where} (to {sizes}), which one output "
                      "video cannot hold; cut it there and restore each part")

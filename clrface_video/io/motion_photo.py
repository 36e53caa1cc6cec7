"""A motion photo's video (Google's Motion Photo format, which Pixel and Samsung cameras write by default): the MP4
its XMP names at the end of the JPEG, found there and kept after the restored picture."""
from __future__ import annotations

import logging
import re
from pathlib import Path

# the XMP's marks of a motion photo: GCamera:MotionPhoto (version 1), GCamera:MicroVideo (the older one), as an
# attribute or as an element
MARKED = re.compile(rb'GCamera:(?:MotionPhoto|MicroVideo)(?:\s*=\s*["\']|>)\s*1\b')
ITEM = re.compile(rb"<Container:Item\b.*?(?:/>|</Container:Item>)", re.DOTALL)  # a Container:Directory's item
VIDEO_ITEM = re.compile(rb'Item:Semantic(?:\s*=\s*["\']|>)\s*MotionPhoto\b')
LENGTH = re.compile(rb'Item:Length(?:\s*=\s*["\']|>)\s*(\d+)')
MICRO_VIDEO_OFFSET = re.compile(rb'GCamera:MicroVideoOffset(?:\s*=\s*["\']|>)\s*(\d+)')  # from the file's end
log = logging.getLogger(__name__)


def video_length(xmp: bytes) -> int | None:
    """How many bytes the video at the end of a motion photo takes, as its XMP says (its Container:Directory's
    MotionPhoto item, or the older GCamera:MicroVideoOffset), or None where it says none."""
    for item in ITEM.finditer(xmp):
        if VIDEO_ITEM.search(item.group(0)) and (length := LENGTH.search(item.group(0))):
            return int(length.group(1))
    offset = MICRO_VIDEO_OFFSET.search(xmp)
    return int(offset.group(1)) if offset else None


def motion_video_of(path: Path, xmp: bytes | None, name: str) -> bytes | None:
    """The video of a JPEG whose XMP marks it a motion photo: the MP4 (or QuickTime) file its last bytes hold,
    appended unchanged after the restored picture (io.photo_write), or None. A restored copy was a still photo
    whose XMP still named a video, that viewers then read from its picture's last bytes. One whose video is not
    where the XMP says is said in one warning."""
    if not xmp or not MARKED.search(xmp):
        return None
    length = video_length(xmp)
    size = path.stat().st_size
    if length and length < size:
        with path.open("rb") as file:
            file.seek(size - length)
            video = file.read()
        if video[4:8] == b"ftyp":
            return video
    log.warning("%s: its XMP marks it a motion photo, but no video was found where it says; the restored copy is "
                "a still photo", name)
    return None

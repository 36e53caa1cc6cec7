"""An Ultra HDR JPEG's gain map (Android's, Adobe's gain-map JPEG): found after the source's primary picture, and
joined back after the restored one, so that an HDR viewer still shows the photo HDR."""
from __future__ import annotations

import logging
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from clrface_video.io.mp_index import MP_HEADER_BYTES, MULTI_FRAME, SOI, joined, mp_entries

# what marks a JPEG picture as a gain map: the XMP namespace of its parameters (hdrgm:GainMapMin, GainMapMax, Gamma,
# OffsetSDR, OffsetHDR, HDRCapacityMin, HDRCapacityMax), or ISO 21496-1's APP2 segment, which Android 15 adds
GAIN_MAP_MARKS = (b"http://ns.adobe.com/hdr-gain-map/1.0/", b"urn:iso:std:iso:ts:21496:-1")
GAIN_MAP_HEAD = 1 << 16  # how far into a picture its marks are looked for: its XMP and APP2 segments
ULTRA_HDR = b"hdrgm:Version"  # the primary picture's XMP says it has a gain map
# the primary's GContainer directory (Container:Directory): one Container:Item a picture, the gain map's
# Item:Semantic="GainMap" with its Item:Length in bytes
CONTAINER_ITEM = re.compile(rb"<Container:Item\b[^>]*>")
GAIN_MAP_ITEM = re.compile(rb"""Item:Semantic\s*=\s*["']GainMap["']""")
ITEM_LENGTH = re.compile(rb"""(Item:Length\s*=\s*["'])\d+""")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GainMap:
    """An Ultra HDR JPEG's gain map: how much brighter each part of the picture is shown on an HDR screen than its
    SDR primary picture.

    jpeg: its picture's bytes as the source has them (a small, often grey JPEG with its own XMP or ISO 21496-1
    parameters), or b"" where the primary's XMP says there is one but the file's MP index does not lead to it.
    size: the primary picture's (width, height) as stored, which the gain map spans (scaled over it).
    orientation: the primary's EXIF orientation: a turned photo is read and written upright, its gain map not.

    It describes the whole picture's HDR boost, so a restored face, the same size in the same scene, keeps
    its fit: the boost of a face's highlights stays where they were (the face is sharper, not moved)."""

    jpeg: bytes
    size: tuple[int, int]
    orientation: int = 1


def gain_map_of(path: Path, xmp: bytes | None, size: tuple[int, int], orientation: int,
                indexed: bool) -> GainMap | None:
    """The gain map of a JPEG with an MP index (`xmp`: its primary's, `size` and `orientation`: the primary's
    stored size and its EXIF orientation): the first picture after the primary that is no view (MULTI_FRAME) and
    is marked a gain map (GAIN_MAP_MARKS); None where there is none (a 3D camera's views, a depth map). Pillow
    opens an Ultra HDR JPEG whose XMP says hdrgm:Version as an attribute, as Android writes it, as a plain JPEG of
    one picture: the MP index is read here from the file's bytes. A JPEG with neither an MP index (`indexed`, as
    Pillow found it) nor hdrgm XMP is not read again."""
    says_so = bool(xmp) and ULTRA_HDR in xmp
    if not indexed and not says_so:
        return None
    with path.open("rb") as file:
        data = file.read()
    for entry in mp_entries(data[:MP_HEADER_BYTES])[1:]:
        picture = data[entry.start:entry.start + entry.size]
        if entry.kind >> 16 != MULTI_FRAME and len(picture) == entry.size and picture.startswith(SOI) \
                and any(mark in picture[:GAIN_MAP_HEAD] for mark in GAIN_MAP_MARKS):
            return GainMap(picture, size, orientation)
    return GainMap(b"", size, orientation) if says_so else None


def gain_map_xmp(xmp: bytes | None, gain_map: GainMap) -> bytes | None:
    """The primary's XMP with its GContainer directory's gain map item as long as the gain map joined after it
    (where the source gives its Item:Length): readers find the gain map by it."""
    if not xmp or not gain_map.jpeg:
        return xmp
    length = str(len(gain_map.jpeg)).encode()
    return CONTAINER_ITEM.sub(lambda item: ITEM_LENGTH.sub(lambda found: found.group(1) + length, item.group(0))
                              if GAIN_MAP_ITEM.search(item.group(0)) else item.group(0), xmp)


def with_gain_map(primary: bytes, gain_map: GainMap, size: tuple[int, int], name: str) -> bytes:
    """The restored primary JPEG (`size`: its width and height) with the source's gain map appended unchanged and
    an MP index that points at it (mp_index.joined: MP type 'Undefined', as phones write it). Where the gain map
    does not fit the written picture or cannot be joined, the primary alone, warned: the photo comes back SDR."""
    why = _unfit(gain_map, size)
    if why is None:
        try:
            return joined(primary, [(0, gain_map.jpeg)])
        except (ValueError, struct.error) as error:
            why = f"the written JPEG's segments cannot be read: {error}"
    log.warning("%s: its Ultra HDR gain map is left out (%s): the photo comes back SDR", name, why)
    return primary


def _unfit(gain_map: GainMap, size: tuple[int, int]) -> str | None:
    """Why the gain map does not fit a picture of `size` written upright, or None where it does."""
    if not gain_map.jpeg:
        return "the file's MP index does not lead to it"
    if gain_map.orientation not in (0, 1):
        return (f"the photo is stored turned, EXIF orientation {gain_map.orientation}, and written upright; its gain "
                "map is not")
    if size != gain_map.size:
        return (f"the photo is written at {size[0]} x {size[1]}, the gain map spans {gain_map.size[0]} x "
                f"{gain_map.size[1]}")
    return None

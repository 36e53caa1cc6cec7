"""An Ultra HDR JPEG's gain map (Android's, Adobe's gain-map JPEG), and a phone JPEG's other pictures after its
primary (a portrait photo's depth map): found after the source's primary picture, and joined back after the
restored one, so that an HDR viewer still shows the photo HDR and an editor can still re-focus it."""
from __future__ import annotations

import io
import logging
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from clrface_video.io.mp_index import (
    LARGE_THUMBNAILS,
    MP_HEADER_BYTES,
    MULTI_FRAME,
    SOI,
    after_app_segments,
    app_segments,
    joined,
    mp_entries,
)
from clrface_video.io.orientation import TURNS, upright_size

# what marks a JPEG picture as a gain map: the XMP namespace of its parameters (hdrgm:GainMapMin, GainMapMax, Gamma,
# OffsetSDR, OffsetHDR, HDRCapacityMin, HDRCapacityMax), or ISO 21496-1's APP2 segment, which Android 15 adds
ISO_GAIN_MAP = b"urn:iso:std:iso:ts:21496:-1\x00"  # ISO 21496-1's APP2 segments: the primary's says its version
GAIN_MAP_MARKS = (b"http://ns.adobe.com/hdr-gain-map/1.0/", ISO_GAIN_MAP)
GAIN_MAP_HEAD = 1 << 16  # how far into a picture its marks are looked for: its XMP and APP2 segments
ULTRA_HDR = b"hdrgm:Version"  # the primary picture's XMP says it has a gain map
# the primary's GContainer directory (Container:Directory): one Container:Item a picture, the gain map's
# Item:Semantic="GainMap" with its Item:Length in bytes
CONTAINER_ITEM = re.compile(rb"<Container:Item\b[^>]*>")
GAIN_MAP_ITEM = re.compile(rb"""Item:Semantic\s*(?:=\s*["']|>\s*)GainMap\b""")  # as an attribute or an element
ITEM_LENGTH = re.compile(rb"""(Item:Length\s*=\s*["'])\d+""")
# what is taken out of the primary's XMP once its gain map is left out: hdrgm:Version (an attribute or an element),
# the directory's list items (one a picture, none nested) and the directory itself
GAIN_MAP_VERSION = re.compile(rb"""\s+hdrgm:Version\s*=\s*(["'])[^"']*\1"""
                              rb"|\s*<hdrgm:Version\s*>[^<]*</hdrgm:Version>")
CONTAINER_DIRECTORY = re.compile(rb"\s*<Container:Directory\b.*?</Container:Directory>", re.DOTALL)
DIRECTORY_ITEM = re.compile(rb"\s*<rdf:li\b[^>]*>.*?</rdf:li>", re.DOTALL)
GAIN_MAP_QUALITY = 95  # a turned gain map's JPEG quality: it is coded again
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GainMap:
    """An Ultra HDR JPEG's gain map: how much brighter each part of the picture is shown on an HDR screen than its
    SDR primary picture.

    jpeg: its picture's bytes as the source has them (a small, often grey JPEG with its own XMP or ISO 21496-1
    parameters), or b"" where the primary's XMP says there is one but the file's MP index does not lead to it.
    size: the primary picture's (width, height) upright, as it is read and written, which the gain map spans
    (scaled over it).
    orientation: the primary's EXIF orientation: the gain map is stored as the primary is, so a photo stored
    turned, written upright, has its gain map turned with it (fitted).
    segments: the primary's ISO 21496-1 APP2 segments (its version, by which ISO readers look for a gain map),
    which Pillow's writer leaves out: put back as they were (with_gain_map).

    It describes the whole picture's HDR boost, so a restored face, the same size in the same scene, keeps
    its fit: the boost of a face's highlights stays where they were (the face is sharper, not moved)."""

    jpeg: bytes
    size: tuple[int, int]
    orientation: int = 1
    segments: bytes = b""
    number: int = 1  # its place among the file's pictures (1: the first after the primary), kept in the output


@dataclass(frozen=True)
class ExtraPicture:
    """A picture a phone's JPEG holds after its primary that is neither a view, a preview nor the gain map: a
    portrait photo's depth map (or its confidence map), MP type 'Undefined', by which an editor re-focuses it later.
    Like a gain map it spans the whole photo, which a restored face, the same size in the same place, leaves as it
    was: kept byte for byte after the restored primary (fitted_extras), in its place among the pictures.

    jpeg: its bytes as the source has them, or b"" where the MP index does not lead to a whole JPEG.
    size, orientation: the primary's, as GainMap's."""

    jpeg: bytes
    number: int
    kind: int
    size: tuple[int, int]
    orientation: int = 1


def gain_map_of(path: Path, xmp: bytes | None, size: tuple[int, int], orientation: int,
                indexed: bool) -> tuple[GainMap | None, tuple[ExtraPicture, ...], tuple[int, ...]]:
    """The gain map of a JPEG with an MP index (`xmp`: its primary's, `size` and `orientation`: the primary's
    stored size and its EXIF orientation): the first picture after the primary that is no view (MULTI_FRAME) and
    is marked a gain map (GAIN_MAP_MARKS), None where there is none; the other pictures that are no view and no
    preview (a depth map), which were dropped unsaid; and the numbers of its previews (LARGE_THUMBNAILS), left out
    of a restored photo, said by say_previews; both () in a file with views (an MPO of views restores them all,
    its previews made again).
    Pillow opens an Ultra HDR JPEG whose XMP says hdrgm:Version as an attribute, as Android writes it, as a plain
    JPEG of one picture: the MP index is read here from the file's bytes. A JPEG with neither an MP index
    (`indexed`, as Pillow found it) nor hdrgm XMP is not read again."""
    says_so = bool(xmp) and ULTRA_HDR in xmp
    if not indexed and not says_so:
        return None, (), ()
    upright = upright_size(size, orientation)
    with path.open("rb") as file:
        data = file.read()
    try:
        segments = b"".join(data[start:end] for start, end in app_segments(data)
                            if data[start + 4:start + 4 + len(ISO_GAIN_MAP)] == ISO_GAIN_MAP)
    except (ValueError, struct.error):  # Pillow read its header: this does not happen
        segments = b""
    entries = mp_entries(data[:MP_HEADER_BYTES])[1:]
    views = any(entry.kind >> 16 == MULTI_FRAME for entry in entries)
    gain_map, extras, previews = None, [], []
    for number, entry in enumerate(entries, start=1):
        picture = data[entry.start:entry.start + entry.size]
        whole = len(picture) == entry.size and picture.startswith(SOI)
        if entry.kind in LARGE_THUMBNAILS and not views:
            previews.append(number)
        if entry.kind >> 16 == MULTI_FRAME or entry.kind in LARGE_THUMBNAILS:
            continue
        if gain_map is None and whole and any(mark in picture[:GAIN_MAP_HEAD] for mark in GAIN_MAP_MARKS):
            gain_map = GainMap(picture, upright, orientation, segments, number)
        elif gain_map is None and says_so and not whole:  # the gain map the XMP names, cut off: said once, as it
            gain_map = GainMap(b"", upright, orientation, segments, number)  # was also named a depth map
        elif not views:
            extras.append(ExtraPicture(picture if whole else b"", number, entry.kind, upright, orientation))
    if gain_map is None and says_so:
        gain_map = GainMap(b"", upright, orientation)
    return gain_map, tuple(extras), tuple(previews)


def fitted(gain_map: GainMap, size: tuple[int, int], name: str) -> bytes | None:
    """The gain map's JPEG to join after the restored primary picture of `size` (width, height, upright): the
    source's bytes unchanged, or, for a photo stored turned, its picture turned upright as the primary was and
    coded again (GAIN_MAP_QUALITY) with its own metadata segments (XMP, ISO 21496-1) as they were. None where it
    does not fit or cannot be turned, warned: the photo comes back SDR."""
    why = _misfit(gain_map.jpeg, gain_map.size, size, "its gain map")
    if why is None and gain_map.orientation not in TURNS:
        return gain_map.jpeg
    if why is None:
        try:
            return _turned(gain_map.jpeg, gain_map.orientation)
        except (OSError, ValueError, SyntaxError, struct.error) as error:  # Pillow's, the segments'
            why = f"it cannot be turned upright with the photo: {error}"
    _dropped(name, why)
    return None


def fitted_extras(extras: tuple[ExtraPicture, ...], size: tuple[int, int], name: str) -> list[tuple[int, int, bytes]]:
    """The extra pictures to join after the restored primary of `size` (width, height, upright), each (number, MP
    type, bytes), their bytes the source's. Those that do not fit are named in one warning: a photo written at
    another size, or stored turned and written upright, would have its depth map lie across it (one is not coded
    again, as a turned gain map is: its GContainer item's length would no longer say where the next one lies)."""
    kept, dropped = [], []
    for extra in extras:
        if (why := _misfit(extra.jpeg, extra.size, size, "it")) is not None:
            dropped.append((extra, why))
        elif extra.orientation in TURNS:
            dropped.append((extra, "the photo is stored turned and written upright"))
        else:
            kept.append((extra.number, extra.kind, extra.jpeg))
    if dropped:
        log.warning("%s: %s left out: %s", name, extras_named(extra for extra, _ in dropped),
                    "; ".join(dict.fromkeys(why for _, why in dropped)))
    return kept


def _misfit(jpeg: bytes, spans: tuple[int, int], size: tuple[int, int], it: str) -> str | None:
    """Why a picture after the primary, spanning `spans`, cannot be joined after a restored primary of `size`, or
    None where it fits."""
    if not jpeg:
        return "the file's MP index does not lead to it"
    if size != spans:
        return f"the photo is written at {size[0]} x {size[1]}, {it} spans {spans[0]} x {spans[1]}"
    return None


def extras_named(extras: Iterable[ExtraPicture]) -> str:
    """'its picture 2 after the primary (MP type Undefined: a depth map or the like)', for a warning."""
    return _pictures_named([extra.number for extra in extras], "MP type Undefined: a depth map or the like")


def say_previews(previews: tuple[int, ...], name: str) -> None:
    """One info line for a restored photo's previews (gain_map_of), left out: smaller copies of the picture as it
    was, they would show the faces unrestored where a viewer or a file browser shows the preview. Said, as the
    other pictures left out are, so that a file that lost a picture never does so unsaid; info, not a warning:
    leaving them out is right, and viewers make their own."""
    if not previews:
        return
    copies = "smaller copies" if len(previews) > 1 else "a smaller copy"
    log.info("%s: %s left out", name, _pictures_named(
        previews, f"MP type Large Thumbnail: {copies} of the photo as it was, its faces unrestored"))


def _pictures_named(numbers: Iterable[int], what: str) -> str:
    """'its pictures 2, 3 after the primary (`what`)' of the pictures `numbers` (1: the first after the primary)."""
    named = [str(number + 1) for number in numbers]
    return f"its picture{'s' * (len(named) > 1)} {', '.join(named)} after the primary ({what})"


def gain_map_xmp(xmp: bytes | None, length: int) -> bytes | None:
    """The primary's XMP with its GContainer directory's gain map item `length` bytes long, the gain map's joined
    after it (where the source gives its Item:Length): readers find the gain map by it."""
    if not xmp:
        return xmp
    number = str(length).encode()
    return CONTAINER_ITEM.sub(lambda item: ITEM_LENGTH.sub(lambda found: found.group(1) + number, item.group(0))
                              if GAIN_MAP_ITEM.search(item.group(0)) else item.group(0), xmp)


def without_gain_map_xmp(xmp: bytes | None, alone: bool) -> bytes | None:
    """The primary's XMP for a photo written without its gain map: without hdrgm:Version and without the GContainer
    directory's GainMap item, its other items (a depth map's) kept; without the directory at all where no picture
    follows the primary (`alone`). The rest as it was.

    Why: a reader that believes hdrgm:Version looks for a gain map, and one that follows the directory takes the
    last Item:Length bytes of the file, the restored picture's own, for it."""
    if not xmp:
        return xmp
    xmp = GAIN_MAP_VERSION.sub(b"", xmp)
    if alone:
        return CONTAINER_DIRECTORY.sub(b"", xmp)
    return CONTAINER_DIRECTORY.sub(lambda directory: DIRECTORY_ITEM.sub(
        lambda item: b"" if GAIN_MAP_ITEM.search(item.group(0)) else item.group(0), directory.group(0)), xmp)


def with_gain_map(primary: bytes, pictures: list[tuple[int, int, bytes]], segments: bytes, name: str) -> bytes:
    """The restored primary JPEG with `pictures` appended in their source's order, each (number, MP type, bytes):
    the gain map's JPEG (fitted; MP type 'Undefined', as phones write it) and the extra pictures (fitted_extras),
    an MP index pointing at each (mp_index.joined), and the source primary's ISO 21496-1 `segments`
    (GainMap.segments) after its own; the primary alone where its segments cannot be read, warned: the photo comes
    back SDR."""
    try:
        at = after_app_segments(primary)
        return joined(primary[:at] + segments + primary[at:], [(kind, jpeg) for _, kind, jpeg in sorted(pictures)])
    except (ValueError, struct.error) as error:
        _dropped(name, f"the written JPEG's segments cannot be read: {error}")
        return primary


def _turned(jpeg: bytes, orientation: int) -> bytes:
    """A gain map's JPEG with its picture turned as ImageOps.exif_transpose turns a photo of `orientation`
    upright, its metadata segments but JFIF and EXIF (the parameters: XMP, ISO 21496-1) put back as they were."""
    with Image.open(io.BytesIO(jpeg)) as image:
        upright = image.transpose(TURNS[orientation])
    buffer = io.BytesIO()
    upright.save(buffer, "JPEG", quality=GAIN_MAP_QUALITY)
    coded = buffer.getvalue()
    kept = b"".join(jpeg[start:end] for start, end in app_segments(jpeg)
                    if jpeg[start + 1] != 0xE0 and jpeg[start + 4:start + 10] != b"Exif\x00\x00")
    at = after_app_segments(coded)
    return coded[:at] + kept + coded[at:]


def _dropped(name: str, why: str) -> None:
    log.warning("%s: its Ultra HDR gain map is left out (%s): the photo comes back SDR", name, why)

"""A JPEG's APPn segments that the rest of the photo job neither reads nor writes (a camera maker's own: a Samsung
phone's APP5-APP8), kept byte for byte; those that show the photo as it was (a thumbnail) left out, said once."""
from __future__ import annotations

import logging

from PIL import Image

from clrface_video.io.jpeg_segments import app_segment
from clrface_video.io.ultra_hdr import ISO_GAIN_MAP
from clrface_video.io.xmp_extension import SIGNATURE as XMP_EXTENSION

# (marker, what its payload opens with) of the segments kept or written by other means: JFIF, EXIF, XMP and the ICC
# profile (Pillow's writer), extended XMP (io.xmp_extension), the MP index (io.mp_index), ISO 21496-1 (io.ultra_hdr),
# Photoshop's IPTC (Photo.iptc, APP13); and those that say how the pixels were coded, which the restored copy is not:
# Adobe's colour transform (APP14: Pillow writes its own for CMYK), a motion JPEG's field layout (AVI1)
NOT_VENDOR = (("APP0", b"JFIF\x00"), ("APP0", b"AVI1"), ("APP1", b"Exif\x00"),
              ("APP1", b"http://ns.adobe.com/xap/1.0/\x00"), ("APP1", XMP_EXTENSION), ("APP2", b"ICC_PROFILE\x00"),
              ("APP2", b"MPF\x00"), ("APP2", ISO_GAIN_MAP), ("APP13", b""), ("APP14", b"Adobe"))
# (marker, opening, what it is) of the segments that show the photo before restoring: left out, as the EXIF
# thumbnail of a turned photo is (a viewer would show the faces unrestored)
PREVIEWS = (("APP0", b"JFXX\x00", "JFIF thumbnail (APP0 JFXX)"),
            ("APP2", b"FPXR\x00", "FlashPix preview data (APP2 FPXR)"))
log = logging.getLogger(__name__)


def vendor_segments_of(image: Image.Image) -> tuple[tuple[str, bytes], ...]:
    """A JPEG's APPn segments outside NOT_VENDOR, (marker, payload) in file order: Pillow's writer wrote none of
    them, so a Samsung phone's APP5-APP8 (its camera's capture data, 256 KB in gpen_selfie_5.jpg) were lost.
    Pillow's applist holds its COM segments too, which are Photo.comment."""
    return tuple((marker, data) for marker, data in getattr(image, "applist", ())
                 if marker.startswith("APP") and not any(marker == kind and data.startswith(opening) for kind, opening in NOT_VENDOR))


def _preview(marker: str, data: bytes) -> str | None:
    return next((what for kind, opening, what in PREVIEWS if marker == kind and data.startswith(opening)), None)


def vendor_segment_bytes(segments: tuple[tuple[str, bytes], ...], name: str) -> bytes:
    """The segments to write back, each as it came, for Pillow's JPEG writer's extra bytes; the previews among
    them (PREVIEWS) left out, named in one warning."""
    left_out = list(dict.fromkeys(what for marker, data in segments if (what := _preview(marker, data))))
    if left_out:
        log.warning("%s: its %s left out: %s the photo as it was, its faces unrestored", name, " and ".join(left_out),
                    "they show" if len(left_out) > 1 else "it shows")
    return b"".join(app_segment(int(marker[3:]), data) for marker, data in kept(segments))


def kept(segments: tuple[tuple[str, bytes], ...]) -> tuple[tuple[str, bytes], ...]:
    """The segments a JPEG output keeps: all but the previews."""
    return tuple((marker, data) for marker, data in segments if _preview(marker, data) is None)


def segments_named(segments: tuple[tuple[str, bytes], ...]) -> str:
    """The segments as a warning names them: their markers, each once, and their size (APP5, APP8: 4096 bytes)."""
    return f"{', '.join(dict.fromkeys(marker for marker, _ in segments))}: {sum(len(data) for _, data in segments)} bytes"

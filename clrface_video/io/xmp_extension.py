"""A JPEG's extended XMP (XMP Part 3: the APP1 segments that carry what passes one segment's 64 KB), kept."""
from __future__ import annotations

import logging

from PIL import Image

from clrface_video.io.jpeg_segments import app_segment

SIGNATURE = b"http://ns.adobe.com/xmp/extension/\x00"  # what opens each such APP1 segment, before its GUID
log = logging.getLogger(__name__)


def xmp_extension_of(image: Image.Image, orientation: int, name: str) -> tuple[bytes, ...]:
    """The payloads of a JPEG's extended-XMP segments, in file order, for write_photo to put back: Photoshop's
    DocumentAncestors, a phone's depth map and original image (GDepth, GImage) live there, and the standard XMP
    names them (xmpNote:HasExtendedXMP). Pillow reads none of them, so a restored copy lost them while its XMP
    still pointed at them. A photo stored turned (`orientation` other than 1) is written upright, which a depth map
    or image in them would not be: they are left out, said in one warning."""
    found = tuple(data for marker, data in getattr(image, "applist", ())
                  if marker == "APP1" and data.startswith(SIGNATURE))
    if found and orientation != 1:
        log.warning("%s: its extended XMP (%d bytes) left out: it describes the photo as stored, turned, and the "
                    "restored copy is upright", name, sum(map(len, found)))
        return ()
    return found


def xmp_extension_segments(payloads: tuple[bytes, ...]) -> bytes:
    """The APP1 segments that carry `payloads`, each as it came, for Pillow's JPEG writer's extra bytes."""
    return b"".join(app_segment(1, payload) for payload in payloads)

"""A BigTIFF's Exif and GPS sub-IFD pointers stored as IFD8 (type 18), which Pillow does not read, given to it."""
from __future__ import annotations

import struct
from pathlib import Path

from PIL import ExifTags, Image

IFD8 = 18  # TIFF type of a 64-bit IFD offset: libtiff and tifffile write sub-IFD pointers so in a BigTIFF
SUB_IFDS = (ExifTags.IFD.Exif, ExifTags.IFD.GPSInfo)
ENTRY = "HHQQ"  # a BigTIFF IFD entry: tag, type, count, value (or its offset)
ENTRY_SIZE = struct.calcsize("<" + ENTRY)  # 20 bytes, unpadded


def with_ifd8_pointers(exif: Image.Exif, path: Path, ifd_offset: int) -> Image.Exif:
    """`exif` (Pillow's, of the BigTIFF `path`'s page whose IFD is at `ifd_offset`) with the Exif and GPS
    sub-IFDs that page points to with an IFD8 entry: Pillow leaves out an entry of a type it does not know, so a
    scan's camera EXIF (DateTimeOriginal, exposure, GPS) was lost without a word. Each pointer is given as a
    number and its sub-IFD read as Pillow reads a LONG8 pointer's (Exif.get_ifd, as BigTIFF), from a file of
    our own: Pillow's is closed once the pixels are loaded. An IFD that cannot be read leaves `exif` as it was
    (Pillow has read it already, or said why not)."""
    with path.open("rb") as file:
        order = "<" if file.read(2) == b"II" else ">"
        file.seek(ifd_offset)
        head = file.read(8)
        if len(head) < 8:
            return exif
        count = struct.unpack(order + "Q", head)[0]
        entries = file.read(ENTRY_SIZE * min(count, 4096))
        pillows = getattr(exif, "fp", None)
        exif.fp = file  # where get_ifd reads a sub-IFD from
        try:
            for start in range(0, len(entries) - ENTRY_SIZE + 1, ENTRY_SIZE):
                tag, kind, number, value = struct.unpack_from(order + ENTRY, entries, start)
                if tag in SUB_IFDS and kind == IFD8 and number == 1 and tag not in exif:
                    exif[tag] = value
                    exif.get_ifd(tag)  # read now, and kept
        finally:
            exif.fp = pillows
    return exif

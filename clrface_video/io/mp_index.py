"""A JPEG's MP index (CIPA DC-007, the APP2 "MPF" segment that makes it an MPO): its entries read, and one written
for a primary picture and the pictures appended after it."""
from __future__ import annotations

import struct
from dataclasses import dataclass

MP_ENTRIES = 0xB002  # the MP index IFD's tag of its entries, 16 bytes each: attribute, size, offset, 2 links
MP_VERSION, MP_COUNT = 0xB000, 0xB001  # its tags of the MPF version ("0100") and of how many pictures there are
MP_HEADER_BYTES = 1 << 20  # how far into an MPO its MP index is looked for: past the EXIF and ICC segments
MULTI_FRAME = 0x02  # the MP types' high byte of a view (0x020001 panorama, 0x020002 3D, 0x020003 multi-angle)
# MP types of a smaller copy of the first picture, a preview (made again from a restored picture, or left out)
LARGE_THUMBNAILS = frozenset({0x010001, 0x010002})
PRIMARY = 0x20030000  # a primary picture's attribute: the representative picture (bit 29), 'Baseline MP Primary'
SOI = b"\xff\xd8"  # the start of every JPEG picture


@dataclass(frozen=True)
class MpEntry:
    """One picture of an MPO, as its MP index lists it: its MP type (the attribute's low 24 bits: 0x030000 the
    primary, 0x020002 a 3D view, 0 'Undefined', a phone's gain map or depth map), and where its bytes lie in the
    file (start, from the file's first byte; size)."""

    kind: int
    start: int
    size: int


def mp_entries(mpo: bytes) -> list[MpEntry]:
    """The MP index's entries of MPO bytes (the first picture's header at least, where the index lies); [] where
    there is no MP index (an APP2 segment "MPF") to read. An entry's offset counts from the index's own header,
    the first picture's is 0."""
    found = _entries_at(mpo)
    if found is None:
        return []
    order, header, at, count = found
    entries = []
    for number in range(count):
        attribute, size, offset = struct.unpack_from(order + "III", mpo, at + 16 * number)
        entries.append(MpEntry(attribute & 0xFFFFFF, header + offset if number else 0, size))
    return entries


def _entries_at(mpo: bytes) -> tuple[str, int, int, int] | None:
    """Where the MP entries of MPO bytes lie: the MP index's byte order for struct, its header's offset (the
    entries' offsets count from it), the first entry's offset and how many there are; None where there is no MP
    index to read."""
    start = mpo.find(b"MPF\x00")
    order = {b"II": "<", b"MM": ">"}.get(mpo[start + 4:start + 6]) if start >= 0 else None
    if order is None:
        return None
    header = start + 4
    try:
        ifd = header + struct.unpack_from(order + "I", mpo, header + 4)[0]
        for entry in range(ifd + 2, ifd + 2 + 12 * struct.unpack_from(order + "H", mpo, ifd)[0], 12):
            tag, _, size, offset = struct.unpack_from(order + "HHII", mpo, entry)
            if tag == MP_ENTRIES and header + offset + size <= len(mpo):
                return order, header, header + offset, size // 16
    except struct.error:
        return None
    return None


def with_mp_types(mpo: bytes, types: list[int]) -> bytes:
    """MPO bytes whose MP entries have `types` (the source's, multi_picture.mp_types): Pillow's writer calls every
    picture after the first 'Undefined', where a 3D camera's second is a disparity view (0x020002), by which 3D
    viewers show it so. Each entry's flags and links stay as written."""
    found = _entries_at(mpo)
    if found is None:
        return mpo
    order, _, at, count = found
    out = bytearray(mpo)
    for number, kind in enumerate(types[:count]):
        attribute = struct.unpack_from(order + "I", mpo, at + 16 * number)[0]
        struct.pack_into(order + "I", out, at + 16 * number, (attribute & 0xFF000000) | kind)
    return bytes(out)


def joined(primary: bytes, others: list[tuple[int, bytes]]) -> bytes:
    """One MPO of a primary JPEG picture (with no MP index of its own) and the JPEG pictures after it, each
    (MP type, bytes) appended as it is: the primary given an MP index (big-endian, as cameras and phones write it)
    after its APPn segments, which points at each picture's SOI. ValueError where `primary` is no JPEG."""
    at = after_app_segments(primary)
    count = 1 + len(others)
    segment_size = 2 + 2 + 4 + 8 + 2 + 3 * 12 + 4 + 16 * count  # marker, length, "MPF\0", header, IFD, entries
    header = at + 2 + 2 + 4  # where the index's offsets count from
    first_size = len(primary) + segment_size
    ifd = (struct.pack(">H", 3) + struct.pack(">HHI4s", MP_VERSION, 7, 4, b"0100")  # 3 tags: UNDEFINED, LONG, ...
           + struct.pack(">HHII", MP_COUNT, 4, 1, count)
           + struct.pack(">HHII", MP_ENTRIES, 7, 16 * count, 8 + 2 + 36 + 4)  # the entries, after the IFD
           + struct.pack(">I", 0))  # no attribute IFD
    entries = struct.pack(">IIIHH", PRIMARY, first_size, 0, 0, 0)
    offset = first_size - header
    for kind, picture in others:
        entries += struct.pack(">IIIHH", kind, len(picture), offset, 0, 0)
        offset += len(picture)
    segment = b"\xff\xe2" + struct.pack(">H", segment_size - 2) + b"MPF\x00" + b"MM\x00\x2a" + struct.pack(">I", 8) + \
        ifd + entries
    return primary[:at] + segment + primary[at:] + b"".join(picture for _, picture in others)


def app_segments(jpeg: bytes) -> list[tuple[int, int]]:
    """Where a JPEG's APPn and COM segments that follow its SOI lie (its metadata: JFIF, EXIF, XMP, ICC, ...), each
    (start, end) from its marker; ValueError where the bytes are no JPEG of well-formed segments."""
    if not jpeg.startswith(SOI):
        raise ValueError("not a JPEG")
    segments, at = [], 2
    while at + 4 <= len(jpeg) and jpeg[at] == 0xFF and (0xE0 <= jpeg[at + 1] <= 0xEF or jpeg[at + 1] == 0xFE):
        end = at + 2 + struct.unpack_from(">H", jpeg, at + 2)[0]
        segments.append((at, end))
        at = end
    if at + 2 > len(jpeg) or jpeg[at] != 0xFF:
        raise ValueError("a JPEG segment runs past the end of its picture")
    return segments


def after_app_segments(jpeg: bytes) -> int:
    """The offset just past a JPEG's SOI and the APPn and COM segments that follow it (app_segments), where an MP
    index, or another metadata segment, goes."""
    segments = app_segments(jpeg)
    return segments[-1][1] if segments else 2

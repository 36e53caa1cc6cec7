"""An AVIF still as FFmpeg's muxer writes it (one AV1 item, no metadata), written again with the photo's EXIF, XMP
and ICC profile: items and a property in its meta box, as libavif and phones write them (HEIF, ISO/IEC 23008-12)."""
from __future__ import annotations

import struct
from dataclasses import dataclass

EXIF_HEADER = b"Exif\x00\x00"  # a JPEG's APP1 prefix, which an AVIF's Exif item does not have
XMP_MIME = b"application/rdf+xml"
PICTURE = 1  # the item number of FFmpeg's one AV1 picture, the primary item


@dataclass(frozen=True)
class Still:
    """What an AVIF of one AV1 picture is made of, as FFmpeg's avif muxer writes it: its ftyp and hdlr boxes, its
    properties (ipco's children: ispe, pixi, av1C, colr nclx) and their association to the picture (ipma's
    entry bytes after the item number), and the picture's coded bytes."""

    ftyp: bytes
    hdlr: bytes
    properties: bytes
    associations: bytes
    coded: bytes


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _full_box(kind: bytes, version: int, payload: bytes) -> bytes:
    return _box(kind, struct.pack(">I", version << 24) + payload)


def _children(data: bytes, start: int, end: int) -> dict[bytes, tuple[int, int]]:
    """The boxes between `start` and `end` (kind: where their payload starts and ends); ValueError where one runs
    past the end or is 64-bit sized, which FFmpeg's still does not write."""
    boxes, at = {}, start
    while at < end:
        size, kind = struct.unpack_from(">I4s", data, at)
        if size < 8 or at + size > end:
            raise ValueError(f"a {kind!r} box runs past its parent's end")
        boxes[kind] = (at + 8, at + size)
        at += size
    return boxes


def _still(avif: bytes) -> Still:
    """The parts of FFmpeg's AVIF of one AV1 picture; ValueError (or struct.error) where it is not one: another
    layout than its muxer's (one item, located by a version-0 iloc of one extent, properties of 1-byte indices)."""
    top = _children(avif, 0, len(avif))
    meta_start, meta_end = top[b"meta"]
    meta = _children(avif, meta_start + 4, meta_end)
    iloc_start, _ = meta[b"iloc"]
    version, sizes, base, count = struct.unpack_from(">B3xBBH", avif, iloc_start)
    item, _, extents, offset, length = struct.unpack_from(">HHHII", avif, iloc_start + 8)
    if (version, sizes, base, count, item, extents) != (0, 0x44, 0, 1, PICTURE, 1) or offset + length > len(avif):
        raise ValueError("its iloc is not one picture's single extent")
    iprp = _children(avif, *meta[b"iprp"])
    ipma_start, ipma_end = iprp[b"ipma"]
    flags, entries, ipma_item = struct.unpack_from(">IIH", avif, ipma_start)
    if (flags, entries, ipma_item) != (0, 1, PICTURE):
        raise ValueError("its ipma is not one picture's of 1-byte indices")
    ftyp_start, ftyp_end = top[b"ftyp"]
    hdlr_start, hdlr_end = meta[b"hdlr"]
    return Still(ftyp=avif[ftyp_start - 8:ftyp_end], hdlr=avif[hdlr_start - 8:hdlr_end],
                 properties=avif[slice(*iprp[b"ipco"])], associations=avif[ipma_start + 10:ipma_end],
                 coded=avif[offset:offset + length])


def with_metadata(avif: bytes, exif: bytes | None, xmp: bytes | None, icc: bytes | None) -> bytes:
    """FFmpeg's AVIF still with the photo's EXIF and XMP as items describing the picture (cdsc references, their
    bytes after the picture's in the mdat) and its ICC profile as a colr 'prof' property beside the nclx one, whose
    matrix and range the decoder needs; the bytes as they were where there is none to add."""
    if not (exif or xmp or icc):
        return avif
    still = _still(avif)
    items: list[tuple[bytes, bytes, bytes]] = []  # (item type, content type, bytes)
    if exif:
        items.append((b"Exif", b"", struct.pack(">I", 0) + exif.removeprefix(EXIF_HEADER)))  # TIFF header at 0
    if xmp:
        items.append((b"mime", XMP_MIME + b"\x00", xmp))
    properties, associations = still.properties, still.associations
    if icc:
        properties += _box(b"colr", b"prof" + icc)
        associations = bytes([associations[0] + 1]) + associations[1:] + bytes([_property_count(properties)])
    infe = [_full_box(b"infe", 2, struct.pack(">HH4s", PICTURE, 0, b"av01") + b"Color\x00")]
    infe += [_full_box(b"infe", 2, struct.pack(">HH4s", PICTURE + 1 + number, 0, kind) + b"\x00" + content)
             for number, (kind, content, _) in enumerate(items)]
    iinf = _full_box(b"iinf", 0, struct.pack(">H", len(infe)) + b"".join(infe))
    iref = _full_box(b"iref", 0, b"".join(_box(b"cdsc", struct.pack(">HHH", PICTURE + 1 + number, 1, PICTURE))
                                          for number in range(len(items)))) if items else b""
    iprp = _box(b"iprp", _box(b"ipco", properties) +
                _full_box(b"ipma", 0, struct.pack(">IH", 1, PICTURE) + associations))
    pitm = _full_box(b"pitm", 0, struct.pack(">H", PICTURE))
    datas = [still.coded] + [data for _, _, data in items]

    def meta(first: int) -> bytes:
        offsets = [first + sum(len(data) for data in datas[:number]) for number in range(len(datas))]
        iloc = _full_box(b"iloc", 0, struct.pack(">BBH", 0x44, 0, len(datas)) + b"".join(
            struct.pack(">HHHII", PICTURE + number, 0, 1, offset, len(data))
            for number, (offset, data) in enumerate(zip(offsets, datas, strict=True))))
        return _full_box(b"meta", 0, still.hdlr + pitm + iloc + iinf + iref + iprp)

    first = len(still.ftyp) + len(meta(0)) + 8  # past the mdat's header
    return still.ftyp + meta(first) + _box(b"mdat", b"".join(datas))


def _property_count(properties: bytes) -> int:
    """How many boxes ipco's children hold (two colr boxes among them): the index, from 1, of the last one."""
    count, at = 0, 0
    while at < len(properties):
        at += struct.unpack_from(">I", properties, at)[0]
        count += 1
    return count

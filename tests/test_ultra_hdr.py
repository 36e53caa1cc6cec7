"""A phone's Ultra HDR JPEG (a primary SDR picture, an MP index and hdrgm XMP, then a gain-map JPEG) restored: the
gain map kept after the restored picture, so that an HDR viewer still shows it HDR."""
from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clrface_video.config import RestoreConfig
from clrface_video.photos import restore_folder
from clrface_video.pipeline import restore_image
from tests.media import crop_footprints

BASELINE = RestoreConfig(model="baseline-bicubic-sharpen", device="cpu")
MAKE, ORIENTATION = 0x010F, 0x0112
RDF = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       '<rdf:Description rdf:about="" xmlns:hdrgm="http://ns.adobe.com/hdr-gain-map/1.0/"{}</rdf:Description>'
       '</rdf:RDF></x:xmpmeta>')
# the primary's XMP, as Android's Ultra HDR v1 writes it: hdrgm:Version and a GContainer directory of two items
PRIMARY_XMP = RDF.format(
    ' xmlns:Container="http://ns.google.com/photos/1.0/container/"'
    ' xmlns:Item="http://ns.google.com/photos/1.0/container/item/" hdrgm:Version="1.0">'
    '<Container:Directory><rdf:Seq>'
    '<rdf:li rdf:parseType="Resource"><Container:Item Item:Semantic="Primary" Item:Mime="image/jpeg"/></rdf:li>'
    '<rdf:li rdf:parseType="Resource"><Container:Item Item:Semantic="GainMap" Item:Mime="image/jpeg"'
    ' Item:Length="{length}"/></rdf:li></rdf:Seq></Container:Directory>')
# the same with hdrgm:Version as an element: Pillow opens that as an MPO of two pictures, the attribute's (Android's)
# as a plain JPEG ("Ultra HDR images are not yet supported")
XMP_FORMS = {"attribute": PRIMARY_XMP,
             "element": PRIMARY_XMP.replace(' hdrgm:Version="1.0">', "><hdrgm:Version>1.0</hdrgm:Version>")}
# the gain map's own XMP: its parameters (log2 of the boost; 2.3 stops at most)
GAIN_MAP_XMP = RDF.format(
    ' hdrgm:Version="1.0" hdrgm:GainMapMin="0" hdrgm:GainMapMax="2.3" hdrgm:Gamma="1" hdrgm:OffsetSDR="0.015625"'
    ' hdrgm:OffsetHDR="0.015625" hdrgm:HDRCapacityMin="0" hdrgm:HDRCapacityMax="2.3"'
    ' hdrgm:BaseRenditionIsHDR="False">').encode()


# ISO 21496-1's APP2 segment in the primary: its name, then the least version a reader needs and the writer's
ISO_VERSION = b"\xff\xe2" + struct.pack(">H", 2 + 28 + 4) + b"urn:iso:std:iso:ts:21496:-1\x00" + bytes(4)


def _jpeg(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **options)
    return buffer.getvalue()


def _ultra_hdr(path: Path, rgb: np.ndarray, orientation: int = 1, xmp: str = PRIMARY_XMP) -> bytes:
    """An Ultra HDR JPEG made by bytes, as a phone writes it: the primary picture (EXIF, hdrgm XMP), its MP index
    (a little-endian APP2 'MPF' after its APP segments: the primary, then an 'Undefined' picture), and a grey
    gain map a quarter of its size with its own XMP. The gain map's bytes."""
    ramp = np.linspace(0, 255, rgb.shape[1] // 4, dtype=np.uint8)
    gain_map = _jpeg(Image.fromarray(np.tile(ramp, (rgb.shape[0] // 4, 1))), quality=90, xmp=GAIN_MAP_XMP)
    exif = Image.Exif()
    exif[MAKE], exif[ORIENTATION] = "Google", orientation
    primary = _jpeg(Image.fromarray(rgb), quality=95, exif=exif.tobytes(),
                    xmp=xmp.replace("{length}", str(len(gain_map))).encode())
    at = 2
    while primary[at + 1] in range(0xE0, 0xF0):  # past Pillow's APP segments: JFIF, EXIF, XMP
        at += 2 + struct.unpack_from(">H", primary, at + 2)[0]
    primary = primary[:at] + ISO_VERSION + primary[at:]  # as Android 15 adds it
    at += len(ISO_VERSION)
    length = 2 + 4 + 8 + 2 + 3 * 12 + 4 + 2 * 16
    first = len(primary) + 2 + length
    index = (b"MPF\x00II*\x00" + struct.pack("<IH", 8, 3) + struct.pack("<HHI4s", 0xB000, 7, 4, b"0100")
             + struct.pack("<HHII", 0xB001, 4, 1, 2) + struct.pack("<HHII", 0xB002, 7, 32, 50) + struct.pack("<I", 0)
             + struct.pack("<IIIHH", 0x20030000, first, 0, 0, 0)
             + struct.pack("<IIIHH", 0, len(gain_map), first - (at + 8), 0, 0))
    path.write_bytes(primary[:at] + b"\xff\xe2" + struct.pack(">H", length) + index + primary[at:] + gain_map)
    return gain_map


def _pictures(path: Path) -> list[bytes]:
    """Each picture's bytes, where the file's MP index puts them (CIPA DC-007: the entries' offsets count from the
    index's header, the first picture's is 0); the whole file where it has none."""
    data = path.read_bytes()
    header = data.find(b"MPF\x00") + 4
    if header < 4:
        return [data]
    order = "<" if data[header:header + 2] == b"II" else ">"
    ifd = header + struct.unpack_from(order + "I", data, header + 4)[0]
    tags = {tag: (size, offset) for tag, _, size, offset in
            (struct.unpack_from(order + "HHII", data, ifd + 2 + 12 * number)
             for number in range(struct.unpack_from(order + "H", data, ifd)[0]))}
    size, offset = tags[0xB002]
    entries = [struct.unpack_from(order + "III", data, header + offset + at) for at in range(0, size, 16)]
    return [data[header + start if start else 0:(header + start if start else 0) + length]
            for _, length, start in entries]


def _pixels(jpeg: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(jpeg)) as image:
        return np.asarray(image.convert("RGB")).astype(np.int16)


@pytest.mark.parametrize(("job", "form"), [("photo", "attribute"), ("folder", "attribute"), ("photo", "element")])
def test_an_ultra_hdr_jpeg_keeps_its_gain_map_after_the_restored_picture(tmp_path, astronaut, job, form,
                                                                          warnings_logged):
    """The old output was the primary picture alone, without a word: an HDR viewer showed it SDR."""
    folder = tmp_path / "Pictures"
    folder.mkdir()
    source = folder / "PXL_20240704_120000000.jpg"
    gain_map = _ultra_hdr(source, astronaut, xmp=XMP_FORMS[form])
    if job == "photo":
        output = tmp_path / "out.jpg"
        restore_image(source, output, BASELINE)
    else:
        restore_folder(folder, tmp_path / "restored", BASELINE)
        output = tmp_path / "restored" / source.name
    pictures = _pictures(output)
    assert len(pictures) == 2
    assert pictures[1] == gain_map  # the MP index points at its SOI, and its bytes are the source's
    with Image.open(output) as restored:
        if form == "element":  # Pillow reads it as an MPO: a primary picture and an 'Undefined' one
            assert restored.n_frames == 2
            assert [entry["Attribute"]["MPType"] for entry in restored.mpinfo[0xB002]] == \
                ["Baseline MP Primary Image", "Undefined"]
        xmp, exif = restored.info["xmp"], restored.getexif()
    assert xmp == XMP_FORMS[form].replace("{length}", str(len(gain_map))).encode()  # hdrgm and GContainer kept
    assert exif[MAKE] == "Google"
    assert ISO_VERSION in pictures[0]
    change = np.abs(_pixels(pictures[0]) - _pixels(_pictures(source)[0])).mean(axis=-1)
    face = crop_footprints(astronaut)
    assert change[face].mean() > 2.5, "the face was not restored"
    assert change[~face].mean() < 1.5, "pixels away from the face changed"
    assert not warnings_logged.records


def test_a_turned_ultra_hdr_jpegs_gain_map_is_turned_upright_with_it(tmp_path, astronaut, warnings_logged):
    """A photo stored turned (EXIF orientation 6, as many phones store a portrait) is written upright; its gain map,
    stored as the primary is, would lie across the picture unless turned with it. Its parameters (XMP) stay."""
    source = tmp_path / "turned.jpg"
    gain_map = _ultra_hdr(source, astronaut[:, :384].copy(), orientation=6)
    restore_image(source, tmp_path / "out.jpg", BASELINE)
    pictures = _pictures(tmp_path / "out.jpg")
    assert len(pictures) == 2
    with Image.open(io.BytesIO(pictures[0])) as primary:
        assert primary.size == (512, 384) and primary.getexif().get(ORIENTATION, 1) == 1
    turned = np.rot90(_pixels(gain_map), -1)  # a quarter turn clockwise, as orientation 6 asks
    assert _pixels(pictures[1]).shape == turned.shape == (96, 128, 3)
    assert np.abs(_pixels(pictures[1]) - turned).mean() < 1.0
    assert GAIN_MAP_XMP in pictures[1]
    assert not warnings_logged.records


def test_a_gain_map_of_another_size_is_left_out_and_said(warnings_logged):
    """The restored picture is its source's size; were it not, the gain map would no longer lie over it."""
    from clrface_video.io.ultra_hdr import GainMap, fitted

    assert fitted(GainMap(b"\xff\xd8", (512, 384)), (256, 192), "out.jpg") is None
    line = ("out.jpg: its Ultra HDR gain map is left out (the photo is written at 256 x 192, its gain map spans "
            "512 x 384): the photo comes back SDR")
    assert {record.getMessage() for record in warnings_logged.records} == {line}


def test_an_ultra_hdr_jpeg_written_as_png_says_it_comes_back_sdr(tmp_path, astronaut, warnings_logged):
    source = tmp_path / "phone.jpg"
    _ultra_hdr(source, astronaut)
    restore_image(source, tmp_path / "out.png", BASELINE)
    said = {record.getMessage() for record in warnings_logged.records}
    assert said == {"out.png: written as PNG with its Ultra HDR gain map left out, which a JPEG output keeps: it comes back SDR"}


def test_an_ultra_hdr_jpeg_whose_mp_index_is_gone_comes_back_sdr_and_says_so(tmp_path, astronaut, warnings_logged):
    """An editor that kept the XMP but dropped the MP index: the gain map cannot be found, which is said."""
    source = tmp_path / "edited.jpg"
    _ultra_hdr(source, astronaut)
    data = source.read_bytes()
    index = data.index(b"MPF\x00") - 4  # the APP2 segment's marker and length before it
    source.write_bytes(data[:index] + data[index + 2 + struct.unpack_from(">H", data, index + 2)[0]:])
    restore_image(source, tmp_path / "out.jpg", BASELINE)
    assert len(_pictures(tmp_path / "out.jpg")) == 1
    line = ("out.jpg: its Ultra HDR gain map is left out (the file's MP index does not lead to it): the photo comes "
            "back SDR")
    assert {record.getMessage() for record in warnings_logged.records} == {line}

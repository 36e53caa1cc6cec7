"""A phone's Ultra HDR JPEG (a primary SDR picture, an MP index and hdrgm XMP, then a gain-map JPEG) restored: the
gain map kept after the restored picture, so that an HDR viewer still shows it HDR."""
from __future__ import annotations

import io
import logging
import struct
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest
from PIL import Image

from clrface_video.config import RestoreConfig
from clrface_video.photos import restore_folder
from clrface_video.pipeline import restore_image
from tests.media import crop_footprints, mp_pictures

BASELINE = RestoreConfig(model="baseline-bicubic-sharpen", device="cpu")
MAKE, ORIENTATION = 0x010F, 0x0112
RDF_NS, HDRGM_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#", "http://ns.adobe.com/hdr-gain-map/1.0/"
CONTAINER_NS, ITEM_NS = "http://ns.google.com/photos/1.0/container/", "http://ns.google.com/photos/1.0/container/item/"
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
# out.jpg's warning where the MP index does not lead to its gain map (gone, cut off, not a JPEG there)
NOT_FOUND = ("out.jpg: its Ultra HDR gain map is left out (the file's MP index does not lead to it): the photo comes "
             "back SDR")


# ISO 21496-1's APP2 segment in the primary: its name, then the least version a reader needs and the writer's
ISO_VERSION = b"\xff\xe2" + struct.pack(">H", 2 + 28 + 4) + b"urn:iso:std:iso:ts:21496:-1\x00" + bytes(4)


def _jpeg(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **options)
    return buffer.getvalue()


def _ultra_hdr(path: Path, rgb: np.ndarray, orientation: int = 1, xmp: str = PRIMARY_XMP, depth: bytes = b"") -> bytes:
    """An Ultra HDR JPEG made by bytes, as a phone writes it: the primary picture (EXIF, hdrgm XMP), its MP index
    (a little-endian APP2 'MPF' after its APP segments: the primary, then an 'Undefined' picture), and a grey
    gain map a quarter of its size with its own XMP; then `depth`, a third 'Undefined' picture, where given (a
    portrait photo's depth map). The gain map's bytes."""
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
    count = 3 if depth else 2
    length = 2 + 4 + 8 + 2 + 3 * 12 + 4 + count * 16
    first = len(primary) + 2 + length
    index = (b"MPF\x00II*\x00" + struct.pack("<IH", 8, 3) + struct.pack("<HHI4s", 0xB000, 7, 4, b"0100")
             + struct.pack("<HHII", 0xB001, 4, 1, count) + struct.pack("<HHII", 0xB002, 7, 16 * count, 50)
             + struct.pack("<I", 0) + struct.pack("<IIIHH", 0x20030000, first, 0, 0, 0)
             + struct.pack("<IIIHH", 0, len(gain_map), first - (at + 8), 0, 0))
    if depth:
        index += struct.pack("<IIIHH", 0, len(depth), first + len(gain_map) - (at + 8), 0, 0)
    path.write_bytes(primary[:at] + b"\xff\xe2" + struct.pack(">H", length) + index + primary[at:] + gain_map + depth)
    return gain_map


def _pixels(jpeg: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(jpeg)) as image:
        return np.asarray(image.convert("RGB")).astype(np.int16)


def _restored(source: Path, tmp_path: Path, job: str) -> Path:
    """The restored file: a photo's job to out.jpg, or its folder's job to restored/."""
    if job == "photo":
        restore_image(source, tmp_path / "out.jpg", BASELINE)
        return tmp_path / "out.jpg"
    restore_folder(source.parent, tmp_path / "restored", BASELINE)
    return tmp_path / "restored" / source.name


@pytest.mark.parametrize(("job", "form"), [("photo", "attribute"), ("folder", "attribute"), ("photo", "element")])
def test_an_ultra_hdr_jpeg_keeps_its_gain_map_after_the_restored_picture(tmp_path, astronaut, job, form,
                                                                          warnings_logged):
    """The old output was the primary picture alone, without a word: an HDR viewer showed it SDR."""
    folder = tmp_path / "Pictures"
    folder.mkdir()
    source = folder / "PXL_20240704_120000000.jpg"
    gain_map = _ultra_hdr(source, astronaut, xmp=XMP_FORMS[form])
    output = _restored(source, tmp_path, job)
    pictures = mp_pictures(output)
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
    change = np.abs(_pixels(pictures[0]) - _pixels(mp_pictures(source)[0])).mean(axis=-1)
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
    pictures = mp_pictures(tmp_path / "out.jpg")
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
    assert len(mp_pictures(tmp_path / "out.jpg")) == 1
    assert {record.getMessage() for record in warnings_logged.records} == {NOT_FOUND}


def test_an_ultra_hdr_jpeg_cut_in_its_gain_map_says_so_once(tmp_path, astronaut, warnings_logged):
    """A copy cut off in its gain map: that picture was said twice, once as the gain map and once as 'its picture
    2 after the primary (MP type Undefined: a depth map or the like)'."""
    source = tmp_path / "cut.jpg"
    _ultra_hdr(source, astronaut)
    source.write_bytes(source.read_bytes()[:-300])
    restore_image(source, tmp_path / "out.jpg", BASELINE)
    assert len(mp_pictures(tmp_path / "out.jpg")) == 1
    assert {record.getMessage() for record in warnings_logged.records} == {NOT_FOUND}


def _depth_map(rgb: np.ndarray) -> bytes:
    """A portrait photo's depth map: grey, half the photo's size, near in its middle (no gain map's marks)."""
    rows, columns = np.mgrid[0:rgb.shape[0] // 2, 0:rgb.shape[1] // 2]
    near = 255 - np.hypot(rows - rows.mean(), columns - columns.mean())
    return _jpeg(Image.fromarray(np.clip(near, 0, 255).astype(np.uint8)), quality=90)


@pytest.mark.parametrize("job", ["photo", "folder"])
def test_a_depth_map_after_the_gain_map_is_kept_byte_for_byte(tmp_path, astronaut, job, warnings_logged):
    """A portrait photo's depth map, a third 'Undefined' picture after the gain map, was dropped without a word: an
    editor could no longer re-focus the photo. It spans the photo as the gain map does, and the restored photo is
    the same size: it comes back byte for byte, in its place, the MP index pointing at it."""
    folder = tmp_path / "Pictures"
    folder.mkdir()
    source = folder / "PXL_20240704_120000000.PORTRAIT.jpg"
    depth = _depth_map(astronaut)
    gain_map = _ultra_hdr(source, astronaut, depth=depth)
    output = _restored(source, tmp_path, job)
    pictures = mp_pictures(output)
    assert len(pictures) == 3 and pictures[1:] == [gain_map, depth]
    change = np.abs(_pixels(pictures[0]) - _pixels(mp_pictures(source)[0])).mean(axis=-1)
    assert change[crop_footprints(astronaut)].mean() > 2.5, "the face was not restored"
    assert not warnings_logged.records


@pytest.mark.parametrize(("output", "said"), [
    ("out.png", ("out.png: written as PNG with its Ultra HDR gain map left out, which a JPEG output keeps: it comes "
                "back SDR, its picture 3 after the primary (MP type Undefined: a depth map or the like) left out, "
                "which a JPEG output keeps")),
    ("turned.jpg", ("turned.jpg: its picture 3 after the primary (MP type Undefined: a depth map or the like) left "
                   "out: the photo is stored turned and written upright"))])
def test_a_depth_map_that_cannot_be_kept_is_named_in_one_warning(tmp_path, astronaut, output, said, warnings_logged):
    """Written as a PNG there is no place for it; a photo stored turned is written upright, where the depth map,
    stored as the photo was, would lie across it (not coded again: a GContainer item's length says where it ends)."""
    source = tmp_path / "phone.jpg"
    turned = output == "turned.jpg"
    _ultra_hdr(source, astronaut[:, :384].copy(), orientation=6 if turned else 1, depth=_depth_map(astronaut))
    restore_image(source, tmp_path / output, BASELINE)
    assert {record.getMessage() for record in warnings_logged.records} == {said}
    if turned:
        assert len(mp_pictures(tmp_path / output)) == 2  # the gain map, turned with the photo


def _with_preview(path: Path, rgb: np.ndarray) -> Path:
    """A phone JPEG with a preview: the photo, then a quarter-size copy of it, MP type Large Thumbnail (VGA
    equivalent), by its MP index (Pillow's MPO writer, the second picture's MP type set here, as a camera sets it)."""
    preview = Image.fromarray(rgb).resize((rgb.shape[1] // 4, rgb.shape[0] // 4))
    Image.fromarray(rgb).save(path, "MPO", save_all=True, append_images=[preview], quality=95)
    with Image.open(path) as written:
        size = written.mpinfo[0xB002][0]["Size"]
    data = bytearray(path.read_bytes())
    first = data.index(struct.pack("<IIIHH", 0x030000, size, 0, 0, 0))  # the primary picture's MP entry
    struct.pack_into("<I", data, first + 16, 0x010001)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("output", ["out.jpg", "out.png"])
def test_a_phone_jpegs_preview_is_left_out_and_said_in_one_info_line(tmp_path, astronaut, output, warnings_logged):
    """A phone JPEG's preview after its primary, a small copy that would show the faces unrestored, was left out
    without a word, where a depth map or a gain map left out is said. Leaving it out is right (viewers make their
    own): it is said in one info line, not warned."""
    source = _with_preview(tmp_path / "phone.jpg", astronaut)
    with Image.open(source) as image:
        assert image.n_frames == 2 and image.mpinfo[0xB002][1]["Attribute"]["MPType"].startswith("Large Thumbnail")
    logging.getLogger("clrface_video").setLevel(logging.INFO)  # warnings_logged puts its level back
    restore_image(source, tmp_path / output, BASELINE)
    with Image.open(tmp_path / output) as restored:
        assert getattr(restored, "n_frames", 1) == 1 and restored.size == (512, 512)
    said = {(record.levelno, record.getMessage()) for record in warnings_logged.records
            if record.levelno >= logging.WARNING or "after the primary" in record.getMessage()}
    line = (f"{output}: its picture 2 after the primary (MP type Large Thumbnail: a smaller copy of the photo as it "
            "was, its faces unrestored) left out")
    assert said == {(logging.INFO, line)}


def _xmp_of(path: Path) -> bytes:
    """The XMP a written photo holds: a JPEG's APP1, a PNG's iTXt, a TIFF's tag 700."""
    with Image.open(path) as image:
        xmp = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp") or \
            (image.tag_v2.get(700) if image.format == "TIFF" else None)
    return xmp.encode() if isinstance(xmp, str) else xmp


def _without_gain_map(xmp: str) -> str:
    """The XMP a photo written without its gain map must hold: no hdrgm:Version and no GContainer directory."""
    return (xmp.replace(' hdrgm:Version="1.0"', "").replace("<hdrgm:Version>1.0</hdrgm:Version>", "")
            .split("<Container:Directory>")[0] + "</rdf:Description></rdf:RDF></x:xmpmeta>")


@pytest.mark.parametrize(("form", "output"), [("attribute", "out.jpg"), ("element", "out.jpg"),
                                              ("attribute", "out.png"), ("attribute", "out.tif")])
def test_a_photo_written_without_its_gain_map_has_xmp_that_names_none(tmp_path, astronaut, form, output):
    """Its XMP still said hdrgm:Version and named the gain map in its GContainer directory with its length, though
    the file held no MP index and no gain map: a reader that follows the directory took the restored picture's last
    bytes for the gain map. Both go; the rest of the XMP stays as it was, well-formed. In a .tif the XMP was lost
    whole (Pillow's TIFF writer takes no xmp keyword): it is there, as tag 700."""
    source = tmp_path / "cut.jpg"
    _ultra_hdr(source, astronaut, xmp=XMP_FORMS[form])
    source.write_bytes(source.read_bytes()[:-300])  # cut off in its gain map
    restore_image(source, tmp_path / output, BASELINE)
    xmp = _xmp_of(tmp_path / output)
    assert xmp.decode() == _without_gain_map(XMP_FORMS[form])
    description = ElementTree.fromstring(xmp).find(f"{{{RDF_NS}}}RDF/{{{RDF_NS}}}Description")
    assert f"{{{HDRGM_NS}}}Version" not in description.attrib
    assert list(description) == []
    if output.endswith(".jpg"):
        assert len(mp_pictures(tmp_path / output)) == 1


def test_a_dropped_gain_maps_directory_item_goes_and_a_kept_depth_maps_stays(tmp_path, astronaut, warnings_logged):
    """A gain map whose picture the MP index does not lead to (no JPEG start there) is left out while the depth map
    after it is kept: the directory names the primary and the depth map alone, so that a reader finds the depth map
    by its Item:Length where it now lies, right after the primary."""
    depth = _depth_map(astronaut)
    item = ('<rdf:li rdf:parseType="Resource"><Container:Item Item:Semantic="Depth" Item:Mime="image/jpeg"'
            f' Item:Length="{len(depth)}"/></rdf:li>')
    xmp = PRIMARY_XMP.replace("</rdf:Seq>", item + "</rdf:Seq>")
    source = tmp_path / "portrait.jpg"
    gain_map = _ultra_hdr(source, astronaut, xmp=xmp, depth=depth)
    data = source.read_bytes()
    at = data.index(gain_map)
    source.write_bytes(data[:at] + b"\x00\x00" + data[at + 2:])  # its start of image gone
    restore_image(source, tmp_path / "out.jpg", BASELINE)
    pictures = mp_pictures(tmp_path / "out.jpg")
    assert len(pictures) == 2 and pictures[1] == depth
    written = _xmp_of(tmp_path / "out.jpg")
    primary, _, rest = xmp.partition('<rdf:li rdf:parseType="Resource"><Container:Item Item:Semantic="GainMap"')
    assert written.decode() == (primary + rest.partition("</rdf:li>")[2]).replace(' hdrgm:Version="1.0"', "")
    items = ElementTree.fromstring(written).iter(f"{{{CONTAINER_NS}}}Item")
    assert [element.get(f"{{{ITEM_NS}}}Semantic") for element in items] == ["Primary", "Depth"]
    assert {record.getMessage() for record in warnings_logged.records} == {NOT_FOUND}

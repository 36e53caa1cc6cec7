"""Photo I/O round trips on real files: EXIF, ICC, orientation, format, mode, alpha, 16-bit, CMYK, errors."""
from __future__ import annotations

import io
import re
import struct
import zlib
from dataclasses import replace
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

from clrface_video.errors import ClrfaceError, InputError
from clrface_video.io import deep_avif, photo_read, photo_write
from clrface_video.io.decode import is_image_path
from clrface_video.io.orientation import QUARTER_TURNS, TURNS, orient_array, upright_size
from clrface_video.io.photo_read import Photo, read_photo
from clrface_video.io.photo_write import fit_format, format_for, write_photo
from tests.media import add_png_chunks, make_hdr_photo, png_chunks

MAKE, MODEL, ORIENTATION = 0x010F, 0x0110, 0x0112


@pytest.fixture()
def rgb(astronaut) -> np.ndarray:
    """A 96x64 (H x W) non-square crop around the face, so rotations are visible in the shape."""
    return np.ascontiguousarray(astronaut[40:136, 180:244])


@pytest.fixture(scope="module")
def icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def camera_exif(orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[MAKE], exif[MODEL], exif[ORIENTATION] = "NASA", "Hasselblad", orientation
    return exif


def exif_of(path: Path) -> Image.Exif:
    with Image.open(path) as image:
        return image.getexif()


def round_trip(photo: Photo, path: Path) -> tuple[Photo, Path]:
    out = path.with_name("out_" + path.name)
    write_photo(out, photo.image, photo)
    return read_photo(out), out


def said(logged: pytest.LogCaptureFixture) -> set[str]:
    """The warnings logged (warnings_logged's handler and the root's each keep a record of one)."""
    return {record.getMessage() for record in logged.records}


def close(a: np.ndarray, b: np.ndarray, tolerance: float) -> bool:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean()) < tolerance


def test_jpeg_keeps_exif_icc_quality_and_subsampling(tmp_path, rgb, icc):
    path = tmp_path / "a.jpg"
    Image.fromarray(rgb).save(path, quality=90, subsampling=1, exif=camera_exif(), icc_profile=icc)
    photo = read_photo(path)
    assert photo.format == "JPEG" and photo.mode == "RGB" and photo.image.dtype == np.uint8
    assert photo.quality == 90 and photo.subsampling == 1 and photo.icc == icc
    assert close(photo.image, rgb, 4.0)
    again, out = round_trip(photo, path)
    assert again.format == "JPEG" and again.icc == icc and again.subsampling == 1 and again.quality >= 95
    assert exif_of(out)[MAKE] == "NASA" and exif_of(out)[MODEL] == "Hasselblad"
    assert close(again.image, photo.image, 2.0)


def test_exif_orientation_is_applied_and_reset(tmp_path, rgb):
    path = tmp_path / "rotated.jpg"
    Image.fromarray(rgb).save(path, quality=95, exif=camera_exif(orientation=6))
    photo = read_photo(path)
    assert photo.image.shape == (64, 96, 3)  # orientation 6: displayed rotated 90 degrees clockwise
    assert close(photo.image, np.rot90(rgb, -1), 4.0)
    again, out = round_trip(photo, path)
    assert exif_of(out)[ORIENTATION] == 1 and exif_of(out)[MAKE] == "NASA"
    assert again.image.shape == (64, 96, 3)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orient_array_matches_pillow(tmp_path, rgb, orientation):
    path = tmp_path / "o.png"
    Image.fromarray(rgb).save(path, exif=camera_exif(orientation))
    with Image.open(path) as image:
        expected = np.asarray(ImageOps.exif_transpose(image))
    assert expected.shape[:2] == ((64, 96) if orientation >= 5 else (96, 64))
    assert np.array_equal(orient_array(rgb, orientation), expected)
    assert upright_size((64, 96), orientation) == expected.shape[1::-1]
    assert (orientation in QUARTER_TURNS) == (orientation >= 5)
    gray = Image.fromarray(rgb[..., 1])  # a gain map's mode, turned by the Pillow table, stays its own
    turned = gray.transpose(TURNS[orientation]) if orientation in TURNS else gray
    assert turned.mode == "L" and np.array_equal(np.asarray(turned), expected[..., 1])


def test_jpeg_keeps_xmp(tmp_path, rgb):
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'
    path = tmp_path / "x.jpg"
    Image.fromarray(rgb).save(path, quality=95, xmp=xmp)
    photo = read_photo(path)
    assert photo.xmp == xmp
    again, _ = round_trip(photo, path)
    assert again.xmp == xmp


def test_png_keeps_exif_icc_and_pixels(tmp_path, rgb, icc):
    path = tmp_path / "a.png"
    Image.fromarray(rgb).save(path, exif=camera_exif(), icc_profile=icc)
    photo = read_photo(path)
    assert np.array_equal(photo.image, rgb) and photo.format == "PNG" and photo.icc == icc
    again, out = round_trip(photo, path)
    assert np.array_equal(again.image, rgb) and again.icc == icc and exif_of(out)[MAKE] == "NASA"


def test_grayscale_stays_grayscale(tmp_path, rgb):
    path = tmp_path / "gray.jpg"
    Image.fromarray(rgb).convert("L").save(path, quality=95)
    photo = read_photo(path)
    assert photo.mode == "L" and photo.image.shape == (96, 64, 3)
    assert np.array_equal(photo.image[..., 0], photo.image[..., 2])
    again, out = round_trip(photo, path)
    assert Image.open(out).mode == "L" and close(again.image, photo.image, 2.0)


def test_alpha_is_reattached(tmp_path, rgb):
    alpha = np.tile(np.linspace(0, 255, 64).astype(np.uint8), (96, 1))
    path = tmp_path / "alpha.png"
    Image.fromarray(np.dstack([rgb, alpha])).save(path)
    photo = read_photo(path)
    assert photo.mode == "RGBA" and np.array_equal(photo.alpha, alpha) and photo.image.shape == (96, 64, 3)
    again, out = round_trip(photo, path)
    assert Image.open(out).mode == "RGBA" and np.array_equal(again.alpha, alpha)
    assert np.array_equal(again.image, rgb)


def test_palette_with_transparency_gets_alpha(tmp_path, rgb):
    path = tmp_path / "pal.png"
    Image.fromarray(rgb).quantize(16).save(path, transparency=0)
    photo = read_photo(path)
    assert photo.mode == "P" and photo.alpha is not None and photo.image.shape == (96, 64, 3)


def test_a_palette_photo_is_written_in_full_colour_and_says_so(tmp_path, rgb, warnings_logged):
    """256 palette colours would band a restored face: it comes back RGB(A), pixels exact, with a warning."""
    path = tmp_path / "pal.png"
    Image.fromarray(rgb).quantize(16).save(path, transparency=0)
    photo = read_photo(path)
    out = write_photo(tmp_path / "out.png", marked(photo.image), photo)
    assert Image.open(out).mode == "RGBA" and np.array_equal(read_photo(out).image, marked(photo.image))
    assert "out.png: a palette image, written in full colour (RGBA)" in warnings_logged.text


def test_sixteen_bit_rgb_png_stays_sixteen_bit(tmp_path, rgb, icc):
    deep = rgb.astype(np.uint16) * 257 + 7
    path = tmp_path / "deep.png"
    assert cv2.imwrite(str(path), deep[..., ::-1])
    photo = read_photo(path)
    assert photo.bit_depth == 16 and photo.image.dtype == np.uint16 and np.array_equal(photo.image, deep)
    photo = replace(photo, icc=icc, exif=camera_exif().tobytes())
    again, out = round_trip(photo, path)
    assert again.bit_depth == 16 and np.array_equal(again.image, deep)
    assert again.icc == icc and exif_of(out)[MAKE] == "NASA"


def test_sixteen_bit_rgba_tiff_keeps_alpha_and_icc(tmp_path, rgb, icc):
    deep = np.dstack([rgb.astype(np.uint16) * 257, np.full(rgb.shape[:2], 40000, np.uint16)])
    path = tmp_path / "deep.tif"
    assert cv2.imwrite(str(path), deep[..., [2, 1, 0, 3]])
    photo = read_photo(path)
    assert photo.format == "TIFF" and photo.bit_depth == 16 and np.array_equal(photo.alpha, deep[..., 3])
    again, _ = round_trip(replace(photo, icc=icc), path)
    assert again.bit_depth == 16 and np.array_equal(again.image, deep[..., :3])
    assert np.array_equal(again.alpha, deep[..., 3]) and again.icc == icc


def test_sixteen_bit_grayscale_png(tmp_path, rgb):
    gray = (rgb[..., 1].astype(np.uint16) * 257)
    path = tmp_path / "gray16.png"
    Image.fromarray(gray).save(path)
    photo = read_photo(path)
    assert photo.mode == "I;16" and photo.bit_depth == 16 and np.array_equal(photo.image[..., 0], gray)
    again, out = round_trip(photo, path)
    assert Image.open(out).mode == "I;16" and np.array_equal(again.image[..., 0], gray)


def test_eight_bit_result_into_sixteen_bit_source_and_back(tmp_path, rgb):
    photo = read_photo(_write_cv2(tmp_path / "deep.png", rgb.astype(np.uint16) * 257))
    write_photo(tmp_path / "o.png", rgb, photo)  # a restorer returns uint8
    assert np.array_equal(read_photo(tmp_path / "o.png").image, rgb.astype(np.uint16) * 257)


def _write_cv2(path: Path, rgb16: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), rgb16[..., ::-1])
    return path


def test_cmyk_jpeg_comes_back_cmyk(tmp_path, rgb):
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(rgb).convert("CMYK").save(path, quality=95)
    photo = read_photo(path)
    assert photo.mode == "CMYK" and photo.image.shape == (96, 64, 3)
    assert close(photo.image, rgb, 6.0)
    again, out = round_trip(photo, path)
    assert Image.open(out).mode == "CMYK" and close(again.image, photo.image, 4.0)


@pytest.mark.parametrize("suffix", [".webp", ".bmp", ".tiff"])
def test_other_formats_round_trip(tmp_path, rgb, suffix):
    path = tmp_path / f"a{suffix}"
    Image.fromarray(rgb).save(path)
    photo = read_photo(path)
    again, _ = round_trip(photo, path)
    assert again.format == photo.format == Image.open(path).format
    assert close(again.image, rgb, 4.0)


def test_phone_heic_comes_upright_and_goes_back_heic_with_its_metadata(tmp_path, rgb, icc):
    pytest.importorskip("pillow_heif", reason="HEIC needs pillow-heif (the test extra installs it)")
    assert photo_read.heif_support() and is_image_path("IMG_0001.HEIC") and format_for("x.heic") == "HEIF"
    path = tmp_path / "IMG_0001.heic"
    # EXIF as bytes, as a camera writes it (pillow-heif treats an Image.Exif object differently)
    Image.fromarray(rgb).save(path, quality=95, exif=camera_exif(orientation=6).tobytes(), icc_profile=icc)
    photo = read_photo(path)
    assert photo.format == "HEIF" and photo.mode == "RGB" and photo.icc == icc
    assert photo.image.shape == (64, 96, 3) and close(photo.image, np.rot90(rgb, -1), 4.0)  # upright
    again, out = round_trip(photo, path)
    assert Image.open(out).format == "HEIF" and again.icc == icc
    assert exif_of(out)[MAKE] == "NASA" and exif_of(out).get(ORIENTATION, 1) == 1
    assert again.image.shape == (64, 96, 3) and close(again.image, photo.image, 3.0)


def test_a_heic_named_jpg_is_read_by_what_it_holds_in_a_fresh_process(tmp_path, rgb):
    """A HEIC under a .jpg name (a phone's share, a renaming tool) was 'cannot identify image file' unless a .heic had
    been read before it in the process: pillow-heif's opener was registered by the name alone, so a folder restored
    it or listed it as failed by the order of its names. A fresh interpreter, as the CLI is, reads it."""
    import subprocess
    import sys

    pytest.importorskip("pillow_heif", reason="HEIC needs pillow-heif (the test extra installs it)")
    assert photo_read.heif_support()
    path = tmp_path / "IMG_0002.jpg"
    Image.fromarray(rgb).save(path, format="HEIF", quality=95)
    code = ("import sys; from clrface_video.io.photo_read import read_photo; p = read_photo(sys.argv[1]); "
            "print(p.format, *p.image.shape, int(p.image.mean()))")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    fmt, height, width, _, mean = done.stdout.split()
    assert (fmt, int(height), int(width)) == ("HEIF", 96, 64) and abs(int(mean) - rgb.mean()) < 3


def test_an_hdr_heifs_colour_description_is_kept_or_its_loss_said(tmp_path, rgb, warnings_logged):
    """An HDR camera's or phone's HEIF (BT.2020 primaries, PQ or HLG transfer, in its nclx box) was written back
    tagged sRGB, pillow-heif's default, over pixels coded for PQ: the whole photo looked washed out."""
    pillow_heif = pytest.importorskip("pillow_heif", reason="HEIF needs pillow-heif (the test extra installs it)")
    assert photo_read.heif_support()
    hdr = {"color_primaries": 9, "transfer_characteristics": 16, "matrix_coefficients": 9, "full_range_flag": 1}
    path = tmp_path / "camera.hif"
    Image.fromarray(rgb).save(path, quality=95, nclx_profile=hdr)
    photo = read_photo(path)
    assert photo.format == "HEIF" and photo.nclx == (9, 16, 9, 1)
    again, out = round_trip(photo, path)
    written = pillow_heif.open_heif(out).info["nclx_profile"]
    assert {key: written[key] for key in hdr} == hdr and again.nclx == photo.nclx
    assert close(again.image, photo.image, 3.0) and not warnings_logged.records
    fit_format(photo, "JPEG", "camera.jpg")  # a JPEG has no place for it: said, not silent
    assert ("camera.jpg: written as JPEG with its HEIF colour description (primaries 9, transfer 16) left out"
            in warnings_logged.text)


def test_a_10_bit_heif_keeps_its_depth_and_says_where_it_cannot(tmp_path, rgb, warnings_logged):
    """A 10-bit HEIC (an iPhone's HDR photo) came back 8-bit: pillow-heif reads it at 8 bits for Pillow. It is
    read at 16 (its codes at full scale) and written back at 10 bits, code for code, or at 16 as a PNG; where the
    format holds 8 (a JPEG), the conversion's line says so once."""
    pillow_heif = pytest.importorskip("pillow_heif", reason="HEIF needs pillow-heif (the test extra installs it)")
    photo = read_photo(make_hdr_photo(tmp_path / "hdr.heic", rgb))
    assert (photo.format, photo.bit_depth, photo.coded_bits) == ("HEIF", 16, 10) and not warnings_logged.records
    codes = np.asarray(pillow_heif.open_heif(tmp_path / "hdr.heic", convert_hdr_to_8bit=False)) >> 6
    assert np.array_equal(photo.image, (codes.astype(np.uint32) * 65535 * 2 + 1023) // 2046)
    again, out = round_trip(photo, tmp_path / "hdr.heic")
    written = pillow_heif.open_heif(out, convert_hdr_to_8bit=False)
    assert written.info["bit_depth"] == 10 and again.bit_depth == 16 and close(again.image, photo.image, 257)
    as_png = fit_format(photo, "PNG", "hdr.png")
    write_photo(tmp_path / "hdr.png", as_png.image, as_png)
    assert np.array_equal(read_photo(tmp_path / "hdr.png").image, photo.image) and not warnings_logged.records
    as_jpeg = fit_format(photo, "JPEG", "hdr.jpg")  # said by the conversion's line, not again by the writer
    write_photo(tmp_path / "hdr.jpg", as_jpeg.image, as_jpeg)
    assert said(warnings_logged) == {"hdr.jpg: written as JPEG with 10 bits per channel to 8"}


@pytest.mark.parametrize("bits", [10, 12])
def test_a_grey_deep_heif_is_read_at_full_scale_and_written_back_in_its_own_depth(tmp_path, bits, warnings_logged):
    """A grey 10- or 12-bit HEIC (a black-and-white scan, a monochrome camera's) was read as pillow-heif gives it to
    Pillow, its codes in the high bits (white 65472 at 10 bits, not 65535 as a colour one's), and a 12-bit one was
    written back in 10, its 4096 levels cut to 1024 unsaid. Read as a colour one is, it goes back in its own depth,
    or to a 16-bit PNG or TIFF with its white at 65535 and every level kept."""
    pillow_heif = pytest.importorskip("pillow_heif", reason="HEIF needs pillow-heif (the test extra installs it)")
    top = (1 << bits) - 1
    ramp = np.rint(np.linspace(0, top, 96 * 64)).astype(np.uint16).reshape(96, 64)  # every code, black to white
    source = tmp_path / "scan.heic"
    pillow_heif.from_bytes(mode=f"L;{bits}", size=(64, 96), data=ramp.tobytes()).save(source, quality=-1)
    codes = np.asarray(pillow_heif.open_heif(source, convert_hdr_to_8bit=False)) >> (16 - bits)
    photo = read_photo(source)
    assert (photo.mode, photo.bit_depth, photo.coded_bits) == ("I;16", 16, bits)
    full = (codes.astype(np.uint32) * 65535 * 2 + top) // (2 * top)
    assert all(np.array_equal(photo.image[..., channel], full) for channel in range(3))
    _, out = round_trip(photo, source)
    written = pillow_heif.open_heif(out, convert_hdr_to_8bit=False)
    levels = np.asarray(written) >> (16 - bits)
    assert (written.mode, written.info["bit_depth"]) == ("I;16", bits)
    assert len(np.unique(levels)) > 3 * (top + 1) // 4 and np.abs(levels.astype(int) - codes).mean() < 2
    for fmt, suffix in (("PNG", ".png"), ("TIFF", ".tif")):
        as_deep = fit_format(photo, fmt, "scan" + suffix)
        write_photo(tmp_path / ("scan" + suffix), as_deep.image, as_deep)
        with Image.open(tmp_path / ("scan" + suffix)) as image:
            assert image.mode.startswith("I;16") and np.array_equal(np.asarray(image), full)
    assert not warnings_logged.records


@pytest.mark.parametrize("bits", [8, 12])
def test_a_grey_heif_with_alpha_comes_back_grey_with_its_alpha(tmp_path, bits, warnings_logged):
    """A grey HEIC with transparency (pillow-heif writes an LA image so: one HEVC 4:0:0 channel and an alpha
    picture) came back in colour, three 4:2:0 channels and alpha: pillow-heif reads it as RGBA. It comes back grey,
    its alpha and its depth kept. As a PNG at 16 bits it went to RGBA (OpenCV writes 1, 3 or 4 channels, Pillow grey
    with alpha in 8): it is a 16-bit grey-with-alpha PNG, read back so; as a TIFF it goes to RGBA, said (Pillow
    cannot open a 16-bit grey TIFF with alpha)."""
    pillow_heif = pytest.importorskip("pillow_heif", reason="HEIF needs pillow-heif (the test extra installs it)")
    top = (1 << bits) - 1
    grey = np.rint(np.linspace(0, top, 96 * 64)).astype(np.uint16).reshape(96, 64)
    alpha = np.full((96, 64), top, np.uint16)
    alpha[:, :16] = 0
    pixels = np.dstack([grey, alpha]).astype(np.uint8 if bits == 8 else np.uint16)
    source = tmp_path / "cutout.heic"
    pillow_heif.from_bytes(mode="LA" if bits == 8 else f"LA;{bits}", size=(64, 96), data=pixels.tobytes()).save(
        source, quality=-1)
    assert "chroma" not in pillow_heif.open_heif(source).info  # coded grey: pillow-heif names no chroma
    photo = read_photo(source)
    assert (photo.mode, photo.coded_bits) == ("LA", bits) and photo.alpha is not None
    again, out = round_trip(photo, source)
    written = pillow_heif.open_heif(out, convert_hdr_to_8bit=False)
    assert "chroma" not in written.info and written.info["bit_depth"] == bits  # grey, not colour
    assert (again.mode, again.coded_bits) == ("LA", bits)
    assert np.array_equal(again.alpha, photo.alpha) and close(again.image, photo.image, 1 << (16 - bits))
    assert not warnings_logged.records
    as_png = fit_format(photo, "PNG", "cutout.png")
    write_photo(tmp_path / "cutout.png", as_png.image, as_png)
    header = (tmp_path / "cutout.png").read_bytes()[24:26]  # IHDR's bit depth and colour type
    assert header == (bytes([8, 4]) if bits == 8 else bytes([16, 4]))  # grey with alpha, at 8 or 16 bits
    png = read_photo(tmp_path / "cutout.png")
    assert (png.mode, png.bit_depth) == ("LA", 8 if bits == 8 else 16)
    assert np.array_equal(png.alpha, photo.alpha) and np.array_equal(png.image, photo.image)  # every level
    assert not warnings_logged.records
    as_tiff = fit_format(photo, "TIFF", "cutout.tif")
    write_photo(tmp_path / "cutout.tif", as_tiff.image, as_tiff)
    with Image.open(tmp_path / "cutout.tif") as tiff:
        assert tiff.mode == ("LA" if bits == 8 else "RGBA")
    line = ("cutout.tif: written as TIFF with mode LA to RGBA at 16 bits (a 16-bit grey TIFF with alpha Pillow cannot "
            "open and OpenCV misreads; a PNG keeps it)")
    assert said(warnings_logged) == (set() if bits == 8 else {line})


def test_a_16_bit_grey_png_written_as_heif_keeps_12_bits(tmp_path, warnings_logged):
    """A 16-bit grey PNG named into a .heic came back 8-bit, where a colour one goes at 12 bits."""
    pillow_heif = pytest.importorskip("pillow_heif", reason="HEIF needs pillow-heif (the test extra installs it)")
    ramp = np.rint(np.linspace(0, 65535, 96 * 64)).astype(np.uint16).reshape(96, 64)
    Image.fromarray(ramp).save(tmp_path / "scan.png")
    photo = fit_format(read_photo(tmp_path / "scan.png"), "HEIF", "scan.heic")
    write_photo(tmp_path / "scan.heic", photo.image, photo)
    written = pillow_heif.open_heif(tmp_path / "scan.heic", convert_hdr_to_8bit=False)
    assert (written.mode, written.info["bit_depth"]) == ("I;16", 12)
    assert len(np.unique(np.asarray(written) >> 4)) > 3000
    assert said(warnings_logged) == {"scan.heic: written as HEIF with 16 bits per channel to 12"}


@pytest.mark.skipif(not __import__("PIL.features").features.check("avif"), reason="this Pillow has no AVIF codec")
def test_an_hdr_avifs_depth_and_colour_description_are_kept_in_an_avif_or_a_heif(tmp_path, rgb, warnings_logged):
    """A 10-bit BT.2020/PQ AVIF came back as an 8-bit AVIF tagged sRGB: Pillow's AVIF plugin reads and writes 8
    bits and no colour description, so PQ-coded pixels were shown as sRGB, washed out. Read at 16 bits through
    FFmpeg (io.deep_avif), it is written back in 10 with its description, and so is a HEIF made of it."""
    photo = read_photo(make_hdr_photo(tmp_path / "pq.avif", rgb))
    assert (photo.format, photo.coded_bits, photo.bit_depth, photo.nclx) == ("AVIF", 10, 16, (9, 16, 9, 0))
    _, out = round_trip(photo, tmp_path / "pq.avif")
    with av.open(str(out)) as written:
        context = written.streams.video[0].codec_context
        assert (context.pix_fmt, context.color_primaries, context.color_trc) == ("yuv420p10le", 9, 16)
    assert not said(warnings_logged)
    pillow_heif = pytest.importorskip("pillow_heif", reason="HEIF needs pillow-heif (the test extra installs it)")
    as_heif = fit_format(photo, "HEIF", "pq.heic")
    write_photo(tmp_path / "pq.heic", as_heif.image, as_heif)
    heif = pillow_heif.open_heif(tmp_path / "pq.heic", convert_hdr_to_8bit=False)
    assert (heif.info["nclx_profile"]["transfer_characteristics"], heif.info["bit_depth"]) == (16, 10)
    assert not said(warnings_logged)


@pytest.mark.skipif(not __import__("PIL.features").features.check("avif"), reason="this Pillow has no AVIF codec")
def test_an_hdr_avif_without_an_av1_encoder_says_what_it_loses(tmp_path, rgb, warnings_logged, monkeypatch):
    """Where FFmpeg has no AV1 encoder to write it back in 10 bits, it is read and written at 8, through Pillow,
    and the depth and colour description lost are said in one line."""
    path = make_hdr_photo(tmp_path / "pq.avif", rgb)
    monkeypatch.setattr(deep_avif, "av1_encoder", lambda: None)
    monkeypatch.setattr(photo_write, "av1_encoder", lambda: None)
    photo = read_photo(path)
    assert (photo.coded_bits, photo.bit_depth, photo.nclx) == (10, 8, (9, 16, 9, 0))
    _, out = round_trip(photo, path)
    with av.open(str(out)) as written:
        assert written.streams.video[0].codec_context.color_trc != 16  # Pillow's writer: what the line says
    line = ("out_pq.avif: written as AVIF with 10 bits per channel to 8, its AVIF colour description (primaries 9, "
            "transfer 16) left out, which Pillow's AVIF writer does not write: viewers will show it as sRGB")
    assert said(warnings_logged) == {line}


@pytest.mark.skipif(not __import__("PIL.features").features.check("avif"), reason="this Pillow has no AVIF codec")
def test_avif_round_trip_keeps_exif_and_comes_upright(tmp_path, rgb):
    path = tmp_path / "a.avif"
    Image.fromarray(rgb).save(path, quality=95, exif=camera_exif(orientation=6))
    photo = read_photo(path)
    assert photo.format == "AVIF" and photo.image.shape == (64, 96, 3)
    assert close(photo.image, np.rot90(rgb, -1), 4.0)
    again, out = round_trip(photo, path)
    assert Image.open(out).format == "AVIF" and exif_of(out)[MAKE] == "NASA"
    assert again.image.shape == (64, 96, 3) and close(again.image, photo.image, 3.0)


def test_heic_without_pillow_heif_is_a_one_line_input_error(tmp_path, monkeypatch):
    monkeypatch.setattr(photo_read, "heif_support", lambda: False)
    path = tmp_path / "IMG_0002.HEIC"
    path.write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(100))
    with pytest.raises(InputError, match="pip install pillow-heif") as caught:
        read_photo(path)
    assert "\n" not in str(caught.value)


def test_write_is_atomic_and_leaves_nothing_on_failure(tmp_path, rgb):
    path = tmp_path / "a.png"
    Image.fromarray(rgb).save(path)
    photo = read_photo(path)
    target = tmp_path / "out.png"
    target.write_bytes(b"previous result")
    broken = replace(photo, format="NOSUCHFORMAT")
    with pytest.raises(ClrfaceError, match="NOSUCHFORMAT"):
        write_photo(target, rgb, broken)
    assert target.read_bytes() == b"previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "out.png"]


@pytest.mark.parametrize("content", [b"", b"not an image at all" * 20, None])
def test_unreadable_files_are_input_errors(tmp_path, rgb, content):
    path = tmp_path / "bad.jpg"
    if content is None:  # a truncated JPEG
        Image.fromarray(rgb).save(path, quality=95)
        path.write_bytes(path.read_bytes()[:300])
    else:
        path.write_bytes(content)
    with pytest.raises(InputError) as caught:
        read_photo(path)
    assert "\n" not in str(caught.value)


def test_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_photo(tmp_path / "nothing.png")


def test_sixteen_bit_png_orientation_is_applied(tmp_path, rgb):
    deep = rgb.astype(np.uint16) * 257
    source = read_photo(_write_cv2(tmp_path / "deep.png", deep))
    tagged = replace(source, exif=camera_exif(orientation=6).tobytes())
    write_photo(tmp_path / "tagged.png", deep, tagged)
    photo = read_photo(tmp_path / "tagged.png")
    assert photo.bit_depth == 16 and np.array_equal(photo.image, np.rot90(deep, -1))
    exif = Image.Exif()
    exif.load(photo.exif)
    assert exif[ORIENTATION] == 1 and exif[MAKE] == "NASA"
    with Image.open(tmp_path / "tagged.png") as image:
        assert image.getexif()[ORIENTATION] == 6


def marked(image: np.ndarray) -> np.ndarray:
    """The image with a black 16 x 16 square at its centre: what a restorer changed, as write_photo must show it."""
    out = image.copy()
    h, w = image.shape[0] // 2, image.shape[1] // 2
    out[h - 8:h + 8, w - 8:w + 8] = 0
    return out


@pytest.mark.parametrize(("suffix", "mode", "tolerance"), [(".jpg", "RGB", 6.0), (".jpg", "CMYK", 8.0), (".png", "RGB", 0.0),
                                                           (".webp", "RGB", 6.0), (".tif", "RGB", 0.0)])
def test_write_photo_writes_the_restored_pixels_not_the_source(tmp_path, rgb, suffix, mode, tolerance):
    path = tmp_path / f"a{suffix}"
    Image.fromarray(rgb).convert(mode).save(path, **({"quality": 95} if suffix == ".jpg" else {}))
    photo = read_photo(path)
    changed = marked(photo.image)
    again = read_photo(write_photo(tmp_path / f"out{suffix}", changed, photo))
    centre = (slice(42, 54), slice(26, 38))  # inside the square, clear of JPEG ringing at its edges
    assert again.image[centre].mean() <= 10 and photo.image[centre].mean() > 100  # the new square is there
    assert float(np.abs(again.image.astype(float) - changed.astype(float)).mean()) <= tolerance + 1e-9


def tiff_with_exif_date(path: Path, rgb: np.ndarray, orientation: int = 1, bigtiff: bool = False,
                        pointer: int = 4) -> Path:
    """A deflate-compressed TIFF (or BigTIFF: 64-bit counts and offsets) with maker, orientation and an Exif
    sub-IFD holding DateTimeOriginal, as a scanner or Lightroom writes one: tifffile writes a placeholder tag,
    which becomes the sub-IFD's pointer, of type `pointer` (LONG; a BigTIFF's may be IFD8, 18, as libtiff and
    tifffile write sub-IFD pointers in one)."""
    import tifffile

    count, offset = ("<Q", "Q") if bigtiff else ("<H", "I")  # an IFD's entry count; an entry's count and value
    entry = "<HH" + offset * 2
    tifffile.imwrite(path, rgb, photometric="rgb", compression="zlib", metadata=None, bigtiff=bigtiff,
                     extratags=[(271, "s", 0, "Epson", True), (274, "H", 1, orientation, True),
                                (65000, offset, 1, 0xDEADBEEF, True)])
    data = bytearray(path.read_bytes())
    placeholder = data.find(struct.pack(entry, 65000, 16 if bigtiff else 4, 1, 0xDEADBEEF))  # LONG8 or LONG
    data += b"\x00" * (len(data) & 1)
    at = len(data)
    date = b"1962:07:14 10:00:00\x00"
    last = bytes(struct.calcsize("<" + offset))  # the sub-IFD's next IFD: none
    size = struct.calcsize(count) + struct.calcsize(entry) + len(last)
    data += struct.pack(count, 1) + struct.pack(entry, 0x9003, 2, len(date), at + size) + last + date
    data[placeholder:placeholder + struct.calcsize(entry)] = struct.pack(entry, 0x8769, pointer, 1, at)
    path.write_bytes(bytes(data))
    return path


def test_a_compressed_tiff_with_exif_date_and_orientation_is_written_whole(tmp_path, rgb, warnings_logged):
    path = tiff_with_exif_date(tmp_path / "scan.tif", np.ascontiguousarray(np.rot90(rgb, 1)), orientation=6)
    with Image.open(path) as source:
        assert source.info["compression"] == "tiff_adobe_deflate"
        assert source.getexif().get_ifd(0x8769)[0x9003] == "1962:07:14 10:00:00"
    photo = read_photo(path)
    out = write_photo(tmp_path / "out.tif", marked(photo.image), photo)  # libtiff refused its EXIF before
    with Image.open(out) as written:
        exif = written.getexif()
        assert exif.get_ifd(0x8769)[0x9003] == "1962:07:14 10:00:00" and exif[MAKE] == "Epson"
        assert exif.get(ORIENTATION, 1) == 1 and written.size == (photo.image.shape[1], photo.image.shape[0])
    assert np.array_equal(read_photo(out).image, marked(photo.image))
    assert "uncompressed TIFF to keep its EXIF" in warnings_logged.text


@pytest.mark.parametrize("depth", [8, 16])
@pytest.mark.parametrize("bigtiff", [False, True])
def test_a_bigtiff_with_exif_is_written_as_a_bigtiff_with_its_exif(tmp_path, rgb, warnings_logged, depth, bigtiff):
    """Regression: a BigTIFF's EXIF was read as BigTIFF bytes, which Pillow cannot load again, so a scan in one
    with EXIF was never written ("cannot write out.tif as TIFF (unpack requires a buffer of 8 bytes)"). Its EXIF
    is now classic TIFF bytes, as everywhere, and it is written as a BigTIFF (a classic TIFF as one) at its own
    depth, with what a classic TIFF keeps at that depth: at 8 bits its whole EXIF, at 16 its text tags (tifffile
    writes no Exif sub-IFD: its camera tags left out, warned)."""
    import tifffile

    pixels = rgb if depth == 8 else rgb.astype(np.uint16) * 257
    photo = read_photo(tiff_with_exif_date(tmp_path / "scan.tif", pixels, bigtiff=bigtiff))
    assert photo.bit_depth == depth
    out = write_photo(tmp_path / "out.tif", marked(photo.image), photo)
    with tifffile.TiffFile(out) as written:
        assert written.is_bigtiff == bigtiff and written.pages[0].dtype == pixels.dtype
    with Image.open(out) as written:
        exif = written.getexif()
        assert exif[MAKE] == "Epson" and exif.get_ifd(0x8769).get(0x9003) == (
            "1962:07:14 10:00:00" if depth == 8 else None)
    assert np.array_equal(read_photo(out).image, marked(photo.image))
    assert ("its EXIF camera and GPS tags are left out" in warnings_logged.text) == (depth == 16)


def test_a_bigtiffs_exif_goes_into_a_jpeg_readable(tmp_path, rgb):
    """Regression: a JPEG made from a BigTIFF held its EXIF as BigTIFF bytes, which no reader took: its maker
    and date were gone. Now they are read back from the JPEG."""
    photo = read_photo(tiff_with_exif_date(tmp_path / "scan.tif", rgb, bigtiff=True))
    out = write_photo(tmp_path / "out.jpg", photo.image, fit_format(photo, "JPEG"))
    with Image.open(out) as written:
        exif = written.getexif()
        assert exif[MAKE] == "Epson" and exif.get_ifd(0x8769)[0x9003] == "1962:07:14 10:00:00"


@pytest.mark.parametrize("out", ["out.tif", "out.jpg"])
def test_a_bigtiffs_exif_pointed_to_as_ifd8_is_kept(tmp_path, rgb, out):
    """A BigTIFF's Exif pointer stored as IFD8 (type 18: tifffile writes sub-IFD pointers so in a BigTIFF) is one
    Pillow does not know: its camera EXIF, DateTimeOriginal here, was left out without a word. It is read now
    (io.bigtiff_exif), and written into a TIFF or a JPEG made from it, with the maker of the first IFD."""
    import tifffile

    source = tiff_with_exif_date(tmp_path / "scan.tif", rgb, bigtiff=True, pointer=18)
    with tifffile.TiffFile(source) as tiff:  # as tifffile reads it: the date is there
        assert tiff.pages[0].tags[34665].dtype == 18
        assert tiff.pages[0].tags[34665].value["DateTimeOriginal"] == "1962:07:14 10:00:00"
    photo = read_photo(source)
    written = write_photo(tmp_path / out, marked(photo.image), photo if out.endswith(".tif") else
                          fit_format(photo, "JPEG"))
    with Image.open(written) as image:
        exif = image.getexif()
        assert exif[MAKE] == "Epson" and exif.get_ifd(0x8769).get(0x9003) == "1962:07:14 10:00:00"


def test_exif_with_a_damaged_tag_is_kept_as_it_came(tmp_path, rgb):
    exif = camera_exif()
    exif[0x011A] = 72.0  # XResolution (RATIONAL) ...
    raw = bytearray(exif.tobytes())  # big-endian ("MM"), each entry: tag, type 5 (RATIONAL), ...
    at = raw.find(b"\x01\x1a\x00\x05")  # ... renumbered Threshholding (a SHORT): Pillow cannot write it again
    raw[at:at + 2] = b"\x01\x07"
    path = tmp_path / "phone.jpg"
    Image.fromarray(rgb).save(path, exif=bytes(raw))
    photo = read_photo(path)
    out = write_photo(tmp_path / "out.jpg", marked(photo.image), photo)
    with Image.open(out) as written:
        assert written.info["exif"] == Image.open(path).info["exif"] and written.getexif()[MAKE] == "NASA"


def test_exif_pillow_reads_no_tag_of_is_kept_and_said_in_one_line_naming_the_photo(tmp_path, rgb, warnings_logged):
    """A damaged first IFD (its entry count past the block's end: an old camera's, an editor's cut) made Pillow print
    two lines naming its own source file ('TiffImagePlugin.py:982: UserWarning: Corrupt EXIF data...'), outside -q
    and the report, and the restored copy came without any EXIF: Pillow read no tag, so none was written."""
    import warnings

    from clrface_video.io.multi_picture import picture_count

    raw = b"Exif\x00\x00II*\x00\x08\x00\x00\x00\xff\xff" + bytes(40)  # 65535 entries in 40 bytes
    path = tmp_path / "old camera.jpg"
    Image.fromarray(rgb).save(path, quality=95)
    jpeg = path.read_bytes()
    path.write_bytes(jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(raw) + 2) + raw + jpeg[2:])
    with warnings.catch_warnings(record=True) as printed:
        warnings.simplefilter("always")
        assert picture_count(path) == 1  # a folder's look at it first, said by read_photo
        photo = read_photo(path)
    assert not printed, [str(warning.message) for warning in printed]
    lines = said(warnings_logged)  # Pillow's words, as its version has them
    assert len(lines) == 1 and next(iter(lines)).startswith("old camera.jpg: Corrupt EXIF data"), lines
    out = write_photo(tmp_path / "out.jpg", marked(photo.image), photo)
    assert out.read_bytes().count(raw) == 1


@pytest.mark.parametrize("orientation", [1, 6])
def test_a_jpegs_extended_xmp_is_kept_or_said_left_out_for_a_turned_photo(tmp_path, rgb, orientation,
                                                                         warnings_logged):
    """XMP past one segment's 64 KB goes into extended-XMP APP1 segments (Photoshop's DocumentAncestors, a phone's
    depth map), which the standard XMP names (xmpNote:HasExtendedXMP). Pillow reads none of them: the restored copy
    lost them all, its XMP still pointing at them. A turned photo, written upright, leaves them out and says so."""
    signature = b"http://ns.adobe.com/xmp/extension/\x00"  # XMP Part 3's, before each segment's GUID
    extended = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF>' + b"D" * 70000 + b"</rdf:RDF></x:xmpmeta>"
    guid = b"0123456789ABCDEF0123456789ABCDEF"
    payloads = [signature + guid + struct.pack(">II", len(extended), at) + extended[at:at + 65000]
                for at in range(0, len(extended), 65000)]
    path = tmp_path / "portrait.jpg"
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><xmpNote:HasExtendedXMP>' + guid + b"</xmpNote:HasExtendedXMP>"
    Image.fromarray(rgb).save(path, quality=95, xmp=xmp + b"</x:xmpmeta>", exif=camera_exif(orientation))
    jpeg = path.read_bytes()
    path.write_bytes(jpeg[:2] + b"".join(b"\xff\xe1" + struct.pack(">H", len(p) + 2) + p for p in payloads) + jpeg[2:])
    out = write_photo(tmp_path / "out.jpg", marked(read_photo(path).image), read_photo(path))
    with Image.open(out) as written:
        kept = [data for marker, data in written.applist if marker == "APP1" and data.startswith(signature)]
    if orientation == 1:
        assert kept == payloads and not warnings_logged.records
        png = fit_format(read_photo(path), "PNG", "portrait.png")  # -o portrait.png: said once, not again on writing
        write_photo(tmp_path / "portrait.png", png.image, png)
        line = (f"portrait.png: written as PNG with its extended XMP ({sum(map(len, payloads))} bytes) left out, "
                "which a JPEG output keeps")
        assert [record.getMessage() for record in warnings_logged.records] == [line]
    else:
        line = (f"portrait.jpg: its extended XMP ({sum(map(len, payloads))} bytes) left out: it describes the "
                "photo as stored, turned, and the restored copy is upright")
        assert not kept and said(warnings_logged) == {line}


def test_a_phones_own_jpeg_segments_are_kept_byte_for_byte_and_its_thumbnails_left_out(tmp_path, rgb,
                                                                                      warnings_logged):
    """A Samsung phone's JPEG carries its camera's capture data in APP5-APP8 (256 KB in gpen_selfie_5.jpg), which
    Pillow's writer, given only EXIF, XMP and ICC, dropped. They come back byte for byte, in order; a JFIF thumbnail
    (JFXX) and FlashPix preview (FPXR), which show the faces unrestored, are left out in one warning; a PNG output
    says it has no place for them."""
    samsung = bytes(range(256)) * 255  # 65280 bytes, near a segment's most
    segments = [(0xE0, b"JFXX\x00\x13" + bytes(20)), (0xE5, samsung), (0xE2, b"FPXR\x00\x00\x01" + bytes(40)),
                (0xE8, b"\x01" * 1000)]
    path = tmp_path / "selfie.jpg"
    Image.fromarray(rgb).save(path, quality=95, exif=camera_exif())
    jpeg = path.read_bytes()
    at = 2 + 2 + struct.unpack_from(">H", jpeg, 4)[0]  # past Pillow's JFIF APP0
    path.write_bytes(jpeg[:at] + b"".join(b"\xff" + bytes([marker]) + struct.pack(">H", len(data) + 2) + data
                                          for marker, data in segments) + jpeg[at:])
    photo = read_photo(path)
    out = write_photo(tmp_path / "out.jpg", marked(photo.image), photo)
    with Image.open(out) as written:
        applist = written.applist
        assert written.getexif()[MAKE] == "NASA"
    assert [(marker, data) for marker, data in applist if marker in ("APP5", "APP8")] == \
        [("APP5", samsung), ("APP8", b"\x01" * 1000)]
    assert not [data for _, data in applist if data.startswith((b"JFXX", b"FPXR"))]
    line = ("out.jpg: its JFIF thumbnail (APP0 JFXX) and FlashPix preview data (APP2 FPXR) left out: they show the "
            "photo as it was, its faces unrestored")
    assert said(warnings_logged) == {line}
    warnings_logged.clear()
    fit_format(photo, "PNG", "selfie.png")
    line = (f"selfie.png: written as PNG with its camera maker's JPEG segments (APP5, APP8: {len(samsung) + 1000} "
            "bytes) left out, which a JPEG output keeps")
    assert said(warnings_logged) == {line}


COPYRIGHT, ARTIST, LENS = 0x8298, 0x013B, 0xA434


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp", ".tif"])
def test_exif_text_in_utf8_or_latin1_is_kept_byte_for_byte(tmp_path, rgb, suffix):
    """Cameras and editors write UTF-8 (or Latin-1) into EXIF's ASCII tags (a copyright's ©). Written again through
    Pillow's tags it came out as '?' for every byte above 127; a turned photo keeps every byte but the orientation."""
    exif = camera_exif(orientation=6)
    exif[COPYRIGHT], exif[ARTIST] = "© 2009 José Müller".encode(), "Zo\xeb".encode("latin-1")
    if suffix != ".tif":  # a TIFF's writer (Pillow's) types the Exif IFD's bytes as numbers: its text is ASCII
        exif.get_ifd(0x8769)[LENS] = "Objektiv Grosse! 50"  # made UTF-8 below, where Pillow would type bytes
    path = tmp_path / f"family{suffix}"
    raw = exif.tobytes().replace(b"Grosse!", "Größe".encode())
    Image.fromarray(np.ascontiguousarray(np.rot90(rgb, 1))).save(path, exif=raw if suffix != ".tif" else exif)
    photo = read_photo(path)
    out = write_photo(tmp_path / f"out{suffix}", marked(photo.image), photo)
    with Image.open(out) as written:
        kept = written.getexif()
        assert kept[COPYRIGHT].encode("latin-1") == "© 2009 José Müller".encode()
        assert kept[ARTIST].encode("latin-1") == b"Zo\xeb" and kept[MAKE] == "NASA" and kept.get(ORIENTATION, 1) == 1
        if suffix != ".tif":  # the rest of the bytes as they came (a TIFF's first IFD also holds its pixel layout)
            assert kept.get_ifd(0x8769)[LENS].encode("latin-1") == "Objektiv Größe 50".encode()
            before, after = (Image.open(path).info["exif"], written.info["exif"])
            moved = [i for i, (a, b) in enumerate(zip(before, after)) if a != b]
            assert len(before) == len(after) and len(moved) == 1 and (before[moved[0]], after[moved[0]]) == (6, 1)


EXIF_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "TIFF": ".tif", "HEIF": ".heic", "AVIF": ".avif"}


def _can_hold_exif(fmt: str) -> bool:
    """Whether this install reads and writes `fmt` (HEIC needs pillow-heif, AVIF a Pillow built with libavif)."""
    if fmt == "HEIF":
        return photo_read.heif_support()
    return fmt != "AVIF" or __import__("PIL.features").features.check("avif")


@pytest.mark.parametrize("target", EXIF_FORMATS)
@pytest.mark.parametrize("source", EXIF_FORMATS)
def test_a_photos_date_camera_and_place_survive_a_change_of_format(tmp_path, rgb, source, target):
    """Each format that carries EXIF into each other one (restore x.webp -o x.jpg): the JPEG writer takes EXIF
    with its APP1 header (Exif and two zero bytes), which a WebP's EXIF chunk has not; the JPEG came out with the bytes
    but no header, and readers found no EXIF in it (no date, camera or place)."""
    from clrface_video.pipeline import output_format

    if not (_can_hold_exif(source) and _can_hold_exif(target)):
        pytest.skip(f"this install does not write {source} and {target}")
    exif = camera_exif(orientation=6)
    exif.get_ifd(0x8769)[0x9003] = "2019:05:04 12:34:56"  # DateTimeOriginal
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (51.0, 30.0, 0.0)  # GPSLatitudeRef, GPSLatitude
    path = tmp_path / f"photo{EXIF_FORMATS[source]}"
    Image.fromarray(np.ascontiguousarray(np.rot90(rgb, 1))).save(path, format=source, exif=exif.tobytes())
    photo = read_photo(path)
    out = tmp_path / f"out{EXIF_FORMATS[target]}"
    written = output_format(photo, out)
    write_photo(out, marked(written.image), written)
    with Image.open(out) as again:  # a TIFF's sub-IFDs are read from the open file
        kept = again.getexif()
        camera, place = kept.get_ifd(0x8769), kept.get_ifd(0x8825)
    assert (kept.get(MAKE), camera.get(0x9003)) == ("NASA", "2019:05:04 12:34:56")
    assert (place.get(1), place.get(2)) == ("N", (51.0, 30.0, 0.0)) and kept.get(ORIENTATION, 1) == 1


@pytest.mark.parametrize("bulk", ["maker note", "comment"])
def test_exif_past_a_jpegs_64_kb_is_trimmed_not_the_photo_refused(tmp_path, rgb, warnings_logged, bulk):
    """A PNG whose EXIF holds 70 KB (a camera's maker note, or a long comment) failed as a whole into a JPEG
    ("EXIF data is too long"); the maker note is left out, or where that is not enough the EXIF, each warned of."""
    from clrface_video.pipeline import output_format

    exif = camera_exif()
    exif.get_ifd(0x8769)[0x9003] = "2019:05:04 12:34:56"  # DateTimeOriginal
    exif.get_ifd(0x8769)[0x927C if bulk == "maker note" else 0x9286] = bytes(70_000)  # MakerNote, UserComment
    path = tmp_path / "scan.png"
    Image.fromarray(rgb).save(path, exif=exif.tobytes())
    photo = read_photo(path)
    out = tmp_path / "scan.jpg"
    written = output_format(photo, out)
    write_photo(out, marked(written.image), written)
    with Image.open(out) as again:
        kept = again.getexif()
        assert again.size == (rgb.shape[1], rgb.shape[0])
    if bulk == "maker note":
        assert kept.get(MAKE) == "NASA" and kept.get_ifd(0x8769).get(0x9003) == "2019:05:04 12:34:56"
        assert 0x927C not in kept.get_ifd(0x8769) and "without the camera's maker note" in warnings_logged.text
    else:
        assert not kept and "its EXIF (68 KB) left out, which a JPEG holds 64 KB of" in warnings_logged.text


def test_a_turned_photos_thumbnail_is_unlinked_and_an_upright_ones_kept(tmp_path, rgb):
    """The EXIF thumbnail (IFD1) of a photo stored sideways is sideways too: kept beside orientation 1 it would
    show turned in file browsers that use it. It is unlinked where the photo was turned, kept where it was not."""
    import struct

    for orientation in (6, 1):
        raw = bytearray(camera_exif(orientation).tobytes())  # "Exif\0\0", big-endian TIFF
        entries = struct.unpack_from(">H", raw, 6 + 8)[0]
        link = 6 + 8 + 2 + 12 * entries  # the first IFD's "next IFD" offset
        thumbnail_ifd = len(raw) - 6  # from the TIFF header
        struct.pack_into(">I", raw, link, thumbnail_ifd)
        raw += struct.pack(">HHHII", 1, 0x0103, 3, 1, 6 << 16) + struct.pack(">I", 0)  # IFD1: JPEG compression
        path = tmp_path / f"o{orientation}.jpg"
        Image.fromarray(rgb).save(path, exif=bytes(raw))
        photo = read_photo(path)
        kept = Image.Exif()
        kept.load(photo.exif)
        assert kept.get(ORIENTATION) == 1 and kept[MAKE] == "NASA"
        assert struct.unpack_from(">I", photo.exif, link)[0] == (0 if orientation == 6 else thumbnail_ifd)
        if orientation == 1:
            assert photo.exif == bytes(raw)


def test_a_turned_photos_size_tags_and_thumbnail_follow_its_written_pixels(tmp_path, rgb):
    """A photo turned upright is written with its width and height swapped: the EXIF's PixelXDimension and
    PixelYDimension and XMP's copies of the size say the written size, and its sideways thumbnail (IFD1) is not
    left in the bytes; every other tag is kept."""
    exif = camera_exif(orientation=6)
    exif.get_ifd(0x8769).update({0xA002: 96, 0xA003: 64, 0x9003: "2019:07:04 12:00:00"})  # as stored: 96 x 64
    raw = bytearray(exif.tobytes())  # "Exif\0\0", big-endian TIFF
    entries = struct.unpack_from(">H", raw, 6 + 8)[0]
    sideways = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(np.rot90(rgb, 1))[::8, ::8]).save(sideways, format="JPEG")
    thumbnail_ifd = len(raw) - 6
    struct.pack_into(">I", raw, 6 + 8 + 2 + 12 * entries, thumbnail_ifd)
    raw += struct.pack(">H", 3) + struct.pack(">HHIHxx", 0x0103, 3, 1, 6) \
        + struct.pack(">HHII", 0x0201, 4, 1, thumbnail_ifd + 2 + 36 + 4) \
        + struct.pack(">HHII", 0x0202, 4, 1, len(sideways.getvalue())) + struct.pack(">I", 0) + sideways.getvalue()
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description tiff:Orientation="6" tiff:ImageWidth="96" ' \
          b'tiff:ImageLength = "64" xmlns:tiff="http://ns.adobe.com/tiff/1.0/"><exif:PixelXDimension>96' \
          b'</exif:PixelXDimension><exif:PixelYDimension>64</exif:PixelYDimension></rdf:Description></x:xmpmeta>'
    path = tmp_path / "side.jpg"
    Image.fromarray(np.ascontiguousarray(np.rot90(rgb, 1))).save(path, exif=bytes(raw), xmp=xmp)
    assert path.read_bytes().count(b"\xff\xd8\xff") == 2  # the photo and its thumbnail
    photo = read_photo(path)
    out = write_photo(tmp_path / "out.jpg", marked(photo.image), photo)
    with Image.open(out) as written:
        kept, camera = written.getexif(), written.getexif().get_ifd(0x8769)
        assert written.size == (64, 96) and (camera[0xA002], camera[0xA003]) == (64, 96)
        assert kept[ORIENTATION] == 1 and kept[MAKE] == "NASA" and camera[0x9003] == "2019:07:04 12:00:00"
        assert b'tiff:ImageWidth="64"' in written.info["xmp"] and b'tiff:ImageLength = "96"' in written.info["xmp"]
        assert b"<exif:PixelXDimension>64<" in written.info["xmp"] and b">96</exif:PixelYDimension>" in \
            written.info["xmp"]
    assert out.read_bytes().count(b"\xff\xd8\xff") == 1  # no sideways thumbnail left in the EXIF


def test_xmp_orientation_is_reset_with_the_exif_one(tmp_path, rgb):
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description tiff:Orientation="6" ' \
          b'xmlns:tiff="http://ns.adobe.com/tiff/1.0/"/></x:xmpmeta>'
    path = tmp_path / "side.jpg"
    Image.fromarray(np.ascontiguousarray(np.rot90(rgb, 1))).save(path, exif=camera_exif(6), xmp=xmp)
    photo = read_photo(path)
    assert photo.image.shape == rgb.shape and b'tiff:Orientation="1"' in photo.xmp
    with Image.open(write_photo(tmp_path / "out.jpg", photo.image, photo)) as written:
        assert b'tiff:Orientation="1"' in written.info["xmp"] and written.getexif()[ORIENTATION] == 1


def _regions_xmp(width: int, height: int, area: tuple[float, ...], rectangle: tuple[float, ...]) -> bytes:
    """XMP with one face as an iPhone writes it (MWG region, elements, on the stored pixels: AppliedToDimensions is
    the stored size) and as Windows Photo Gallery does (MP region, top-left rectangle, an attribute)."""
    x, y, w, h = (str(value).encode() for value in area)
    return b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">' \
        b'<rdf:Description rdf:about="" xmlns:mwg-rs="http://www.metadataworkinggroup.com/schemas/regions/" ' \
        b'xmlns:stArea="http://ns.adobe.com/xmp/sType/Area#" xmlns:stDim="http://ns.adobe.com/xap/1.0/sType/' \
        b'Dimensions#" xmlns:MP="http://ns.microsoft.com/photo/1.2/" xmlns:MPRI="http://ns.microsoft.com/photo/1.2/' \
        b't/RegionInfo#" xmlns:MPReg="http://ns.microsoft.com/photo/1.2/t/Region#">' \
        b'<mwg-rs:Regions rdf:parseType="Resource"><mwg-rs:RegionList><rdf:Seq><rdf:li rdf:parseType="Resource">' \
        b'<mwg-rs:Area rdf:parseType="Resource"><stArea:y>' + y + b'</stArea:y><stArea:w>' + w + b'</stArea:w>' \
        b'<stArea:x>' + x + b'</stArea:x><stArea:h>' + h + b'</stArea:h><stArea:unit>normalized</stArea:unit>' \
        b'</mwg-rs:Area><mwg-rs:Type>Face</mwg-rs:Type></rdf:li></rdf:Seq></mwg-rs:RegionList>' \
        b'<mwg-rs:AppliedToDimensions rdf:parseType="Resource"><stDim:h>' + str(height).encode() + \
        b'</stDim:h><stDim:w>' + str(width).encode() + b'</stDim:w><stDim:unit>pixel</stDim:unit>' \
        b'</mwg-rs:AppliedToDimensions></mwg-rs:Regions><MP:RegionInfo rdf:parseType="Resource"><MPRI:Regions>' \
        b'<rdf:Bag><rdf:li MPReg:Rectangle="' + ", ".join(map(str, rectangle)).encode() + b'"/></rdf:Bag>' \
        b'</MPRI:Regions></MP:RegionInfo></rdf:Description></rdf:RDF></x:xmpmeta>'


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_turned_photos_face_regions_follow_its_pixels(tmp_path, orientation):
    """MWG regions are on the stored pixels ('Region metadata is applied to the stored image. When applying a
    rotation by applying Exif Orientation, the rotation must be applied to the regions as well', MWG guidelines
    2.0, 5.9), as an iPhone writes them (gpen_selfie_3.jpg, orientation 6: AppliedToDimensions 4032 x 3024, the
    stored size, and its face box on the stored picture). Restored upright with orientation 1, a face's box (and a
    Microsoft region's rectangle) stayed where the stored picture had it: on the chin and hands of the upright
    one. Here a dark box stands for the face: the written regions must frame it in the written pixels."""
    stored = np.full((60, 90, 3), 200, np.uint8)
    stored[10:25, 50:80] = 0  # the "face", off centre, 30 x 15 in the stored pixels
    area = (65 / 90, 17.5 / 60, 30 / 90, 15 / 60)  # MWG: centre and size, normalized
    rectangle = (50 / 90, 10 / 60, 30 / 90, 15 / 60)  # MP: top-left corner and size
    path = tmp_path / "side.jpg"
    Image.fromarray(stored).save(path, quality=95, exif=camera_exif(orientation),
                                 xmp=_regions_xmp(90, 60, area, rectangle))
    photo = read_photo(path)
    out = write_photo(tmp_path / "out.jpg", marked(photo.image), photo)
    height, width = photo.image.shape[:2]
    rows, columns = np.nonzero(photo.image[..., 0] < 100)
    top, left = rows.min() / height, columns.min() / width
    h, w = (rows.max() + 1) / height - top, (columns.max() + 1) / width - left
    with Image.open(out) as written:
        xmp = written.info["xmp"]
    found = {key.decode(): float(value) for key, value in re.findall(rb"<stArea:([xywh])>([0-9.e-]+)<", xmp)}
    assert found == pytest.approx({"x": left + w / 2, "y": top + h / 2, "w": w, "h": h}, abs=1e-6)
    (windows,) = re.findall(rb'MPReg:Rectangle="([^"]+)"', xmp)
    assert [float(value) for value in windows.split(b",")] == pytest.approx([left, top, w, h], abs=1e-6)
    size = {key.decode(): int(value) for key, value in re.findall(rb"<stDim:([wh])>(\d+)<", xmp)}
    assert size == {"w": width, "h": height}  # the size the regions apply to: the written one


def test_lossless_webp_stays_lossless(tmp_path, rgb):
    path = tmp_path / "a.webp"
    Image.fromarray(rgb).save(path, lossless=True)
    photo = read_photo(path)
    out = write_photo(tmp_path / "out.webp", marked(photo.image), photo)
    assert b"VP8L" in out.read_bytes()[:64] and np.array_equal(read_photo(out).image, marked(photo.image))
    lossy = tmp_path / "b.webp"
    Image.fromarray(rgb).save(lossy, quality=80)
    assert b"VP8L" not in write_photo(tmp_path / "out_b.webp", rgb, read_photo(lossy)).read_bytes()[:64]


def test_jpeg_keeps_progressive_comment_and_iptc(tmp_path, rgb):
    caption = b"\x1c\x02\x78\x00\x0cGrandma 1962"  # IPTC record 2, dataset 120 (caption)
    resource = b"8BIM\x04\x04\x00\x00" + len(caption).to_bytes(4, "big") + caption
    app13 = b"Photoshop 3.0\x00" + resource
    path = tmp_path / "family.jpg"
    Image.fromarray(rgb).save(path, progressive=True, comment=b"family 2001",
                              extra=b"\xff\xed" + (len(app13) + 2).to_bytes(2, "big") + app13)
    photo = read_photo(path)
    out = write_photo(tmp_path / "out.jpg", marked(photo.image), photo)
    with Image.open(out) as written:
        assert written.info.get("progressive") and written.info["comment"] == b"family 2001"
        assert ("APP13", app13) in written.applist


def test_png_keeps_its_text_and_xmp(tmp_path, rgb):
    from PIL.PngImagePlugin import PngInfo

    xmp = '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:li>grandma</rdf:li></x:xmpmeta>'
    info = PngInfo()
    info.add_text("Description", "Grandma 1962")
    info.add_itxt("Copyright", "J. Dœ")
    info.add_itxt("XML:com.adobe.xmp", xmp)
    path = tmp_path / "a.png"
    Image.fromarray(rgb).save(path, pnginfo=info)
    out = write_photo(tmp_path / "out.png", marked(read_photo(path).image), read_photo(path))
    with Image.open(out) as written:
        assert written.text == {"Description": "Grandma 1962", "Copyright": "J. Dœ", "XML:com.adobe.xmp": xmp}


def test_sixteen_bit_png_keeps_its_text_and_xmp(tmp_path, rgb):
    """A 16-bit RGB PNG is written through OpenCV, which writes no text chunks: they are added to its bytes."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    xmp = '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:li>grandma</rdf:li></x:xmpmeta>'
    png = _write_cv2(tmp_path / "deep.png", rgb.astype(np.uint16) * 257).read_bytes()
    texts = chunk(b"tEXt", b"Description\x00Grandma 1962") + \
        chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + xmp.encode())
    (tmp_path / "deep.png").write_bytes(png[:33] + texts + png[33:])
    photo = read_photo(tmp_path / "deep.png")
    assert photo.bit_depth == 16
    out = write_photo(tmp_path / "out.png", marked(photo.image), photo)
    with Image.open(out) as written:
        assert written.text == {"Description": "Grandma 1962", "XML:com.adobe.xmp": xmp}
    assert np.array_equal(read_photo(out).image, marked(photo.image))


# a PNG's colour chunks: file gamma (x 100000), white point and primaries (BT.709, D65), sRGB rendering intent
GAMA_LINEAR, GAMA_SRGB = (b"gAMA", struct.pack(">I", 100000)), (b"gAMA", struct.pack(">I", 45455))
CHRM_709 = (b"cHRM", struct.pack(">8I", 31270, 32900, 64000, 33000, 30000, 60000, 15000, 6000))
SRGB_PERCEPTUAL = (b"sRGB", b"\x00")  # intent 0: a falsy number, kept all the same
COLOUR_CHUNKS = (b"gAMA", b"cHRM", b"sRGB")


def png_at_depth(path: Path, rgb: np.ndarray, depth: str) -> Path:
    """`rgb` as an 8-bit RGB, 16-bit RGB (OpenCV's writer) or 16-bit grey (Pillow's) PNG: write_photo's three
    ways of writing one."""
    if depth == "16-bit":
        return _write_cv2(path, rgb.astype(np.uint16) * 257 + 3)
    Image.fromarray(rgb if depth == "8-bit" else rgb[..., 1].astype(np.uint16) * 257 + 3).save(path)
    return path


@pytest.mark.parametrize("depth", ["8-bit", "16-bit", "16-bit grey"])
@pytest.mark.parametrize("chunks", [[GAMA_LINEAR], [GAMA_SRGB, CHRM_709, SRGB_PERCEPTUAL]], ids=["linear", "srgb"])
def test_png_keeps_its_gamma_chromaticity_and_srgb_chunks(tmp_path, rgb, depth, chunks):
    """Without an ICC profile, gAMA, cHRM and sRGB are how a colour-managed viewer renders a PNG: each comes back
    byte for byte before the pixels, and none that the source did not have."""
    path = add_png_chunks(png_at_depth(tmp_path / "a.png", rgb, depth), chunks)
    photo = read_photo(path)
    assert photo.bit_depth == (8 if depth == "8-bit" else 16)
    out = write_photo(tmp_path / "out.png", marked(photo.image), photo)
    written = {kind: data for kind, data in png_chunks(out).items() if kind in COLOUR_CHUNKS}
    assert written == dict(chunks)
    assert np.array_equal(read_photo(out).image, marked(photo.image))


@pytest.mark.parametrize("depth", ["8-bit", "16-bit", "16-bit grey"])
def test_png_keeps_its_resolution(tmp_path, rgb, depth):
    """pHYs (pixels per metre, here 72 x 144 dpi) comes back byte for byte, a 16-bit RGB PNG's (OpenCV's writer)
    as Pillow's PNGs'."""
    phys = (b"pHYs", struct.pack(">IIB", 2835, 5669, 1))
    photo = read_photo(add_png_chunks(png_at_depth(tmp_path / "a.png", rgb, depth), [phys]))
    out = write_photo(tmp_path / "out.png", marked(photo.image), photo)
    assert png_chunks(out).get(b"pHYs") == phys[1]


RESOLUTION_TAGS = (282, 283, 296)  # XResolution, YResolution, ResolutionUnit


@pytest.mark.parametrize("dpi", [None, (300.0, 600.0)], ids=["none", "300x600"])
@pytest.mark.parametrize("depth", ["8-bit", "16-bit"])
def test_a_tiff_keeps_its_resolution_or_its_lack_of_one(tmp_path, rgb, depth, dpi):
    """A TIFF without resolution tags came back with 1 x 1 dots per inch (Pillow reads a TIFF without them as 1
    dpi; tifffile, the 16-bit writer, writes 1 x 1 of no unit where given none): a layout program read a scan as
    hundreds of inches wide. Absent tags stay absent, given ones are kept (16-bit source: OpenCV's LZW writer)."""
    import tifffile

    path = tmp_path / "scan.tif"
    if depth == "8-bit":
        Image.fromarray(rgb).save(path, **({"dpi": dpi} if dpi else {}))
    elif dpi:
        tifffile.imwrite(path, rgb.astype(np.uint16) * 257, photometric="rgb", resolution=dpi,
                         resolutionunit="INCH", metadata=None)
    else:
        cv2.imwrite(str(path), rgb[..., ::-1].astype(np.uint16) * 257)
    with Image.open(path) as source:
        assert all((tag in source.tag_v2) == bool(dpi) for tag in RESOLUTION_TAGS)
    photo = read_photo(path)
    out = write_photo(tmp_path / "out.tif", marked(photo.image), photo)
    with Image.open(out) as written:
        tags = {tag: written.tag_v2.get(tag) for tag in RESOLUTION_TAGS}
    assert tags == ({282: dpi[0], 283: dpi[1], 296: 2} if dpi else dict.fromkeys(RESOLUTION_TAGS))
    assert np.array_equal(read_photo(out).image, marked(photo.image))


@pytest.mark.parametrize("depth", ["8-bit", "16-bit"])
def test_png_with_an_icc_profile_keeps_gamma_and_chromaticity_but_not_srgb(tmp_path, rgb, icc, depth,
                                                                            warnings_logged):
    """iCCP overrides gAMA and cHRM, which stay as the source had them; the PNG spec forbids sRGB beside iCCP,
    so a source with both loses its sRGB, with a warning, and keeps its profile."""
    iccp = (b"iCCP", b"icc\x00\x00" + zlib.compress(icc))
    path = add_png_chunks(png_at_depth(tmp_path / "a.png", rgb, depth),
                          [GAMA_LINEAR, CHRM_709, SRGB_PERCEPTUAL, iccp])
    photo = read_photo(path)
    assert photo.icc == icc
    out = write_photo(tmp_path / "out.png", marked(photo.image), photo)
    written = png_chunks(out)
    assert {kind: written[kind] for kind in COLOUR_CHUNKS if kind in written} == dict([GAMA_LINEAR, CHRM_709])
    assert read_photo(out).icc == icc
    assert "out.png: its sRGB chunk is left out: the PNG spec forbids it beside an ICC profile" in warnings_logged.text


def test_sixteen_bit_tiff_keeps_its_text_tags_and_xmp(tmp_path, rgb):
    import tifffile

    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:li>grandma</rdf:li></x:xmpmeta>'
    path = tmp_path / "scan16.tif"
    tifffile.imwrite(path, rgb.astype(np.uint16) * 257, photometric="rgb", compression="zlib", metadata=None,
                     description="Grandma 1962", extratags=[(271, "s", 0, "Epson", True),
                                                            (33432, "s", 0, "(c) J. Doe", True),
                                                            (700, "B", len(xmp), xmp, True)])
    photo = read_photo(path)
    assert photo.bit_depth == 16
    out = write_photo(tmp_path / "out.tif", marked(photo.image), photo)
    with tifffile.TiffFile(out) as written:
        tags = {tag.code: tag.value for tag in written.pages[0].tags}
    assert (tags[271], tags[33432], tags[270], bytes(tags[700])) == ("Epson", "(c) J. Doe", "Grandma 1962", xmp)
    assert np.array_equal(read_photo(out).image, marked(photo.image))


@pytest.mark.parametrize(("name", "words"), [("anim.png", "3 frames (an animation)"), ("anim.webp", "3 frames"),
                                             ("scan.tif", "3 pages (a multi-page scan)")])
def test_animations_and_multi_page_scans_are_refused_not_cut_to_one_picture(tmp_path, rgb, name, words):
    pictures = [Image.fromarray(np.roll(rgb, 8 * i, axis=1)) for i in range(3)]
    path = tmp_path / name
    pictures[0].save(path, save_all=True, append_images=pictures[1:])
    with pytest.raises(InputError, match=re.escape(words)):
        read_photo(path)


def test_a_tiff_with_a_preview_page_is_one_picture(tmp_path, rgb):
    import tifffile

    path = tmp_path / "scan.tif"
    with tifffile.TiffWriter(path) as tiff:
        tiff.write(rgb, photometric="rgb")
        tiff.write(rgb[::4, ::4], photometric="rgb", subfiletype=1)  # a reduced-resolution preview
    assert np.array_equal(read_photo(path).image, rgb)


def test_a_folder_given_as_one_photo_says_so(tmp_path):
    with pytest.raises(InputError, match="is a folder"):
        read_photo(tmp_path)


XMP_SIDEWAYS = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description tiff:Orientation="6" ' \
               b'xmlns:tiff="http://ns.adobe.com/tiff/1.0/"/></x:xmpmeta>'


def test_a_sideways_tiff_with_xmp_comes_out_upright_once(tmp_path, rgb):
    """Lightroom repeats the orientation in the XMP tag: both must say 1 after the pixels are turned, or a
    viewer (and a second run) turns the picture again."""
    path = tmp_path / "side.tif"
    Image.fromarray(np.ascontiguousarray(np.rot90(rgb, 1))).save(path, exif=camera_exif(6), tiffinfo={700: XMP_SIDEWAYS})
    photo = read_photo(path)
    assert photo.image.shape == rgb.shape
    out = write_photo(tmp_path / "out.tif", photo.image, photo)
    again = read_photo(out)
    assert np.array_equal(again.image, photo.image)  # not turned a second time
    with Image.open(out) as written:
        assert written.getexif()[ORIENTATION] == 1 and b'tiff:Orientation="1"' in written.tag_v2[700]


def test_a_pngs_xmp_chunk_gets_orientation_1_with_its_exif(tmp_path, rgb):
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_itxt("XML:com.adobe.xmp", XMP_SIDEWAYS.decode())
    path = tmp_path / "side.png"
    Image.fromarray(np.ascontiguousarray(np.rot90(rgb, 1))).save(path, exif=camera_exif(6), pnginfo=info)
    photo = read_photo(path)
    with Image.open(write_photo(tmp_path / "out.png", photo.image, photo)) as written:
        assert 'tiff:Orientation="1"' in written.text["XML:com.adobe.xmp"] and written.getexif()[ORIENTATION] == 1


def _cmyk_with_black(rgb: np.ndarray) -> np.ndarray:
    """Ink values with the grey component in K, as a print workflow separates (Pillow's convert sets K to 0)."""
    black = 255 - rgb.max(axis=2)
    light = np.maximum(255 - black, 1)[..., None].astype(np.float32)
    cmy = 255 - 255 * rgb.astype(np.float32) / light
    return np.rint(np.clip(np.dstack([cmy, black]), 0, 255)).astype(np.uint8)


def test_cmyk_keeps_its_black_where_nothing_changed_and_as_far_as_it_can_where_a_face_did(tmp_path, rgb):
    inks = _cmyk_with_black(rgb)
    path = tmp_path / "print.tif"
    Image.fromarray(inks, "CMYK").save(path)
    photo = read_photo(path)
    restored = photo.image.copy()
    restored[20:50, 10:40] = np.clip(restored[20:50, 10:40].astype(np.int16) + 30, 0, 255)  # a brighter "face"
    out = write_photo(tmp_path / "out.tif", restored, photo)
    written = np.asarray(Image.open(out))
    outside = np.ones(rgb.shape[:2], bool)
    outside[20:50, 10:40] = False
    assert np.array_equal(written[outside], inks[outside])  # every ink of every unchanged pixel, K included
    face = written[20:50, 10:40]
    assert np.all(face[..., 3] <= inks[20:50, 10:40, 3]) and face[..., 3].mean() > 0.5 * inks[20:50, 10:40, 3].mean()
    shown = np.asarray(Image.fromarray(written, "CMYK").convert("RGB")).astype(np.int16)
    assert np.abs(shown[20:50, 10:40] - restored[20:50, 10:40]).max() <= 1  # the new colour reads back


@pytest.mark.parametrize(("gamma", "warned"), [(100000, True), (45455, False)])
def test_a_png_whose_gamma_is_not_srgb_says_so_when_written_as_another_format(tmp_path, rgb, warnings_logged,
                                                                              gamma, warned):
    """A linear PNG (gAMA 1.0) written as a JPEG lost its gamma without a word, and looks darker in colour-managed
    viewers; sRGB's own gamma (what they assume anyway) is dropped quietly."""

    path = tmp_path / "lin.png"
    Image.fromarray(rgb).save(path)
    photo = read_photo(add_png_chunks(path, [(b"gAMA", struct.pack(">I", gamma))]))
    fit_format(photo, "JPEG", "lin.png")
    assert ("gamma and primaries (gAMA, cHRM) left out" in warnings_logged.text) == warned
    warnings_logged.clear()
    fit_format(photo, "PNG", "lin.png")
    assert "gAMA" not in warnings_logged.text


def test_pillows_limit_is_lifted_in_the_reading_thread_only(tmp_path, rgb, monkeypatch):
    """pillow_unlimited set Image.MAX_IMAGE_PIXELS, Pillow's process-wide global, to None: while one thread read
    a large photo, another thread's Image.open (ComfyUI's own loaders) took any size unchecked. The limit is
    lifted in the reading thread only now; the other thread's open is refused as Pillow refuses it."""
    import threading

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 96 x 64 = 6,144 pixels: past twice that
    path = tmp_path / "large.png"
    Image.fromarray(rgb).save(path)
    inside, leave = threading.Event(), threading.Event()

    def reading() -> None:
        with photo_read.pillow_unlimited():
            inside.set()
            leave.wait(10)

    reader = threading.Thread(target=reading)
    reader.start()
    try:
        assert inside.wait(10)
        with pytest.raises(Image.DecompressionBombError):
            Image.open(path)
    finally:
        leave.set()
        reader.join()
    assert Image.MAX_IMAGE_PIXELS == 1000 and np.array_equal(read_photo(path).image, rgb)  # ours: not limited


def test_a_pillow_without_its_private_check_gets_its_limit_lifted_for_the_read(monkeypatch):
    """pillow_unlimited wraps a private Pillow function; a Pillow without it must still read large photos (its
    global limit lifted for the block and put back after), not fail on an AttributeError."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    monkeypatch.delattr(Image, "_decompression_bomb_check")
    with photo_read.pillow_unlimited():
        assert Image.MAX_IMAGE_PIXELS is None
    assert Image.MAX_IMAGE_PIXELS == 1000

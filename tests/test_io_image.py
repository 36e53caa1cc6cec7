"""Photo I/O round trips on real files: EXIF, ICC, orientation, format, mode, alpha, 16-bit, CMYK, errors."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

from clrface_video.errors import ClrfaceError, InputError
from clrface_video.io import photo_read
from clrface_video.io.decode import is_image_path
from clrface_video.io.photo_read import Photo, orient_array, read_photo
from clrface_video.io.photo_write import format_for, write_photo

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

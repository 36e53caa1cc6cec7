"""10-bit AVIF photos restored at their depth: read at 16 bits and written in 10 through PyAV, where Pillow's AVIF
plugin holds 8, with the EXIF, XMP and ICC profile kept."""
from __future__ import annotations

import zlib
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image, ImageCms

from clrface_video.config import RestoreConfig
from clrface_video.io.scheduling import scheduled_as_before
from clrface_video.pipeline import restore_image
from tests.media import add_png_chunks, crop_footprints

BASELINE = RestoreConfig(model="baseline-bicubic-sharpen", device="cpu")
ENCODER = next((name for name in ("libsvtav1", "libaom-av1") if name in av.codecs_available), None)
pytestmark = pytest.mark.skipif(ENCODER is None, reason="this FFmpeg has no AV1 encoder")
FACE_ROWS, RAMP_ROWS = 512, slice(560, 620)  # the astronaut's rows, and rows of the smooth ramp below her
MAKE = 0x010F
WHY_10 = "(AV1's main profile, 10 bits at most, which SVT-AV1 codes and every AV1 decoder reads)"  # said with the cut
CHROMA_WHY = "SVT-AV1 codes 4:2:0 alone; Pillow's AVIF writer, which keeps it, takes 8 bits"  # said with the cut
XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/>' \
      b'<!-- taken at the lake --></x:xmpmeta>'


def _face_over_ramp(astronaut: np.ndarray) -> np.ndarray:
    """(640, 512, 3) uint16: the astronaut (her face) over a grey ramp, black to white, of 16-bit smoothness."""
    ramp = np.repeat(np.linspace(0, 65535, astronaut.shape[1]).round().astype(np.uint16)[None, :, None], 3, axis=2)
    return np.vstack([astronaut.astype(np.uint16) * 257, np.repeat(ramp, 640 - FACE_ROWS, axis=0)])


def _avif_10bit(path: Path, rgb: np.ndarray) -> Path:
    """A 10-bit AVIF as a phone writes one (BT.709, limited range), from 16-bit RGB, with little loss."""
    with scheduled_as_before(), av.open(str(path), "w", format="avif") as out:  # SVT-AV1 makes the thread real-time
        stream = out.add_stream(ENCODER, rate=1, options={"crf": "4"})
        stream.width, stream.height, stream.pix_fmt = rgb.shape[1], rgb.shape[0], "yuv420p10le"
        stream.codec_context.color_primaries = stream.codec_context.color_trc = stream.codec_context.colorspace = 1
        stream.codec_context.color_range = 1
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb48le").reformat(
            format="yuv420p10le", src_colorspace="ITU709", dst_colorspace="ITU709", dst_color_range="MPEG")
        for packet in [*stream.encode(frame), *stream.encode()]:
            out.mux(packet)
    return path


def _luma_10bit(path: Path) -> np.ndarray:
    """The AVIF's luma plane as coded: 10-bit codes (the test fails where the file is 8-bit)."""
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
    assert frame.format.name == "yuv420p10le", f"written as {frame.format.name}"
    return np.frombuffer(frame.planes[0], "<u2").reshape(frame.height, -1)[:, :frame.width]


def _assert_deep_and_restored(source: Path, output: Path, astronaut: np.ndarray) -> None:
    """More than 256 levels in the ramp, away from the face, and the face restored (as Pillow shows both)."""
    assert len(np.unique(_luma_10bit(output)[RAMP_ROWS])) > 256
    with Image.open(source) as before, Image.open(output) as after:
        change = np.abs(np.asarray(after.convert("RGB"), np.int16) - np.asarray(before.convert("RGB"), np.int16))
    change = change.mean(axis=-1)[:FACE_ROWS]
    face = crop_footprints(astronaut)
    assert change[face].mean() > 2.5, "the face was not restored"
    assert change[~face].mean() < 1.5, "pixels away from the face changed"


def test_a_10_bit_avif_comes_back_10_bit(tmp_path, astronaut, warnings_logged):
    """It came back 8-bit, warned: Pillow's AVIF plugin reads and writes 8 bits; a sky's ramp banded."""
    source = _avif_10bit(tmp_path / "phone.avif", _face_over_ramp(astronaut))
    assert len(np.unique(_luma_10bit(source)[RAMP_ROWS])) > 256
    restore_image(source, tmp_path / "out.avif", BASELINE)
    _assert_deep_and_restored(source, tmp_path / "out.avif", astronaut)
    assert not warnings_logged.records


def test_a_10_bit_avif_of_odd_width_comes_back_10_bit(tmp_path, astronaut, warnings_logged):
    """A cropped photo's odd width: swscale scrambled its 16-bit reading (io.odd_width), which did not show what
    Pillow's does, so it came back 8-bit, warned."""
    narrower = np.ascontiguousarray(astronaut[:, :511])
    source = _avif_10bit(tmp_path / "cropped.avif", _face_over_ramp(narrower))
    restore_image(source, tmp_path / "out.avif", BASELINE)
    _assert_deep_and_restored(source, tmp_path / "out.avif", narrower)
    assert not warnings_logged.records


def test_a_16_bit_png_written_as_avif_goes_at_10_bits_with_its_metadata(tmp_path, astronaut, warnings_logged):
    """EXIF, XMP and ICC profile, which FFmpeg's AVIF muxer does not write, are put into its meta box."""
    from clrface_video.opencv import cv2

    rgb = _face_over_ramp(astronaut)
    source = tmp_path / "scan.png"
    source.write_bytes(cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))[1].tobytes())
    exif = Image.Exif()
    exif[MAKE] = "Nikon"
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    add_png_chunks(source, [(b"eXIf", exif.tobytes().removeprefix(b"Exif\x00\x00")),
                            (b"iCCP", b"icc\x00\x00" + zlib.compress(icc)),
                            (b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + XMP)])
    restore_image(source, tmp_path / "out.avif", BASELINE)
    assert len(np.unique(_luma_10bit(tmp_path / "out.avif")[RAMP_ROWS])) > 256
    with Image.open(tmp_path / "out.avif") as written:
        assert written.getexif()[MAKE] == "Nikon"
        assert written.info["icc_profile"] == icc
        assert written.info["xmp"] == XMP
    said = {record.getMessage() for record in warnings_logged.records}
    assert said == {f"out.avif: written as AVIF with 16 bits per channel to 10 {WHY_10}"}


def test_writing_a_10_bit_avif_prints_no_svt_banner(tmp_path, astronaut):
    """SVT-AV1 printed some 20 lines of banner (and a thread-priority warning) to the terminal for every 10-bit AVIF
    a folder wrote, -q or not; the video writer's SVT-AV1 is silenced the same way (test_io_video)."""
    import os
    import subprocess
    import sys

    source = _avif_10bit(tmp_path / "phone.avif", _face_over_ramp(astronaut))
    env = {key: value for key, value in os.environ.items() if key != "SVT_LOG"}
    done = subprocess.run([sys.executable, "-m", "clrface_video", "restore", str(source), "-o", str(tmp_path / "o.avif"),
                           "--model", "baseline-bicubic-sharpen", "--device", "cpu"], capture_output=True, text=True,
                          env=env, cwd=Path(__file__).parents[1], check=False)
    assert done.returncode == 0, done.stderr
    assert "Svt[" not in done.stderr
    assert _luma_10bit(tmp_path / "o.avif").max() > 255  # written by SVT-AV1 at 10 bits


def test_a_12_bit_avif_goes_back_in_10_bits_said_once_with_why(tmp_path, astronaut, warnings_logged):
    """A 12-bit AVIF (libavif's avifenc -d 12, an editor's export) comes back in 10 bits, which its warning said
    without a reason a user could act on. No AVIF writer here codes 12 bits (SVT-AV1 codes AV1's main profile;
    Pillow's AVIF writer takes 8-bit pictures; pillow-heif has no AV1 encoder), and none can make the source, so the
    photo is what read_photo reads from one: 16-bit pixels, coded_bits 12 (FFmpeg's demuxer's word)."""
    from dataclasses import replace

    from clrface_video.io.photo_read import read_photo
    from clrface_video.io.photo_write import write_photo

    photo = replace(read_photo(_avif_10bit(tmp_path / "export.avif", _face_over_ramp(astronaut))), coded_bits=12)
    write_photo(tmp_path / "out.avif", photo.image, photo)
    assert len(np.unique(_luma_10bit(tmp_path / "out.avif")[RAMP_ROWS])) > 256  # 10 bits, not Pillow's 8
    said = [record.getMessage() for record in warnings_logged.records]
    assert said == [f"out.avif: written as AVIF with 12 bits per channel to 10 {WHY_10}"]


def _pix_fmt(path: Path) -> str:
    """The pixel format an AVIF codes its picture in, as FFmpeg's demuxer reads it (yuv444p: 4:4:4 chroma)."""
    with av.open(str(path)) as container:
        return container.streams.video[0].codec_context.pix_fmt


@pytest.mark.skipif(not __import__("PIL.features").features.check("avif"), reason="this Pillow has no AVIF codec")
def test_a_4_4_4_avif_comes_back_4_4_4(tmp_path, astronaut, warnings_logged):
    """An AVIF with full chroma (an editor's export, libavif's -y 444) came back 4:2:0, its colour edges halved,
    with no word: Pillow's AVIF writer writes 4:2:0 unless told. Its chroma is read from the file and given back."""
    source = tmp_path / "edit.avif"
    Image.fromarray(astronaut).save(source, subsampling="4:4:4", quality=90)
    assert _pix_fmt(source) == "yuv444p"
    restore_image(source, tmp_path / "out.avif", BASELINE)
    assert _pix_fmt(tmp_path / "out.avif") == "yuv444p"
    with Image.open(source) as before, Image.open(tmp_path / "out.avif") as after:
        change = np.abs(np.asarray(after, np.int16) - np.asarray(before, np.int16)).mean(axis=-1)
    assert change[crop_footprints(astronaut)].mean() > 2.5, "the face was not restored"
    assert not warnings_logged.records


def test_a_deep_4_4_4_avif_says_its_chroma_goes_4_2_0(tmp_path, astronaut, warnings_logged):
    """A 10- or 12-bit 4:4:4 AVIF is written in 10 bits by SVT-AV1, which codes 4:2:0 alone: its chroma was halved
    with no word (the line said the depth only). No writer here makes a deep 4:4:4 AVIF, so the photo is what
    read_photo reads from one: a 10-bit AVIF's, subsampling 0 (4:4:4, FFmpeg's demuxer's word)."""
    from dataclasses import replace

    from clrface_video.io.photo_read import read_photo
    from clrface_video.io.photo_write import write_photo

    photo = replace(read_photo(_avif_10bit(tmp_path / "export.avif", _face_over_ramp(astronaut))), subsampling=0)
    write_photo(tmp_path / "out.avif", photo.image, photo)
    assert _pix_fmt(tmp_path / "out.avif") == "yuv420p10le"
    said = [record.getMessage() for record in warnings_logged.records]
    assert said == [f"out.avif: written as AVIF with 4:4:4 chroma to 4:2:0 ({CHROMA_WHY})"]


def _grey_planes(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """An AVIF's luma plane (10-bit codes) and its two chroma planes stacked."""
    luma = _luma_10bit(path)
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
    chroma = [np.frombuffer(frame.planes[plane], "<u2").reshape(frame.height // 2, -1)[:, :frame.width // 2]
              for plane in (1, 2)]
    return luma, np.stack(chroma)


def test_a_16_bit_grey_png_written_as_avif_goes_at_10_bits(tmp_path, warnings_logged):
    """A 16-bit grey scan named into an .avif came back 8-bit, its ramp's 65536 levels cut to 256 (the 10-bit AVIF
    writer took colour alone). It goes in 10 bits, coded as colour with neutral chroma (SVT-AV1 codes no 4:0:0),
    said with the cut."""
    from clrface_video.io.photo_read import read_photo
    from clrface_video.io.photo_write import fit_format, write_photo

    ramp = np.rint(np.linspace(0, 65535, 128 * 96)).astype(np.uint16).reshape(128, 96)
    Image.fromarray(ramp).save(tmp_path / "scan.png")
    photo = fit_format(read_photo(tmp_path / "scan.png"), "AVIF", "scan.avif")
    write_photo(tmp_path / "scan.avif", photo.image, photo)
    luma, chroma = _grey_planes(tmp_path / "scan.avif")
    assert len(np.unique(luma)) > 900  # of 1024
    assert np.abs(chroma.astype(int) - 512).max() <= 2  # neutral: grey
    again = read_photo(tmp_path / "scan.avif")
    assert again.bit_depth == 16 and np.abs(again.image.astype(int) - ramp[..., None]).mean() < 257 // 4
    said = {record.getMessage() for record in warnings_logged.records}
    assert said == {(f"scan.avif: written as AVIF with 16 bits per channel to 10 {WHY_10}, grey coded as 4:2:0 "
                     f"colour of neutral chroma ({CHROMA_WHY})")}


def test_a_grey_12_bit_avif_is_read_deep_and_goes_back_in_10_bits(tmp_path, warnings_logged):
    """A grey 12-bit AVIF (a monochrome scan) was read at Pillow's 8 bits and written back so, said: the 16-bit
    reading through FFmpeg took colour alone. No writer in the test extra makes a grey AV1 (SVT-AV1 codes 4:2:0
    alone), so the sample is made with imagecodecs where it is installed."""
    imagecodecs = pytest.importorskip("imagecodecs", reason="a grey 12-bit AVIF is made with imagecodecs' libavif, "
                                                            "not in the test extra")
    from clrface_video.io.photo_read import read_photo
    from clrface_video.io.photo_write import write_photo

    codes = np.rint(np.linspace(0, 4095, 128 * 96)).astype(np.uint16).reshape(128, 96)
    source = tmp_path / "scan.avif"
    source.write_bytes(imagecodecs.avif_encode(codes, level=100, bitspersample=12))
    assert _pix_fmt(source) == "gray12le"
    photo = read_photo(source)
    assert (photo.mode, photo.bit_depth, photo.coded_bits) == ("I;16", 16, 12)
    assert len(np.unique(photo.image[..., 0])) > 3000
    write_photo(tmp_path / "out.avif", photo.image, photo)
    luma, chroma = _grey_planes(tmp_path / "out.avif")
    assert len(np.unique(luma)) > 900 and np.abs(chroma.astype(int) - 512).max() <= 2
    said = [record.getMessage() for record in warnings_logged.records]
    assert said == [(f"out.avif: written as AVIF with 12 bits per channel to 10 {WHY_10}, grey coded as 4:2:0 "
                     f"colour of neutral chroma ({CHROMA_WHY})")]

"""Animated WebP and multi-page TIFF end to end: every frame or page restored, written back whole in its format."""
from __future__ import annotations

import errno
import gc
import io
import itertools
import json
import os
from dataclasses import replace
from fractions import Fraction

import cv2
import numpy as np
import pytest
import tifffile
from click.testing import CliRunner
from PIL import Image, ImageCms, WebPImagePlugin, features

from clrface_video.cli import cli
from clrface_video.errors import ClrfaceError
from clrface_video.io import webp_frames as webp_module
from clrface_video.io.webp_anim import LOSSLESS, LOSSY, frame_kinds, is_animated_webp
from clrface_video.io.webp_frames import LOSSY_QUALITY, WebpWriter, probe_webp
from clrface_video.types import Frame
from tests.media import crop_footprints

MODEL = ("--model", "baseline-bicubic-sharpen")
DURATIONS = [100, 250, 40, 700]  # milliseconds
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><dc:title>party</dc:title></x:xmpmeta>'


def run_cli(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def make_webp(path, astronaut, *, lossless: bool, alpha: bool) -> list[np.ndarray]:
    """A 4-frame animated WebP of the astronaut moving sideways; returns its frames (RGB or RGBA)."""
    small = astronaut[::2, ::2]
    shade = np.tile(np.linspace(64, 255, small.shape[1]).astype(np.uint8), (small.shape[0], 1))
    frames = [np.roll(small, 4 * i, axis=1) for i in range(4)]
    frames = [np.dstack([frame, shade]) for frame in frames] if alpha else frames
    images = [Image.fromarray(frame) for frame in frames]
    exif = Image.Exif()
    exif[0x010F] = "Party cam"  # Make
    images[0].save(path, save_all=True, append_images=images[1:], duration=DURATIONS, loop=3, lossless=lossless,
                   quality=80, background=(10, 20, 30, 255), icc_profile=SRGB, exif=exif.tobytes(), xmp=XMP)
    return frames


def webp_frames(path, mode: str = "RGB") -> tuple[list[np.ndarray], list[int], dict]:
    with Image.open(path) as image:
        frames, durations = [], []
        for index in range(image.n_frames):
            image.seek(index)
            image.load()
            frames.append(np.asarray(image.convert(mode)).copy())
            durations.append(image.info["duration"])
        return frames, durations, dict(image.info)


def test_an_animated_webp_comes_back_animated_with_its_timing_loop_alpha_and_metadata(tmp_path, astronaut):
    """Every frame restored as a video's (one track), each frame's duration, the loop count, the background,
    the alpha, losslessness, ICC, EXIF and XMP kept; pixels away from the faces exact (the file is lossless)."""
    source = tmp_path / "wave.webp"
    before = make_webp(source, astronaut, lossless=True, alpha=True)
    assert is_animated_webp(source)
    out = tmp_path / "wave_restored.webp"
    result = run_cli("restore", source, *MODEL, "--report", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert (report["frames"], report["faces"], report["tracks"]) == (4, 4, 1)  # tracked like a video
    after, durations, info = webp_frames(out, "RGBA")
    assert len(after) == 4 and durations == DURATIONS and info["loop"] == 3
    assert info["background"] == (10, 20, 30, 255) and frame_kinds(out) == {LOSSLESS}
    assert info["icc_profile"] == SRGB and info["xmp"] == XMP and Image.open(out).getexif()[0x010F] == "Party cam"
    for a, b in zip(before, after, strict=True):
        assert b.shape == a.shape  # RGBA
        footprint = crop_footprints(np.ascontiguousarray(a[..., :3]))
        diff = np.abs(a.astype(int) - b).max(axis=-1)
        assert diff[footprint].mean() > 2 and (diff[~footprint] == 0).all()
        assert np.array_equal(a[..., 3], b[..., 3])


@pytest.mark.parametrize("suffix", [".webp", ".gif", ".apng"])
def test_a_stretch_of_an_animated_webp_shows_its_first_and_last_frames_only_within_it(tmp_path, astronaut, suffix):
    """--start 0.25 --duration 1.1 on 4 frames of 0.5 s: the frame on screen at 0.25 s is shown whole (0.5 s), as an
    MP4 of the stretch opens with it, the stretch 1.1 s from there: the next whole, the third to its end (0.1 s).
    The last frame was shown its whole 0.5 s in every output; the first was shown from 0.25 s (0.25 s) but in a
    WebP."""
    frames = [Image.fromarray(np.roll(astronaut[::2, ::2], 8 * i, axis=1)) for i in range(4)]
    source = tmp_path / "wave.webp"
    frames[0].save(source, save_all=True, append_images=frames[1:], duration=500, lossless=True)
    out = tmp_path / f"cut{suffix}"
    result = run_cli("restore", source, "-o", out, *MODEL, "--start", 0.25, "--duration", 1.1)
    assert result.exit_code == 0, result.output
    with Image.open(out) as animation:
        durations = []
        for number in range(animation.n_frames):
            animation.seek(number)
            animation.load()
            durations.append(animation.info["duration"])
    assert durations == [500, 500, 100]


def test_an_opaque_animated_webp_has_no_alpha_to_leave_out(tmp_path, astronaut, warnings_logged):
    """Pillow reads every animated WebP as RGBA (and flags alpha in opaque ones): only a frame that is not
    opaque makes it a video with alpha. A codec asked for a WebP output is said not to apply."""
    from clrface_video.io.webp_frames import probe_webp

    opaque, clear = tmp_path / "opaque.webp", tmp_path / "clear.webp"
    make_webp(opaque, astronaut, lossless=True, alpha=False)
    make_webp(clear, astronaut, lossless=True, alpha=True)
    assert not probe_webp(opaque).alpha and probe_webp(clear).alpha
    assert run_cli("restore", opaque, "-o", tmp_path / "opaque.mp4", *MODEL).exit_code == 0
    assert "alpha" not in warnings_logged.text
    assert run_cli("restore", opaque, "--codec", "libx264", *MODEL).exit_code == 0
    assert "--codec, --crf and --preset do not apply to an animated WebP" in warnings_logged.text
    warnings_logged.clear()  # --crf too, which was passed over in silence; none given says nothing
    assert run_cli("restore", opaque, "-o", tmp_path / "crf.webp", "--crf", "30", *MODEL).exit_code == 0
    assert "crf.webp: --codec, --crf and --preset do not apply" in warnings_logged.text
    warnings_logged.clear()
    assert run_cli("restore", opaque, "-o", tmp_path / "plain.webp", *MODEL).exit_code == 0
    assert "do not apply" not in warnings_logged.text
    from clrface_video.api import restore_video

    # a script is told of its keyword, not of a flag it never passed
    report = restore_video(opaque, tmp_path / "script.webp", codec="libx264", model=MODEL[1], device="cpu")
    assert report.warnings == [("script.webp: codec, crf and preset do not apply to an animated WebP; it is written by "
                                "Pillow, lossless or lossy as its source")]


def test_a_lossy_animated_webp_in_a_folder_comes_back_lossy_and_animated(tmp_path, astronaut):
    root = tmp_path / "album"
    root.mkdir()
    make_webp(root / "party.webp", astronaut, lossless=False, alpha=False)
    before, _, _ = webp_frames(root / "party.webp")
    result = run_cli("restore", root, *MODEL, "--no-track-identity")
    assert result.exit_code == 0, result.output
    out = tmp_path / "album_restored" / "party.webp"
    after, durations, info = webp_frames(out)
    assert len(after) == 4 and durations == DURATIONS and info["loop"] == 3 and frame_kinds(out) == {LOSSY}
    for a, b in zip(before, after, strict=True):
        footprint = crop_footprints(a)
        diff = np.abs(a.astype(int) - b).max(axis=-1)
        assert diff[footprint].mean() > diff[~footprint].mean() + 1  # the face restored, the rest only re-encoded


def test_a_truncated_animated_webp_is_one_line_and_no_output(tmp_path, astronaut):
    whole = tmp_path / "whole.webp"
    make_webp(whole, astronaut, lossless=True, alpha=False)
    cut = tmp_path / "cut.webp"
    cut.write_bytes(whole.read_bytes()[:len(whole.read_bytes()) // 2])
    result = run_cli("restore", cut, *MODEL)
    assert result.exit_code != 0 and "cut.webp" in result.output and "WebP" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.webp", "whole.webp"]  # nothing half-written


def test_an_animated_webp_on_ray_is_one_line_before_ray_starts(tmp_path, astronaut, monkeypatch):
    from clrface_video import distributed

    clip = tmp_path / "anim.webp"
    make_webp(clip, astronaut, lossless=True, alpha=False)
    monkeypatch.setattr(distributed, "ray_session", None)  # it must not get that far
    result = run_cli("restore", clip, *MODEL, "--backend", "ray")
    assert result.exit_code != 0 and "--backend local" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["anim.webp"]


# -- the animated WebP writer -------------------------------------------------------------------------------
def live_images() -> int:
    return sum(issubclass(type(thing), Image.Image) for thing in gc.get_objects())  # type(): no lazy __class__


def restored_frames(astronaut, count: int, *, alpha: bool) -> list[Frame]:
    """`count` frames as the pipeline hands them to the writer: RGB, alpha when asked, millisecond pts with
    uneven gaps, the last frame's own duration."""
    small = astronaut[::4, ::4]
    shade = np.tile(np.linspace(0, 255, small.shape[1]).astype(np.uint8), (small.shape[0], 1))
    gaps = [40 + 10 * (i % 5) for i in range(count)]
    starts = np.cumsum([0, *gaps[:-1]])
    return [Frame(image=np.roll(small, 3 * i, axis=1), index=i, pts=int(starts[i]), time_base=Fraction(1, 1000),
                  duration=gaps[i] if i == count - 1 else None, alpha=np.roll(shade, i, axis=0) if alpha else None)
            for i in range(count)]


@pytest.mark.parametrize(("lossless", "alpha", "count"), [(True, True, 40), (False, False, 40), (True, False, 1)])
def test_the_webp_writer_holds_no_frames_and_writes_what_pillow_would(tmp_path, astronaut, monkeypatch,
                                                                      lossless, alpha, count):
    """No frame is kept as an image while frames arrive, nor all of them while Pillow encodes (one at a time);
    the file is byte for byte what one Pillow save of all the frames as images writes (the writer's old way)."""
    source = tmp_path / "source.webp"
    make_webp(source, astronaut, lossless=lossless, alpha=alpha)
    frames = restored_frames(astronaut, count, alpha=alpha)
    encoding = []  # the images alive as Pillow encodes each frame
    encoder = WebPImagePlugin._webp.WebPAnimEncoder

    class Counting:
        def __init__(self, *args):
            self.encoder = encoder(*args)

        def add(self, *args):
            encoding.append(live_images())
            return self.encoder.add(*args)

        def assemble(self, *args):
            return self.encoder.assemble(*args)

    monkeypatch.setattr(WebPImagePlugin._webp, "WebPAnimEncoder", Counting)
    gc.collect()
    before = live_images()
    with WebpWriter(tmp_path / "out.webp", source, probe_webp(source)) as writer:
        for frame in frames:
            writer.write(frame)
        assert live_images() == before  # the old writer kept every frame (count more)
    assert len(encoding) == (count + 1 if count > 1 else 0)  # each frame and the flush (one frame: a still)
    assert max(encoding, default=before) <= before + 1  # the old one: all of them and the one Pillow is on
    assert live_images() == before

    settings = webp_module.read_settings(source, Image.open(source))
    images = [Image.fromarray(np.dstack([f.image, f.alpha]) if alpha else f.image) for f in frames]
    gaps = [later.pts - earlier.pts for earlier, later in itertools.pairwise(frames)]
    durations = [*gaps, frames[-1].duration]
    extra = {} if lossless else {"quality": LOSSY_QUALITY}
    images[0].save(tmp_path / "pillow.webp", format="WEBP", save_all=True, append_images=images[1:],
                   duration=durations, loop=settings.loop, background=settings.background,
                   lossless=settings.lossless, allow_mixed=settings.mixed, icc_profile=settings.icc,
                   exif=settings.exif, xmp=settings.xmp, **extra)
    assert (tmp_path / "out.webp").read_bytes() == (tmp_path / "pillow.webp").read_bytes()
    after, written_durations, info = webp_frames(tmp_path / "out.webp", "RGBA")
    assert len(after) == count
    if count > 1:  # (one frame is written as a still, as Pillow does)
        assert written_durations == durations and info["loop"] == 3 and frame_kinds(tmp_path / "out.webp") == {
            LOSSLESS if lossless else LOSSY}
    if lossless:
        for frame, pixels in zip(frames, after, strict=True):
            opacity = frame.alpha if alpha else np.full(frame.image.shape[:2], 255)
            assert np.array_equal(pixels[..., 3], opacity)
            assert np.array_equal(pixels[opacity > 0, :3], frame.image[opacity > 0])  # WebP drops clear colours


@pytest.mark.parametrize("stop", [None, RuntimeError, KeyboardInterrupt])
def test_the_webp_writers_spool_is_gone_when_it_ends(tmp_path, astronaut, monkeypatch, stop):
    """The frames are spooled beside the output in a file with no name there, closed (so gone) however the
    block ends: a clean exit, an error, Ctrl-C."""
    source = tmp_path / "source.webp"
    make_webp(source, astronaut, lossless=True, alpha=True)
    spools = []
    temporary_file = webp_module.tempfile.TemporaryFile

    def recorded(*args, **kwargs):
        spools.append(temporary_file(*args, **kwargs))
        return spools[-1]

    monkeypatch.setattr(webp_module.tempfile, "TemporaryFile", recorded)
    out = tmp_path / "out.webp"
    with pytest.raises(stop or ClrfaceError):  # ClrfaceError: not raised on a clean exit (checked below)
        with WebpWriter(out, source, probe_webp(source)) as writer:
            for frame in restored_frames(astronaut, 5, alpha=True):
                writer.write(frame)
            assert len(spools) == 1 and spools[0].tell() > 0 and not spools[0].closed
            if os.name == "posix":
                assert sorted(p.name for p in tmp_path.iterdir()) == ["source.webp"]  # the spool has no name
            if stop is not None:
                raise stop("stopped")
        if stop is None:
            raise ClrfaceError("clean exit")
    assert len(spools) == 1 and spools[0].closed
    assert sorted(p.name for p in tmp_path.iterdir()) == (["source.webp"] if stop else ["out.webp", "source.webp"])
    assert len(webp_frames(out)[0]) == 5 if stop is None else not out.exists()


class _FullDisk(io.RawIOBase):
    """A spool's file on a disk with `room` bytes left: writes past it fail with ENOSPC."""

    def __init__(self, room: int) -> None:
        super().__init__()
        self.data, self.room = io.BytesIO(), room

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def write(self, data) -> int:
        left = self.room - self.data.tell()
        if left <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self.data.write(bytes(data)[:left])

    def readinto(self, buffer) -> int:
        data = self.data.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.data.seek(offset, whence)

    def tell(self) -> int:
        return self.data.tell()


@pytest.mark.parametrize("photo_last", [True, False])
def test_a_full_disk_under_the_webp_spool_is_one_line(tmp_path, astronaut, monkeypatch, photo_last):
    """The spool is buffered: frames of flat colour (a few hundred bytes compressed) wait in its buffer and reach
    the disk with a later, larger write, or when Pillow is handed the frames, and at close. A full disk there was
    'unexpected OSError' (when Pillow was handed them), or replaced the one-line error of the write that found it
    full (at close); it is the one-line error either way, and nothing is written."""
    source = tmp_path / "source.webp"
    make_webp(source, astronaut, lossless=True, alpha=False)
    disk = _FullDisk(room=0)
    monkeypatch.setattr(webp_module.tempfile, "TemporaryFile", lambda **kwargs: io.BufferedRandom(disk))
    frames = restored_frames(astronaut, 6, alpha=False)
    flat = [replace(frame, image=np.full_like(frame.image, 40 * frame.index)) for frame in frames[:5]]
    with pytest.raises(ClrfaceError, match="writing out.webp failed: .*No space left on device"), \
            WebpWriter(tmp_path / "out.webp", source, probe_webp(source)) as writer:
        for frame in flat + (frames[5:] if photo_last else []):
            writer.write(frame)
    assert disk.closed and disk.data.tell() == 0 and sorted(p.name for p in tmp_path.iterdir()) == ["source.webp"]


def test_the_webp_writer_refuses_no_frames_and_a_frame_of_another_size(tmp_path, astronaut):
    source = tmp_path / "source.webp"
    make_webp(source, astronaut, lossless=True, alpha=False)
    with pytest.raises(ClrfaceError, match="no frames were written to none.webp"), \
            WebpWriter(tmp_path / "none.webp", source, probe_webp(source)):
        pass
    first, second = restored_frames(astronaut, 2, alpha=False)
    with pytest.raises(ClrfaceError, match=r"writing odd.webp failed: frame 1 is 128x64, the first 128x128"), \
            WebpWriter(tmp_path / "odd.webp", source, probe_webp(source)) as writer:
        writer.write(first)
        writer.write(Frame(image=second.image[:64], index=1, pts=second.pts, time_base=second.time_base))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["source.webp"]


# -- multi-page TIFF ---------------------------------------------------------------------------------------
def make_album(path, astronaut) -> list[np.ndarray]:
    """Four pages: an RGB page (deflate, 300 dpi, ICC, described), its reduced-resolution preview, a grey page
    (uncompressed, 600 dpi) and a 16-bit RGB page; returns the pages' pixels."""
    small = np.ascontiguousarray(astronaut[::2, ::2])
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    deep = small.astype(np.uint16) * 257
    preview = cv2.resize(small, (64, 64), interpolation=cv2.INTER_AREA)
    with tifffile.TiffWriter(path) as tiff:
        tiff.write(small, photometric="rgb", compression="zlib", resolution=(300, 300), resolutionunit="INCH",
                   iccprofile=SRGB, description="page one", metadata=None)
        tiff.write(preview, photometric="rgb", subfiletype=1, metadata=None)
        tiff.write(grey, photometric="minisblack", resolution=(600, 600), resolutionunit="INCH",
                   description="page two", metadata=None)
        tiff.write(deep, photometric="rgb", compression="zlib", description="page three", metadata=None)
    return [small, preview, grey, deep]


def test_a_multi_page_tiff_keeps_every_page_its_mode_compression_and_tags(tmp_path, astronaut):
    source = tmp_path / "album.tif"
    before = make_album(source, astronaut)
    result = run_cli("restore", source, *MODEL)
    assert result.exit_code == 0, result.output
    out = tmp_path / "album_restored.tif"
    with tifffile.TiffFile(out) as tiff:
        pages = list(tiff.pages)
        after = [page.asarray() for page in pages]
        tags = [{tag.code: tag.value for tag in page.tags} for page in pages]
    assert len(pages) == 4
    assert [a.shape for a in after] == [b.shape for b in before] and [a.dtype for a in after] == [b.dtype for b in before]
    assert [t.get(270) for t in (tags[0], tags[2], tags[3])] == ["page one", "page two", "page three"]
    assert [int(t[259]) for t in tags] == [8, 1, 1, 8]  # deflate, none, none, deflate: as they came
    assert tags[0][282] == (300, 1) and tags[2][282] == (600, 1) and bytes(tags[0][34675]) == SRGB
    assert 34675 not in tags[2] and int(tags[1][254]) == 1  # only page 1 has a profile; page 2 is a preview
    for index in (0, 2):  # full 8-bit pages: the face restored, every other pixel exact
        rgb = before[index] if before[index].ndim == 3 else np.dstack([before[index]] * 3)
        footprint = crop_footprints(rgb)
        diff = np.abs(before[index].astype(int) - after[index])
        diff = diff.max(axis=-1) if diff.ndim == 3 else diff
        assert diff[footprint].mean() > 2 and (diff[~footprint] == 0).all()
    restored_preview = cv2.resize(after[0], (64, 64), interpolation=cv2.INTER_AREA)
    assert np.array_equal(after[1], restored_preview)  # the preview shows the restored page
    deep_diff = np.abs(before[3].astype(int) - after[3]).max(axis=-1)
    footprint = crop_footprints(before[0])
    assert deep_diff[footprint].mean() > 2 * 257 and (deep_diff[~footprint] == 0).all()  # 16 bits kept


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_a_multi_page_bigtiff_with_exif_is_written_as_a_bigtiff(tmp_path, astronaut, dtype):
    """Regression: a multi-page BigTIFF with EXIF (a maker's name) ended in 'unexpected error: unpack requires a
    buffer of 8 bytes' (its EXIF read as BigTIFF bytes, which Pillow cannot load again). Now every page is
    written, restored, at its depth, with its maker, into a BigTIFF."""
    source = tmp_path / "album.tif"
    scale = 257 if dtype == np.uint16 else 1
    pages = [np.ascontiguousarray(astronaut[::2, ::2]), np.ascontiguousarray(astronaut[::2, ::-2])]
    with tifffile.TiffWriter(source, bigtiff=True) as tiff:
        for page in pages:
            tiff.write(page.astype(dtype) * scale, photometric="rgb", metadata=None,
                       extratags=[(271, "s", 0, "Epson", True)])
    result = run_cli("restore", source, *MODEL)
    assert result.exit_code == 0, result.output
    with tifffile.TiffFile(tmp_path / "album_restored.tif") as tiff:
        assert tiff.is_bigtiff and [page.tags[271].value for page in tiff.pages] == ["Epson", "Epson"]
        after = [page.asarray() for page in tiff.pages]
    assert [a.dtype for a in after] == [dtype, dtype]
    for before, restored in zip(pages, after, strict=True):  # the face restored, every other pixel exact
        footprint = crop_footprints(before)
        diff = np.abs(before.astype(int) * scale - restored).max(axis=-1)
        assert diff[footprint].mean() > 2 * scale and (diff[~footprint] == 0).all()


def test_a_multi_page_tiff_in_a_folder_and_one_without_faces(tmp_path, astronaut):
    root = tmp_path / "scans"
    root.mkdir()
    make_album(root / "album.tiff", astronaut)
    blank = root / "blank.tif"
    with tifffile.TiffWriter(blank) as tiff:
        for shade in (40, 200):
            tiff.write(np.full((64, 96, 3), shade, np.uint8), photometric="rgb", metadata=None)
    result = run_cli("restore", root, *MODEL)
    assert result.exit_code == 0, result.output
    with tifffile.TiffFile(tmp_path / "scans_restored" / "album.tiff") as tiff:
        assert len(tiff.pages) == 4
    assert (tmp_path / "scans_restored" / "blank.tif").read_bytes() == blank.read_bytes()  # nothing to restore


def test_a_multi_page_tiff_asked_as_a_jpeg_or_cut_short_is_one_line(tmp_path, astronaut):
    source = tmp_path / "album.tif"
    make_album(source, astronaut)
    result = run_cli("restore", source, *MODEL, "-o", tmp_path / "album.jpg")
    assert result.exit_code != 0 and "3 pages" in result.output and ".tif" in result.output  # the preview is none
    cut = tmp_path / "cut.tif"
    cut.write_bytes(source.read_bytes()[:int(source.stat().st_size * 0.8)])
    result = run_cli("restore", cut, *MODEL)
    assert result.exit_code != 0 and "cut.tif" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["album.tif", "cut.tif"]  # nothing half-written


def test_exif_sub_ifds_after_the_first_page_are_left_out_in_one_warning(tmp_path, astronaut, warnings_logged):
    from PIL.TiffImagePlugin import AppendingTiffWriter

    source = tmp_path / "camera.tif"
    with open(source, "w+b") as file, AppendingTiffWriter(file, new=True) as tiff:
        for index in range(3):
            exif = Image.Exif()
            exif[0x010F] = "Canon"
            exif.get_ifd(0x8769)[0x9003] = f"2001:02:03 04:05:0{index}"  # DateTimeOriginal
            Image.fromarray(np.roll(astronaut[::2, ::2], 8 * index, axis=1)).save(tiff, format="TIFF",
                                                                                  exif=exif.tobytes())
            tiff.newFrame()
    result = run_cli("restore", source, *MODEL)
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "camera_restored.tif") as out:
        assert out.n_frames == 3 and out.getexif().get_ifd(0x8769)[0x9003] == "2001:02:03 04:05:00"
        out.seek(2)
        assert out.getexif()[0x010F] == "Canon" and 0x8769 not in out.getexif()
    said = [r.getMessage() for r in warnings_logged.records if "left out" in r.getMessage()]
    assert said == ["camera_restored.tif: left out of the written pages: the EXIF camera and GPS tags (page 2, 3)"]


def test_palette_pages_of_a_scan_are_said_once_to_come_back_in_full_colour(tmp_path, astronaut, warnings_logged):
    pages = [Image.fromarray(np.roll(astronaut[::2, ::2], 8 * i, axis=1)).quantize(64) for i in range(3)]
    pages[0].save(tmp_path / "scan.tif", save_all=True, append_images=pages[1:])
    assert run_cli("restore", tmp_path / "scan.tif", *MODEL).exit_code == 0
    with Image.open(tmp_path / "scan_restored.tif") as out:
        assert out.n_frames == 3 and out.mode == "RGB"
    said = [r.getMessage() for r in warnings_logged.records if "palette" in r.getMessage()]
    palette = "the palette (the page is written in full colour) (page 1, 2, 3)"
    assert said == [f"scan_restored.tif: left out of the written pages: {palette}"]


@pytest.mark.parametrize("name", ["anim.webp", "scan.tif"])
def test_the_old_refusal_is_gone(tmp_path, astronaut, name):
    pictures = [Image.fromarray(np.roll(astronaut[::2, ::2], 8 * i, axis=1)) for i in range(3)]
    pictures[0].save(tmp_path / name, save_all=True, append_images=pictures[1:])
    result = run_cli("restore", tmp_path / name, *MODEL)
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / name.replace(".", "_restored.")) as out:
        assert out.n_frames == 3


def test_one_picture_with_a_preview_page_still_goes_to_a_jpeg(tmp_path, astronaut):
    """A scanner's TIFF of one picture and its reduced-resolution preview is one photo: `-o x.jpg` works (the
    page-by-page path is for scans of several pictures, which only a TIFF holds)."""
    path = tmp_path / "scan.tif"
    tifffile.imwrite(path, astronaut, photometric="rgb")
    tifffile.imwrite(path, astronaut[::4, ::4], photometric="rgb", subfiletype=1, append=True)
    result = run_cli("restore", path, "-o", tmp_path / "scan.jpg", *MODEL)
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "scan.jpg") as out:
        assert out.size == (512, 512)
    first = tmp_path / "preview_first.tif"  # some scanners put the preview first
    tifffile.imwrite(first, astronaut[::4, ::4], photometric="rgb", subfiletype=1)
    tifffile.imwrite(first, astronaut, photometric="rgb", append=True)
    assert run_cli("restore", first, "-o", tmp_path / "first.png", *MODEL).exit_code == 0
    with Image.open(tmp_path / "first.png") as out:
        assert out.size == (512, 512)
    album = tmp_path / "album.tif"
    make_album(album, astronaut)
    result = run_cli("restore", album, "-o", tmp_path / "album.jpg", *MODEL)
    assert result.exit_code != 0 and "name the output .tif" in result.output


@pytest.mark.skipif(not features.check("avif"), reason="this Pillow reads no AVIF")
def test_an_animated_avif_is_refused_in_one_line_not_cut_to_its_first_frame(tmp_path, astronaut):
    frames = [Image.fromarray(np.roll(astronaut[::2, ::2], 8 * i, axis=1)) for i in range(3)]
    frames[0].save(tmp_path / "anim.avif", save_all=True, append_images=frames[1:])
    result = run_cli("restore", tmp_path / "anim.avif", *MODEL)
    assert result.exit_code != 0 and "3 frames (an animated AVIF)" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["anim.avif"]

"""Photos and photo folders end to end with real images: untouched pixels, formats, metadata, resumable folders."""
from __future__ import annotations

import errno
import io
import json
import os
import struct
import time
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

import av
import cv2
import numpy as np
import pytest
import tifffile
from click.testing import CliRunner
from PIL import Image, ImageCms

from clrface_video import photos
from clrface_video.cli import cli
from clrface_video.config import RestoreConfig
from clrface_video.errors import ClrfaceError, InputError
from clrface_video.photos import restore_folder
from clrface_video.pipeline import load_models, restore_frames, restore_image, restore_path
from clrface_video.restore.base import RestoreBatch, register_restorer
from clrface_video.restore.baseline import BicubicSharpenRestorer
from tests.conftest import shared_file
from tests.media import add_png_chunks, crop_footprints, make_clip, png_chunks

BASELINE = RestoreConfig(model="baseline-bicubic-sharpen", device="cpu")
RESOLUTION = 128  # the baseline restorer's crop side


def assert_only_faces_changed(before: np.ndarray, after: np.ndarray, faces_rgb: np.ndarray) -> None:
    assert before.shape == after.shape and before.dtype == after.dtype
    changed = np.any(before != after, axis=-1) if before.ndim == 3 else before != after
    footprint = crop_footprints(faces_rgb)
    assert changed.any(), "no face pixel was restored"
    assert not (changed & ~footprint).any(), "pixels outside the pasted faces changed"


def test_png_photo_changes_only_the_face(tmp_path, astronaut):
    source = tmp_path / "astronaut.png"
    Image.fromarray(astronaut).save(source)
    report = restore_image(source, None, BASELINE)
    out = tmp_path / "astronaut_restored.png"
    assert report.output == str(out) and report.images == 1 and report.faces == 1 and report.tracks == 1
    assert_only_faces_changed(astronaut, np.asarray(Image.open(out)), astronaut)
    assert np.array_equal(np.asarray(Image.open(source)), astronaut)  # input untouched


def test_png_with_alpha_keeps_its_alpha(tmp_path, astronaut):
    alpha = np.tile(np.linspace(0, 255, 512, dtype=np.uint8), (512, 1))
    source = tmp_path / "cutout.png"
    Image.fromarray(np.dstack([astronaut, alpha]), "RGBA").save(source)
    restore_image(source, None, BASELINE)
    out = Image.open(tmp_path / "cutout_restored.png")
    assert out.mode == "RGBA"
    pixels = np.asarray(out)
    assert np.array_equal(pixels[..., 3], alpha)
    assert_only_faces_changed(astronaut, pixels[..., :3], astronaut)


def test_16bit_png_stays_16bit(tmp_path, astronaut):
    deep = astronaut.astype(np.uint16) * 257 + 100  # not a plain multiple of 257: low bits matter
    source = tmp_path / "deep.png"
    cv2.imwrite(str(source), deep[..., ::-1])
    restore_image(source, None, BASELINE)
    out = cv2.imread(str(tmp_path / "deep_restored.png"), cv2.IMREAD_UNCHANGED)[..., ::-1]
    assert out.dtype == np.uint16
    assert_only_faces_changed(deep, out, astronaut)


@pytest.mark.parametrize("deep", [False, True], ids=["8-bit", "16-bit"])
def test_a_restored_png_keeps_its_colour_chunks_and_resolution(tmp_path, astronaut, deep):
    """gAMA, cHRM and sRGB come back byte for byte through a restore: without them (and with no ICC profile) a
    colour-managed viewer would render the restored photo otherwise; pHYs (300 dpi) too."""
    chunks = [(b"gAMA", struct.pack(">I", 45455)),
              (b"cHRM", struct.pack(">8I", 31270, 32900, 64000, 33000, 30000, 60000, 15000, 6000)),
              (b"sRGB", b"\x01"), (b"pHYs", struct.pack(">IIB", 11811, 11811, 1))]
    source = tmp_path / "linear.png"
    if deep:
        cv2.imwrite(str(source), astronaut[..., ::-1].astype(np.uint16) * 257 + 100)
    else:
        Image.fromarray(astronaut).save(source)
    add_png_chunks(source, chunks)
    report = restore_image(source, None, BASELINE)
    assert report.faces == 1
    written = png_chunks(tmp_path / "linear_restored.png")
    assert {kind: written.get(kind) for kind, _ in chunks} == dict(chunks)
    assert written[b"IHDR"][8] == (16 if deep else 8)  # bit depth


def test_grayscale_photo_stays_grayscale(tmp_path, astronaut):
    gray = np.asarray(Image.fromarray(astronaut).convert("L"))
    source = tmp_path / "gray.png"
    Image.fromarray(gray).save(source)
    report = restore_image(source, None, BASELINE)
    out = Image.open(tmp_path / "gray_restored.png")
    assert out.mode == "L" and report.faces == 1
    assert_only_faces_changed(gray, np.asarray(out), np.dstack([gray] * 3))


def test_cmyk_jpeg_gives_a_cmyk_jpeg(tmp_path, astronaut):
    source = tmp_path / "print.jpg"
    Image.fromarray(astronaut).convert("CMYK").save(source, quality=95)
    report = restore_image(source, None, BASELINE)
    out = Image.open(tmp_path / "print_restored.jpg")
    assert out.format == "JPEG" and out.mode == "CMYK" and out.size == (512, 512)
    assert report.faces == 1


@pytest.mark.parametrize("size", [(511, 383), (301, 457)])
def test_odd_sizes(tmp_path, astronaut, size):
    source = tmp_path / "odd.png"
    Image.fromarray(astronaut).resize(size, Image.LANCZOS).save(source)
    report = restore_image(source, None, BASELINE)
    out = Image.open(tmp_path / "odd_restored.png")
    assert out.size == size and report.faces == 1


def test_exif_orientation_is_honoured_and_metadata_kept(tmp_path, astronaut):
    upright = Image.fromarray(astronaut[:400])  # 512 wide, 400 high
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what a camera held sideways stores
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    exif[0x010F] = "clrface test camera"  # Make
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    source = tmp_path / "sideways.jpg"
    stored.save(source, exif=exif.tobytes(), icc_profile=icc, quality=95)
    report = restore_image(source, None, BASELINE)
    out = Image.open(tmp_path / "sideways_restored.jpg")
    assert out.size == (512, 400) and report.faces == 1  # found upright
    assert out.getexif().get(0x010F) == "clrface test camera"
    assert out.getexif().get(0x0112, 1) == 1
    assert out.info.get("icc_profile") == icc


def test_a_private_photo_stays_private_and_a_model_file_is_readable_by_others(tmp_path, astronaut):
    """A restored copy of a 0600 photo was 0644 (readable by every user), and an exported model 0600 (safetensors
    writes its files private: ComfyUI running as another user could not load it). Both as cp gives them now."""
    import os
    import stat

    from clrface_video.restore.model import CLRFaceConfig, CLRFaceModel

    mask = os.umask(0o022)
    try:
        for mode, face in ((0o600, astronaut), (0o640, np.zeros_like(astronaut))):  # restored, and copied as is
            source = tmp_path / f"photo_{mode:o}.png"
            Image.fromarray(face).save(source)
            source.chmod(mode)
            restore_image(source, tmp_path / f"out_{mode:o}.png", BASELINE)
            assert stat.S_IMODE((tmp_path / f"out_{mode:o}.png").stat().st_mode) == mode
        scan = tmp_path / "scan.tif"  # a multi-page TIFF, written page by page
        Image.fromarray(astronaut).save(scan, save_all=True, append_images=[Image.fromarray(astronaut[:, ::-1])])
        scan.chmod(0o600)
        restore_image(scan, tmp_path / "scan_out.tif", BASELINE)
        assert stat.S_IMODE((tmp_path / "scan_out.tif").stat().st_mode) == 0o600
        CLRFaceModel(CLRFaceConfig.tiny()).save(tmp_path / "model.safetensors")
        assert stat.S_IMODE((tmp_path / "model.safetensors").stat().st_mode) == 0o644
    finally:
        os.umask(mask)


def test_group_photo_gets_all_six_faces(tmp_path):
    group = shared_file("photos/insightface_t1.jpg")
    report = restore_image(group, tmp_path / "t1.jpg", BASELINE)
    assert report.faces == 6 and report.tracks == 6 and (tmp_path / "t1.jpg").is_file()


def test_restore_frames_for_api_users(astronaut):
    frames = [astronaut, np.zeros_like(astronaut), astronaut]
    out = list(restore_frames(iter(frames), BASELINE, as_video=True))
    assert len(out) == 3 and all(o.shape == astronaut.shape for o in out)
    assert np.array_equal(out[1], frames[1])  # no face: unchanged
    assert not np.array_equal(out[0], astronaut)
    stills = list(restore_frames(frames, BASELINE, as_video=False))
    assert np.array_equal(stills[1], frames[1]) and not np.array_equal(stills[2], astronaut)


# -- folders ---------------------------------------------------------------------------------------

@pytest.fixture()
def album(tmp_path, astronaut) -> Path:
    """album/a.jpg (EXIF + ICC), album/2009/b.png, album/2009/summer/c.jpg, a text file, a broken jpeg, and
    hidden files (an AppleDouble ._a.jpg, a .thumbnails folder) that are not the album's."""
    root = tmp_path / "album"
    (root / "2009" / "summer").mkdir(parents=True)
    exif = Image.Exif()
    exif[0x010F] = "clrface test camera"
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(astronaut).save(root / "a.jpg", exif=exif.tobytes(), icc_profile=icc, quality=92)
    Image.fromarray(astronaut[:300, :300]).save(root / "2009" / "b.png")
    Image.fromarray(astronaut[::2, ::2]).save(root / "2009" / "summer" / "c.jpg")
    (root / "notes.txt").write_text("not a photo")
    (root / "2009" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    (root / "._a.jpg").write_bytes(b"\x00\x05\x16\x07 a macOS AppleDouble file, not a photo")  # hidden: ignored
    (root / ".thumbnails").mkdir()
    Image.fromarray(astronaut[::4, ::4]).save(root / ".thumbnails" / "a.jpg")
    return root


def run_cli(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_folder_is_mirrored_with_metadata_and_a_bad_file_is_skipped(album, tmp_path):
    report_path = tmp_path / "report.json"
    result = run_cli("restore", album, "--model", "baseline-bicubic-sharpen", "--report", report_path)
    assert result.exit_code == 3, result.output  # done, except for the broken file
    out = tmp_path / "album_restored"
    made = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert made == ["2009/b.png", "2009/summer/c.jpg", "a.jpg"]
    warnings = [line for line in result.stderr.splitlines() if "broken.jpg" in line]
    assert len(warnings) == 1  # one line for the bad file, and the folder went on
    restored = Image.open(out / "a.jpg")
    original = Image.open(album / "a.jpg")
    assert restored.getexif().get(0x010F) == "clrface test camera"
    assert restored.info.get("icc_profile") == original.info.get("icc_profile")
    report = json.loads(report_path.read_text())
    assert report["images"] == 3 and report["faces"] == 3 and len(report["failed"]) == 1
    assert report["kind"] == "folder" and report["skipped"] == 0


def test_a_folders_failure_lines_name_each_file_once(tmp_path, astronaut):
    """'skipped cut.mp4: cut.mp4 is truncated ...' and 'skipped bad.jpg: cannot read bad.jpg as an image (cannot
    identify image file '.../bad.jpg')': the reader's message named the file the line had named, Pillow's a third
    time. Each is named once now, by the line; the same file restored alone is still named by its error."""
    folder = tmp_path / "G"
    folder.mkdir()
    (folder / "bad.jpg").write_text("not a picture")
    clip = make_clip(tmp_path / "whole.mp4", frames=8, size=(64, 64))
    (folder / "cut.mp4").write_bytes(clip.read_bytes()[:clip.stat().st_size // 2])  # its index, at the end, cut off
    Image.fromarray(astronaut).save(folder / "good.png")
    result = run_cli("restore", folder, "-o", tmp_path / "out", "--model", "baseline-bicubic-sharpen")
    assert result.exit_code == 3 and (tmp_path / "out" / "good.png").is_file(), result.output
    assert sorted(line for line in result.stderr.splitlines() if line.startswith("warning: skipped")) == [
        "warning: skipped bad.jpg: cannot read it as an image (cannot identify image file)",
        "warning: skipped cut.mp4: it is truncated or still being written (its index, the moov box, is missing)"]
    alone = CliRunner().invoke(cli, ["restore", str(folder / "bad.jpg"), "-o", str(tmp_path / "bad_out.jpg")])
    assert alone.exit_code != 0 and alone.stderr.startswith("error: cannot read bad.jpg as an image ("), alone.output


def test_a_folders_line_names_a_file_mentioned_mid_sentence_once(tmp_path):
    """A reason that names the file past its start ('writing NAME failed', 'the sequence NAME stopped there') named
    it a second time in a folder's line, which starts with it. The errors here are the readers' and writer's own."""
    from clrface_video.errors import failure_line
    from clrface_video.io.completeness import check_frame_count
    from clrface_video.io.decode import probe_video
    from clrface_video.io.encode import VideoWriter
    from clrface_video.io.sequence import find_sequence
    from tests.media import make_sequence

    def reason(call) -> BaseException:
        with pytest.raises(ClrfaceError) as caught:  # an InputError or the writer's ClrfaceError
            call()
        return caught.value

    scan = make_sequence(tmp_path / "scan" / "scan_%04d.png", frames=4, size=(64, 48))
    relative = Path("scan") / scan.name
    assert failure_line(relative, reason(lambda: check_frame_count(scan, 2))) == \
        "scan/scan_%04d.png: scan_0003.png cannot be read: the sequence stopped there, after 2 of its 4 frames"
    (tmp_path / "scan" / "scan_0002.png").unlink()
    assert failure_line(relative, reason(lambda: find_sequence(scan))) == (
        "scan/scan_%04d.png: scan_0002.png is missing from the sequence (3 frames from 1 to 4); restore each "
        "unbroken run on its own")
    clip = make_clip(tmp_path / "clip.mp4", frames=2, size=(64, 48), audio=False)
    out = tmp_path / "out" / "clip.mp4"
    out.parent.mkdir()

    def write_nothing() -> None:
        with VideoWriter(out, clip, probe_video(clip)):
            pass

    assert failure_line(Path("2009/clip.mp4"), reason(write_nothing)) == "2009/clip.mp4: no frames were written to it"


def test_a_photo_that_fails_to_be_written_does_not_stop_the_folder(album, tmp_path, monkeypatch):
    write = photos.save_photo

    def save_photo(source, target, *args, **kwargs):  # as Pillow's libtiff writer fails on an odd scan
        if source.name == "b.png":
            raise RuntimeError("Error setting from dictionary")
        return write(source, target, *args, **kwargs)

    monkeypatch.setattr(photos, "save_photo", save_photo)
    result = run_cli("restore", album, "--model", "baseline-bicubic-sharpen")
    assert result.exit_code == 3, result.output
    out = tmp_path / "album_restored"
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == ["2009/summer/c.jpg", "a.jpg"]
    assert [line for line in result.stderr.splitlines() if "b.png" in line] == \
        ["warning: skipped 2009/b.png: Error setting from dictionary"]
    # the summary line counts it with the broken jpeg, and its face, restored but in no output, is not counted
    assert result.stdout.startswith("restored 2 faces in 2 images, 2 failed "), result.stdout


class _BrokenRestorer(BicubicSharpenRestorer):
    """A restorer whose device has gone away: every call fails."""

    name = "test-broken-restorer"

    def restore(self, batch: RestoreBatch) -> np.ndarray:
        raise RuntimeError("CUDA error: device lost (test)")


register_restorer(_BrokenRestorer.name, "test only")(lambda device, fidelity=0.5, path=None: _BrokenRestorer())


def test_a_restorer_fault_stops_the_folder_instead_of_failing_every_photo(album, tmp_path):
    with pytest.raises(RuntimeError, match="device lost"):
        restore_folder(album, tmp_path / "out", RestoreConfig(model=_BrokenRestorer.name, device="cpu"))
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]


class _DiskFullOnSecondCall(BicubicSharpenRestorer):
    """A restorer whose second call fails as a compiler writing its cache to a full disk would: an OSError, which
    the CLI reports as a one-line error (exit 2) and which every picture after it would meet too."""

    name = "test-disk-full-restorer"

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def restore(self, batch: RestoreBatch) -> np.ndarray:
        self.calls += 1
        if self.calls == 2:
            raise OSError(28, "No space left on device (test)")
        return super().restore(batch)


register_restorer(_DiskFullOnSecondCall.name, "test only")(
    lambda device, fidelity=0.5, path=None: _DiskFullOnSecondCall())


def _two_page_scan(path: Path, image: np.ndarray) -> Path:
    """A multi-page TIFF of two face pages (the second shifted), as tifffile writes it: each page's tags first."""
    tifffile.imwrite(path, image, photometric="rgb")
    tifffile.imwrite(path, np.roll(image, 8, axis=1), photometric="rgb", append=True)
    return path


def _files_under(folder: Path) -> list[str]:
    """Every file under `folder`, hidden partial files included."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


class _FileWithRoom(io.FileIO):
    """A file on a disk with `room` bytes left (shared by the files open at once): a write past it takes what
    fits and says so by its count, the next one fails with ENOSPC."""

    room = 0

    def write(self, data) -> int:
        if _FileWithRoom.room <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written = super().write(memoryview(data).cast("B")[:_FileWithRoom.room])
        _FileWithRoom.room -= written
        return written


def test_a_scan_the_disk_is_full_under_is_one_line_and_no_file_wherever_the_disk_fills(tmp_path, astronaut,
                                                                                        monkeypatch):
    """The scan's pages go through a buffered file, whose last bytes reach the disk when it is closed: a full disk
    met there was a bare OSError, which left the hidden partial file behind, and after a page's own error it
    replaced that page's one-line error. Wherever the disk fills, it is now one ClrfaceError that says the disk
    is full, and nothing is left in the folder."""
    from clrface_video.errors import ClrfaceError, disk_full
    from clrface_video.io import tiff_pages

    small = np.ascontiguousarray(astronaut[::2, ::2])
    source = _two_page_scan(tmp_path / "scan.tif", small)
    out = tmp_path / "out"
    out.mkdir()

    def write_scan() -> None:
        with tiff_pages.PageWriter(out / "scan.tif", source) as writer:
            for page in tiff_pages.read_pages(source):
                writer.write(255 - page.photo.image, page)

    write_scan()
    whole = (out / "scan.tif").stat().st_size
    (out / "scan.tif").unlink()
    monkeypatch.setattr(tiff_pages, "open", lambda path, mode: io.BufferedRandom(_FileWithRoom(path, "w+")),
                        raising=False)
    for room in range(0, whole, whole // 40):
        _FileWithRoom.room = room
        with pytest.raises(ClrfaceError, match=r"^cannot write (page \d of )?scan.tif \(No space left on device\)$") \
                as raised:
            write_scan()
        assert disk_full(raised.value) and list(out.iterdir()) == [], room


def test_a_restorer_fault_on_a_scans_page_stops_the_folder_as_on_a_photo(tmp_path, astronaut):
    small = np.ascontiguousarray(astronaut[::2, ::2])
    photos_only, scans = tmp_path / "photos", tmp_path / "scans"
    for folder in (photos_only, scans):
        folder.mkdir()
        Image.fromarray(small).save(folder / "b.jpg")
    Image.fromarray(small).save(photos_only / "a.jpg")  # the restorer fails on b.jpg, the folder's second picture
    scan = _two_page_scan(scans / "a_scan.tif", small)  # ... and here on the scan's second page
    original = scan.read_bytes()
    on_photo = run_cli("restore", photos_only, "--model", _DiskFullOnSecondCall.name, "--device", "cpu")
    on_page = run_cli("restore", scans, "--model", _DiskFullOnSecondCall.name, "--device", "cpu")
    assert on_photo.exit_code == 2 and on_photo.stderr == "error: No space left on device (test)\n"
    assert (on_page.exit_code, on_page.stderr) == (on_photo.exit_code, on_photo.stderr)
    assert _files_under(tmp_path / "photos_restored") == ["a.jpg"]  # done before the fault
    assert _files_under(tmp_path / "scans_restored") == []  # no half-written scan, and b.jpg never reached
    assert scan.read_bytes() == original


def _without_width(scan: Path) -> None:
    """Damage the second page's tags: its ImageWidth entry renamed to a private tag (Pillow: 'Missing dimensions')."""
    data = bytearray(scan.read_bytes())
    with tifffile.TiffFile(scan) as tiff:
        ifd = tiff.pages[1].offset
    for entry in range(int.from_bytes(data[ifd:ifd + 2], "little")):
        at = ifd + 2 + 12 * entry
        if int.from_bytes(data[at:at + 2], "little") == 256:
            data[at:at + 2] = (65000).to_bytes(2, "little")
    scan.write_bytes(bytes(data))


def _truncated(scan: Path) -> None:
    """Cut the file in the middle of the second page's pixels."""
    with tifffile.TiffFile(scan) as tiff:
        middle = tiff.pages[1].dataoffsets[0] + tiff.pages[1].databytecounts[0] // 2
    scan.write_bytes(scan.read_bytes()[:middle])


@pytest.mark.parametrize("damage", [_without_width, _truncated])
def test_a_scan_with_a_damaged_page_is_skipped_and_the_folder_goes_on(tmp_path, astronaut, damage):
    small = np.ascontiguousarray(astronaut[::2, ::2])
    folder = tmp_path / "scans"
    folder.mkdir()
    scan = _two_page_scan(folder / "a_scan.tif", small)
    damage(scan)
    damaged = scan.read_bytes()
    Image.fromarray(small).save(folder / "b.jpg")
    result = run_cli("restore", folder, "--model", "baseline-bicubic-sharpen", "--device", "cpu")
    assert result.exit_code == 3, result.output  # done, except for the damaged scan
    assert [line for line in result.stderr.splitlines() if "a_scan.tif" in line] == \
        [line for line in result.stderr.splitlines() if line.startswith("warning: skipped a_scan.tif: ")] != []
    assert _files_under(tmp_path / "scans_restored") == ["b.jpg"]
    before = np.asarray(Image.open(folder / "b.jpg"))
    assert np.any(np.asarray(Image.open(tmp_path / "scans_restored" / "b.jpg")) != before)  # its face restored
    assert scan.read_bytes() == damaged


def test_a_scan_with_broken_page_tags_alone_is_refused_in_one_line(tmp_path, astronaut):
    """Pillow raises TypeError on a page without its width: restore (to a scan or a JPEG) and detect say so in one
    line with the input-error status, write nothing and leave the scan as it was."""
    scan = _two_page_scan(tmp_path / "a_scan.tif", np.ascontiguousarray(astronaut[::2, ::2]))
    _without_width(scan)
    damaged = scan.read_bytes()
    fast = ["--model", "baseline-bicubic-sharpen", "--device", "cpu"]
    for command in (["restore", scan, "-o", tmp_path / "out.tif", *fast],
                    ["restore", scan, "-o", tmp_path / "out.jpg", *fast], ["detect", scan]):
        result = run_cli(*command)
        assert result.exit_code == 2, result.output
        assert result.stderr == "error: cannot read a_scan.tif as an image (Missing dimensions)\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_scan.tif"] and scan.read_bytes() == damaged


def test_folder_rerun_skips_done_files_and_overwrite_redoes_them(album, tmp_path):
    out = tmp_path / "done"
    first = restore_folder(album, out, BASELINE)
    assert first.images == 3
    stamps = {p: p.stat().st_ino for p in out.rglob("*") if p.is_file()}  # a rewrite renames a new file in
    (out / "2009" / "b.png").unlink()  # as if the first run had stopped before it
    (out / "2009" / ".b.partial.png").write_bytes(b"half")  # and left a temporary file behind
    again = restore_folder(album, out, BASELINE)
    assert again.images == 1 and again.skipped == 2
    for path, stamp in stamps.items():
        if path.name != "b.png":
            assert path.stat().st_ino == stamp
    redo = restore_folder(album, out, RestoreConfig(model="baseline-bicubic-sharpen", device="cpu", overwrite=True))
    assert redo.images == 3 and redo.skipped == 0
    assert all(path.stat().st_ino != stamp for path, stamp in stamps.items() if path.name != "b.png")


def test_folder_overwrite_skips_outputs_made_read_only(album, tmp_path):
    """--overwrite over a folder renamed new files over the restored photos and videos the user had made
    read-only (finished masters, chmod 444). Each is skipped now with one warning and counted with the files
    already done, left byte for byte as it was; the others are redone, and nothing temporary is left."""
    from tests.media import make_clip

    make_clip(album / "2009" / "tape.mp4", frames=3, size=(128, 96), face=False, audio=False)
    out = tmp_path / "done"
    first = restore_folder(album, out, BASELINE)
    assert (first.images, first.videos) == (3, 1)
    locked = [out / "2009" / "b.png", out / "2009" / "tape.mp4"]
    for path in locked:
        os.chmod(path, 0o444)
    before = {p: (p.read_bytes(), p.stat().st_ino, p.stat().st_mode) for p in out.rglob("*") if p.is_file()}
    redo = restore_folder(album, out, replace(BASELINE, overwrite=True))
    assert (redo.images, redo.videos, redo.skipped) == (2, 0, 2)
    assert [line for line in redo.warnings if "read-only" in line] == [
        "skipped 2009/b.png: it is read-only; make it writable to redo it",
        "skipped 2009/tape.mp4: it is read-only; make it writable to redo it"]
    after = {p: (p.read_bytes(), p.stat().st_ino, p.stat().st_mode) for p in out.rglob("*") if p.is_file()}
    assert after.keys() == before.keys()  # no temporary file left
    assert all((after[p] == before[p]) == (p in locked) for p in before)  # the others written anew


def test_the_cli_names_a_read_only_output_once_in_a_folder(tmp_path, astronaut):
    """'warning: skipped a.jpg: a.jpg is read-only; ...': the line's lead names the file, so its reason says 'it'."""
    folder, out = tmp_path / "two", tmp_path / "done"
    folder.mkdir()
    for name in ("a.jpg", "b.jpg"):
        Image.fromarray(astronaut[::4, ::4]).save(folder / name)
    flags = ["--model", "baseline-bicubic-sharpen", "--device", "cpu"]
    assert run_cli("restore", folder, "-o", out, *flags).exit_code == 0
    os.chmod(out / "a.jpg", 0o444)
    result = run_cli("restore", folder, "-o", out, *flags, "--overwrite")
    assert result.exit_code == 0, result.output
    assert [line for line in result.stderr.splitlines() if line.startswith("warning")] == [
        "warning: skipped a.jpg: it is read-only; make it writable to redo it"]


def test_folder_overwrite_redoes_the_output_of_a_read_only_original(album, tmp_path):
    """An output was given its source's mode, so an archive's read-only original gave a read-only output, which
    --overwrite (and a rerun once the original changed) took for a master the user had protected: skipped for
    good, even after the original was made writable. A copy is now written with its owner's write bit (the
    rest of the original's mode kept) and redone."""
    original = album / "2009" / "b.png"
    os.chmod(original, 0o444)
    out = tmp_path / "done"
    restore_folder(album, out, BASELINE)
    assert (out / "2009" / "b.png").stat().st_mode & 0o222 == 0o200  # its owner may write it, no one else
    inode = (out / "2009" / "b.png").stat().st_ino
    os.chmod(original, 0o644)  # made writable to edit, as a photo copied from a CD is
    redo = restore_folder(album, out, replace(BASELINE, overwrite=True))
    assert (redo.images, redo.skipped) == (3, 0) and not [line for line in redo.warnings if "read-only" in line]
    assert (out / "2009" / "b.png").stat().st_ino != inode


def test_a_changed_original_is_redone_and_an_edited_output_kept(tmp_path, astronaut):
    """A rerun kept every output that existed, so an original changed since it was restored (a better scan put
    in its place) was never restored again. Each output has its original's date, so an original newer than its
    output by more than FAT's 2 s step is redone, said in one warning; an output newer than its original (edited
    after restoring) is kept, and so is one 2 s older (a FAT copy's date) or an hour and 1 s older (FAT keeps
    local time: a card's dates move an hour when daylight-saving time starts)."""
    album, out = tmp_path / "album", tmp_path / "out"
    (album / "2021").mkdir(parents=True)
    photo, done = album / "2021" / "a.png", out / "2021" / "a.png"
    Image.fromarray(astronaut).save(photo)
    os.utime(photo, (1_600_000_000, 1_600_000_000))
    assert restore_folder(album, out, BASELINE).images == 1
    rescanned = (astronaut // 2 + 100).astype(np.uint8)  # lighter, at half the contrast: the same picture
    Image.fromarray(rescanned).save(photo)  # the new scan, dated later
    os.utime(photo, (1_600_000_100, 1_600_000_100))
    again = restore_folder(album, out, BASELINE)
    assert (again.images, again.skipped) == (1, 0)
    assert again.warnings == ["redoing 2021/a.png: the original changed since it was restored"]
    assert np.array_equal(np.asarray(Image.open(done))[400:], rescanned[400:])  # no face there: the new pixels
    assert done.stat().st_mtime_ns == photo.stat().st_mtime_ns
    for edited in (1_600_000_200, 1_600_000_098, 1_599_996_499):  # touched after; 2 s off, as FAT keeps it; DST
        os.utime(done, (edited, edited))
        file = done.stat().st_ino
        kept = restore_folder(album, out, BASELINE)
        assert (kept.images, kept.skipped, kept.warnings) == (0, 1, [])
        assert done.stat().st_ino == file and done.stat().st_mtime == edited


def test_a_folders_changed_video_is_redone_with_one_warning(tmp_path):
    """A folder's video whose original changed is redone as its photos are, said once (restore_video, asked
    again by the folder, said it a second time under its file name alone)."""
    album = tmp_path / "album"
    album.mkdir()
    clip = make_clip(album / "clip.mp4", frames=3, size=(128, 96), face=False, audio=False)
    assert restore_folder(album, tmp_path / "out", BASELINE).videos == 1
    os.utime(clip, (clip.stat().st_atime + 60, clip.stat().st_mtime + 60))
    again = restore_folder(album, tmp_path / "out", BASELINE)
    assert (again.videos, again.skipped) == (1, 0)
    assert again.warnings == ["redoing clip.mp4: the original changed since it was restored"]
    assert (tmp_path / "out" / "clip.mp4").stat().st_mtime_ns == clip.stat().st_mtime_ns


def test_a_single_photos_job_redoes_its_output_when_the_original_changed(tmp_path, astronaut):
    """restore_image took an output that existed as done, however much newer its original was: the same rule as a
    folder's now (reruns.left_as_is)."""
    photo, out = tmp_path / "a.png", tmp_path / "a_out.png"
    Image.fromarray(astronaut).save(photo)
    os.utime(photo, (1_600_000_000, 1_600_000_000))
    assert restore_image(photo, out, BASELINE).images == 1
    os.utime(photo, (1_600_000_010, 1_600_000_010))  # retouched since
    redone = restore_image(photo, out, BASELINE)
    assert (redone.images, redone.skipped) == (1, 0)
    assert redone.warnings == ["redoing a_out.png: the original changed since it was restored"]
    assert out.stat().st_mtime == 1_600_000_010
    assert restore_image(photo, out, BASELINE).skipped == 1


def test_a_rerun_that_restores_nothing_loads_no_model_and_names_no_settings(album, tmp_path):
    """A rerun with every photo done but a broken file, tried again and failing again, loaded the models and
    reported their settings, as if it had restored with them. The models now load at the first photo read
    whole, and the settings are named once a photo was restored: null here, as for a folder already done."""
    out, loads = tmp_path / "out", []

    def models_for(video: bool):
        loads.append(video)
        return load_models(BASELINE, video=video)

    first = restore_folder(album, out, BASELINE, models_for=models_for)
    assert first.images == 3 and first.settings is not None and loads == [False]
    again = restore_folder(album, out, BASELINE, models_for=models_for)
    assert (again.images, again.skipped, len(again.failed)) == (0, 3, 1) and loads == [False]
    assert json.loads(again.to_json())["settings"] is None
    assert (again.model, again.device) == ("baseline-bicubic-sharpen", "cpu")


def test_a_folders_empty_files_are_each_named_once_in_their_line(tmp_path, astronaut):
    """A zero-byte photo's line named it twice, the second time by its full path ('skipped 2021/leer.jpg: image
    is empty (0 bytes): /tmp/.../leer.jpg'), a zero-byte video's too: each message names its file as the
    others do, by its name."""
    album = tmp_path / "album"
    (album / "2021").mkdir(parents=True)
    Image.fromarray(astronaut[::2, ::2]).save(album / "a.jpg")
    (album / "2021" / "leer.jpg").write_bytes(b"")
    (album / "2021" / "leer.mp4").write_bytes(b"")
    report = restore_folder(album, tmp_path / "out", BASELINE)
    assert report.warnings == ["skipped 2021/leer.jpg: it is empty (0 bytes)",
                               "skipped 2021/leer.mp4: it is empty (0 bytes)"]
    assert report.failed == ["2021/leer.jpg: it is empty (0 bytes)", "2021/leer.mp4: it is empty (0 bytes)"]


def test_a_stale_output_made_read_only_is_kept_not_redone(album, tmp_path):
    """A rerun redoes an output whose original changed since, but not one the user made read-only: that is a
    finished master, kept byte for byte with one warning naming it, and no 'redoing' line."""
    out = tmp_path / "done"
    restore_folder(album, out, BASELINE)
    master = out / "2009" / "b.png"
    os.chmod(master, 0o444)
    kept = master.read_bytes()
    later = (album / "2009" / "b.png").stat().st_mtime + 60
    os.utime(album / "2009" / "b.png", (later, later))
    again = restore_folder(album, out, BASELINE)
    assert again.images == 0 and master.read_bytes() == kept
    assert [line for line in again.warnings if "b.png" in line] == [
        ("skipped 2009/b.png: it is read-only; make it writable to redo it (the original changed since it was "
         "restored)")]


@pytest.fixture()
def lock_folder():
    """Make a folder read-only as a user meets one: its write bits taken off (chmod -R a-w); where the tests run
    as root, whom those do not stop, a read-only bind mount of it instead, as an archive disk or a locked card
    is (skipped where mount is not permitted)."""
    import subprocess

    locked: list[Path] = []

    def lock(folder: Path) -> None:
        if os.name != "posix":
            pytest.skip("a read-only folder is made here with POSIX modes or a bind mount")
        if os.geteuid() != 0:
            for path in [folder, *folder.rglob("*")]:
                os.chmod(path, path.stat().st_mode & ~0o222)
        elif subprocess.run(["mount", "--bind", folder, folder], capture_output=True, check=False).returncode != 0:
            pytest.skip("a read-only bind mount cannot be made here (needs mount)")
        elif subprocess.run(["mount", "-o", "remount,bind,ro", folder], capture_output=True,
                            check=False).returncode != 0:
            subprocess.run(["umount", folder], check=True)
            pytest.skip("a read-only bind mount cannot be made here (needs mount)")
        locked.append(folder)

    yield lock
    for folder in locked:
        if os.geteuid() == 0:
            subprocess.run(["umount", folder], check=True)
        else:
            for path in [folder, *folder.rglob("*")]:
                os.chmod(path, path.stat().st_mode | 0o200)


def test_a_rerun_into_a_read_only_output_folder_writes_nothing_and_passes(album, tmp_path, lock_folder):
    """An archived restored folder made read-only failed even a rerun with everything up to date ('cannot write
    in done'), a single photo's too. Nothing needs writing, so each says it is done and exits 0; only an output
    that must be written again fails, in one line naming it (no hidden temporary name), and so does a --report
    asked into that folder. Originals and outputs stay as they were."""
    (album / "2009" / "broken.jpg").unlink()
    out = tmp_path / "done"
    restore_folder(album, out, BASELINE)
    lock_folder(out)
    before = {p: p.read_bytes() for p in [*album.rglob("*"), *out.rglob("*")] if p.is_file()}
    model = ["--model", "baseline-bicubic-sharpen", "--device", "cpu"]

    again = run_cli("restore", album, "-o", out, *model, "--report", tmp_path / "r.json")
    assert again.exit_code == 0 and again.stderr == "", again.output
    assert "3 already done" in again.stdout and json.loads((tmp_path / "r.json").read_text())["skipped"] == 3
    one = run_cli("restore", album / "a.jpg", "-o", out / "a.jpg", *model)
    assert one.exit_code == 0 and one.stdout.startswith("already restored, left as is"), one.output

    redo = run_cli("restore", album / "a.jpg", "-o", out / "a.jpg", *model, "--overwrite")
    assert redo.exit_code == 2 and redo.stderr.startswith(f"error: cannot write a.jpg in {out} ("), redo.output
    folder = run_cli("restore", album, "-o", out, *model, "--overwrite")
    assert folder.exit_code == 3, folder.output
    assert folder.stdout.startswith("restored 0 faces in 0 images, 3 failed "), folder.output  # none written
    assert sorted(line.split(" (")[0] for line in folder.stderr.splitlines()) == [
        "warning: skipped 2009/b.png: cannot write it as PNG",
        "warning: skipped 2009/summer/c.jpg: cannot write it as JPEG",
        "warning: skipped a.jpg: cannot write it as JPEG"]
    assert ".partial" not in folder.stderr
    report = run_cli("restore", album, "-o", out, *model, "--report", out / "r.json")
    assert report.exit_code == 2 and len(report.output.splitlines()) == 1, report.output
    assert report.stderr.startswith(f"error: cannot write the --report file r.json in {out} (")
    assert {p: p.read_bytes() for p in [*album.rglob("*"), *out.rglob("*")] if p.is_file()} == before


def test_an_unreadable_subfolder_is_a_failure_of_the_folder(album, tmp_path, unreadable):
    """A subfolder that cannot be read was one warning, which -q hid, and the folder passed (exit 0): a script
    never learnt that part of the library was not looked at. It is now said as a file that failed (with -q
    too), named in the report's `failed` with its reason, and the command ends in status 3; an input folder
    that cannot be read at all is a one-line error."""
    (album / "2009" / "broken.jpg").unlink()
    unreadable(album / "2009" / "summer")
    report_path = tmp_path / "r.json"
    result = run_cli("restore", album, "-o", tmp_path / "out", "--model", "baseline-bicubic-sharpen", "-q",
                     "--report", report_path)
    assert result.exit_code == 3, result.output
    assert result.stderr == "warning: skipped 2009/summer: cannot read the folder (Permission denied)\n"
    assert result.stdout.startswith("restored 2 faces in 2 images, 1 failed "), result.stdout
    assert json.loads(report_path.read_text())["failed"] == ["2009/summer: cannot read the folder (Permission denied)"]
    assert sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*.*")) == [
        "2009/b.png", "a.jpg"]

    unreadable(album)
    whole = run_cli("restore", album, "-o", tmp_path / "out", "--model", "baseline-bicubic-sharpen")
    assert whole.exit_code == 2 and whole.stderr == f"error: cannot read the folder {album} (Permission denied)\n"


# -- XMP sidecars -----------------------------------------------------------------------------------

LIGHTROOM_XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description xmp:Rating="5" dc:subject="Oma"/></x:xmpmeta>'


def test_a_folders_xmp_sidecars_are_copied_beside_their_restored_photos(album, tmp_path):
    """A photo library's ratings, keywords, face tags and edits live in XMP sidecars beside each photo (Lightroom's
    a.xmp, darktable's and digiKam's c.jpg.xmp): the restored folder had none. Each is copied beside its photo's
    output under the same scheme, byte for byte, with its date and mode; a stray one (no photo) is neither an
    input nor warned about, and the originals are untouched."""
    (album / "a.xmp").write_bytes(LIGHTROOM_XMP)
    darktable = album / "2009" / "summer" / "c.jpg.xmp"
    darktable.write_bytes(b"<x:xmpmeta darktable:history='...'/>")
    os.chmod(darktable, 0o600)
    os.utime(darktable, (1_000_000_000, 1_000_000_000))
    (album / "2009" / "stray.xmp").write_bytes(b"<x:xmpmeta/>")
    originals = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in album.rglob("*") if p.is_file()}
    out = tmp_path / "out"
    report = restore_folder(album, out, BASELINE)
    assert report.images == 3 and not [line for line in report.warnings if "xmp" in line]
    copied = out / "2009" / "summer" / "c.jpg.xmp"
    assert (out / "a.xmp").read_bytes() == LIGHTROOM_XMP and copied.read_bytes() == darktable.read_bytes()
    assert copied.stat().st_mtime_ns == darktable.stat().st_mtime_ns and copied.stat().st_mode & 0o777 == 0o600
    assert not (out / "2009" / "stray.xmp").exists()
    assert sorted(p.name for p in out.rglob("*") if p.name.startswith(".")) == []  # no temporary file left
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in album.rglob("*") if p.is_file()} == originals


def test_a_photos_sidecar_follows_it_into_another_format_and_a_read_only_copy_is_kept(tmp_path, astronaut):
    """restore x.jpg -o out.png: the sidecars describe the photo, so they go along in their schemes (x.jpg.xmp ->
    out.png.xmp, x.xmp -> out.xmp); a copy the user made read-only is not written over (one warning), and
    x.jpg -o x.png beside it leaves x.xmp, which both share, as it is."""
    source = tmp_path / "x.jpg"
    Image.fromarray(astronaut[::2, ::2]).save(source)
    (tmp_path / "x.jpg.xmp").write_bytes(b"darktable")
    (tmp_path / "x.xmp").write_bytes(LIGHTROOM_XMP)
    (tmp_path / "out").mkdir()
    restore_image(source, tmp_path / "out" / "out.png", BASELINE)
    assert (tmp_path / "out" / "out.png.xmp").read_bytes() == b"darktable"
    assert (tmp_path / "out" / "out.xmp").read_bytes() == LIGHTROOM_XMP
    os.chmod(tmp_path / "out" / "out.xmp", 0o444)
    (tmp_path / "x.xmp").write_bytes(b"rated again")
    again = restore_image(source, tmp_path / "out" / "out.png", replace(BASELINE, overwrite=True))
    assert (tmp_path / "out" / "out.xmp").read_bytes() == LIGHTROOM_XMP
    assert again.warnings == ["out.png: its sidecar out.xmp is read-only, kept as it is"]
    restore_image(source, tmp_path / "x.png", BASELINE)
    assert (tmp_path / "x.xmp").read_bytes() == b"rated again" and (tmp_path / "x.png.xmp").read_bytes() == b"darktable"


def test_a_rerun_brings_the_sidecars_of_photos_already_restored(album, tmp_path):
    """A library restored before sidecars were copied, or a sidecar given a rating after the restore, never got
    its copy: a photo left as it is looked at none. A rerun now copies each sidecar whose copy is missing or
    older than it (the photos' own rule), counts them in the summary, leaves the photos as they are, keeps a
    copy edited since (newer) and a read-only one, and a single photo's rerun does the same."""
    (album / "2009" / "broken.jpg").unlink()
    out = tmp_path / "out"
    restore_folder(album, out, BASELINE)
    photos_before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.rglob("*.*")}
    (album / "a.xmp").write_bytes(LIGHTROOM_XMP)
    (album / "2009" / "summer" / "c.jpg.xmp").write_bytes(b"<x:xmpmeta darktable:history='...'/>")
    model = ["--model", "baseline-bicubic-sharpen", "--device", "cpu"]

    again = run_cli("restore", album, "-o", out, *model)
    assert again.exit_code == 0 and again.stderr == "", again.output
    assert again.stdout.startswith("restored 0 faces in 0 images, 3 already done, 2 sidecars brought up to date ")
    assert (out / "a.xmp").read_bytes() == LIGHTROOM_XMP
    assert (out / "2009" / "summer" / "c.jpg.xmp").read_bytes() == b"<x:xmpmeta darktable:history='...'/>"
    assert (out / "a.xmp").stat().st_mtime_ns == (album / "a.xmp").stat().st_mtime_ns
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in photos_before} == photos_before  # not rewritten

    rated = (album / "a.xmp").stat().st_mtime_ns + 10_000_000_000
    (album / "a.xmp").write_bytes(b'<x:xmpmeta xmp:Rating="1"/>')  # rated again, later
    os.utime(album / "a.xmp", ns=(rated, rated))
    edited = out / "2009" / "summer" / "c.jpg.xmp"
    edited.write_bytes(b"edited in the restored library")  # newer than its sidecar: stands
    assert restore_folder(album, out, BASELINE).sidecars == 1
    assert (out / "a.xmp").read_bytes() == b'<x:xmpmeta xmp:Rating="1"/>'
    assert edited.read_bytes() == b"edited in the restored library"
    assert restore_folder(album, out, BASELINE).sidecars == 0  # up to date now

    os.chmod(out / "a.xmp", 0o444)
    (album / "a.xmp").write_bytes(b"rated once more")
    os.utime(album / "a.xmp", ns=(rated + 10_000_000_000,) * 2)
    kept = restore_folder(album, out, BASELINE)
    assert kept.sidecars == 0 and kept.warnings == ["a.jpg: its sidecar a.xmp is read-only, kept as it is"]
    assert (out / "a.xmp").read_bytes() == b'<x:xmpmeta xmp:Rating="1"/>'
    (album / "2009" / "b.png.xmp").write_bytes(b"tagged")
    one = run_cli("restore", album / "2009" / "b.png", "-o", out / "2009" / "b.png", *model)
    assert one.stdout.startswith("already restored, left as is, 1 sidecar brought up to date"), one.output
    assert (out / "2009" / "b.png.xmp").read_bytes() == b"tagged"


def test_a_photo_whose_sidecar_cannot_be_written_is_not_kept_without_it(tmp_path, astronaut):
    """A sidecar that cannot be written is a one-line error naming it, and the photo written before it goes too:
    kept, a rerun would pass over it as done and never bring its sidecar."""
    from clrface_video.errors import ClrfaceError

    source = tmp_path / "x.jpg"
    Image.fromarray(astronaut[::2, ::2]).save(source)
    (tmp_path / "x.xmp").write_bytes(LIGHTROOM_XMP)
    (tmp_path / "out" / "y.xmp").mkdir(parents=True)  # in the copy's way
    with pytest.raises(ClrfaceError, match=r"^cannot write y\.xmp, the sidecar of y\.jpg \(.+\)$"):
        restore_image(source, tmp_path / "out" / "y.jpg", BASELINE)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["y.xmp"]


def test_a_turned_photos_sidecar_is_turned_with_it(tmp_path, astronaut):
    """A photo stored sideways (EXIF orientation 6) is written upright: its sidecar's orientation, size and MWG
    face region are made to match it, as its own XMP's are (a region at x 0.3, y 0.4 of the stored pixels lies
    at x 0.6, y 0.3 of the upright ones, its width and height traded). One with no face, copied byte for byte,
    still turned, keeps its sidecar's bytes too."""
    stored = Image.fromarray(astronaut[:400]).transpose(Image.Transpose.ROTATE_90)  # 400 wide, 512 high
    exif = Image.Exif()
    exif[0x0112] = 6
    source = tmp_path / "sideways.jpg"
    stored.save(source, exif=exif.tobytes(), quality=95)
    (tmp_path / "sideways.jpg.xmp").write_bytes(
        b'<rdf:Description tiff:Orientation="6" tiff:ImageWidth="400" tiff:ImageLength="512">'
        b'<mwg-rs:Area stArea:x="0.3" stArea:y="0.4" stArea:w="0.2" stArea:h="0.1" stArea:unit="normalized"/>'
        b'</rdf:Description>')
    restore_image(source, tmp_path / "up.jpg", BASELINE)
    assert Image.open(tmp_path / "up.jpg").size == (512, 400)
    assert (tmp_path / "up.jpg.xmp").read_bytes() == (
        b'<rdf:Description tiff:Orientation="1" tiff:ImageWidth="512" tiff:ImageLength="400">'
        b'<mwg-rs:Area stArea:x="0.6" stArea:y="0.3" stArea:w="0.1" stArea:h="0.2" stArea:unit="normalized"/>'
        b'</rdf:Description>')
    stored.resize((40, 51)).save(source, exif=exif.tobytes(), quality=95)  # no face: copied as it is, still turned
    restore_image(source, tmp_path / "kept.jpg", BASELINE)
    assert (tmp_path / "kept.jpg").read_bytes() == source.read_bytes()
    assert (tmp_path / "kept.jpg.xmp").read_bytes() == (tmp_path / "sideways.jpg.xmp").read_bytes()


def test_a_photo_past_pillows_limit_gets_its_sidecar(tmp_path, astronaut, monkeypatch):
    """A photo past Pillow's decompression-bomb limit (179 MP: a film scan, a panorama) is read and restored, but
    its sidecar's copy opened it again under that limit: 'unexpected DecompressionBombError', the restored photo
    left without its sidecar. Pillow's limit is lowered here (to 1,000 pixels) so that a small photo passes it."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    source = tmp_path / "scan.jpg"
    Image.fromarray(astronaut[::2, ::2]).save(source)
    (tmp_path / "scan.xmp").write_bytes(LIGHTROOM_XMP)
    report = restore_image(source, tmp_path / "out.jpg", BASELINE)
    assert report.faces == 1 and (tmp_path / "out.xmp").read_bytes() == LIGHTROOM_XMP


def test_faces_outside_the_model_range_are_left_alone(tmp_path, astronaut):
    source = tmp_path / "astronaut.png"
    Image.fromarray(astronaut).save(source)
    too_small = RestoreConfig(model="baseline-bicubic-sharpen", device="cpu", min_face=500)
    report = restore_image(source, tmp_path / "small.png", too_small)
    assert report.faces == 0 and report.faces_left_alone == 1
    assert np.array_equal(np.asarray(Image.open(tmp_path / "small.png")), astronaut)
    too_large = RestoreConfig(model="baseline-bicubic-sharpen", device="cpu", max_upscale=0.5)
    assert restore_image(source, tmp_path / "large.png", too_large).faces_left_alone == 1


def test_a_folders_summary_and_report_name_the_photos_whose_faces_were_left_alone(tmp_path, astronaut):
    """'5 left alone' did not say in which photos: the summary names a few, then 'and N more', and the report
    lists each photo's faces left alone, where they are and why (too small for --min-face, too large for
    --max-upscale). Where none was left alone, neither says a word of it."""
    face = Image.fromarray(astronaut)
    root = tmp_path / "album"
    root.mkdir()
    face.resize((192, 192)).save(root / "a.png")  # eye-to-mouth 15 px: under 75% of --min-face 24
    face.save(root / "b.png")  # 37 px, its crop 166 px across: restored
    for name in "cdef":
        face.resize((1024, 1024)).save(root / f"{name}.png")  # its crop 349 px across: past 1.25 x 1.5 x 128
    limits = ("--model", "baseline-bicubic-sharpen", "--min-face", "24", "--max-upscale", "1.5")
    result = run_cli("restore", root, "-o", tmp_path / "out", "--report", tmp_path / "r.json", *limits)
    assert result.exit_code == 0, result.output
    assert "restored 1 face in 6 images; 5 left alone (too small or too large for the model: a.png, c.png, d.png " \
        "and 2 more) with" in result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["faces_left_alone"] == 5 and list(report["left_alone"]) == ["a.png", "c.png", "d.png", "e.png",
                                                                             "f.png"]
    (small,), (large,) = report["left_alone"]["a.png"], report["left_alone"]["f.png"]
    assert small["why"] == "too small" and small["span"] < 18 and large["why"] == "too large" and large["size"] > 240
    x1, y1, x2, y2 = large["box"]
    assert 0 <= x1 < x2 <= 1024 and 0 <= y1 < y2 <= 1024 and 150 < x2 - x1 < 600  # the face, in its photo's pixels
    alone = restore_image(root / "a.png", tmp_path / "a.png", replace(BASELINE, min_face=24))
    assert [face["why"] for face in alone.left_alone["a.png"]] == ["too small"]
    (root / "quiet").mkdir()
    face.save(root / "quiet" / "b.png")
    result = run_cli("restore", root / "quiet", "-o", tmp_path / "quiet", "--report", tmp_path / "q.json", *limits)
    assert result.exit_code == 0 and "left alone" not in result.output, result.output
    assert json.loads((tmp_path / "q.json").read_text())["left_alone"] == {}


def test_a_folder_of_photos_and_videos_restores_both(tmp_path, astronaut):
    """An archive folder: scans and digitised tapes side by side, one command, one mirrored tree."""
    from clrface_video.io.decode import probe_video, read_frames
    from tests.media import make_clip, read_packets

    root = tmp_path / "archive"
    (root / "tapes").mkdir(parents=True)
    Image.fromarray(astronaut).save(root / "scan.png")
    tape = make_clip(root / "tapes" / "1987.mp4", frames=6, size=(256, 192))
    (root / "tapes" / "chewed.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(64))
    result = run_cli("restore", root, "--model", "baseline-bicubic-sharpen", "--report", tmp_path / "r.json")
    assert result.exit_code == 3, result.output  # done, except for the chewed tape
    out = tmp_path / "archive_restored"
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == ["scan.png", "tapes/1987.mp4"]
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["images"] == 1 and report["videos"] == 1 and report["frames"] == 6
    assert report["faces"] == 1 + 6 and len(report["failed"]) == 1 and report["failed"][0].startswith("tapes/chewed.mp4: ")
    assert "1 video (6 frames)" in result.stdout and "1 failed" in result.stdout
    photos, videos = report["settings"], report["video_settings"]  # each kind's own threshold and snapping
    assert (photos["detection_threshold"], photos["snap_to_codebook"], photos["codec"]) == (0.7, True, None)
    assert (videos["detection_threshold"], videos["snap_to_codebook"], videos["codec"]) == (0.6, False, "libx264")
    assert [line.startswith("skipped tapes/chewed.mp4: ") for line in report["warnings"]] == [True]
    assert [f.pts for f in read_frames(out / "tapes" / "1987.mp4")] == [f.pts for f in read_frames(tape)]
    assert read_packets(out / "tapes" / "1987.mp4", "audio") == read_packets(tape, "audio")
    assert probe_video(out / "tapes" / "1987.mp4").frames == 6
    assert run_cli("restore", root, "--model", "baseline-bicubic-sharpen", "--report", tmp_path / "r2.json").exit_code == 3
    assert json.loads((tmp_path / "r2.json").read_text())["skipped"] == 2  # the photo and the video are done


def test_a_folder_takes_dvd_camcorder_and_phone_files(tmp_path):
    """.vob (DVD), .m2ts (AVCHD), .3gp (old phones) and .wmv (Windows Movie Maker, left out unsaid) are videos of a
    folder too, not unknown files."""
    from clrface_video.io.decode import read_frames
    from tests.media import make_clip
    from tests.test_io_video import copy_video

    root = tmp_path / "box"
    root.mkdir()
    clip = make_clip(tmp_path / "clip.mp4", frames=4, size=(256, 192), audio=False)
    for name, codec in (("dvd.vob", "mpeg2video"), ("camcorder.m2ts", "libx264"), ("phone.3gp", "libx264"),
                        ("movie maker.wmv", "wmv2")):
        copy_video(clip, root / name, codec=codec)
    result = run_cli("restore", root, "--model", "baseline-bicubic-sharpen")
    assert result.exit_code == 0, result.output
    out = tmp_path / "box_restored"
    assert sorted(p.name for p in out.iterdir()) == ["camcorder.m2ts", "dvd.vob", "movie maker.wmv", "phone.3gp"]
    assert all(len(list(read_frames(p))) == 4 for p in out.iterdir())
    assert "4 videos (16 frames)" in result.stdout


def camcorder_file(path: Path, muxer: str) -> Path:
    """An SD camcorder's .MOD (muxer "vob": an MPEG-2 program stream) or an HD one's .TOD ("mpegts"): 4 frames of
    MPEG-2 with MPEG audio, written under the camcorder's name."""
    from tests.media import silent_clip

    return silent_clip(path, "mpeg2video", (256, 192), 4, audio_codec="mp2", muxer=muxer)


def test_camcorder_mod_and_tod_files_are_videos_written_as_mpg_and_ts(tmp_path):
    """A JVC or Panasonic camcorder's .MOD (and a JVC HD one's .TOD) was left out of a folder without a word, and
    restored alone failed with "unknown output container for MOV001_restored.MOD": FFmpeg writes no container under
    those names. They are videos now, written as .mpg and .ts (what players and editors open), in a folder and
    alone alike, said in one line; a .MOD beside an .mpg of its name keeps its extension (their outputs would be
    one file), and -o NAME.MOD writes the same program stream under the camcorder's extension."""
    from clrface_video.io.decode import probe_video, read_frames
    from tests.test_containers_timing import times

    root = tmp_path / "SD_VIDEO"
    root.mkdir()
    camcorder_file(root / "MOV001.MOD", "vob")
    camcorder_file(root / "MOV002.TOD", "mpegts")
    camcorder_file(root / "MOV003.MOD", "vob")
    camcorder_file(root / "MOV003.mpg", "vob")
    result = run_cli("restore", root, "--model", "baseline-bicubic-sharpen")
    assert result.exit_code == 0, result.output
    assert "4 videos (16 frames)" in result.stdout
    assert "2 camcorder files (MOV001.MOD, ...) are written under the extension players and editors know its " \
           "container by (.MOD as .mpg, .TOD as .ts)" in result.output
    out = tmp_path / "SD_VIDEO_restored"
    assert sorted(p.name for p in out.iterdir()) == ["MOV001.mpg", "MOV002.ts", "MOV003.MOD", "MOV003.mpg"]
    for path in out.iterdir():
        with av.open(str(path)) as written:
            assert (written.format.name, [s.type for s in written.streams]) == \
                ("mpegts" if path.suffix == ".ts" else "mpeg", ["video", "audio"])
        assert probe_video(path).codec == "mpeg2video" and len(list(read_frames(path))) == 4

    alone = run_cli("restore", root / "MOV001.MOD", "--model", "baseline-bicubic-sharpen")
    assert alone.exit_code == 0, alone.output
    assert "the camcorder file MOV001.MOD is written under the extension players and editors know its container " \
           "by (.MOD as .mpg); -o NAME.MOD keeps the camcorder's" in alone.output
    assert (root / "MOV001_restored.mpg").exists() and not (root / "MOV001_restored.MOD").exists()
    named = run_cli("restore", root / "MOV001.MOD", "-o", tmp_path / "kept.MOD", "--model", "baseline-bicubic-sharpen")
    assert named.exit_code == 0, named.output
    assert times(tmp_path / "kept.MOD") == times(root / "MOV001_restored.mpg") == times(out / "MOV001.mpg")
    again = run_cli("restore", root, "-o", tmp_path / "again", "--model", "baseline-bicubic-sharpen")
    assert again.exit_code == 0, again.output  # the single run's MOV001_restored.mpg is its output, not a video
    assert "left out 1 file an earlier run wrote (MOV001_restored.mpg, the restored copy of MOV001.MOD beside it)" \
        in again.output
    assert sorted(p.name for p in (tmp_path / "again").iterdir()) == sorted(p.name for p in out.iterdir())


def test_a_folder_takes_browser_jpegs_and_camera_heifs(tmp_path, astronaut):
    """.jfif and .jpe (JPEGs saved by Windows browsers) and .hif (Canon's and Fujifilm's HEIF) are photos, restored
    into their own format and name, not files left out of the mirrored tree, nor refused when restored alone."""
    root = tmp_path / "downloads"
    root.mkdir()
    for name in ("saved.jfif", "old.jpe", "camera.hif"):
        Image.fromarray(astronaut).save(root / name, "HEIF" if name.endswith(".hif") else "JPEG", quality=90)
    result = run_cli("restore", root, "--model", "baseline-bicubic-sharpen")
    assert result.exit_code == 0, result.output
    out = tmp_path / "downloads_restored"
    assert sorted(p.name for p in out.iterdir()) == ["camera.hif", "old.jpe", "saved.jfif"]
    for name in ("saved.jfif", "old.jpe", "camera.hif"):
        with Image.open(out / name) as restored, Image.open(root / name) as original:
            assert restored.format == original.format and restored.size == original.size
            assert np.abs(np.asarray(restored, np.int16) - np.asarray(original, np.int16)).max() > 20  # face changed
    alone = run_cli("restore", root / "saved.jfif", "-o", tmp_path / "alone.jfif", "--model", "baseline-bicubic-sharpen")
    assert alone.exit_code == 0, alone.output
    assert Image.open(tmp_path / "alone.jfif").format == "JPEG"


def test_an_animated_gif_in_a_folder_comes_back_a_gif_with_its_faces_restored(tmp_path):
    from clrface_video.io.decode import probe_video, read_frames
    from tests.media import make_clip

    root = tmp_path / "album"
    root.mkdir()
    gif = make_clip(root / "party.gif", frames=4, size=(256, 192), fps=10, codec="gif", audio=False)
    result = run_cli("restore", root, "--model", "baseline-bicubic-sharpen", "--no-track-identity")
    assert result.exit_code == 0, result.output
    out = tmp_path / "album_restored" / "party.gif"
    assert probe_video(out).codec == "gif"
    before, after = list(read_frames(gif)), list(read_frames(out))
    assert [f.pts for f in after] == [f.pts for f in before] == [0, 10, 20, 30]
    for a, b in zip(before, after, strict=True):
        footprint = crop_footprints(a.image)
        diff = np.abs(a.image.astype(np.int16) - b.image).max(axis=-1)
        assert diff[footprint].mean() > 2  # the face was restored
        assert (diff[~footprint] > 0).mean() < 0.05  # the rest keeps its colours in the frame's new palette


@pytest.mark.parametrize("alpha", [False, True])
def test_an_animated_png_comes_back_animated_with_its_delays_loop_and_transparency(tmp_path, astronaut, alpha):
    """An APNG is restored as a video into an APNG: every frame, each frame's delay (the last one's too), its
    loop count and its alpha, the faces restored and every other pixel exact (the format is lossless)."""
    small = astronaut[::2, ::2]
    mode = "RGBA" if alpha else "RGB"
    shade = np.tile(np.linspace(64, 255, small.shape[1]).astype(np.uint8), (small.shape[0], 1))
    frames = [Image.fromarray(np.dstack([np.roll(small, 4 * i, axis=1), shade]) if alpha else
                              np.roll(small, 4 * i, axis=1), mode) for i in range(4)]
    (tmp_path / "album").mkdir()
    source = tmp_path / "album" / "wave.png"
    frames[0].save(source, save_all=True, append_images=frames[1:], duration=[100, 200, 100, 300], loop=2)
    result = run_cli("restore", tmp_path / "album", "--model", "baseline-bicubic-sharpen", "--no-track-identity")
    assert result.exit_code == 0, result.output
    out = tmp_path / "album_restored" / "wave.png"
    with Image.open(source) as before, Image.open(out) as after:
        assert after.n_frames == 4 and after.info.get("loop") == 2 and after.mode == mode
        for i in range(4):
            before.seek(i)
            after.seek(i)
            assert after.info["duration"] == before.info["duration"]
            a, b = np.asarray(before.convert(mode)).astype(int), np.asarray(after.convert(mode)).astype(int)
            footprint = crop_footprints(a[..., :3].astype(np.uint8))
            diff = np.abs(a - b).max(axis=-1)
            assert diff[footprint].mean() > 2 and (diff[~footprint] == 0).all()
            if alpha:
                assert np.array_equal(a[..., 3], b[..., 3])


def pillow_durations(path: Path) -> list[int]:
    """Each frame's delay in ms of an animated PNG, as Pillow reads it."""
    with Image.open(path) as animation:
        durations = []
        for number in range(animation.n_frames):
            animation.seek(number)
            durations.append(animation.info["duration"])
    return durations


def test_an_animated_png_keeps_its_zero_delays(tmp_path, astronaut):
    """A zero delay ("as fast as it can"), which FFmpeg reads as 1/15 s, comes back zero: the source's delays
    are written into the restored APNG as they were stored."""
    from clrface_video.io.apng import frame_delays

    frames = [Image.fromarray(np.roll(astronaut[::2, ::2], 4 * i, axis=1)) for i in range(4)]
    source = tmp_path / "flip.png"
    frames[0].save(source, save_all=True, append_images=frames[1:], duration=[0, 100, 0, 300], loop=0)
    assert run_cli("restore", source, "--model", "baseline-bicubic-sharpen").exit_code == 0
    out = tmp_path / "flip_restored.png"
    assert frame_delays(out) == frame_delays(source)
    assert pillow_durations(out) == [0, 100, 0, 300]


def test_a_stretch_of_an_animated_png_keeps_its_frames_stored_delays(tmp_path, astronaut):
    """--start/--duration on an APNG: the kept frames keep the delays the source stores for them, a zero one
    too (FFmpeg alone writes it as 1/15 s), the last kept frame its own."""
    from clrface_video.io.apng import frame_delays

    frames = [Image.fromarray(np.roll(astronaut[::2, ::2], 4 * i, axis=1)) for i in range(6)]
    source = tmp_path / "flip.png"
    frames[0].save(source, save_all=True, append_images=frames[1:], duration=[100, 0, 200, 0, 300, 100], loop=0)
    with av.open(str(source)) as container:  # where FFmpeg puts frames 1 and 4 (it reads a zero delay as 1/15 s)
        times = [float(p.pts * p.time_base) for p in container.demux(video=0) if p.pts is not None]
    out = tmp_path / "cut.png"
    result = run_cli("restore", source, "-o", out, "--model", "baseline-bicubic-sharpen", "--start", times[1],
                     "--duration", times[5] - times[1])
    assert result.exit_code == 0, result.output
    assert frame_delays(out) == frame_delays(source)[1:5]
    assert pillow_durations(out) == [0, 200, 0, 300]


def test_a_stretch_of_an_animated_png_shows_its_first_and_last_frames_only_within_it(tmp_path, astronaut):
    """--start 0.25 --duration 1 on 4 frames of 0.5 s: the frame on screen at 0.25 s opens the stretch whole, which
    then lasts the 1 s asked from where that frame begins (TimeSpan.opened_at), as an MP4 or GIF of the stretch
    shows it; the source's stored delays were copied over a cut (500, 500, 500 ms: 1.5 s)."""
    frames = [Image.fromarray(np.roll(astronaut[::2, ::2], 8 * i, axis=1)) for i in range(4)]
    source = tmp_path / "wave.png"
    frames[0].save(source, save_all=True, append_images=frames[1:], duration=500, loop=0)
    out = tmp_path / "cut.png"
    result = run_cli("restore", source, "-o", out, "--model", "baseline-bicubic-sharpen", "--start", 0.25,
                     "--duration", 1)
    assert result.exit_code == 0, result.output
    assert pillow_durations(out) == [500, 500]


def test_an_animated_png_with_a_long_header_or_16_bits_is_still_an_animation(tmp_path, astronaut):
    from PIL.PngImagePlugin import PngInfo

    from clrface_video.io.apng import is_animated_png
    from clrface_video.io.decode import probe_video

    frames = [Image.fromarray(np.roll(astronaut[::2, ::2], 4 * i, axis=1)) for i in range(3)]
    info = PngInfo()
    info.add_text("Comment", "x" * 70_000)  # a header longer than a quick look at the file's start
    talky = tmp_path / "talky.png"
    frames[0].save(talky, save_all=True, append_images=frames[1:], duration=100, pnginfo=info)
    assert is_animated_png(talky)
    deep = tmp_path / "deep.png"  # 16 bits a channel, as FFmpeg writes them
    with av.open(str(deep), "w", format="apng") as out:
        stream = out.add_stream("apng", rate=10)
        stream.width, stream.height, stream.pix_fmt = 256, 256, "rgb48be"
        for i, frame in enumerate(frames):
            video = av.VideoFrame.from_ndarray(np.asarray(frame).astype(np.uint16) * 257, format="rgb48le")
            video.pts = i
            out.mux(stream.encode(video))
        out.mux(stream.encode(None))
    restored = restore_path(deep, tmp_path / "deep_out.png", BASELINE)
    assert restored.frames == 3 and probe_video(tmp_path / "deep_out.png").bit_depth == 16


def test_output_name_chooses_the_format(tmp_path, astronaut):
    source = tmp_path / "astronaut.png"
    Image.fromarray(astronaut).save(source)
    restore_image(source, tmp_path / "as.jpg", BASELINE)
    assert Image.open(tmp_path / "as.jpg").format == "JPEG"
    report = restore_image(source, tmp_path / "plain", BASELINE)
    assert report.output == str(tmp_path / "plain.png") and Image.open(tmp_path / "plain.png").format == "PNG"


def test_a_photo_without_faces_comes_out_byte_for_byte(tmp_path, astronaut):
    """Nothing to restore: the file is copied, not encoded again (a JPEG keeps its exact bytes and quality)."""
    sky = tmp_path / "album" / "sky.jpg"
    sky.parent.mkdir()
    Image.fromarray(np.full((96, 128, 3), (90, 140, 220), np.uint8)).save(sky, quality=70)
    face = tmp_path / "album" / "face.jpg"
    Image.fromarray(astronaut).save(face, quality=70)
    restore_image(sky, tmp_path / "one.jpg", BASELINE)
    assert (tmp_path / "one.jpg").read_bytes() == sky.read_bytes()
    assert run_cli("restore", sky.parent, "--model", "baseline-bicubic-sharpen").exit_code == 0
    out = tmp_path / "album_restored"
    assert (out / "sky.jpg").read_bytes() == sky.read_bytes()
    assert (out / "face.jpg").read_bytes() != face.read_bytes()  # restored, so encoded
    restore_image(sky, tmp_path / "sky.png", BASELINE)  # another format: encoded, pixels kept
    assert np.array_equal(np.asarray(Image.open(tmp_path / "sky.png")), np.asarray(Image.open(sky)))


def test_an_existing_folder_as_output_takes_the_photo_under_its_own_name(tmp_path, astronaut):
    source = tmp_path / "me.png"
    Image.fromarray(astronaut).save(source)
    (tmp_path / "outdir").mkdir()
    report = restore_image(source, tmp_path / "outdir", BASELINE)
    assert report.output == str(tmp_path / "outdir" / "me.png") and (tmp_path / "outdir" / "me.png").is_file()
    assert not (tmp_path / "outdir.png").exists()


def test_restored_and_copied_photos_keep_the_source_date(tmp_path, astronaut):
    """Albums and backups sort scans without EXIF by their file date: the output keeps the source's."""
    album = tmp_path / "album"
    album.mkdir()
    Image.fromarray(astronaut).save(album / "face.jpg")
    Image.fromarray(np.full((96, 128, 3), 90, np.uint8)).save(album / "sky.png")
    for i, path in enumerate(sorted(album.iterdir())):
        os.utime(path, (1_000_000_000 + i, 1_000_000_000 + i))  # 2001
    assert run_cli("restore", album, "--model", "baseline-bicubic-sharpen").exit_code == 0
    for path in sorted(album.iterdir()):
        assert (tmp_path / "album_restored" / path.name).stat().st_mtime == path.stat().st_mtime
    assert (tmp_path / "album_restored" / "face.jpg").read_bytes() != (album / "face.jpg").read_bytes()


def test_a_format_change_converts_what_the_new_format_cannot_hold(tmp_path, astronaut, warnings_logged):
    """PNG with transparency -> JPEG: flattened onto white; 16-bit PNG -> JPEG: 8 bits; CMYK JPEG -> PNG: RGB."""
    alpha = np.tile(np.linspace(0, 255, astronaut.shape[1]).round().astype(np.uint8), (astronaut.shape[0], 1))
    clear = tmp_path / "clear.png"
    Image.fromarray(np.dstack([astronaut, alpha])).save(clear)
    restore_image(clear, tmp_path / "clear.jpg", BASELINE)
    flat = np.asarray(Image.open(tmp_path / "clear.jpg"))
    expected = astronaut * (alpha[..., None] / 255) + 255 * (1 - alpha[..., None] / 255)
    far = (slice(400, 512), slice(0, 512))  # away from the face
    assert Image.open(tmp_path / "clear.jpg").mode == "RGB"
    assert np.abs(flat[far] - expected[far]).mean() < 3  # JPEG's own loss only
    assert "transparency flattened onto white" in warnings_logged.text

    deep = tmp_path / "deep.png"
    cv2.imwrite(str(deep), (astronaut.astype(np.uint16) * 257)[..., ::-1])
    restore_image(deep, tmp_path / "deep.jpg", BASELINE)
    assert Image.open(tmp_path / "deep.jpg").format == "JPEG"  # not TIFF bytes under a .jpg name
    assert np.abs(np.asarray(Image.open(tmp_path / "deep.jpg")).astype(int)[far] - astronaut[far]).mean() < 3

    cmyk = tmp_path / "print.jpg"
    Image.fromarray(astronaut).convert("CMYK").save(cmyk, quality=95)
    restore_image(cmyk, tmp_path / "print.png", BASELINE)
    png = Image.open(tmp_path / "print.png")
    assert png.mode == "RGB"
    as_rgb = np.asarray(Image.open(cmyk).convert("RGB")).astype(int)
    assert np.array_equal(np.asarray(png)[far], as_rgb[far])  # the same conversion, lossless from there


@pytest.mark.parametrize("name", ["photo.xyz", "photo.mp4", "photo.psd"])
def test_a_photo_is_not_written_under_a_name_no_image_format_has(tmp_path, astronaut, name):
    source = tmp_path / "astronaut.png"
    Image.fromarray(astronaut).save(source)
    result = run_cli("restore", source, "-o", tmp_path / name, "--model", "baseline-bicubic-sharpen")
    assert result.exit_code == 2 and "a photo cannot be written as" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["astronaut.png"]


def test_a_phone_library_of_heic_photos_is_restored_as_heic(tmp_path, astronaut):
    pytest.importorskip("pillow_heif", reason="HEIC needs pillow-heif (the test extra installs it)")
    album = tmp_path / "iphone" / "2024"
    album.mkdir(parents=True)
    exif = Image.Exif()
    exif[0x010F] = "Apple"
    Image.fromarray(astronaut).save(album / "IMG_0001.HEIC", quality=95, exif=exif.tobytes())
    report = restore_folder(tmp_path / "iphone", tmp_path / "out", BASELINE)
    assert report.images == 1 and report.faces == 1 and not report.failed
    with Image.open(album / "IMG_0001.HEIC") as before, Image.open(tmp_path / "out" / "2024" / "IMG_0001.HEIC") as after:
        assert after.format == "HEIF" and after.getexif().get(0x010F) == "Apple"
        a, b = np.asarray(before.convert("RGB")).astype(int), np.asarray(after.convert("RGB")).astype(int)
    changed = np.abs(a - b).max(axis=-1) > 12
    footprint = crop_footprints(astronaut)
    assert changed[footprint].mean() > 0.02  # the face was restored
    assert changed[~footprint].mean() < 0.002  # elsewhere only the re-encoding's small differences


class _SeedRecorder(BicubicSharpenRestorer):
    """The baseline, keeping the noise seeds the pipeline hands it, per call."""

    name = "test-seed-recorder"
    seen: ClassVar[list[list[int]]] = []

    def restore(self, batch: RestoreBatch) -> np.ndarray:
        self.seen.append([int(s) for s in batch.seeds])
        return super().restore(batch)


register_restorer(_SeedRecorder.name, "test only")(lambda device, fidelity=0.5, path=None: _SeedRecorder())


def test_a_photo_gets_the_same_noise_seeds_alone_or_in_a_folder(tmp_path, astronaut):
    """Seeds count from config.seed within each photo, so a folder run, a rerun of one photo and a
    Ray shard (which restores photo by photo) give a seeded model the same noise for the same face."""
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        Image.fromarray(astronaut).save(folder / name)
    config = RestoreConfig(device="cpu", model=_SeedRecorder.name, seed=7)
    _SeedRecorder.seen.clear()
    restore_folder(folder, tmp_path / "out", config)
    in_folder = list(_SeedRecorder.seen)
    _SeedRecorder.seen.clear()
    restore_image(folder / "c.png", tmp_path / "c_alone.png", config)
    assert in_folder == [[7], [7], [7]] and _SeedRecorder.seen == [[7]]


def test_a_name_at_the_file_systems_limit_is_restored(tmp_path, astronaut):
    """A photo named with 247-255 bytes failed with 'File name too long': the hidden temporary name added a dot,
    the process id and '.partial' to it. Restored, copied (no face) and mirrored in a folder, in ASCII and in
    three-byte characters (85 Chinese ones are 255 bytes), leaving no temporary file behind."""
    album = tmp_path / "album"
    album.mkdir()
    names = ["b" * 251 + ".jpg", "文" * 83 + "ab.png", "c" * 251 + ".png"]
    assert [len(os.fsencode(name)) for name in names] == [255, 255, 255]
    Image.fromarray(astronaut).save(album / names[0])
    Image.fromarray(astronaut).save(album / names[1])
    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(album / names[2])  # no face: copied byte for byte
    out = tmp_path / "out"
    out.mkdir()
    for name in names:
        restore_image(album / name, out / name, BASELINE)
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    assert (out / names[2]).read_bytes() == (album / names[2]).read_bytes()
    report = restore_folder(album, tmp_path / "mirror", BASELINE)
    assert report.images == 3 and not report.failed
    assert sorted(p.name for p in (tmp_path / "mirror").iterdir()) == sorted(names)


def test_long_names_alike_get_temporary_names_of_their_own(tmp_path):
    """A temporary name cut to fit keeps the extension, stays hidden, and tells apart names that begin alike."""
    from clrface_video.atomic import hidden_name

    first, second = (hidden_name(tmp_path / ("d" * 240 + tail + ".tif")) for tail in ("_1", "_2"))
    assert first != second and first.parent == tmp_path
    for temp in (first, second):
        assert temp.name.startswith(".") and temp.suffix == ".tif" and len(os.fsencode(temp.name)) <= 255
    assert hidden_name(tmp_path / "short.jpg") == tmp_path / ".short.partial.jpg"  # short names as before


def test_a_still_gif_keeps_its_date_and_permissions_as_photos_do(tmp_path, astronaut):
    """A one-frame GIF is restored by the video job (.gif is a video extension), which gave its copy the time of
    the run and 0644 where a private PNG beside it kept 2001 and 0600: alone and in a folder."""
    import stat

    album = tmp_path / "album"
    album.mkdir()
    Image.fromarray(astronaut[::2, ::2]).save(album / "still.gif")
    (album / "still.gif").chmod(0o600)
    os.utime(album / "still.gif", (1_000_000_000, 1_000_000_000))  # 2001
    mask = os.umask(0o022)
    try:
        report = restore_path(album / "still.gif", tmp_path / "alone.gif", BASELINE)
        assert report.frames == 1 and report.faces == 1
        assert run_cli("restore", album, "--model", "baseline-bicubic-sharpen").exit_code == 0
    finally:
        os.umask(mask)
    for out in (tmp_path / "alone.gif", tmp_path / "album_restored" / "still.gif"):
        assert out.stat().st_mtime == 1_000_000_000 and stat.S_IMODE(out.stat().st_mode) == 0o600


def test_a_still_gif_is_written_as_a_photo_in_the_format_asked(tmp_path, astronaut):
    """still.gif -o out.png was refused as a video into one picture ('name the frames with a counter'). A
    one-frame GIF goes to a photo format as a photo does: its palette to RGBA, its transparency kept, not a word
    (no colour is lost); into a JPEG, the transparency flattened, said in one line. An animation is still refused."""
    palette = Image.fromarray(astronaut[::2, ::2]).quantize(255)
    indices = np.asarray(palette).copy()
    indices[:16, :16] = 255  # a transparent corner
    still = Image.fromarray(indices, "P")
    still.putpalette(palette.getpalette())
    still.save(tmp_path / "still.gif", transparency=255)
    source = np.asarray(Image.open(tmp_path / "still.gif").convert("RGBA"))
    model = ("--model", "baseline-bicubic-sharpen")
    result = run_cli("restore", tmp_path / "still.gif", "-o", tmp_path / "out.png", *model)
    assert result.exit_code == 0 and "warning" not in result.output, result.output
    out = Image.open(tmp_path / "out.png")
    assert out.format == "PNG" and out.mode == "RGBA"
    pixels = np.asarray(out)
    assert np.array_equal(pixels[..., 3], source[..., 3]) and not pixels[:16, :16, 3].any()
    assert_only_faces_changed(source[..., :3], pixels[..., :3], source[..., :3])
    result = run_cli("restore", tmp_path / "still.gif", "-o", tmp_path / "out.jpg", *model)
    assert result.exit_code == 0 and Image.open(tmp_path / "out.jpg").format == "JPEG"
    assert [line for line in result.output.splitlines() if "warning" in line] == \
        ["warning: out.jpg: written as JPEG with transparency flattened onto white"]
    Image.fromarray(astronaut).save(tmp_path / "moving.gif", save_all=True,
                                    append_images=[Image.fromarray(astronaut[::-1])])
    result = run_cli("restore", tmp_path / "moving.gif", "-o", tmp_path / "moving.png", *model)
    assert result.exit_code == 2 and "moving.png is one picture; name the frames with a counter" in result.output
    assert not (tmp_path / "moving.png").exists()


def test_a_gif_named_jpg_in_a_folder_comes_back_a_jpeg_in_full_colour(tmp_path, astronaut):
    """A still GIF named .jpg in a folder was written back as a GIF, 256 colours from a new palette, under a warning
    that it was written in full colour (RGB). A file named .jpg is a JPEG to its user and their tools: it comes back
    one, in full colour, as it does restored alone (and on Ray), with no palette warning to contradict it."""
    root = tmp_path / "album"
    root.mkdir()
    Image.fromarray(astronaut).quantize(256).save(root / "scan.jpg", format="GIF")
    source = np.asarray(Image.open(root / "scan.jpg").convert("RGB"))
    result = run_cli("restore", root, "-o", tmp_path / "out", "--model", "baseline-bicubic-sharpen")
    assert result.exit_code == 0 and "warning" not in result.output, result.output
    with Image.open(tmp_path / "out" / "scan.jpg") as out:
        assert (out.format, out.mode) == ("JPEG", "RGB")
        pixels = np.asarray(out)
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 256  # full colour, not a palette's
    footprint = crop_footprints(source)
    diff = np.abs(pixels.astype(np.int16) - source).max(axis=-1)
    assert diff[footprint].mean() > 2 and np.median(diff[~footprint]) <= 3  # the face restored, the rest a JPEG's


def test_a_still_gif_restored_into_a_gif_says_it_is_256_colours(tmp_path, astronaut, warnings_logged):
    """restore_image(still.gif, out.gif) writes a GIF (Pillow's writer: 256 colours, a new palette) and said it
    was written in full colour; the warning now says what the file holds."""
    Image.fromarray(astronaut[::2, ::2]).quantize(256).save(tmp_path / "still.gif")
    restore_image(tmp_path / "still.gif", tmp_path / "out.gif", BASELINE)
    with Image.open(tmp_path / "out.gif") as out:
        assert (out.format, out.mode) == ("GIF", "P") and len(out.getcolors(1 << 24)) <= 256
    assert "out.gif: a GIF, written in 256 colours again (all a GIF holds)" in warnings_logged.text
    assert "full colour" not in warnings_logged.text


@pytest.mark.parametrize("name", ["out.png", "out.jpg"])
def test_the_video_job_refuses_a_still_gif_named_into_a_photo(tmp_path, astronaut, name):
    """pipeline.restore_video(still.gif, out.png), called as a library, wrote the PNG through the video writer,
    without the photo job's format handling (a palette's transparency, a JPEG's quality, a format's metadata), and
    out.jpg failed as "'image2' format does not support 'libx264' codec". restore_path sends such a GIF to
    restore_image; restore_video, a video's job, says so in one line and writes nothing."""
    from clrface_video.errors import ClrfaceError
    from clrface_video.pipeline import restore_video

    Image.fromarray(astronaut[::2, ::2]).quantize(255).save(tmp_path / "still.gif")
    with pytest.raises(ClrfaceError) as refused:
        restore_video(tmp_path / "still.gif", tmp_path / name, BASELINE)
    assert str(refused.value) == f"still.gif is one picture and {name} a photo: restore it with restore_path " \
        "(which restores whichever it is) or restore_image, not as a video"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["still.gif"]
    assert restore_path(tmp_path / "still.gif", tmp_path / name, BASELINE).images == 1


def test_a_photo_past_pillows_own_limit_is_restored_and_the_limit_put_back(tmp_path, astronaut, monkeypatch):
    """Pillow refused photos past 179 MP (twice Image.MAX_IMAGE_PIXELS) as decompression bombs and warned past
    89 MP: large scans and panoramas could not be restored. Pillow's limit is lowered here so that a 512 x 512
    photo is past it: a photo, a multi-page scan, a folder and `detect` read it, and the limit is back after."""
    import warnings

    from clrface_video.photos import detect_faces

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100_000)  # 262,144 pixels: past twice that
    Image.fromarray(astronaut).save(tmp_path / "scan.png")
    Image.fromarray(astronaut).save(tmp_path / "pages.tif", save_all=True,
                                    append_images=[Image.fromarray(astronaut[:, ::-1])])
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        assert restore_image(tmp_path / "scan.png", tmp_path / "out.png", BASELINE).faces == 1
        assert restore_image(tmp_path / "pages.tif", tmp_path / "out.tif", BASELINE).faces == 2
        assert len(detect_faces(tmp_path / "pages.tif", BASELINE)[1]) == 1
        album = tmp_path / "album"
        album.mkdir()
        (tmp_path / "scan.png").rename(album / "scan.png")
        report = restore_folder(album, tmp_path / "mirror", BASELINE)
        assert report.images == 1 and not report.failed
    assert Image.MAX_IMAGE_PIXELS == 100_000


def _linked_library(tmp_path: Path, astronaut: np.ndarray) -> tuple[Path, Path]:
    """library/2009/a.jpg, and linked into it from elsewhere: an album folder, a photo; and links that must not
    be followed twice or at all: a loop back up, a second name for 2009 and for a.jpg, a broken link."""
    library, elsewhere = tmp_path / "library", tmp_path / "elsewhere"
    (library / "2009").mkdir(parents=True)
    (elsewhere / "album").mkdir(parents=True)
    Image.fromarray(astronaut).save(library / "2009" / "a.jpg")
    Image.fromarray(astronaut[:, ::-1]).save(elsewhere / "album" / "b.jpg")
    Image.fromarray(astronaut[::-1]).save(elsewhere / "c.jpg")
    (library / "album").symlink_to(elsewhere / "album", target_is_directory=True)
    (library / "c.jpg").symlink_to(elsewhere / "c.jpg")
    (library / "2009" / "loop").symlink_to(library, target_is_directory=True)
    (library / "again").symlink_to(library / "2009", target_is_directory=True)
    (library / "favourite.jpg").symlink_to(library / "2009" / "a.jpg")
    (library / "gone.jpg").symlink_to(tmp_path / "deleted.jpg")
    return library, elsewhere


def test_linked_albums_and_photos_are_restored_once_each(tmp_path, astronaut):
    """A library that links its albums in lost them without a word (rglob does not enter linked folders). They
    are followed now, the tree's own names first; a loop, a second name and a broken link are one warning each."""
    library, elsewhere = _linked_library(tmp_path, astronaut)
    originals = {p: p.read_bytes() for p in (library / "2009" / "a.jpg", elsewhere / "album" / "b.jpg",
                                             elsewhere / "c.jpg")}
    out = tmp_path / "out"
    result = run_cli("restore", library, "-o", out, "--model", "baseline-bicubic-sharpen")
    assert result.exit_code == 0, result.output
    done = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert done == ["2009/a.jpg", "album/b.jpg", "c.jpg"]
    assert not any(p.is_symlink() for p in out.rglob("*"))  # restored copies, not links to the originals
    assert all(path.read_bytes() == data for path, data in originals.items())
    assert sorted(line for line in result.stderr.splitlines() if line.startswith("warning:")) == [
        "warning: skipped 2009/loop: a link to the input folder, found already",
        "warning: skipped again: a link to 2009, found already",
        "warning: skipped favourite.jpg: a link to 2009/a.jpg, found already",
        f"warning: skipped gone.jpg: a link to {tmp_path / 'deleted.jpg'}, which does not exist",
    ]


def test_a_link_to_a_photo_that_fails_is_not_called_restored(tmp_path):
    """The warning for a second way to a photo said 'restored already' before anything was restored: of a photo
    that then failed (an empty file here), or that a Ctrl-C kept the run from, the report said both."""
    library = tmp_path / "library"
    library.mkdir()
    (library / "empty.jpg").write_bytes(b"")
    (library / "link.jpg").symlink_to(library / "empty.jpg")
    result = run_cli("restore", library, "-o", tmp_path / "out", "--model", "baseline-bicubic-sharpen")
    assert result.exit_code == 3, result.output
    assert sorted(line for line in result.stderr.splitlines() if line.startswith("warning:")) == [
        "warning: skipped empty.jpg: it is empty (0 bytes)",
        "warning: skipped link.jpg: a link to empty.jpg, found already",
    ]


def test_a_folder_reached_twice_through_links_keeps_its_shorter_path(tmp_path, astronaut):
    """library/trips and library/zoo link to two albums, and trips holds a link back up to the folder above
    it (up -> ..): zoo is reached as zoo and as trips/up/zoo. Linked folders were walked in name order, so zoo's
    photo was restored as trips/up/zoo/z.jpg and zoo itself skipped; the shorter way is kept now."""
    library, elsewhere = tmp_path / "library", tmp_path / "elsewhere"
    library.mkdir()
    for album in ("trips", "zoo"):
        (elsewhere / album).mkdir(parents=True)
        Image.fromarray(astronaut[::4, ::4]).save(elsewhere / album / f"{album[0]}.jpg")
        (library / album).symlink_to(elsewhere / album, target_is_directory=True)
    (elsewhere / "trips" / "up").symlink_to("..", target_is_directory=True)
    out = tmp_path / "out"
    result = run_cli("restore", library, "-o", out, "--model", "baseline-bicubic-sharpen")
    assert result.exit_code == 0, result.output
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == ["trips/t.jpg", "zoo/z.jpg"]
    assert sorted(line for line in result.stderr.splitlines() if line.startswith("warning:")) == [
        "warning: skipped trips/up/trips: a link to trips, found already",
        "warning: skipped trips/up/zoo: a link to zoo, found already",
    ]


def test_a_link_into_or_out_of_the_output_folder_is_never_followed(tmp_path, astronaut, warnings_logged):
    """A link in the output tree to an input folder (out/2009 -> library/2009, out/album -> the linked album) had
    --overwrite write each restored copy over its original; a link in the input to the output folder would have
    outputs read as inputs."""
    library, elsewhere = _linked_library(tmp_path, astronaut)
    out = tmp_path / "out"
    out.mkdir()
    (out / "2009").symlink_to(library / "2009", target_is_directory=True)
    (out / "album").symlink_to(elsewhere / "album", target_is_directory=True)
    (library / "restored").symlink_to(out, target_is_directory=True)
    originals = {p: p.read_bytes() for p in (library / "2009" / "a.jpg", elsewhere / "album" / "b.jpg")}
    report = restore_folder(library, out, replace(BASELINE, overwrite=True))
    assert all(path.read_bytes() == data for path, data in originals.items())
    why = "out of it: the restored copy could replace an original there; remove the link or choose another output folder"
    assert report.images == 1 and report.failed == [
        f"2009/a.jpg: {out / '2009'} in the output folder is a link to {library / '2009'}, {why}",
        f"album/b.jpg: {out / 'album'} in the output folder is a link to {elsewhere / 'album'}, {why}"]
    assert f"skipped restored: a link into the output folder {out}" in [r.getMessage() for r in warnings_logged.records]


def test_video_encoder_options_given_for_a_photo_are_said_to_be_unused(tmp_path, astronaut, warnings_logged):
    """`restore photo.jpg --codec libx265 --crf 30` wrote the JPEG without a word about the two options; a folder's
    photos say nothing (there the options are its videos')."""
    source = tmp_path / "a.png"
    Image.fromarray(astronaut).save(source)
    report = restore_path(source, tmp_path / "b.png", replace(BASELINE, codec="libx265", crf=30))
    assert report.images == 1 and (tmp_path / "b.png").is_file()
    assert "a.png: codec, crf are for video; a photo is written in its own format" in warnings_logged.text
    warnings_logged.clear()
    restore_path(source, tmp_path / "c.png", BASELINE)
    (tmp_path / "album").mkdir()
    Image.fromarray(astronaut).save(tmp_path / "album" / "d.png")
    restore_path(tmp_path / "album", tmp_path / "out", replace(BASELINE, codec="libx265"))
    assert "for video" not in warnings_logged.text


def test_a_folders_camera_raw_files_are_said_once_not_passed_over(tmp_path, astronaut):
    """A folder's .CR2 and .dng files were left out without a word, so a RAW library looked done; a folder of
    RAW files alone was 'no photos or videos'."""
    library = tmp_path / "library"
    (library / "2019").mkdir(parents=True)
    Image.fromarray(astronaut).save(library / "a.png")
    for name in ("2019/IMG_0001.CR2", "2019/IMG_0002.CR2", "scan.dng"):
        Image.fromarray(astronaut).save(library / name, format="TIFF")
    report = restore_folder(library, tmp_path / "out", BASELINE)
    line = "left out 3 camera RAW files (2019/IMG_0001.CR2, ...), which restore does not read: export TIFF or " \
           "JPEG from the RAW developer and restore those"
    assert report.images == 1 and report.warnings == [line] and report.failed == []
    assert sorted(p.name for p in (tmp_path / "out").rglob("*") if p.is_file()) == ["a.png"]
    (library / "a.png").unlink()
    with pytest.raises(InputError, match=r"; it holds 3 camera RAW files \(2019/IMG_0001.CR2, ...\), which"):
        restore_folder(library, tmp_path / "out2", BASELINE)


def test_a_folder_leaves_out_the_outputs_earlier_runs_wrote_beside_their_originals(tmp_path, astronaut):
    """`restore album/p.jpg` writes album/p_restored.jpg beside it; `restore album` then took that for another
    photo and wrote a restored-twice album_restored/p_restored.jpg, and so for a video's movie_restored.mp4, a
    --start preview's and a subfolder's restored twin. They are left out, counted in one warning line (in the
    report too); x_restored.jpg with no x.* beside it is the user's photo like any other."""
    album = tmp_path / "album"
    (album / "2009").mkdir(parents=True)
    face = Image.fromarray(astronaut).resize((256, 256))
    face.save(album / "p.jpg", quality=92)
    face.save(album / "x_restored.jpg", quality=92)  # no x.* beside it
    make_clip(album / "movie.mp4", frames=2, size=(128, 96), audio=False)
    face.save(album / "2009" / "q.png")
    flags = ["--model", "baseline-bicubic-sharpen", "--device", "cpu"]
    runner = CliRunner()
    for single in (["album/p.jpg"], ["album/movie.mp4"], ["album/movie.mp4", "--duration", "0.04"],
                   ["album/2009"]):
        done = runner.invoke(cli, ["restore", str(tmp_path / single[0]), *single[1:], *flags])
        assert done.exit_code == 0, done.output
    assert (album / "movie_restored_0-0.04s.mp4").is_file() and (album / "2009_restored" / "q.png").is_file()
    result = runner.invoke(cli, ["restore", str(album), *flags, "--report", str(tmp_path / "report.json")])
    assert result.exit_code == 0, result.output
    written = sorted(str(p.relative_to(tmp_path / "album_restored"))
                     for p in (tmp_path / "album_restored").rglob("*") if p.is_file())
    assert written == ["2009/q.png", "movie.mp4", "p.jpg", "x_restored.jpg"]
    line = ("left out 4 files earlier runs wrote (2009_restored, the restored copy of 2009 beside it, ...), not "
            "restored again: rename one to restore it as an original")
    assert result.stderr.splitlines() == [f"warning: {line}"]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["warnings"] == [line] and (report["images"], report["videos"]) == (3, 1)


@pytest.mark.parametrize("name", ["hdr.heic", "pq.avif"])
def test_an_hdr_photo_that_comes_back_8_bit_or_untagged_says_so_in_one_line(tmp_path, astronaut, name):
    """A 10-bit HEIC came back 8-bit, and a 10-bit BT.2020/PQ AVIF 8-bit and tagged sRGB, without a word: a
    restored AVIF says what it lost in one line, as the other 'written as' lines do; a HEIC now keeps its 10 bits
    and says nothing; one with no face, copied as it was, loses nothing and says nothing."""
    from tests.media import make_hdr_photo

    if name.endswith(".avif") and not Image.registered_extensions().get(".avif"):
        pytest.skip("this Pillow has no AVIF codec")
    face = make_hdr_photo(tmp_path / name, np.ascontiguousarray(astronaut[::2, ::2]))
    wall = make_hdr_photo(tmp_path / f"wall{face.suffix}", np.full((64, 64, 3), 90, np.uint8))
    flags = ["--model", "baseline-bicubic-sharpen", "--device", "cpu"]
    result = CliRunner().invoke(cli, ["restore", str(face), *flags])
    assert result.exit_code == 0, result.output
    lost = ("10 bits per channel to 8, its AVIF colour description (primaries 9, transfer 16) left out, which "
            "Pillow's AVIF writer does not write: viewers will show it as sRGB")
    if name.endswith(".avif"):
        assert result.stderr.splitlines() == [f"warning: {face.stem}_restored.avif: written as AVIF with {lost}"]
    else:
        assert result.stderr == ""
        out = __import__("pillow_heif").open_heif(tmp_path / "hdr_restored.heic", convert_hdr_to_8bit=False)
        assert out.info["bit_depth"] == 10
    result = CliRunner().invoke(cli, ["restore", str(wall), *flags])
    assert result.exit_code == 0 and result.stderr == "", result.output
    assert (tmp_path / f"wall_restored{face.suffix}").read_bytes() == wall.read_bytes()


def test_a_10_bit_heif_comes_back_10_bit_with_its_fine_levels(tmp_path, astronaut, warnings_logged):
    """An iPhone's HDR or a camera's 10-bit HEIC came back 8-bit, warned: a smooth sky's 500 levels became 126."""
    pillow_heif = pytest.importorskip("pillow_heif", reason="HEIF needs pillow-heif (the test extra installs it)")
    codes = (astronaut.astype(np.uint32) * 1023 // 255).astype(np.uint16)
    codes[400:] = np.linspace(200, 700, 512).astype(np.uint16)[None, :, None]  # a smooth ramp under the face
    source = tmp_path / "hdr.heic"
    pillow_heif.from_bytes(mode="RGB;10", size=(512, 512), data=codes.tobytes()).save(source, quality=-1)
    restore_image(source, tmp_path / "out.heic", BASELINE)
    out = pillow_heif.open_heif(tmp_path / "out.heic", convert_hdr_to_8bit=False)
    assert out.info["bit_depth"] == 10
    restored = np.asarray(out) >> 6
    assert len(np.unique(restored[410:500, :, 1])) > 256  # more levels than 8 bits hold, away from the face
    assert np.abs(restored[410:500].astype(int) - codes[410:500]).mean() < 2
    face = crop_footprints(astronaut)
    assert np.abs(restored.astype(int) - codes).mean(axis=-1)[face].mean() > 8  # restored (4 levels at 8 bits)
    assert not warnings_logged.records  # its depth not said lost


def test_a_12_bit_grey_heif_comes_back_12_bit_and_grey(tmp_path, astronaut, warnings_logged):
    """A black-and-white scan kept as a 12-bit grey HEIC came back in 10 bits, unsaid (pillow-heif's writer of grey
    pictures): a smooth wall's 2000 levels became 500. It comes back in 12, grey, its face restored."""
    pillow_heif = pytest.importorskip("pillow_heif", reason="HEIF needs pillow-heif (the test extra installs it)")
    codes = (cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY).astype(np.uint32) * 4095 // 255).astype(np.uint16)
    codes[400:] = np.linspace(800, 2800, 112 * 512).astype(np.uint16).reshape(112, 512)  # a ramp under the face
    source = tmp_path / "scan.heic"
    pillow_heif.from_bytes(mode="L;12", size=(512, 512), data=codes.tobytes()).save(source, quality=-1)
    restore_image(source, tmp_path / "out.heic", BASELINE)
    out = pillow_heif.open_heif(tmp_path / "out.heic", convert_hdr_to_8bit=False)
    assert (out.mode, out.info["bit_depth"]) == ("I;16", 12)
    restored = np.asarray(out) >> 4
    assert len(np.unique(restored[410:500])) > 1024  # more levels than 10 bits hold, away from the face
    assert np.abs(restored[410:500].astype(int) - codes[410:500]).mean() < 4
    face = crop_footprints(astronaut)
    assert np.abs(restored.astype(int) - codes)[face].mean() > 32  # restored (8 levels at 8 bits)
    assert not warnings_logged.records


def test_a_folder_interrupted_mid_photo_counts_only_the_faces_of_the_photos_it_finished(tmp_path, astronaut,
                                                                                       monkeypatch):
    """Ctrl-C while a photo is written (its face already restored) reported that face with the finished photos'
    (2 photos, 3 faces): the photo is in no output, so its face is not counted, and it is listed as unfinished,
    with the photo after it."""
    from clrface_video.report import Interrupted

    album = tmp_path / "album"
    album.mkdir()
    for name in "abcd":
        Image.fromarray(astronaut).resize((256, 256)).save(album / f"{name}.png")
    save_photo = photos.save_photo

    def stopped_at_c(path: Path, *args: object, **options: bool) -> None:
        if path.name == "c.png":
            raise KeyboardInterrupt
        save_photo(path, *args, **options)

    monkeypatch.setattr(photos, "save_photo", stopped_at_c)
    with pytest.raises(Interrupted) as stop:
        restore_folder(album, tmp_path / "out", BASELINE)
    report = stop.value.report
    assert (report.images, report.faces, report.tracks) == (2, 2, 2) and report.settings is not None
    assert report.interrupted and report.unfinished == ["c.png", "d.png"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png"]


def test_a_photo_stopped_once_its_output_is_in_place_counts_as_finished(tmp_path, astronaut, monkeypatch):
    """Ctrl-C after a photo's output was renamed into place, before it was counted, reported 0 files finished of
    the 1 kept, and listed it as unfinished (tests/test_cli.py's signal test met it on a loaded machine); one
    stopped before that is not counted, and its old output, left as it was, is not either."""
    from clrface_video.report import Interrupted

    album, out = tmp_path / "album", tmp_path / "out"
    album.mkdir()
    for name in "abc":
        Image.fromarray(astronaut).resize((256, 256)).save(album / f"{name}.png")
    restore_one = photos._restore_one

    def stopped_after_b(story: object, path: Path, *args: object, **kwargs: object) -> None:
        restore_one(story, path, *args, **kwargs)
        if path.name == "b.png":
            raise KeyboardInterrupt  # the signal, once b's output is in place

    monkeypatch.setattr(photos, "_restore_one", stopped_after_b)
    with pytest.raises(Interrupted) as stop:
        restore_folder(album, out, BASELINE)
    report = stop.value.report
    assert (report.images, report.faces) == (2, 2) and report.unfinished == ["c.png"]
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]

    (album / "b.png").touch()  # b's original is retouched: its output is redone, and stopped before it is replaced
    os.utime(album / "b.png", ns=(time.time_ns() + 10**10,) * 2)

    def stopped_at_b(story: object, path: Path, *args: object, **kwargs: object) -> None:
        if path.name == "b.png":
            raise KeyboardInterrupt
        restore_one(story, path, *args, **kwargs)

    monkeypatch.setattr(photos, "_restore_one", stopped_at_b)
    with pytest.raises(Interrupted) as stop:
        restore_folder(album, out, BASELINE)
    assert stop.value.report.images == 0 and stop.value.report.unfinished == ["b.png", "c.png"]

"""Files of several pictures (an MPO's 3D views, a HEIF burst) restored end to end, as a photo and in a folder:
every picture restored, the file's structure and EXIF kept."""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from clrface_video.cli import cli
from clrface_video.config import RestoreConfig
from clrface_video.photos import restore_folder
from clrface_video.pipeline import restore_image
from tests.media import crop_footprints, mp_pictures

pillow_heif = pytest.importorskip("pillow_heif", reason="HEIF files need pillow-heif")
BASELINE = RestoreConfig(model="baseline-bicubic-sharpen", device="cpu")
DISPARITY = 0x020002  # an MPO's MP type of a 3D camera's second view (CIPA DC-007)
MAKE, MODEL, TAKEN = 0x010F, 0x0110, 0x9003  # EXIF: camera maker, model, DateTimeOriginal (Exif IFD)


def _views(astronaut: np.ndarray) -> list[np.ndarray]:
    """Two views of one face, as a 3D camera's lenses see it: the second shifted sideways."""
    return [astronaut, np.ascontiguousarray(np.roll(astronaut, -24, axis=1))]


def _exif() -> bytes:
    exif = Image.Exif()
    exif[MAKE], exif[MODEL] = "FUJIFILM", "FinePix REAL 3D W3"
    exif.get_ifd(0x8769)[TAKEN] = "2011:07:04 12:00:00"
    return exif.tobytes()


def _stereo_mpo(path: Path, views: list[np.ndarray], kinds: tuple[int, ...] = (DISPARITY,)) -> Path:
    """A 3D camera's MPO: Pillow writes the second view as 'Undefined', a camera as a disparity view, set here
    (`kinds`: the MP types of the pictures after the first)."""
    Image.fromarray(views[0]).save(path, "MPO", save_all=True, append_images=[Image.fromarray(v) for v in views[1:]],
                                   exif=_exif(), quality=95)
    with Image.open(path) as written:
        size = written.mpinfo[0xB002][0]["Size"]
    data = bytearray(path.read_bytes())
    first = data.index(struct.pack("<IIIHH", 0x030000, size, 0, 0, 0))  # the primary picture's MP entry
    for number, kind in enumerate(kinds, start=1):  # the next entries, the other pictures'
        struct.pack_into("<I", data, first + 16 * number, kind)
    path.write_bytes(bytes(data))
    return path


def _burst(path: Path, views: list[np.ndarray], primary: int = 0) -> Path:
    Image.fromarray(views[0]).save(path, "HEIF", save_all=True, append_images=[Image.fromarray(views[1])],
                                   exif=_exif(), quality=95, primary_index=primary)
    return path


def _pictures(path: Path) -> list[tuple[np.ndarray, Image.Exif]]:
    """Each picture of a file, in its order, with its EXIF."""
    pillow_heif.register_heif_opener()
    with Image.open(path) as image:
        pictures = []
        for number in range(getattr(image, "n_frames", 1)):
            image.seek(number)
            pictures.append((np.asarray(image.convert("RGB")).astype(np.int16), image.getexif()))
        return pictures


def _restored(job: str, source: Path, tmp_path: Path) -> Path:
    """`source` restored as one photo (into out.jpg, or out.heic), or with its folder (the mirrored copy)."""
    if job == "photo":
        restore_image(source, tmp_path / f"out{source.suffix}", BASELINE)
        return tmp_path / f"out{source.suffix}"
    restore_folder(source.parent, tmp_path / "restored", BASELINE)
    return tmp_path / "restored" / source.name


def _assert_each_restored(source: Path, output: Path, views: list[np.ndarray]) -> None:
    """As many pictures as the source, each with its face changed and the rest as it was (to lossy coding's
    noise), each with the camera's EXIF."""
    before, after = _pictures(source), _pictures(output)
    assert len(after) == len(before) == len(views)
    for (old, _), (new, exif), view in zip(before, after, views, strict=True):
        face = crop_footprints(view)
        change = np.abs(new - old).mean(axis=-1)
        assert change[face].mean() > 2.5, "the face was not restored"
        assert change[~face].mean() < 1.5, "pixels away from the face changed"
        assert (exif[MAKE], exif[MODEL]) == ("FUJIFILM", "FinePix REAL 3D W3")
        assert exif.get_ifd(0x8769)[TAKEN] == "2011:07:04 12:00:00"


@pytest.mark.parametrize("job", ["photo", "folder"])
def test_every_view_of_a_3d_mpo_is_restored_into_an_mpo_that_stays_3d(tmp_path, astronaut, job):
    """A Fujifilm W3's or a Nintendo 3DS's .jpg (or .mpo): the old code kept the first view alone, without a word,
    so the restored file was no longer 3D."""
    views = _views(astronaut)
    folder = tmp_path / "album"
    folder.mkdir()
    source = _stereo_mpo(folder / "stereo.jpg", views)
    output = _restored(job, source, tmp_path)
    _assert_each_restored(source, output, views)
    with Image.open(output) as mpo:
        assert mpo.format == "MPO"
        assert [entry["Attribute"]["MPType"] for entry in mpo.mpinfo[0xB002]] == \
            ["Baseline MP Primary Image", "Multi-Frame Image: (Disparity)"]


@pytest.mark.parametrize("job", ["photo", "folder"])
def test_a_file_named_mpo_is_restored_as_a_photo_by_the_cli(tmp_path, astronaut, job):
    """A Fujifilm W3 names its 3D photos DSCF0001.MPO: the CLI took the name for a video's ('unknown output
    container for ..._restored.mpo'), and a folder left such files out without a word."""
    views = _views(astronaut)
    folder = tmp_path / "album"
    folder.mkdir()
    source = _stereo_mpo(folder / "DSCF0001.MPO", views)
    shown = source if job == "photo" else folder
    result = CliRunner().invoke(cli, ["restore", str(shown), "--model", "baseline-bicubic-sharpen", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    output = folder / "DSCF0001_restored.MPO" if job == "photo" else tmp_path / "album_restored" / "DSCF0001.MPO"
    _assert_each_restored(source, output, views)


@pytest.mark.parametrize("job", ["photo", "folder"])
def test_every_picture_of_a_heif_burst_is_restored_into_one_heif_with_its_primary(tmp_path, astronaut, job):
    """A HEIF of several pictures (a burst, an image sequence) kept its primary one alone, without a word."""
    views = _views(astronaut)
    folder = tmp_path / "album"
    folder.mkdir()
    source = _burst(folder / "burst.heic", views, primary=1)
    output = _restored(job, source, tmp_path)
    _assert_each_restored(source, output, views)
    assert pillow_heif.open_heif(output).primary_index == 1


def test_a_burst_cut_short_is_named_once_in_its_folders_failure_line(tmp_path, astronaut, warnings_logged):
    """'skipped trunc_burst.heic: trunc_burst.heic: picture 2 cannot be read': the reader's message names the file,
    and the folder's line named it again. The good photo beside it is restored."""
    folder = tmp_path / "album"
    folder.mkdir()
    burst = _burst(folder / "trunc_burst.heic", _views(astronaut))
    burst.write_bytes(burst.read_bytes()[:burst.stat().st_size * 3 // 4])  # the second picture's data cut off
    Image.fromarray(astronaut).save(folder / "good.jpg")
    report = restore_folder(folder, tmp_path / "restored", BASELINE)
    assert report.images == 1 and (tmp_path / "restored" / "good.jpg").is_file()
    assert len(report.failed) == 1 and report.failed[0].startswith("trunc_burst.heic: picture 2 cannot be read (")
    assert {record.getMessage() for record in warnings_logged.records} == {f"skipped {report.failed[0]}"}


@pytest.mark.parametrize(("suffix", "output"), [(".png", "a PNG"), (".avif", "an AVIF")])
def test_several_pictures_written_as_another_format_keep_the_first_and_say_so(tmp_path, astronaut, warnings_logged,
                                                                               suffix, output):
    views = _views(astronaut)
    source = _stereo_mpo(tmp_path / "stereo.jpg", views)
    restore_image(source, tmp_path / f"left{suffix}", BASELINE)
    assert len(_pictures(tmp_path / f"left{suffix}")) == 1
    said = {record.getMessage() for record in warnings_logged.records}
    line = (f"stereo.jpg holds 2 pictures, and {output} output one: only its first (primary) picture is written (an "
            "output named .jpg keeps them all)")
    assert said == {line}


def test_an_mpos_large_thumbnail_is_made_again_from_its_restored_view(tmp_path, astronaut):
    """A camera's MPO may carry a smaller copy of a view (MP type 'Large Thumbnail'), which shows its faces too."""
    views = [*_views(astronaut), astronaut[::2, ::2].copy()]
    source = _stereo_mpo(tmp_path / "stereo.mpo", views, kinds=(DISPARITY, 0x010001))
    restore_image(source, tmp_path / "out.mpo", BASELINE)
    pictures = _pictures(tmp_path / "out.mpo")
    assert len(pictures) == 3
    restored_view = pictures[1][0].astype(np.uint8)  # the view before it, as the file has it
    smaller = np.asarray(Image.fromarray(restored_view).resize((256, 256), Image.Resampling.BOX), np.int16)
    assert np.abs(pictures[2][0] - smaller).mean() < 2.0  # the restored view scaled down, not the old copy
    assert np.abs(pictures[2][0] - _pictures(source)[2][0]).max() > 20


def test_a_phones_jpeg_with_a_depth_map_stays_one_photo_and_keeps_it(tmp_path, astronaut, warnings_logged):
    """A phone's JPEG keeps its depth map (or gain map) as a second, 'Undefined' picture, not a view: Pillow's
    writer would give it the first picture's metadata, so it is a photo whose first picture is restored, not an
    MPO restored picture by picture. Its depth map, by which an editor re-focuses a portrait photo, was dropped
    without a word: it comes back byte for byte after the restored picture."""
    source = _stereo_mpo(tmp_path / "phone.jpg", [astronaut, astronaut[::4, ::4].copy()], kinds=(0,))
    restore_image(source, tmp_path / "out.jpg", BASELINE)
    before, after = mp_pictures(source), mp_pictures(tmp_path / "out.jpg")
    assert len(after) == 2 and after[1] == before[1]
    with Image.open(tmp_path / "out.jpg") as out:
        assert [entry["Attribute"]["MPType"] for entry in out.mpinfo[0xB002]] == \
            ["Baseline MP Primary Image", "Undefined"]
        restored = np.asarray(out.convert("RGB"), np.int16)
    assert np.abs(restored - astronaut)[crop_footprints(astronaut)].mean() > 2.5, "the face was not restored"
    assert not warnings_logged.records


@pytest.mark.parametrize("source_name", ["phone.mpo", "phone.jpg"])
def test_one_picture_written_under_an_mpo_name_keeps_the_jpegs_quality_and_xmp(tmp_path, astronaut, source_name):
    """An .mpo output of one picture (a phone's MPO with a depth map, `-o out.mpo`) went through Pillow's MPO
    writer without the JPEG writer's settings: coded at quality 75, its XMP dropped, without a word."""
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><!-- taken at the lake --></x:xmpmeta>'
    source = tmp_path / source_name
    Image.fromarray(astronaut).save(source, "MPO", save_all=True, append_images=[Image.fromarray(astronaut[::4, ::4])],
                                    exif=_exif(), xmp=xmp, quality=95)
    restore_image(source, tmp_path / "out.mpo", BASELINE)
    with Image.open(source) as before, Image.open(tmp_path / "out.mpo") as after:
        assert after.quantization == before.quantization, "coded at another quality"
        assert after.info.get("xmp") == xmp
        assert after.getexif()[MODEL] == "FinePix REAL 3D W3"


BURST_PEAK = """
import re, sys
from pathlib import Path
from clrface_video.io.photo_read import heif_support
from clrface_video.pipeline import restore_pages
from clrface_video.report import StageTimer

def status(key):
    return int(re.search(key + r":\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1))

heif_support()
Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) set back to what the process holds now
before = status("VmRSS")
restore_pages(None, Path(sys.argv[1]), Path(sys.argv[2]), StageTimer(), restore=lambda _, image: image ^ 1)
print(status("VmHWM") - before)
"""


def _burst_peak(source: Path, output: Path) -> float:
    """How much memory (MB) a process's peak grows by while it restores a burst's pictures (each changed, as
    restore_pages takes them and hands them to its writer), the restorer left out: the pictures' own share."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", BURST_PEAK, str(source), str(output)], capture_output=True,
                          text=True, check=False, cwd=Path(__file__).parents[1])
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[-1]) / 1024


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="measures its peak memory through Linux's /proc")
def test_a_burst_of_many_pictures_is_held_one_at_a_time_and_kept_in_order(tmp_path, astronaut):
    """A burst of 20 pictures of 1024 px (3 MB each) took 12 MB of memory a picture: pillow-heif kept every picture
    it had decoded, and the writer held each restored one and its source until the end. Read from the file opened
    for it alone and held compressed, each takes about 6: the rest is pillow-heif's, which writes a file's pictures
    in one call, all of them uncompressed. Every picture comes back, in order, with its own EXIF, the primary kept.
    (16 pictures of 640 px here, to keep it short.)"""
    from skimage.transform import resize

    side, count = 640, 16
    big = (resize(astronaut, (side, side), order=1) * 255).astype(np.uint8)
    heif = pillow_heif.HeifFile()
    for number in range(count):
        added = heif.add_frombytes("RGB", (side, side), np.roll(big, 40 * number, axis=1).tobytes())
        exif = Image.Exif()
        exif[0x010E] = f"picture {number + 1} of {count}"  # ImageDescription
        added.info["exif"] = exif.tobytes()
    heif.save(tmp_path / "burst.heic", quality=80, primary_index=3)
    heif.save(tmp_path / "one.heic", quality=80, save_all=False)
    raw = side * side * 3 / 2**20
    per_picture = (_burst_peak(tmp_path / "burst.heic", tmp_path / "out.heic")
                   - _burst_peak(tmp_path / "one.heic", tmp_path / "one_out.heic")) / (count - 1)
    assert per_picture < 3 * raw, f"{per_picture:.1f} MB a picture of {raw:.1f} MB"
    out = pillow_heif.open_heif(tmp_path / "out.heic")
    assert len(out) == count and out.primary_index == 3
    for number, picture in enumerate(out):
        exif = Image.Exif()
        exif.load(picture.info["exif"])
        assert exif[0x010E] == f"picture {number + 1} of {count}"
        expected = np.roll(big, 40 * number, axis=1) ^ 1
        assert np.abs(np.asarray(picture).astype(int) - expected).mean() < 4  # its own picture, to HEVC's noise

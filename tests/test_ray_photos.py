"""Photo folders on a local 2-CPU Ray: the same tree and bytes as the local backend, retried workers, resumed jobs."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageCms

from clrface_video.cli import cli
from clrface_video.config import RestoreConfig
from clrface_video.photos import restore_folder
from clrface_video.report import RestoreReport
from tests.ray_local import local_ray

pytest.importorskip("ray", reason="Ray backend tests need ray: pip install -c constraints.txt \"ray[data]\"")

from clrface_video.distributed import restore_path_ray
from clrface_video.distributed.worker import CRASH_ONCE

BASELINE = RestoreConfig(model="baseline-bicubic-sharpen", device="cpu")
ray_cluster = pytest.fixture(scope="module")(local_ray)


@pytest.fixture(scope="module")
def album(tmp_path_factory, astronaut) -> tuple[Path, Path, RestoreReport]:
    """Six photos in nested folders (PNG, JPEG with EXIF orientation and ICC, a faceless one, a broken one)."""
    root = tmp_path_factory.mktemp("album") / "album"
    face = Image.fromarray(astronaut).resize((256, 256))
    (root / "2009" / "summer").mkdir(parents=True)
    face.save(root / "a.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored on its side, shown upright: the pixels are turned upright and the tag reset to 1
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    face.transpose(Image.Transpose.ROTATE_90).save(root / "2009" / "b.jpg", quality=92, exif=exif.tobytes(),
                                                   icc_profile=icc)
    face.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(root / "2009" / "summer" / "c.jpg", quality=90)
    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(root / "2009" / "summer" / "wall.png")
    face.resize((200, 200)).save(root / "d.webp")
    (root / "broken.jpg").write_bytes(b"not a photo")
    local = root.with_name("album_local")
    return root, local, restore_folder(root, local, BASELINE)


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_folder_equals_the_local_backend_byte_for_byte(ray_cluster, album, tmp_path):
    source, local, by_local = album
    report = restore_path_ray(source, tmp_path / "out", BASELINE, workers=2)
    assert tree(tmp_path / "out") == tree(local)
    assert report.images == by_local.images == 5 and report.faces == by_local.faces > 0
    assert report.settings == by_local.settings and report.settings.detection_threshold == 0.7
    assert report.failed == by_local.failed and len(report.failed) == 1
    assert report.failed[0].startswith("broken.jpg: ")
    with Image.open(tmp_path / "out" / "2009" / "b.jpg") as image:
        assert image.getexif().get(0x0112) == 1 and image.info.get("icc_profile")


def test_videos_in_a_folder_are_named_not_silently_dropped(ray_cluster, tmp_path, astronaut, warnings_logged):
    from tests.media import make_clip

    root = tmp_path / "mixed"
    root.mkdir()
    Image.fromarray(astronaut).resize((256, 256)).save(root / "a.png")
    make_clip(root / "tape.mp4", frames=2, size=(128, 96), audio=False)
    report = restore_path_ray(root, tmp_path / "out", BASELINE, workers=1)
    assert report.images == 1 and sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png"]
    assert any("1 video not restored" in r.getMessage() and "the whole folder with restore_video" in r.getMessage() for r in warnings_logged.records)
    assert [line for line in report.warnings if "1 video not restored" in line]  # the driver's, in its report


@pytest.mark.slow
def test_a_killed_worker_and_a_rerun_leave_the_same_folder(ray_cluster, album, tmp_path, monkeypatch):
    source, local, _ = album
    out = tmp_path / "out"
    monkeypatch.setenv(CRASH_ONCE, str(tmp_path / "crashed"))  # the first shard's process exits after one photo
    restore_path_ray(source, out, BASELINE, workers=2)
    assert (tmp_path / "crashed").exists()
    assert tree(out) == tree(local)
    monkeypatch.delenv(CRASH_ONCE)
    done = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    redo = out / "2009" / "b.jpg"
    redo.unlink()
    report = restore_path_ray(source, out, BASELINE, workers=2)  # a restarted driver on the same job
    assert report.images == 1 and report.skipped == 4
    assert {p: p.stat().st_mtime_ns for p in done if p != redo} == {p: t for p, t in done.items() if p != redo}
    assert tree(out) == tree(local)


def test_cli_backend_ray_on_one_photo(ray_cluster, album, tmp_path):
    source, local, _ = album
    result = CliRunner().invoke(cli, ["restore", str(source / "a.png"), "-o", str(tmp_path / "a.png"),
                                      "--model", "baseline-bicubic-sharpen", "--device", "cpu",
                                      "--backend", "ray", "--workers", "1", "-q"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "a.png").read_bytes() == (local / "a.png").read_bytes()


@pytest.mark.parametrize("one", [False, True], ids=["folder", "photo"])
def test_a_workers_photo_warning_is_printed_once_and_listed_in_the_report(ray_cluster, tmp_path, astronaut, one):
    """A palette PNG's warning, logged by restore_image on a worker, was neither printed nor reported (Ray brings
    no worker's log to the driver); it comes back with the shard's (or the photo's) result and is said once."""
    root = tmp_path / "scans"
    root.mkdir()
    Image.fromarray(astronaut).resize((256, 256)).convert("P").save(root / "p.png")
    Image.fromarray(astronaut).resize((256, 256)).save(root / "a.png")
    report = tmp_path / "r.json"
    source, output = (root / "p.png", tmp_path / "p.png") if one else (root, tmp_path / "out")
    result = CliRunner().invoke(cli, ["restore", str(source), "-o", str(output), "--report", str(report),
                                      "--model", "baseline-bicubic-sharpen", "--device", "cpu",
                                      "--backend", "ray", "--workers", "2"])
    assert result.exit_code == 0, result.output
    warned = "p.png: a palette image, written in full colour (RGB) so that the restored face keeps its shades"
    assert result.stderr.count(f"warning: {warned}\n") == 1, result.stderr
    assert json.loads(report.read_text())["warnings"] == [warned]


def test_a_ray_folder_lists_the_faces_left_alone_as_a_local_one(ray_cluster, tmp_path, astronaut):
    """The photos whose faces were left alone (too small, too large) are listed per photo, in the folder's order,
    as locally, from the workers' reports, and named in the summary."""
    root = tmp_path / "album"
    (root / "sub").mkdir(parents=True)
    face = Image.fromarray(astronaut)
    face.resize((192, 192)).save(root / "a.png")  # too small for --min-face 24
    face.save(root / "b.png")  # restored
    face.resize((1024, 1024)).save(root / "sub" / "c.png")  # too large for --max-upscale 1.5
    config = replace(BASELINE, min_face=24, max_upscale=1.5)
    local = restore_folder(root, tmp_path / "local", config)
    report = restore_path_ray(root, tmp_path / "ray", config, workers=2)
    assert list(report.left_alone) == list(local.left_alone) == ["a.png", str(Path("sub") / "c.png")]
    assert report.left_alone == local.left_alone and report.left_alone["a.png"][0]["why"] == "too small"
    assert "left alone (too small or too large for the model: a.png and sub" in report.summary()


def test_a_still_gif_into_a_photo_format_is_a_photo_on_ray_too(ray_cluster, tmp_path, astronaut):
    """still.gif -o still.png went to the video job on Ray, refused as 'cannot write a GIF or an animated PNG'."""
    Image.fromarray(astronaut[::2, ::2]).save(tmp_path / "still.gif")
    result = CliRunner().invoke(cli, ["restore", str(tmp_path / "still.gif"), "-o", str(tmp_path / "still.png"),
                                      "--model", "baseline-bicubic-sharpen", "--device", "cpu",
                                      "--backend", "ray", "--workers", "1", "-q"])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "still.png").format == "PNG"


@pytest.mark.parametrize("address", [None, "10.255.255.1:6379"], ids=["local", "remote"])
@pytest.mark.parametrize("one", [False, True], ids=["folder", "photo"])
def test_a_ray_folder_with_nothing_left_to_do_starts_no_ray(tmp_path, astronaut, monkeypatch, address, one):
    """A rerun of a finished folder (or photo) says what a local rerun says (everything left as is) without
    starting Ray and its workers (5-15 s here) or contacting a --ray-address."""
    from clrface_video import distributed

    root = tmp_path / "album"
    root.mkdir()
    for name in ("a.png", "b.jpg"):
        Image.fromarray(astronaut).resize((64, 64)).save(root / name)
    given, out = (root / "a.png", tmp_path / "a.png") if one else (root, tmp_path / "out")
    args = ["restore", str(given), "-o", str(out), "--model", "baseline-bicubic-sharpen", "--device", "cpu"]
    assert CliRunner().invoke(cli, args).exit_code == 0
    local = CliRunner().invoke(cli, args)

    def no_ray(*args, **kwargs):
        raise AssertionError("Ray was started")

    monkeypatch.setattr(distributed, "ray_session", no_ray)
    ray = CliRunner().invoke(cli, [*args, "--backend", "ray", *(["--ray-address", address] if address else [])])
    assert ray.exit_code == local.exit_code == 0, ray.output
    assert ("already restored, left as is" if one else "0 images, 2 already done with baseline-bicubic-sharpen") \
        in ray.output
    assert re.sub(r"in [0-9.]+ s", "", ray.output) == re.sub(r"in [0-9.]+ s", "", local.output)


@pytest.mark.parametrize("redo", ["stale", "--overwrite"])
def test_a_read_only_photo_to_redo_is_refused_before_ray_starts(tmp_path, astronaut, monkeypatch, redo):
    """A photo whose original changed since (or given --overwrite), its output made read-only: refused in one line
    as a local run refuses it, without starting Ray (8 s here) for its worker to refuse it."""
    from clrface_video import distributed

    photo, out = tmp_path / "a.png", tmp_path / "out.png"
    Image.fromarray(astronaut).resize((64, 64)).save(photo)
    args = ["restore", str(photo), "-o", str(out), "--model", "baseline-bicubic-sharpen", "--device", "cpu"]
    assert CliRunner().invoke(cli, args).exit_code == 0
    if redo == "stale":
        os.utime(photo, ns=(time.time_ns(), out.stat().st_mtime_ns + 10_000_000_000))
    else:
        args.append(redo)
    out.chmod(0o444)
    kept = out.read_bytes()
    local = CliRunner().invoke(cli, args)

    def no_ray(*args, **kwargs):
        raise AssertionError("Ray was started")

    monkeypatch.setattr(distributed, "ray_session", no_ray)
    ray = CliRunner().invoke(cli, [*args, "--backend", "ray"])
    assert ray.exit_code == local.exit_code == 2, ray.output
    assert "out.png is read-only; make it writable to redo it" in ray.output
    assert ray.output == local.output and out.read_bytes() == kept


def test_cli_ray_options_need_the_ray_backend(tmp_path, album):
    source, _, _ = album
    result = CliRunner().invoke(cli, ["restore", str(source), "--workers", "2"])
    assert result.exit_code == 2 and "--backend ray" in result.output


def test_the_local_ray_listens_on_loopback_only(ray_cluster):
    """Ray's own servers (GCS, raylet) must not be reachable from other machines in the tests."""
    import re
    import shutil
    import subprocess

    if shutil.which("ss") is None:
        pytest.skip("needs `ss` (iproute2) to list listening sockets")
    listening = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout.splitlines()
    ours = [line.split()[3] for line in listening if re.search(r'"(gcs_server|raylet)"', line)]
    assert ours, "no Ray server found listening"
    assert all(re.match(r"(127\.0\.0\.1|\[::ffff:127\.0\.0\.1\]|\[::1\]):\d+$", address) for address in ours), ours


def test_a_ray_head_passes_the_grpc_check(ray_cluster):
    """The check that tells a Ray head from another server lets a real head's GCS address through."""
    from clrface_video.distributed.cluster import reach_head

    reach_head(ray_cluster.get_runtime_context().gcs_address)


def test_a_link_out_of_the_output_tree_is_not_written_through_on_ray(ray_cluster, tmp_path, astronaut):
    """As locally: with out/2009 a link to the input's 2010, --overwrite had a worker write the restored copy of
    2009/a.png over the original 2010/a.png (another photo: the check that an output is not its input passed)."""
    source = tmp_path / "album"
    for year, face in (("2009", astronaut), ("2010", astronaut[:, ::-1])):
        (source / year).mkdir(parents=True)
        Image.fromarray(face).resize((256, 256)).save(source / year / "a.png")
    original = (source / "2010" / "a.png").read_bytes()
    out = tmp_path / "out"
    out.mkdir()
    (out / "2009").symlink_to(source / "2010", target_is_directory=True)
    config = RestoreConfig(model="baseline-bicubic-sharpen", device="cpu", overwrite=True)
    report = restore_path_ray(source, out, config, workers=1)
    assert (source / "2010" / "a.png").read_bytes() == original
    assert report.images == 1 and len(report.failed) == 1
    assert report.failed[0].startswith(f"2009/a.png: {out / '2009'} in the output folder is a link to ")


FULL_FROM = '''"""Run by every Python process of the command under test, its Ray workers too (a test's monkeypatch reaches no
worker): the disk is full for photos named from {first!r} on, written (OSError ENOSPC from the encoder, as
test_cli's local full-disk test has it) or copied as they were (no face: ENOSPC from the copy)."""
import errno
import shutil
from pathlib import Path

from clrface_video.io import photo_write

_encode, _copy = photo_write.encode_photo, shutil.copyfile


def _full_from(image, like, target, name):
    if name >= {first!r}:
        raise OSError(errno.ENOSPC, "No space left on device")
    return _encode(image, like, target, name)


def _copy_full_from(source, target, **kwargs):
    if Path(source).name >= {first!r}:
        raise OSError(errno.ENOSPC, "No space left on device")
    return _copy(source, target, **kwargs)


photo_write.encode_photo, shutil.copyfile = _full_from, _copy_full_from
'''


def ray_command(tmp_path: Path, *args: object, hook: str | None = None) -> subprocess.Popen:
    """`clrface-video restore ... --backend ray` in its own process (with its own local Ray), whose Python
    processes all run `hook` first (a sitecustomize module) where one is given."""
    env = dict(os.environ)
    if hook is not None:
        (tmp_path / "hook").mkdir()
        (tmp_path / "hook" / "sitecustomize.py").write_text(hook)
        project = str(Path(__file__).resolve().parents[1])  # the hook imports clrface_video, installed or not
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(tmp_path / "hook"), project, env.get("PYTHONPATH")) if p)
    return subprocess.Popen([sys.executable, "-m", "clrface_video", "restore", *map(str, args), "--backend", "ray",
                             "--model", "baseline-bicubic-sharpen", "--device", "cpu", "-q"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
@pytest.mark.parametrize("faces", [True, False], ids=["written", "copied"])
def test_a_full_disk_stops_a_ray_folder_as_it_stops_a_local_one(tmp_path, astronaut, faces):
    """With --backend ray a full disk (ENOSPC) failed every photo left, a warning each, and the command ended
    with exit 3 (a photo with no face, copied as it was, ended it with Ray's error instead); as locally, it
    stops at the first photo it cannot write, in the same line with exit 2: the shard stops there, no shard is
    started after it, and --report says what was done. One worker, shards of two photos: a-b done, c stopped,
    d (the rest of its shard) and e-f (the next shards) never tried."""
    album, out, report = tmp_path / "album", tmp_path / "out", tmp_path / "report.json"
    album.mkdir()
    face, flat = Image.fromarray(astronaut).resize((256, 256)), Image.new("RGB", (256, 256), (90, 90, 90))
    for name in "abcdef":
        (face if faces or name < "c" else flat).save(album / f"{name}.jpg")
    process = ray_command(tmp_path, album, "-o", out, "--report", report, "--workers", "1",
                         hook=FULL_FROM.format(first="c"))
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 2, stderr[-2000:]
    assert stderr.strip().splitlines()[-1] == (
        "error: no space left on device writing c.jpg; the folder is stopped there (2 restored files kept): "
        "free some space and run it again to go on")
    assert "Traceback" not in stderr and sorted(p.name for p in out.iterdir()) == ["a.jpg", "b.jpg"]
    done = json.loads(report.read_text())
    assert done["images"] == 2 and len(done["failed"]) == 1
    assert done["failed"][0] == ("c.jpg: cannot write it as JPEG (No space left on device)" if faces else
                                 "c.jpg: cannot write it (No space left on device)")


@pytest.mark.slow
@pytest.mark.parametrize(("sent", "code", "word"), [(signal.SIGINT, 130, "interrupted"),
                                                    (signal.SIGTERM, 143, "terminated")], ids=["ctrl-c", "kill"])
def test_a_ray_folder_stopped_by_a_signal_writes_its_report(tmp_path, astronaut, sent, code, word):
    """Ctrl-C or SIGTERM to a --backend ray folder wrote no --report, though a local run's writes one of the
    photos finished, marked interrupted. Now it does, and ends with the signal's status and one line, nothing
    from Ray. The photos of a shard still running (one worker, shards of 10 photos: stopped during the second)
    were counted by their outputs alone, without their faces (a stop during the first shard said faces 0 and
    settings null); now the worker says what it finished of it, as a local run's report has it: each photo's
    face, the settings, and the photos left to do."""
    album, out, report = tmp_path / "album", tmp_path / "out", tmp_path / "report.json"
    album.mkdir()
    face = Image.fromarray(astronaut).resize((256, 256))
    for n in range(40):
        face.save(album / f"p{n:02d}.jpg")
    ignored = signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C's default, as from a terminal
    try:
        process = ray_command(tmp_path, album, "-o", out, "--report", report, "--workers", "1")
    finally:
        signal.signal(signal.SIGINT, ignored)
    deadline = time.monotonic() + 240
    while not (out.is_dir() and len(list(out.glob("p*.jpg"))) >= 12) and time.monotonic() < deadline \
            and process.poll() is None:
        time.sleep(0.05)  # the first shard done, the second one's photos being written
    process.send_signal(sent)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == code, stderr[-2000:]
    assert "Traceback" not in stderr and stderr.strip().splitlines()[-1].startswith(word)
    assert "retries" not in stdout + stderr and "raylet" not in stdout + stderr, stdout + stderr  # Ray's, below ours
    kept = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))  # a temporary file is no output
    done = json.loads(report.read_text())
    assert done["interrupted"] is True and done["kind"] == "folder" and done["faces"] <= done["images"]
    assert 12 <= len(kept) < 40 and kept == [f"p{n:02d}.jpg" for n in range(len(kept))]
    assert len(kept) - 1 <= done["images"] <= len(kept)  # less one where the kill landed as a photo was renamed
    assert done["images"] - 1 <= done["faces"] <= done["images"]  # one face each, but for one renamed as it was
    assert done["faces"] > 10 and done["settings"]["model"] == "baseline-bicubic-sharpen"  # stopped: by its output
    assert done["unfinished"] == [f"p{n:02d}.jpg" for n in range(done["images"], 40)]


def test_calls_running_when_a_job_stops_are_cancelled_before_their_actors_are_killed(ray_cluster, capfd):
    """A Ctrl-C (here: the first job's on_done) while other actor calls ran, their actors then killed, had Ray's
    driver print '(raylet) Task Sleeper.nap failed. There are 3 retries remaining, so the task will be retried'
    on stdout, after the command's own last line; run_all cancels those calls first, and nothing is said."""
    import ray

    from clrface_video.distributed.cluster import RETRIES, run_all

    class Sleeper:
        def nap(self, seconds: float) -> float:
            time.sleep(seconds)
            return seconds

    def interrupted(position: int, result: float) -> None:
        raise KeyboardInterrupt

    remote = ray.remote(Sleeper).options(max_restarts=RETRIES, max_task_retries=RETRIES, num_cpus=0.5)
    actors = [remote.remote() for _ in range(2)]
    with pytest.raises(KeyboardInterrupt):
        run_all(ray, actors, "nap", [(0.1,), (60.0,)], interrupted)
    for actor in actors:
        ray.kill(actor)
    time.sleep(3)  # Ray's message came within a second of the kill
    out, err = capfd.readouterr()
    assert "retries" not in out + err and "raylet" not in out + err, out + err


HELD_START = '''"""Run first by the command under test alone (a sitecustomize module; Ray's own processes pass): its Ray
start held after {marker!r} is made, for the test's signal to land there: just after ray.init has put in its own
SIGTERM handler ("init"), or once Ray is up, as the workers are started ("workers")."""
import sys

if "restore" in sys.argv:
    import time
    from pathlib import Path

    from clrface_video import distributed
    from clrface_video.distributed import cluster

    def _held(call, after):
        def run(*args, **kwargs):
            result = call(*args, **kwargs) if after else None
            Path({marker!r}).touch()
            time.sleep(60)
            return result if after else call(*args, **kwargs)
        return run

    if {where!r} == "workers":
        distributed.start_workers = _held(distributed.start_workers, after=False)
    else:
        _import_ray = cluster.import_ray

        def _import_held():
            ray = _import_ray()
            ray._private.utils.set_sigterm_handler = _held(ray._private.utils.set_sigterm_handler, after=True)
            return ray

        cluster.import_ray = _import_held
'''


@pytest.mark.slow
@pytest.mark.parametrize("where", ["init", "workers"])
def test_a_ray_folder_killed_while_ray_starts_writes_its_report(tmp_path, astronaut, where):
    """SIGTERM while Ray starts, before any photo: inside ray.init the command ended with exit 15 and not a word
    (Ray's own handler: sys.exit(15)), and once Ray was up with 'terminated' but no --report, where a local run
    stopped as its models load writes one. Now both write it: nothing restored, the photo already done skipped,
    interrupted; 'terminated', exit 143, as for a kill later on."""
    album, out, report = tmp_path / "album", tmp_path / "out", tmp_path / "report.json"
    album.mkdir()
    face = Image.fromarray(astronaut).resize((128, 128))
    for name in ("a", "b"):
        face.save(album / f"{name}.jpg")
    out.mkdir()
    restore_folder(album, out, RestoreConfig(model="baseline-bicubic-sharpen", device="cpu"))
    (out / "b.jpg").unlink()  # a.jpg is done, b.jpg is left to do
    marker = tmp_path / "held"
    process = ray_command(tmp_path, album, "-o", out, "--report", report, "--workers", "1",
                          hook=HELD_START.format(marker=str(marker), where=where))
    deadline = time.monotonic() + 120
    while not marker.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert marker.exists(), process.communicate()[1][-2000:]
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr[-2000:]
    assert stderr.strip().splitlines()[-1] == ("terminated; 0 files finished and kept, no partial output was left: "
                                               "run it again to go on from there")
    done = json.loads(report.read_text())
    assert (done["interrupted"], done["kind"], done["images"], done["skipped"]) == (True, "folder", 0, 1)
    assert done["unfinished"] == ["b.jpg"]
    assert sorted(p.name for p in out.iterdir()) == ["a.jpg"]


def test_an_interrupted_ray_folder_counts_the_photos_a_running_shard_rewrote(tmp_path):
    """With --overwrite the outputs of a shard still running at the interrupt were there before: only those the
    run wrote again (renamed into place, another file) count as finished, not the old ones left."""
    from clrface_video.distributed.photos import _inodes, _written

    relatives = [Path("a.jpg"), Path("sub/b.jpg"), Path("c.jpg"), Path("d.jpg")]
    (tmp_path / "sub").mkdir()
    for relative in relatives[:3]:
        (tmp_path / relative).write_bytes(b"old")
    before = _inodes(tmp_path, relatives)
    for relative in (relatives[1], relatives[3]):  # rewritten, and new
        (tmp_path / relative.with_name(".partial")).write_bytes(b"new")
        os.replace(tmp_path / relative.with_name(".partial"), tmp_path / relative)
    assert list(before) == relatives[:3] and _written(tmp_path, relatives, before) == {relatives[1], relatives[3]}
    assert _written(tmp_path, relatives, {}) == set(relatives)  # without --overwrite: every output there is the run's


def header_only_png(path: Path, width: int, height: int) -> Path:
    """A PNG whose header states width x height (1-bit grey) with a token of pixel data: a photo too large to
    restore, refused by its header before any pixel is decoded, in a few bytes."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(bytes(64))) + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("backend", ["local", "ray"])
def test_a_photo_too_large_to_restore_is_named_in_a_folder(ray_cluster, tmp_path, astronaut, backend):
    """A photo past MAX_PIXELS (400 MP) in a folder is named, with its size against the limit, in one warning
    line and in --report's failed and warnings, on either backend; the folder goes on."""
    album = tmp_path / "album"
    (album / "scans").mkdir(parents=True)
    Image.fromarray(astronaut).resize((256, 256)).save(album / "a.png")
    header_only_png(album / "scans" / "wall.png", 20001, 20001)
    report = tmp_path / "report.json"
    ray = ["--backend", "ray", "--workers", "1"] if backend == "ray" else []
    result = CliRunner().invoke(cli, ["restore", str(album), "-o", str(tmp_path / "out"), "--report", str(report),
                                      "--model", "baseline-bicubic-sharpen", "--device", "cpu", *ray])
    assert result.exit_code == 3, result.output  # restored but for a file that could not be
    said = ("scans/wall.png: it is 20001 x 20001 pixels (400,040,001), more than the 400,000,000 restore "
            "takes (18-30 bytes of memory a pixel); scale it down or cut it into parts")
    assert result.stderr.count(f"warning: skipped {said}\n") == 1, result.stderr
    done = json.loads(report.read_text())
    assert done["images"] == 1 and done["failed"] == [said] and done["warnings"] == [f"skipped {said}"]


def test_a_changed_original_in_a_ray_folder_is_redone_and_named_once_by_its_path(ray_cluster, tmp_path, astronaut):
    """A rerun on Ray redoes a photo whose original changed since it was restored (newer than its output), as a
    local one does, and says so once, naming it by its path in the folder: the driver decides and says it, and
    the worker redoes what it is sent (it had said it again, by the file's name alone)."""
    root, out = tmp_path / "album", tmp_path / "out"
    (root / "2009").mkdir(parents=True)
    face = Image.fromarray(astronaut).resize((256, 256))
    face.save(root / "2009" / "a.png")
    face.save(root / "b.png")
    restore_path_ray(root, out, BASELINE, workers=1)
    face.point(lambda level: level // 2 + 100).save(root / "2009" / "a.png")  # rescanned: lighter, less contrast
    later = (root / "2009" / "a.png").stat().st_mtime + 60
    os.utime(root / "2009" / "a.png", (later, later))
    kept = (out / "b.png").stat().st_ino
    again = restore_path_ray(root, out, BASELINE, workers=1)
    assert (again.images, again.skipped) == (1, 1) and (out / "b.png").stat().st_ino == kept
    assert [line for line in again.warnings if "redoing" in line] == [
        "redoing 2009/a.png: the original changed since it was restored"]
    local = restore_folder(root, tmp_path / "local", BASELINE)
    assert local.images == 2 and tree(out) == tree(tmp_path / "local")


@pytest.mark.parametrize("backend", ["local", "ray"])
def test_a_folders_failed_photo_is_named_even_with_quiet(ray_cluster, tmp_path, astronaut, backend):
    """-q hides warnings, and hid with them the one line naming a photo that failed: a folder with a corrupt
    JPEG ended in exit 3 and '1 failed' with no word of which file, on either backend. The failure is named
    with -q too, and only it: a real warning (a palette PNG's) stays hidden."""
    album = tmp_path / "album"
    album.mkdir()
    Image.fromarray(astronaut).resize((256, 256)).save(album / "a.png")
    Image.fromarray(astronaut).resize((256, 256)).convert("P").save(album / "p.png")  # warns: written in RGB
    (album / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    ray = ["--backend", "ray", "--workers", "1"] if backend == "ray" else []
    result = CliRunner().invoke(cli, ["restore", str(album), "-o", str(tmp_path / "out"), "-q",
                                      "--model", "baseline-bicubic-sharpen", "--device", "cpu", *ray])
    assert result.exit_code == 3, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: skipped broken.jpg: cannot read it as an image ("), \
        result.stderr
    assert "2 images, 1 failed" in result.stdout


def test_xmp_sidecars_are_copied_on_ray_as_locally(ray_cluster, tmp_path, astronaut):
    """The workers restore each photo with restore_image, which copies its XMP sidecars beside its output as the
    local folder does (io.sidecars): the two trees are the same, sidecars and their dates included."""
    root = tmp_path / "album"
    (root / "2009").mkdir(parents=True)
    face = Image.fromarray(astronaut).resize((256, 256))
    face.save(root / "a.png")
    face.save(root / "2009" / "b.jpg", quality=92)
    (root / "a.xmp").write_bytes(b"<x:xmpmeta xmp:Rating='4'/>")
    (root / "2009" / "b.jpg.xmp").write_bytes(b"<x:xmpmeta darktable:history=''/>")
    restore_path_ray(root, tmp_path / "ray", BASELINE, workers=1)
    restore_folder(root, tmp_path / "local", BASELINE)
    ray, local = tree(tmp_path / "ray"), tree(tmp_path / "local")
    assert ray == local and ray["a.xmp"] == (root / "a.xmp").read_bytes()
    assert ray["2009/b.jpg.xmp"] == (root / "2009" / "b.jpg.xmp").read_bytes()
    assert (tmp_path / "ray" / "a.xmp").stat().st_mtime_ns == (root / "a.xmp").stat().st_mtime_ns


def test_a_rerun_on_ray_brings_the_sidecars_of_photos_already_restored(ray_cluster, tmp_path, astronaut):
    """A sidecar put beside a photo after its restore gets its copy on a rerun (the driver brings the copies of
    photos left as they are, photos.sidecars_of_done), as a local rerun does; no photo is written again."""
    root = tmp_path / "album"
    root.mkdir()
    Image.fromarray(astronaut).resize((256, 256)).save(root / "a.png")
    restore_path_ray(root, tmp_path / "ray", BASELINE, workers=1)
    written = (tmp_path / "ray" / "a.png").stat().st_mtime_ns, (tmp_path / "ray" / "a.png").stat().st_ino
    (root / "a.png.xmp").write_bytes(b"<x:xmpmeta xmp:Rating='4'/>")
    again = restore_path_ray(root, tmp_path / "ray", BASELINE, workers=1)
    assert again.sidecars == 1 and again.images == 0 and again.skipped == 1
    assert (tmp_path / "ray" / "a.png.xmp").read_bytes() == b"<x:xmpmeta xmp:Rating='4'/>"
    assert ((tmp_path / "ray" / "a.png").stat().st_mtime_ns, (tmp_path / "ray" / "a.png").stat().st_ino) == written


def test_an_unreadable_subfolder_fails_the_folder_on_ray_as_locally(ray_cluster, tmp_path, astronaut, unreadable):
    """The driver walks the folder: a subfolder it cannot read is counted in `failed` and said as a failure, as
    locally (photos.failed_folders), so the command ends in status 3."""
    root = tmp_path / "album"
    (root / "private").mkdir(parents=True)
    Image.fromarray(astronaut).resize((256, 256)).save(root / "a.png")
    unreadable(root / "private")
    report = restore_path_ray(root, tmp_path / "ray", BASELINE, workers=1)
    assert report.images == 1 and report.failed == ["private: cannot read the folder (Permission denied)"]


def test_a_ray_folder_leaves_out_the_outputs_earlier_runs_wrote_as_a_local_one_does(ray_cluster, tmp_path, astronaut):
    """A photo's default output beside it (p_restored.jpg, from `restore album/p.jpg`) was sent to a worker as one
    more photo and restored twice on Ray too; it is left out with the same one warning, x_restored.jpg with no
    x.* beside it restored, and the two trees the same."""
    root = tmp_path / "album"
    root.mkdir()
    face = Image.fromarray(astronaut).resize((256, 256))
    face.save(root / "p.jpg", quality=92)
    face.save(root / "x_restored.jpg", quality=92)
    restore_path_ray(root / "p.jpg", None, BASELINE, workers=1)
    assert (root / "p_restored.jpg").is_file()
    report = restore_path_ray(root, tmp_path / "ray", BASELINE, workers=1)
    line = ("left out 1 file an earlier run wrote (p_restored.jpg, the restored copy of p.jpg beside it), not restored "
            "again: rename it to restore it as an original")
    assert report.images == 2 and report.warnings == [line]
    assert sorted(tree(tmp_path / "ray")) == ["p.jpg", "x_restored.jpg"]
    restore_folder(root, tmp_path / "local", BASELINE)
    assert tree(tmp_path / "ray") == tree(tmp_path / "local")


def test_failed_photos_are_listed_in_the_folders_order_whichever_worker_finishes_first(ray_cluster, tmp_path,
                                                                                       monkeypatch):
    """The report's `failed` listed Ray's failed photos in the order their shards came back, so the same folder
    gave another list from run to run and from the local backend's; it lists them in the folder's order. The
    workers are made to come back last shard first (their results replayed in reverse)."""
    import clrface_video.distributed.photos as ray_photos

    root = tmp_path / "album"
    root.mkdir()
    for name in "abcdefgh":
        (root / f"{name}.jpg").write_bytes(b"not a photo " + name.encode())
    real_run_all = ray_photos.run_all

    def last_shard_first(ray, actors, method, jobs, on_done=None, **kwargs):
        results = real_run_all(ray, actors, method, jobs, **kwargs)
        for position in reversed(range(len(jobs))):
            on_done(position, results[position])
        return results

    monkeypatch.setattr(ray_photos, "run_all", last_shard_first)
    report = restore_path_ray(root, tmp_path / "ray", BASELINE, workers=2)
    local = restore_folder(root, tmp_path / "local", BASELINE)
    assert [line.split(":")[0] for line in report.failed] == [f"{name}.jpg" for name in "abcdefgh"]
    assert report.failed == local.failed

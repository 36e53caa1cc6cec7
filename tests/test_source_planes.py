"""The source's own YUV samples kept where a restore changed nothing (io.source_planes), read back plane by plane."""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from clrface_video.config import RestoreConfig
from clrface_video.faces.align import crop_corners_in_frame, estimate_similarity
from clrface_video.faces.detect import make_detector
from clrface_video.faces.paste import paste_faces
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


def changed_samples(changed: np.ndarray, step_x: int, step_y: int) -> np.ndarray:
    """Per sample of a plane subsampled (step_x, step_y) times, whether a pixel it covers is `changed`."""
    rows, columns = -(-changed.shape[0] // step_y), -(-changed.shape[1] // step_x)
    padded = np.zeros((rows * step_y, columns * step_x), bool)
    padded[:changed.shape[0], :changed.shape[1]] = changed
    return padded.reshape(rows, step_y, columns, step_x).any(axis=(1, 3))


@pytest.mark.parametrize(("name", "codec", "depth", "fmt"), [("face.mkv", "ffv1", 8, "yuv420p"),
                                                              ("face.mov", "prores_ks", 10, "yuv422p10le")])
def test_samples_the_paste_left_alone_are_the_sources_inside_a_faces_box(tmp_path, monkeypatch, name, codec, depth,
                                                                        fmt):
    """Inside the box round a face's changed pixels too, the pixels the paste left alone (mask 0: the corners round
    its oval mask) keep the source's Y, and the Cb and Cr samples whose pixels it left alone keep the source's.
    Before, those went through RGB with the face and came back rounded, Y too."""
    from clrface_video import story

    masks = []

    def recorded(*args, **kwargs):
        image, mask = paste_faces(*args, **kwargs)
        masks.append(mask > 0)
        return image, mask

    monkeypatch.setattr(story, "paste_faces", recorded)
    clip = make_clip(tmp_path / name, frames=4, size=SIZE, codec=codec, bit_depth=depth, audio=False)
    out = tmp_path / "face_out.mkv"
    assert restore_video(clip, out, config(codec="ffv1")).faces == 4
    (fmt_in, before), (fmt_out, after) = planes(clip), planes(out)
    assert fmt_in == fmt_out == fmt and len(masks) == 4
    for a, b, changed in zip(before, after, masks, strict=True):
        rows, columns = np.flatnonzero(changed.any(1)), np.flatnonzero(changed.any(0))
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            step_x, step_y = (SIZE[0] // x.shape[1], SIZE[1] // x.shape[0])
            in_box = np.zeros(x.shape, bool)
            in_box[rows[0] // step_y:rows[-1] // step_y + 1, columns[0] // step_x:columns[-1] // step_x + 1] = True
            alone = in_box & ~changed_samples(changed, step_x, step_y)
            assert alone.sum() > 0.05 * in_box.sum()  # the box's corners
            assert np.array_equal(x[alone], y[alone]), f"plane {index}"
        assert np.abs(a[0].astype(int) - b[0])[changed].max() > 4  # restored


@pytest.mark.parametrize(("fmt", "rgb"), [("yuv420p", "rgb24"), ("yuv422p10le", "rgb48le"), ("yuv411p", "rgb24")])
def test_the_changed_pixels_are_converted_as_the_whole_frame_converts_them(fmt, rgb):
    """Of a box whose oval the paste changed, the samples that cover a changed pixel are those of the whole frame's
    conversion (the margin holds the chroma filter's reach: swscale's 4:2:0 chroma read one row past a region's
    edge); the others, inside the box or out, are the source's, though the filter reads a changed pixel next to
    theirs."""
    from av.video.reformatter import VideoReformatter

    from clrface_video.io.decode import source_planes
    from clrface_video.io.source_planes import kept_frame
    from clrface_video.types import Change

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
    x0, y0, x1, y1 = box = (40, 20, 100, 80)  # on the chroma grid: with no margin its first and last chroma rows differed
    rows, columns = np.ogrid[y0:y1, x0:x1]
    oval = ((rows - 49.5) / 30) ** 2 + ((columns - 69.5) / 30) ** 2 <= 1  # touches the box's sides, not its corners
    out = kept_frame(source, [Change(box, oval)], fmt,
                     lambda region: converted(image[region[1]:region[3], region[0]:region[2]]))
    changed = np.zeros(image.shape[:2], bool)
    changed[y0:y1, x0:x1] = oval
    whole, kept = source_planes(converted(image), None), source_planes(out, None)
    size = 2 if deep else 1
    for a, b, s in zip(whole.planes, kept.planes, source.planes, strict=True):
        step_x, step_y = image.shape[1] * size // a.shape[1], image.shape[0] // a.shape[0]
        covering = np.repeat(changed_samples(changed, step_x, step_y), size, axis=1)
        assert np.array_equal(a[covering], b[covering]) and np.array_equal(b[~covering], s[~covering])
        assert (~covering)[y0 // step_y:y1 // step_y, x0 * size // step_x:x1 * size // step_x].any()  # the corners

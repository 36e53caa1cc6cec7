"""Generate tiny real test clips with PyAV from the public-domain astronaut (scikit-image, NASA); PNG chunks."""
from __future__ import annotations

import io
import struct
import zlib
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image

AUDIO_RATE = 48000
AUDIO_FRAME = 1024  # aac frame size
FACE_CENTER = (215.0, 125.0)  # (x, y) of the astronaut's face in the 512x512 image
BT709 = (1, 1, 1, 1)  # (primaries, transfer, matrix, range) as FFmpeg numbers: BT.709, limited range
BT601_FULL = (6, 6, 6, 2)  # SMPTE 170M everything, full (JPEG) range
BT2020_PQ = (9, 16, 9, 1)  # HDR10 tags: BT.2020 primaries and matrix, PQ transfer, limited range
MASTER_DISPLAY = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)"  # a P3 display, 1000 nits
HDR10 = f"hdr10=1:master-display={MASTER_DISPLAY}:max-cll=1000,400"  # x265 options for make_clip(hdr10=...)
SWS_MATRIX = {1: 1, 5: 5, 6: 5, 9: 9}  # FFmpeg colour matrix -> swscale matrix


TAGS = {"title": "Family picnic 1987", "comment": "digitised from VHS", "creation_time": "1987-07-04T12:00:00.000000Z"}
CHAPTERS = ({"id": 1, "start": 0, "end": 200, "metadata": {"title": "Beach"}},
            {"id": 2, "start": 200, "end": 400, "metadata": {"title": "Picnic"}})


@lru_cache(maxsize=1)
def astronaut() -> np.ndarray:
    """scikit-image's astronaut (NASA, public domain): (512, 512, 3) uint8 RGB."""
    from skimage import data

    image = data.astronaut()
    image.setflags(write=False)
    return image


def _face_view(index: int, total: int, width: int, height: int) -> np.ndarray:
    """A slow pan and zoom over the astronaut that keeps the face in view."""
    return cv2.warpAffine(astronaut(), _face_view_matrix(index, total, width, height), (width, height),
                          flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)


def _face_view_matrix(index: int, total: int, width: int, height: int) -> np.ndarray:
    """The (2, 3) affine from the astronaut photo to frame `index` of _face_view."""
    t = index / max(total - 1, 1)
    span = 360.0 - 60.0 * t  # zoom in slowly
    cx = FACE_CENTER[0] + 20.0 * np.sin(2 * np.pi * t)
    cy = FACE_CENTER[1] + 40.0 + 10.0 * t
    aspect = width / height
    half_w, half_h = span * aspect / 2, span / 2
    src = np.float32([[cx - half_w, cy - half_h], [cx + half_w, cy - half_h], [cx - half_w, cy + half_h]])
    dst = np.float32([[0, 0], [width, 0], [0, height]])
    return cv2.getAffineTransform(src, dst)


@lru_cache(maxsize=1)
def grace_hopper() -> np.ndarray:
    """matplotlib's sample photo of Grace Hopper (US Navy, public domain): (600, 512, 3) uint8 RGB."""
    from matplotlib import cbook

    with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as photo:
        image = np.asarray(photo.convert("RGB"))
    image.setflags(write=False)
    return image


def unrelated_pair() -> list[np.ndarray]:
    """samples/astronaut.jpg and grace_hopper() scaled to its size, as ComfyUI's ImageBatch joins two photos: a
    batch of unrelated pictures, which the detector scores the sample's spacesuit in at 0.61 (a video's threshold
    is 0.6, a photo's 0.7)."""
    with Image.open(Path(__file__).parents[1] / "samples" / "astronaut.jpg") as photo:
        sample = np.asarray(photo.convert("RGB"))
    other = Image.fromarray(grace_hopper()).resize(sample.shape[1::-1], Image.BICUBIC)
    return [sample, np.asarray(other)]


GRACE_FACE = ((266.0, 217.0), 221.0)  # her face's centre (x, y) and height in that photo; the astronaut's: 120


def _other_person_view(index: int, total: int, width: int, height: int) -> np.ndarray:
    """Grace Hopper's face where _face_view shows the astronaut's, at its size: the shot after a cut."""
    (gx, gy), side = GRACE_FACE
    scale = 120.0 / side
    to_astronaut = np.array([[scale, 0, FACE_CENTER[0] - scale * gx], [0, scale, FACE_CENTER[1] - scale * gy],
                             [0, 0, 1]])
    view = _face_view_matrix(index, total, width, height)
    return cv2.warpAffine(grace_hopper(), (np.vstack([view, [0, 0, 1]]) @ to_astronaut)[:2], (width, height),
                          flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)


def crop_footprints(rgb: np.ndarray, resolution: int = 128) -> np.ndarray:
    """(H, W) bool: where the aligned crops (of a restorer of `resolution`) of the faces found in `rgb` lie in
    the image (paste can only touch these)."""
    from clrface_video.faces.align import crop_corners_in_frame, estimate_similarity
    from clrface_video.faces.detect import make_detector

    region = np.zeros(rgb.shape[:2], np.uint8)
    for face in make_detector().detect(rgb):
        corners = crop_corners_in_frame(estimate_similarity(face.landmarks, resolution), resolution)
        cv2.fillConvexPoly(region, np.round(corners).astype(np.int32), 1)
    return cv2.dilate(region, np.ones((5, 5), np.uint8)).astype(bool)


def _texture(index: int, width: int, height: int) -> np.ndarray:
    """A faceless moving colour texture (sines plus fixed noise)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    phase = index * 0.3
    r = 128 + 100 * np.sin(x / 9.0 + phase)
    g = 128 + 100 * np.sin(y / 13.0 - phase)
    b = 128 + 100 * np.sin((x + y) / 17.0 + phase / 2)
    noise = np.random.default_rng(7).normal(0, 8, (height, width, 1)).astype(np.float32)
    return np.clip(np.stack([r, g, b], axis=-1) + noise, 0, 255).astype(np.uint8)


def clip_image(index: int, total: int, size: tuple[int, int], face: bool = True, grey: bool = False,
               cut_at: int | None = None, cut_back: int | None = None) -> np.ndarray:
    """Frame `index` of a generated clip as (H, W, 3) uint8 RGB; size is (width, height); grey: its luma in all three;
    cut_at: from this frame on, another person's face in the same place (a cut between two close-ups);
    cut_back: from this frame on, the first person again (shot / reverse shot)."""
    width, height = size
    if not face:
        image = _texture(index, width, height)
    elif cut_at is not None and cut_at <= index < (cut_back or index + 1):
        image = _other_person_view(index, total, width, height)
    else:
        image = _face_view(index, total, width, height)
    return np.repeat(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2) if grey else image


def display_size(size: tuple[int, int], sar: Fraction) -> tuple[int, int]:
    """(width, height) of a clip of stored `size` as shown with pixels `sar` wide."""
    return round(size[0] * sar), size[1]


def _frame_pts(frames: int, fps: int, vfr: bool) -> tuple[list[int], Fraction]:
    """Presentation times and their time base; VFR alternates 1x, 2x and 0.5x frame durations."""
    if not vfr:
        return list(range(frames)), Fraction(1, fps)
    time_base = Fraction(1, 1000)
    step = 1000 / fps
    pattern = (1.0, 2.0, 0.5)
    pts, now = [], 0.0
    for i in range(frames):
        pts.append(round(now))
        now += step * pattern[i % len(pattern)]
    return pts, time_base


def _pix_fmt(codec: str, bit_depth: int, width: int, height: int) -> str:
    odd = width % 2 or height % 2
    if codec == "prores_ks":
        return "yuv444p10le" if odd else "yuv422p10le"
    if codec == "ffv1":
        return "yuv444p10le" if bit_depth > 8 else "yuv444p" if odd else "yuv420p"
    if codec == "gif":
        return "rgb8"  # a fixed 256-colour palette, as in a GIF made by an old tool
    chroma = "yuv444p" if odd else "yuv420p"
    return chroma + "10le" if bit_depth > 8 else chroma


def _add_video(out: av.container.OutputContainer, codec: str, fps: int, time_base: Fraction,
               size: tuple[int, int], bit_depth: int, rotation: int, mirror: bool,
               color: tuple[int, int, int, int]) -> av.video.stream.VideoStream:
    stream = out.add_stream(codec, rate=fps)
    stream.width, stream.height = size
    stream.pix_fmt = _pix_fmt(codec, bit_depth, *size)
    stream.time_base = time_base
    stream.codec_context.time_base = time_base
    ctx = stream.codec_context
    ctx.color_primaries, ctx.color_trc, ctx.colorspace, ctx.color_range = color
    if codec in ("libx264", "libx265"):
        stream.options = {"crf": "23", "preset": "ultrafast", "threads": "1"}
        if codec == "libx265":
            stream.options["x265-params"] = "log-level=error"
    if rotation or mirror:
        stream.set_display_rotation(rotation, hflip=mirror)
    return stream


def _video_frame(image: np.ndarray, bit_depth: int, pix_fmt: str, pts: int, time_base: Fraction,
                 color: tuple[int, int, int, int]) -> av.VideoFrame:
    if bit_depth > 8:
        frame = av.VideoFrame.from_ndarray(image.astype(np.uint16) * 257, format="rgb48le")
    else:
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
    matrix = SWS_MATRIX.get(color[2], 5)
    # threads=1: FFmpeg 8's threaded swscale intermittently corrupts slice starts for rgb48 -> 10-bit YUV.
    frame = frame.reformat(format=pix_fmt, src_colorspace=matrix, dst_colorspace=matrix, src_color_range=2,
                           dst_color_range=2 if color[3] == 2 else 1, threads=1)
    frame.pts, frame.time_base = pts, time_base
    return frame


def silent_clip(path: Path, codec: str, size: tuple[int, int], frames: int, audio_codec: str = "pcm_s16le",
                muxer: str | None = None) -> Path:
    """`frames` frames of the generated clip in `codec` at 25 fps (4:2:0), each with a frame of silence (48 kHz
    stereo) in `audio_codec`, in the container `muxer` names (by default its extension's): what make_clip's set-up
    does not write, such as DV, or a camcorder's MPEG-2 under its own extension (.MOD)."""
    with av.open(str(path), "w", format=muxer) as out:
        video, audio = out.add_stream(codec, rate=25), out.add_stream(audio_codec, rate=48000, layout="stereo")
        video.width, video.height, video.pix_fmt = *size, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(clip_image(i, frames, size), format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
            sound = av.AudioFrame.from_ndarray(np.zeros((1, 2 * 1920), np.int16), format="s16", layout="stereo")
            sound.sample_rate, sound.pts = 48000, i * 1920
            out.mux(audio.encode(sound))
        out.mux(video.encode(None))
        out.mux(audio.encode(None))
    return path


def _audio_frames(seconds: float) -> list[av.AudioFrame]:
    """A 440 Hz sine tone, mono fltp, in aac-sized frames."""
    count = int(np.ceil(seconds * AUDIO_RATE / AUDIO_FRAME))
    frames = []
    for i in range(count):
        t = (np.arange(AUDIO_FRAME) + i * AUDIO_FRAME) / AUDIO_RATE
        samples = (0.3 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts, frame.time_base = i * AUDIO_FRAME, Fraction(1, AUDIO_RATE)
        frames.append(frame)
    return frames


def _subtitle_packets(out: av.container.OutputContainer, seconds: float) -> list[av.Packet]:
    """One cue per half second: subrip in mkv, mov_text in mp4/mov."""
    codec = "subrip" if "subrip" in out.supported_codecs else "mov_text"
    stream = out.add_mux_stream(codec)
    stream.time_base = Fraction(1, 1000)
    packets = []
    for i in range(max(1, int(seconds * 2))):
        text = f"cue {i}: hello astronaut".encode()
        payload = text if codec == "subrip" else len(text).to_bytes(2, "big") + text
        packet = av.Packet(payload)
        packet.stream = stream
        packet.pts = packet.dts = i * 500
        packet.duration = 400
        packet.time_base = Fraction(1, 1000)
        packets.append(packet)
    return packets


def make_clip(path: Path | str, *, frames: int = 24, size: tuple[int, int] = (256, 256), fps: int = 24,
              audio: bool = True, subtitles: bool = False, vfr: bool = False, rotation: int = 0,
              bit_depth: int = 8, codec: str = "libx264", face: bool = True,
              color: tuple[int, int, int, int] = BT709, audio_codec: str = "aac", mirror: bool = False,
              grey: bool = False, interlaced: bool = False, sar: Fraction | None = None,
              tagged: bool = False, gop: int | None = None, timecode: str | None = None,
              sideways: bool = False, hdr10: str | None = None, cut_at: int | None = None,
              cut_back: int | None = None, pix_fmt: str | None = None) -> Path:
    """Write a small real clip and return its path.

    size is (width, height); the container comes from the suffix (.mp4, .mkv, .mov).
    color is (primaries, transfer, matrix, range) as FFmpeg numbers, default BT.709 limited range. Subtitles are subrip (mkv) or mov_text (mp4/mov).
    VFR clips use a 1/1000 time base with frame durations cycling 1x, 2x, 0.5x.
    audio_codec: "aac" (default), or e.g. "libopus", "libmp3lame", "flac" where the container allows.
    rotation (counter-clockwise degrees) and mirror (horizontal flip) go into the display matrix.
    grey: black-and-white frames (neutral chroma).
    interlaced: libx264 frames coded as fields, top field first: each frame weaves two moments of the pan
    (even rows, then odd rows half a frame later), so motion combs as it does in a DV or VHS capture.
    sar: the pixel shape (anamorphic video). tagged: an archive's tags: TAGS on the file, languages
    (video "eng", audio "fra"), the audio stream not default, and CHAPTERS (mkv, mp4, mov).
    gop: libx264 keyframe interval (segments for the Ray backend).
    timecode: the start timecode ("HH:MM:SS:FF"); mov and mp4 store it as a timecode track.
    sideways: the picture is stored turned against `rotation` so that it shows upright, as a phone stores
    a portrait clip (size stays the stored size).
    hdr10: x265 options that write HDR10 metadata (with codec="libx265"), e.g. HDR10 below.
    cut_at: a cut before this frame, to Grace Hopper's face where the astronaut's was (other options aside);
    cut_back: a cut back to the astronaut before this frame.
    pix_fmt: the stored pixel format, where the codec's default for bit_depth is not wanted (ffv1's yuv411p).
    """
    path = Path(path)
    pts, time_base = _frame_pts(frames, fps, vfr)
    seconds = (pts[-1] * time_base + Fraction(1, fps)) if frames else 0
    with av.open(str(path), "w") as out:
        video = _add_video(out, codec, fps, time_base, size, bit_depth, rotation, mirror, color)
        if pix_fmt is not None:
            video.pix_fmt = pix_fmt
        x264 = (["interlaced=1", "tff=1"] if interlaced else []) + \
            ([f"keyint={gop}", f"min-keyint={gop}", "scenecut=0"] if gop else [])
        if x264:
            video.options = {**video.options, "x264-params": ":".join(x264)}
        if hdr10:
            video.options = {**video.options, "x265-params": f"{video.options['x265-params']}:{hdr10}"}
        if sar is not None:
            video.codec_context.sample_aspect_ratio = sar
        if timecode is not None:
            video.metadata["timecode"] = timecode
        audio_stream = out.add_stream(audio_codec, rate=AUDIO_RATE, layout="mono") if audio else None
        if tagged:
            out.metadata.update(TAGS)
            video.metadata["language"] = "eng"
            if audio_stream is not None:
                audio_stream.metadata["language"] = "fra"
                audio_stream.disposition = av.stream.Disposition(0)
            out.set_chapters([dict(chapter, time_base=Fraction(1, 1000)) for chapter in CHAPTERS])
        cues = _subtitle_packets(out, float(seconds)) if subtitles else []
        pending = _audio_frames(float(seconds)) if audio else []
        out.start_encoding()  # write the header even when frames=0 (an empty but valid file)
        for i, p in enumerate(pts):
            if interlaced:
                image = clip_image(2 * i, 2 * frames, size, face, grey)
                image[1::2] = clip_image(2 * i + 1, 2 * frames, size, face, grey)[1::2]
            elif sar is not None:  # the picture as displayed, squeezed into the stored width
                image = cv2.resize(clip_image(i, frames, display_size(size, sar), face, grey), size,
                                   interpolation=cv2.INTER_AREA)
            elif sideways:  # display = np.rot90(stored, rotation / 90)
                turns = round(rotation / 90) % 4
                shown = size[::-1] if turns % 2 else size
                image = np.ascontiguousarray(np.rot90(clip_image(i, frames, shown, face, grey), -turns))
            else:
                image = clip_image(i, frames, size, face, grey, cut_at, cut_back)
            frame = _video_frame(image, bit_depth, video.pix_fmt, p, time_base, color)
            out.mux(video.encode(frame))
            now = p * time_base
            while pending and pending[0].pts * pending[0].time_base <= now:
                out.mux(audio_stream.encode(pending.pop(0)))
            while cues and cues[0].pts * cues[0].time_base <= now:
                out.mux(cues.pop(0))
        out.mux(video.encode(None))
        for frame in pending:
            out.mux(audio_stream.encode(frame))
        if audio_stream is not None:
            out.mux(audio_stream.encode(None))
        for cue in cues:
            out.mux(cue)
    return path


def make_sequence(pattern: Path | str, *, frames: int = 4, start: int = 1, size: tuple[int, int] = (256, 192),
                  bit_depth: int = 8, gray: bool = False) -> Path:
    """Write a numbered image sequence (a film scan) of the clip's frames and return its pattern.

    The encoder follows the extension (.dpx, .png, .tif); bit_depth 10 gives 10-bit DPX (gbrp10le),
    16 gives 16-bit PNG/TIFF; gray: one-channel frames (a black-and-white scan); frames are numbered from
    `start` (scans often start at a timecode's count).
    """
    from clrface_video.io.sequence import sequence_codec, sequence_pix_fmt

    pattern = Path(pattern)
    pattern.parent.mkdir(parents=True, exist_ok=True)
    codec = sequence_codec(pattern)
    with av.open(str(pattern), "w", format="image2", options={"start_number": str(start)}) as out:
        stream = out.add_stream(codec, rate=24)
        stream.width, stream.height = size
        stream.pix_fmt = sequence_pix_fmt(codec, bit_depth, gray)
        for i in range(frames):
            image = clip_image(i, frames, size)
            rgb = av.VideoFrame.from_ndarray(image.astype(np.uint16) * 257, format="rgb48le") if bit_depth > 8 \
                else av.VideoFrame.from_ndarray(image, format="rgb24")
            frame = rgb.reformat(format=stream.pix_fmt)
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return pattern


def make_audio_only(path: Path | str, seconds: float = 0.5) -> Path:
    """A media file with an aac track and no video stream."""
    path = Path(path)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=AUDIO_RATE, layout="mono")
        for frame in _audio_frames(seconds):
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def read_packets(path: Path | str, kind: str) -> list[tuple[bytes, int | None, Fraction]]:
    """(bytes, pts, time_base) of every non-empty packet of the first `kind` stream ("audio", "subtitle")."""
    with av.open(str(path)) as container:
        streams = [s for s in container.streams if s.type == kind]
        if not streams:
            return []
        return [(bytes(p), p.pts, p.time_base) for p in container.demux(streams[0])
                if p.dts is not None and p.size > 0]


def read_cues(path: Path | str) -> list[tuple[Fraction, Fraction, bytes]]:
    """(start relative to the first video frame, duration, ASS dialogue text) of every cue of the first subtitle
    stream, as FFmpeg's decoder for its codec reads it (so mov_text, SubRip and WebVTT compare as text)."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        first = next(p.pts for p in container.demux(video) if p.pts is not None) * video.time_base
        container.seek(0)
        stream = container.streams.subtitles[0]
        cues = []
        for packet in container.demux(stream):
            if packet.pts is None or packet.size == 0:
                continue
            for cue in stream.decode(packet):
                cues.append((packet.pts * packet.time_base - first, packet.duration * packet.time_base,
                             cue.dialogue))
        return cues


def mux_all(source: av.container.InputContainer, out: av.container.OutputContainer,
            copies: dict[int, av.stream.Stream]) -> None:
    """Every timed packet of `source` into its copy stream of `out` (copies: add_stream_from_template's, by index)."""
    for packet in source.demux():
        if packet.dts is not None:
            packet.stream = copies[packet.stream_index]
            out.mux(packet)


def add_srt_cues(src: Path | str, dst: Path | str, cues: list[tuple[int, int, bytes]]) -> Path:
    """`src` remuxed into `dst` (.mkv) with a SubRip track of (start ms, duration ms, text) cues, in that order."""
    with av.open(str(src)) as source, av.open(str(dst), "w") as out:
        copies = {s.index: out.add_stream_from_template(s) for s in source.streams}
        track = out.add_mux_stream("subrip")
        track.time_base = Fraction(1, 1000)
        for start, length, text in cues:
            packet = av.Packet(text)
            packet.pts = packet.dts = start
            packet.duration, packet.time_base, packet.stream = length, Fraction(1, 1000), track
            out.mux(packet)
        mux_all(source, out, copies)
    return Path(dst)


def add_ass_track(src: Path | str, dst: Path | str, lines: list[str]) -> Path:
    """`src` remuxed into `dst` (.mkv) with an ASS subtitle track: one Dialogue text of `lines` per half second."""
    header = ("[Script Info]\nScriptType: v4.00+\nPlayResX: 384\nPlayResY: 288\n\n[V4+ Styles]\n"
              "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, "
              "Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, "
              "Alignment, MarginL, MarginR, MarginV, Encoding\n"
              "Style: Default,Arial,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,0\n\n"
              "[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n")
    with av.open(str(src)) as source, av.open(str(dst), "w") as out:
        copies = {s.index: out.add_stream_from_template(s) for s in source.streams}
        track = out.add_stream("ass")
        track.codec_context.subtitle_header = header.encode()
        track.time_base = Fraction(1, 1000)
        out.start_encoding()
        for i, line in enumerate(lines):
            event = av.subtitles.subtitle.SubtitleSet.create(f"{i},0,Default,,0,0,0,,{line}".encode(), 0, 400)
            packet = track.codec_context.encode_subtitle(event)
            packet.pts = packet.dts = i * 500
            packet.duration, packet.time_base, packet.stream = 400, Fraction(1, 1000), track
            out.mux(packet)
        mux_all(source, out, copies)
    return Path(dst)


def add_extras(src: Path | str, dst: Path | str, *, telemetry: bool = False, apple_keys: bool = False,
               font: bool = False, cover: bool = False) -> Path:
    """`src` remuxed into `dst` with what cameras and editors add: a codec-less telemetry track ("GoPro MET",
    bin_data) with three packets, a phone's QuickTime keys (make, model, creation date with its zone), an
    attached font (.mkv), or a cover picture (COVER, a JPEG, as an MP4's attached picture)."""
    options = {"movflags": "use_metadata_tags"} if apple_keys else {}
    with av.open(str(src)) as source, av.open(str(dst), "w", options=options) as out:
        copies = {s.index: out.add_stream_from_template(s) for s in source.streams}
        data = out.add_data_stream("bin_data") if telemetry else None
        if data is not None:
            data.metadata["handler_name"] = "GoPro MET"
        if apple_keys:
            out.metadata.update(APPLE_KEYS)
        if font:
            out.add_attachment("DejaVuSans.ttf", "application/x-truetype-font", FONT)
        picture = out.add_stream("mjpeg") if cover else None
        if picture is not None:
            picture.width, picture.height, picture.pix_fmt = 32, 32, "yuvj420p"
            picture.disposition = av.stream.Disposition.attached_pic
        out.start_encoding()
        for i in range(3 if data is not None else 0):
            packet = av.Packet(bytes([i + 1]) * 16)
            packet.pts = packet.dts = i * 100
            packet.time_base, packet.stream = Fraction(1, 1000), data
            out.mux(packet)
        mux_all(source, out, copies)
        if picture is not None:  # one untimed packet
            packet = av.Packet(COVER)
            packet.stream = picture
            out.mux(packet)
    return Path(dst)


def _cover() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 10, 10)).save(buffer, "JPEG")
    return buffer.getvalue()


COVER = _cover()
APPLE_KEYS = {"com.apple.quicktime.make": "Apple", "com.apple.quicktime.model": "iPhone 12",
              "com.apple.quicktime.creationdate": "2021-06-01T12:00:00+0200"}
FONT = b"\x00\x01\x00\x00" + b"not really a font" * 20


def rotted(clip: Path, packet: int, path: Path) -> Path:
    """A copy of `clip` at `path` with bit rot in its video packet number `packet`: 26 bytes flipped, its slice
    header among them, so that the decoder refuses the packet (an old file's damage)."""
    with av.open(str(clip)) as container:
        starts = [p.pos for p in container.demux(video=0) if p.size]
    data = bytearray(clip.read_bytes())
    for k in range(starts[packet] + 4, starts[packet] + 30):
        data[k] ^= 0x5A
    path.write_bytes(bytes(data))
    return path


def cut_copy(clip: Path, path: Path, share: float = 0.7) -> Path:
    """A copy of `clip` at `path` holding only its first `share` of bytes: a copy or a download stopped short."""
    data = clip.read_bytes()
    path.write_bytes(data[:int(len(data) * share)])
    return path


def make_alpha_clip(path: Path | str, *, frames: int = 4, size: tuple[int, int] = (256, 192), codec: str = "ffv1",
                    pix_fmt: str = "yuva420p", opaque: bool = False) -> tuple[Path, list[np.ndarray]]:
    """A clip with transparency (FFV1 in .mkv, or prores_ks with yuva444p10le in .mov): the astronaut pan over
    an alpha plane that is opaque in a centre band and a gradient at the sides (all opaque with opaque=True).
    Returns the path and the 8-bit alpha planes written."""
    path = Path(path)
    width, height = size
    planes = []
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=24)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if codec == "prores_ks":
            stream.options = {"profile": "4444"}
        for i in range(frames):
            alpha = np.tile(np.linspace(0, 255, width).round().astype(np.uint8), (height, 1))
            alpha[:, width // 5: 4 * width // 5] = 255
            alpha = np.full_like(alpha, 255) if opaque else alpha
            planes.append(alpha)
            rgba = np.dstack([clip_image(i, frames, size), alpha])
            frame = av.VideoFrame.from_ndarray(rgba, format="rgba").reformat(format=pix_fmt, threads=1)
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path, planes


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, kind, data, CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def add_png_chunks(path: Path | str, chunks: list[tuple[bytes, bytes]]) -> Path:
    """The PNG at `path` with `chunks` (kind, data) written right after its IHDR, as a file of its own writer."""
    path = Path(path)
    png = path.read_bytes()
    end_of_ihdr = 8 + 8 + 13 + 4
    path.write_bytes(png[:end_of_ihdr] + b"".join(png_chunk(kind, data) for kind, data in chunks) + png[end_of_ihdr:])
    return path


def png_chunks(path: Path | str) -> dict[bytes, bytes]:
    """The chunks a PNG holds before its first IDAT (those that can describe its pixels), kind -> data."""
    png, at, chunks = Path(path).read_bytes(), 8, {}
    while at < len(png):
        length, kind = struct.unpack_from(">I4s", png, at)
        if kind == b"IDAT":
            break
        chunks[kind] = png[at + 8:at + 8 + length]
        at += 12 + length
    return chunks


def make_hdr_photo(path: Path | str, rgb: np.ndarray) -> Path:
    """A 10-bit photo as an HDR phone or camera writes it: a .heic (pillow-heif, 16-bit data saved at 10 bits,
    tagged sRGB), or a .avif (PyAV: an AV1 still in yuv420p10le, tagged BT.2020 primaries, PQ transfer, BT.2020
    matrix, limited range). Skips the test where the writer is missing."""
    import pytest

    from clrface_video.io.scheduling import scheduled_as_before

    path = Path(path)
    if path.suffix == ".heic":
        pillow_heif = pytest.importorskip("pillow_heif", reason="HEIF needs pillow-heif (the test extra installs it)")
        deep = rgb.astype(np.uint16) * 257
        pillow_heif.from_bytes(mode="RGB;16", size=(rgb.shape[1], rgb.shape[0]), data=deep.tobytes()).save(path)
        return path
    codec = next((name for name in ("libsvtav1", "libaom-av1") if name in av.codecs_available), None)
    if codec is None:
        pytest.skip("this FFmpeg has no AV1 encoder")
    # libsvtav1 makes the test process real-time, which starved the rest of the run (io.scheduling)
    with scheduled_as_before(), av.open(str(path), "w", format="avif") as out:
        stream = out.add_stream(codec, rate=1)
        stream.width, stream.height, stream.pix_fmt = rgb.shape[1], rgb.shape[0], "yuv420p10le"
        stream.codec_context.color_primaries, stream.codec_context.color_trc = 9, 16
        stream.codec_context.colorspace = 9
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24").reformat(format="yuv420p10le")
        for packet in [*stream.encode(frame), *stream.encode()]:
            out.mux(packet)
    return path


def mp_pictures(path: Path) -> list[bytes]:
    """Each picture's bytes, where the file's MP index puts them (CIPA DC-007: the entries' offsets count from the
    index's header, the first picture's is 0); the whole file where it has none."""
    data = path.read_bytes()
    header = data.find(b"MPF\x00") + 4
    if header < 4:
        return [data]
    order = "<" if data[header:header + 2] == b"II" else ">"
    ifd = header + struct.unpack_from(order + "I", data, header + 4)[0]
    tags = {tag: (size, offset) for tag, _, size, offset in
            (struct.unpack_from(order + "HHII", data, ifd + 2 + 12 * number)
             for number in range(struct.unpack_from(order + "H", data, ifd)[0]))}
    size, offset = tags[0xB002]
    entries = [struct.unpack_from(order + "III", data, header + offset + at) for at in range(0, size, 16)]
    return [data[header + start if start else 0:(header + start if start else 0) + length]
            for _, length, start in entries]

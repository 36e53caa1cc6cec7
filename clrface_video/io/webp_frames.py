"""Animated WebP through Pillow (FFmpeg cannot decode it): probe, a frame reader and a writer for the video job."""
from __future__ import annotations

import contextlib
import logging
import tempfile
import zlib
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from clrface_video.atomic import atomic
from clrface_video.errors import ClrfaceError, InputError, one_line, option_name
from clrface_video.io.decode import VideoInfo
from clrface_video.io.photo_read import READ_ERRORS, check_size, pillow_unlimited
from clrface_video.io.pixels import to_uint8
from clrface_video.io.webp_anim import WebpAnimation, is_animated_webp, read_settings
from clrface_video.types import Frame, TimeSpan

if TYPE_CHECKING:
    from typing_extensions import Self

log = logging.getLogger(__name__)
MILLISECOND = Fraction(1, 1000)  # a WebP frame's duration is whole milliseconds: the frames' time base
LOSSY_QUALITY = 95  # a lossy animation's frames, re-encoded (WebP stores no quality to copy)
UNSPECIFIED, RANGE_JPEG = 2, 2  # AVColorPrimaries / AVColorTransferCharacteristic / AVColorSpace; AVColorRange
SPOOL_LEVEL = 1  # zlib level of the frames spooled to disk until the animation is encoded: takes about a third
# off a photo's frame (flat colours: nine tenths) for ~20 ms a megabyte; 0 would store them whole, at disk speed


def _open(path: Path) -> Image.Image:
    """The animated WebP opened with Pillow, or a one-line InputError; its frames held to a photo's size
    (check_size: MAX_PIXELS, said in one line) rather than Pillow's limit, whose own error (past 179 MP) read
    'could be decompression bomb DOS attack' where a photo of that size was restored."""
    if not path.is_file():
        raise InputError(f"input not found: {path}")
    try:
        with pillow_unlimited():
            image = Image.open(path)
            check_size(image, path)
            image.load()  # the first frame: a damaged header or frame fails here
    except READ_ERRORS + (EOFError,) as error:
        raise InputError(f"cannot read {path.name} as an animated WebP ({one_line(error)})") from error
    return image


def _has_transparency(image: Image.Image) -> bool:
    """Whether any frame has a pixel that is not opaque (Pillow reads every animated WebP as RGBA, and its
    writer flags alpha in the header of opaque ones too)."""
    try:
        for number in range(image.n_frames):
            image.seek(number)
            if image.getchannel("A").getextrema()[0] < 255:
                return True
        return False
    finally:
        image.seek(0)


def probe_webp(path: Path | str) -> VideoInfo:
    """An animated WebP's geometry as a video's (8-bit RGB, alpha when its frames have it, millisecond clock)."""
    path = Path(path)
    with _open(path) as image:
        alpha = image.mode == "RGBA" and _has_transparency(image)
        return VideoInfo(path=path, width=image.width, height=image.height, frames=image.n_frames, fps=None,
                         time_base=MILLISECOND, pix_fmt="rgba" if alpha else "rgb24", bit_depth=8, rotation=0,
                         color_primaries=UNSPECIFIED, color_trc=UNSPECIFIED, colorspace=UNSPECIFIED,
                         color_range=RANGE_JPEG, duration_s=None, has_audio=False, other_streams=0, codec="webp",
                         alpha=alpha)


def _within(span: TimeSpan | None, pts: int, duration: int) -> int:
    """A frame's duration (ms) cut at the stretch's end, as io.decode.read_frames cuts a video's: the stretch's
    last frame is shown to its end, not on past --duration."""
    if span is None or span.end is None or not duration:
        return duration
    return max(1, min(duration, round((Fraction(span.end) - pts * MILLISECOND) / MILLISECOND)))


def read_webp_frames(path: Path | str, span: TimeSpan | None = None, *, alpha: bool = False) -> Iterator[Frame]:
    """Yield an animated WebP's frames one at a time (RGB uint8; pts and duration in milliseconds), as
    io.decode.read_frames does a video's, a stretch's last frame shown to its end; a frame that cannot be decoded
    raises InputError naming it."""
    path = Path(path)
    with _open(path) as image:
        pts, index = 0, 0
        for number in range(image.n_frames):
            try:
                image.seek(number)
                image.load()
                rgba = np.asarray(image.convert("RGBA"))
            except READ_ERRORS + (EOFError,) as error:
                raise InputError(f"{path.name}: decoding failed at frame {number} ({one_line(error)})") from error
            duration = int(image.info.get("duration") or 0)
            shown = (pts + duration) * MILLISECOND if duration else None
            if span is not None and index == 0 and not span.not_yet(pts * MILLISECOND, shown):
                span = span.opened_at(pts * MILLISECOND)
            if span is None or not (span.not_yet(pts * MILLISECOND, shown) or span.past(pts * MILLISECOND)):
                yield Frame(image=np.ascontiguousarray(rgba[..., :3]), index=index, pts=pts, time_base=MILLISECOND,
                            duration=_within(span, pts, duration) or None,
                            alpha=np.ascontiguousarray(rgba[..., 3]) if alpha else None)
                index += 1
            pts += duration
    if index == 0:
        raise InputError(f"{path.name} has no frames in the stretch asked for "
                         f"({option_name('start')} and {option_name('duration')})")


class _SpooledFrames(Image.Image):
    """The frames spooled so far as one multi-frame Pillow image that holds only the frame it is on: seek(i) reads
    frame i back from the spool into the one buffer. Pillow's animated WebP writer takes multi-frame images
    (append_images "can be single or multiframe images"): it reads n_frames, seeks each frame in turn, encodes
    the frame it is on (getim) and seeks back to where the image was."""

    def __init__(self, spool: IO[bytes], offsets: list[int], mode: str, size: tuple[int, int]) -> None:
        super().__init__()
        # Pillow internals, as its own file plugins do: an image's mode and size live in _mode and _size (the
        # public mode and size are read-only), its pixels in .im (one buffer, refilled by frombytes on each seek)
        self._mode, self._size = mode, size
        if self.mode != mode:  # Pillow 10.0 (pyproject allows it): mode is a plain attribute, not one over _mode
            self.mode = mode
        self.im = Image.new(mode, size).im
        self._spool, self._offsets, self._frame = spool, offsets, -1
        self.seek(0)

    @property
    def n_frames(self) -> int:
        return len(self._offsets) - 1

    @property
    def is_animated(self) -> bool:
        return self.n_frames > 1

    def tell(self) -> int:
        return self._frame

    def seek(self, frame: int) -> None:
        if not 0 <= frame < self.n_frames:
            raise EOFError(f"no frame {frame} in {self.n_frames}")
        if frame != self._frame:
            start, end = self._offsets[frame], self._offsets[frame + 1]
            self._spool.seek(start)
            self.frombytes(zlib.decompress(self._spool.read(end - start)))
            self._frame = frame


class WebpWriter:
    """Write restored frames as one animated WebP with the source's loop count, background, lossless or lossy
    coding and ICC/EXIF/XMP, each frame shown as long as in the source (with --start, the frame on screen then
    whole); atomically, on a clean exit.

    Pillow encodes an animation in one call, so the frames (8-bit, zlib-compressed) are spooled to an unnamed
    temporary file beside the output until the block ends, then handed to Pillow as one image whose frames are
    read back one at a time: about one frame is in memory while frames arrive and while Pillow encodes. The spool
    is in the output's folder, not the system's temp folder (often a RAM disk, which would hold the frames in
    memory again). It has no name there on Linux and macOS (Windows names it until it is closed) and goes
    when the writer closes it, however the block ends, or when the process ends, however that ends.
    Takes VideoWriter's arguments; a codec, crf or preset asked for does not apply to WebP, and a warning says so.
    """

    codec = "webp"  # what a report names as the encoder (Pillow's, libwebp), as VideoWriter.codec

    def __init__(self, output: Path | str, source: Path | str, info: VideoInfo, **video_options: Any) -> None:
        self.output, self.source, self.info = Path(output), Path(source), info
        if video_options.get("codec", "auto") != "auto" or video_options.get("crf") is not None \
                or video_options.get("preset") is not None:
            log.warning("%s: %s, %s and %s do not apply to an animated WebP; it is written by Pillow, lossless or "
                        "lossy as its source", self.output.name, option_name("codec"), option_name("crf"),
                        option_name("preset"))
        self.frames_written = 0
        self._spool: IO[bytes] | None = None  # the frames written, each zlib-compressed, one after another
        self._offsets = [0]  # where each frame starts in the spool, and where the last one ends
        self._shape: tuple[int, ...] | None = None  # the first frame's (height, width, channels): every frame's
        self._starts: list[Fraction] = []  # each frame's time, in seconds (a stretch's first frame whole, as
        # VideoWriter shows it)
        self._last: Fraction | None = None  # how long the last frame written is shown, when it says
        self._settings = WebpAnimation()

    def __enter__(self) -> Self:
        if not self.output.parent.is_dir():
            raise ClrfaceError(f"output folder does not exist: {self.output.parent}")
        if is_animated_webp(self.source):
            with _open(self.source) as image:
                self._settings = read_settings(self.source, image)
        if self.info.other_streams:
            log.warning("%s: the source's audio and other streams are left out (an animated WebP holds pictures "
                        "only)", self.output.name)
        try:
            self._spool = tempfile.TemporaryFile(dir=self.output.parent, prefix=f".{self.output.stem}.",
                                                 suffix=".frames")
        except OSError as error:
            raise ClrfaceError(f"writing {self.output.name} failed: {one_line(error)}") from error
        return self

    def write(self, frame: Frame) -> None:
        """Spool one restored frame (RGB uint8 or uint16, with its alpha when the source has one)."""
        if self._spool is None:
            raise ClrfaceError(f"{self.output.name}: frames are written inside the writer's with block")
        pixels = to_uint8(frame.image)
        if self.info.alpha:
            alpha = to_uint8(frame.alpha) if frame.alpha is not None else np.full(pixels.shape[:2], 255, np.uint8)
            pixels = np.dstack([pixels, alpha])
        pixels = np.ascontiguousarray(pixels)
        if self._shape is None:
            self._shape = pixels.shape
        elif pixels.shape != self._shape:
            raise ClrfaceError(f"writing {self.output.name} failed: frame {self.frames_written} is "
                               f"{pixels.shape[1]}x{pixels.shape[0]}, the first {self._shape[1]}x{self._shape[0]}")
        try:
            self._spool.write(zlib.compress(memoryview(pixels).cast("B"), SPOOL_LEVEL))
        except OSError as error:
            raise ClrfaceError(f"writing {self.output.name} failed: {one_line(error)}") from error
        self._offsets.append(self._spool.tell())
        time_base = frame.time_base or self.info.time_base
        fps = self.info.fps or Fraction(25)
        start = frame.pts * time_base if frame.pts is not None else frame.index / fps
        end = start + frame.duration * time_base if frame.duration else None
        self._starts.append(start)
        self._last = end - start if end is not None and end > start else None
        self.frames_written += 1

    def _durations(self) -> list[int]:
        """Each frame's duration in milliseconds: until the next frame, and the last one's own (else the one
        before it)."""
        gaps = [later - earlier for earlier, later in zip(self._starts, self._starts[1:])]
        last = self._last if self._last is not None else (gaps[-1] if gaps else Fraction(1, 10))
        return [max(0, round(seconds * 1000)) for seconds in [*gaps, last]]

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        spool, self._spool = self._spool, None
        try:
            if exc_type is None and spool is not None:
                self._encode(spool)
        finally:
            if spool is not None:
                with contextlib.suppress(OSError):  # flushing its buffer to a full disk: the frames go anyway
                    spool.close()  # the spool goes with it

    def _encode(self, spool: IO[bytes]) -> None:
        """Encode the spooled frames into the output, atomically."""
        if self._shape is None:  # the first frame's, so none were written
            raise ClrfaceError(f"no frames were written to {self.output.name}")
        settings = self._settings
        options: dict[str, Any] = {"loop": settings.loop, "background": settings.background,
                                   "lossless": settings.lossless, "allow_mixed": settings.mixed}
        if not settings.lossless:
            options["quality"] = LOSSY_QUALITY
        options.update({key: value for key, value in (("icc_profile", settings.icc), ("exif", settings.exif),
                                                      ("xmp", settings.xmp)) if value})
        height, width, channels = self._shape
        frames = None
        try:
            # reading frame 0 back flushes the spool's buffer (a full disk fails here)
            frames = _SpooledFrames(spool, self._offsets, "RGBA" if channels == 4 else "RGB", (width, height))
            with atomic(self.output) as partial:
                frames.save(partial, format="WEBP", save_all=True, duration=self._durations(), **options)
        except (OSError, ValueError, zlib.error) as error:
            raise ClrfaceError(f"writing {self.output.name} failed: {one_line(error)}") from error
        finally:
            if frames is not None:
                frames.close()

"""A throwaway in-memory file like an output, on which a stream is muxed and read back before the output takes it."""
from __future__ import annotations

import io
from collections.abc import Callable
from fractions import Fraction

import av

TRIAL_PACKETS = 16  # a copied video's packets muxed and read back before it is copied (copies._muxer_accepts)
# an audio copy's: its first frame of sound, repeated on (a damaged time further on, which the copy leaves out,
# failed the whole trial), read back as sound or as data; several, as the MPEG-TS demuxer makes a stream of its
# packets only after a few (measured: one or two AAC or MP3 frames in an .m2ts read back as data, one 8 kHz AAC
# frame in a .ts as MP2, so that sound was left out); TRIAL_AUDIO_PACKETS frames of silence for an encoder's trial
TRIAL_AUDIO_PACKETS = 4
VIDEO_MUXERS = frozenset({"mxf", "dv"})  # measured: they refuse a file of audio alone


def on_trial(out: av.container.OutputContainer,
             write: Callable[[av.container.OutputContainer], tuple[int, str | None] | None]) -> bool:
    """Whether what `write` puts on a throwaway in-memory file like the output (its format and muxer options, and
    a video stream like the output's for a muxer that needs one, VIDEO_MUXERS) is taken, and where it gives a
    stream's (index, codec), whether that stream reads back as frames of the codec (reads_back)."""
    written = io.BytesIO()
    trial = av.open(written, "w", format=out.format.name.split(",")[0], options=dict(out.options))
    try:
        if out.format.name in VIDEO_MUXERS and out.streams.video:
            _add_like(trial, out.streams.video[0].codec_context)
        written_stream = write(trial)
        if written_stream is None:
            return True
        trial.close()
    except (av.error.FFmpegError, ValueError):
        return False
    finally:
        close_quietly(trial)
    return reads_back(written.getvalue(), *written_stream)


def reads_back(data: bytes, index: int, codec: str | None) -> bool:
    """Whether stream `index` of the file `data` decodes to a frame of `codec`, a codec's canonical name (None: of
    any codec; a stream read back as data has none)."""
    try:
        with av.open(io.BytesIO(data)) as written:
            stream = written.streams[index]
            context = stream.codec_context
            if context is None or codec is not None and (context.codec is None or context.codec.canonical_name != codec):
                return False
            return next(written.decode(stream), None) is not None
    except (av.error.FFmpegError, ValueError, IndexError):
        return False


def _add_like(trial: av.container.OutputContainer, video: av.video.codeccontext.VideoCodecContext) -> None:
    """A video stream coded as `video` is (its encoder, frame size, pixel format, rate and options: the dnxhd
    encoder opens only with the DNxHR profile the output asks of it)."""
    stream = trial.add_stream(video.name, rate=video.framerate or Fraction(25))
    stream.width, stream.height, stream.pix_fmt = video.width, video.height, video.pix_fmt
    stream.options = dict(video.options)


def close_quietly(container: av.container.OutputContainer) -> None:
    try:
        container.close()
    except (av.error.FFmpegError, ValueError):
        pass

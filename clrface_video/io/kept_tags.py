"""Which of an output's file and stream tags its muxer leaves out, read back from a throwaway file written alike."""
from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from fractions import Fraction

import av

from clrface_video.io.output_stream import container_suffix
from clrface_video.io.trial_file import close_quietly

log = logging.getLogger(__name__)

# FFmpeg's MP4, QuickTime, iPod (.m4v) and 3GP muxers write only the tag names they know (title, comment, date, ...
# as iTunes items or QuickTime strings; a track's title, language and handler name; 3GP not even the title) and
# leave any other out unsaid: an archive's ARCHIVE_ID or SOURCE, a track's comment. movflags=use_metadata_tags
# writes every file tag, but as a QuickTime key under its own name, the title too: no iTunes title item (©nam), no
# com.apple.quicktime.title key, which is what Apple's players read (only FFmpeg's reading was checked), and still
# no other track tag (measured with FFmpeg 8, pinned in tests/test_kept_tags.py). So the tags are written as they
# are, players' titles kept, and those left out are named.
NAMED_TAG_MUXERS = frozenset({"mp4", "mov", "ipod", "3gp"})
READ_AS = {"title": "name"}  # a track's title, which the MP4 and QuickTime demuxer reads back as its name
WARNED_APART = ("com.apple.quicktime.",)  # a phone's QuickTime keys: copies.muxer_options warns of those
# values that say nothing, so none is lost: QuickTime reads an undetermined language back as none (measured)
SAYS_NOTHING = {"language": "und"}


@dataclass(frozen=True)
class UnkeptTags:
    """The tag names an output's muxer leaves out: the file's, and each stream's by its source index."""

    file: tuple[str, ...] = ()
    streams: tuple[tuple[int, tuple[str, ...]], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.file or self.streams)


def unkept_tags(out: av.container.OutputContainer, file_tags: dict[str, str],
                stream_tags: dict[int, dict[str, str]]) -> UnkeptTags:
    """The tags of `file_tags` and of each stream's `stream_tags` (by source index) that do not read back from a
    throwaway file the output's muxer writes with them (its format and options; one video packet per stream),
    compared by name as FFmpeg does, in any case. Nothing where the trial cannot be written."""
    if out.format.name not in NAMED_TAG_MUXERS:
        return UnkeptTags()
    written = io.BytesIO()
    trial = av.open(written, "w", format=out.format.name, options=dict(out.options))
    try:
        trial.metadata.update(file_tags)
        streams = [_tagged_stream(trial, tags) for tags in stream_tags.values()]
        trial.start_encoding()
        for stream in streams:
            trial.mux(_one_packet(stream))
        trial.close()
    except (av.error.FFmpegError, ValueError):
        return UnkeptTags()
    finally:
        close_quietly(trial)
    with av.open(io.BytesIO(written.getvalue())) as back:
        lost = [(index, _missing(tags, back.streams[number].metadata))
                for number, (index, tags) in enumerate(stream_tags.items())]
        return UnkeptTags(_missing(file_tags, back.metadata), tuple((index, names) for index, names in lost if names))


def say_unkept(out: av.container.OutputContainer, unkept: UnkeptTags) -> None:
    """One warning naming every tag the output leaves out, and the container that keeps them all."""
    if not unkept:
        return
    parts = ([f"the file's tags ({', '.join(unkept.file)})"] if unkept.file else []) + \
        [f"stream #{index}'s ({', '.join(names)})" for index, names in unkept.streams]
    named = " and ".join([", ".join(parts[:-1]), parts[-1]] if len(parts) > 1 else parts)
    log.warning("%s cannot be stored in %s; they are left out (.mkv keeps them)", named, container_suffix(out))


def _missing(tags: dict[str, str], read: dict[str, str]) -> tuple[str, ...]:
    """The names in `tags` that are not in `read` (nor there under READ_AS's name), by name in any case."""
    back = {name.lower() for name in read}
    return tuple(sorted(name for name, value in tags.items() if not name.lower().startswith(WARNED_APART)
                        and SAYS_NOTHING.get(name.lower()) != value
                        and name.lower() not in back and READ_AS.get(name.lower()) not in back))


def _tagged_stream(trial: av.container.OutputContainer, tags: dict[str, str]) -> av.stream.Stream:
    """A small MPEG-4 video stream, which every one of these muxers takes, carrying `tags`."""
    stream = trial.add_stream("mpeg4", rate=25)
    stream.width = stream.height = 16
    stream.pix_fmt = "yuv420p"
    stream.metadata.update(tags)
    return stream


def _one_packet(stream: av.stream.Stream) -> av.Packet:
    """A keyframe packet of a few bytes: a track the muxer writes no sample into is written without its tags."""
    packet = av.Packet(bytes(8))
    packet.stream, packet.time_base = stream, Fraction(1, 25)
    packet.pts = packet.dts = 0
    packet.duration, packet.is_keyframe = 1, True
    return packet

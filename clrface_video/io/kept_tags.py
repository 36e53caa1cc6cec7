"""Which of an output's file and stream tags its muxer leaves out, read back from throwaway files written alike."""
from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from fractions import Fraction

import av

from clrface_video.errors import listed
from clrface_video.io.output_stream import container_suffix
from clrface_video.io.trial_file import close_quietly

log = logging.getLogger(__name__)

# FFmpeg's MP4, QuickTime, iPod (.m4v) and 3GP muxers write only the tag names they know (title, comment, date, ...
# as iTunes items or QuickTime strings; a track's title, language and handler name; 3GP not even the title) and
# leave any other out unsaid: an archive's ARCHIVE_ID or SOURCE, a track's comment. movflags=use_metadata_tags
# writes every file tag, but as a QuickTime key under its own name, the title too: no iTunes title item (©nam), no
# com.apple.quicktime.title key, which is what Apple's players read (only FFmpeg's reading was checked), and still
# no other track tag (measured with FFmpeg 8, pinned in tests/test_kept_tags.py). So the tags are written as they
# are, players' titles kept, and those left out are named. Other muxers leave tags out too (FFmpeg 8, measured in
# tests/test_kept_tags.py): AVI keeps the file's RIFF INFO names (title, comment, date, ...) and a track's title,
# not the creation time, custom tags or a track's language; FLV keeps the file's tags and no track's; ASF the
# file's but its creation time, and a track's language only. Every muxer that writes tags is tried
# (copies.TAGLESS_MUXERS, which write none, are warned of apart), and an MPEG-PS's tracks (.mpg, .vob: it keeps
# no track tag, a dubbed track's language among them; its file's tags are in the tagless warning).
TRIAL_CODECS = {"flv": "flv1", "webm": "vp8"}  # a video codec each muxer takes from a few bytes; MPEG-4 elsewhere
READ_AS = {"title": "name",  # a track's title, which the MP4 and QuickTime demuxer reads back as its name
           "author": "artist"}  # QuickTime's author (©aut), which FFmpeg's demuxer reads back as the artist
WARNED_APART = ("com.apple.quicktime.",)  # a phone's QuickTime keys: copies.muxer_options warns of those
# values that say nothing, so none is lost: QuickTime reads an undetermined language back as none (measured)
SAYS_NOTHING = {"language": "und"}
# a track's handler name, which every MP4 and QuickTime muxer writes of its own (FFmpeg's "VideoHandler", a phone's
# "Core Media Video"): copied where the output keeps it, and not named as the user's loss where it does not
MUXERS_OWN = frozenset({"handler_name"})
# QuickTime names, written where the output's muxer is the key's, that FFmpeg's demuxer reads back as another
# tag's name, taking its place: QuickTime's author became the file's artist (of the names tried in
# tests/test_kept_tags.py), so the author is left out where the file has an artist of its own
CLASHING = {"mov": {"author": "artist"}}
# Muxers that write no track's tags at all and take no trial stream of a few bytes (they parse their video's
# frames): measured with FFmpeg 8, an .mxf's tracks read back with the muxer's own file_package_umid alone, a .dv's
# with none, so a dubbed track's language was lost unsaid. Every tag of their tracks is lost, the timecode aside,
# which they write on the file (copies.TIMECODE_MUXERS).
TRACK_TAGLESS_MUXERS = frozenset({"mxf", "dv"})


@dataclass(frozen=True)
class UnkeptTags:
    """The tag names an output's muxer leaves out: the file's, and each stream's by its source index."""

    file: tuple[str, ...] = ()
    streams: tuple[tuple[int, tuple[str, ...]], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.file or self.streams)


def unkept_tags(out: av.container.OutputContainer, file_tags: dict[str, str],
                stream_tags: dict[int, dict[str, str]], rate: Fraction) -> UnkeptTags:
    """The tags of `file_tags` and of each stream's `stream_tags` (by source index) that do not read back from
    throwaway files the output's muxer writes with them (its format and options; one video stream at `rate`, the
    rate a timecode is counted at, with one packet: a file for each stream's tags, as FLV holds one video stream only),
    compared by name as FFmpeg does, in any case. Nothing where a trial cannot be written."""
    if out.format.name in TRACK_TAGLESS_MUXERS:
        lost = [(index, _missing(tags, {"timecode": ""})) for index, tags in stream_tags.items()]
        return UnkeptTags(_missing(file_tags, {}), tuple((index, names) for index, names in lost if names))
    backs = [_read_back(out, file_tags, tags, rate) for tags in stream_tags.values()]
    if not backs or None in backs:
        return UnkeptTags()
    lost = [(index, _missing(tags, back[1])) for (index, tags), back in zip(stream_tags.items(), backs)]
    return UnkeptTags(_missing(file_tags, backs[0][0]), tuple((index, names) for index, names in lost if names))


def without_clashes(out: av.container.OutputContainer, tags: dict[str, str]) -> dict[str, str]:
    """The file's `tags` less those the output's muxer writes under a name read back as another of them (CLASHING),
    each said: a .mov's author replaced the file's artist."""
    names = {name.lower(): name for name in tags}
    kept = dict(tags)
    for clashing, taken in CLASHING.get(out.format.name, {}).items():
        if clashing in names and taken in names and tags[names[clashing]] != tags[names[taken]]:
            log.warning("the file's %s tag (%s) is left out of %s, whose %s is read back as the %s and would replace "
                        "it (.mkv keeps both)", clashing, tags[names[clashing]], container_suffix(out), clashing,
                        taken)
            del kept[names[clashing]]
    return kept


def _read_back(out: av.container.OutputContainer, file_tags: dict[str, str], tags: dict[str, str],
               rate: Fraction) -> tuple[dict[str, str], dict[str, str]] | None:
    """The file's and the stream's tags as they read back from a throwaway file the output's muxer writes with
    `file_tags` and one video stream tagged `tags` (None where it cannot be written)."""
    written = io.BytesIO()
    trial = av.open(written, "w", format=out.format.name, options=dict(out.options))
    try:
        trial.metadata.update(file_tags)
        stream = _tagged_stream(trial, tags, rate)
        trial.start_encoding()
        trial.mux(_one_packet(stream))
        trial.close()
    except (av.error.FFmpegError, ValueError):
        return None
    finally:
        close_quietly(trial)
    with av.open(io.BytesIO(written.getvalue())) as back:
        return dict(back.metadata), dict(back.streams[0].metadata)


def say_unkept(out: av.container.OutputContainer, unkept: UnkeptTags) -> None:
    """One warning naming every tag the output leaves out, and the container that keeps them all."""
    if not unkept:
        return
    parts = ([f"the file's tags ({', '.join(unkept.file)})"] if unkept.file else []) + \
        [f"stream #{index}'s ({', '.join(names)})" for index, names in unkept.streams]
    log.warning("%s cannot be stored in %s; they are left out (.mkv keeps them)", listed(parts), container_suffix(out))


def _missing(tags: dict[str, str], read: dict[str, str]) -> tuple[str, ...]:
    """The names in `tags` that are not in `read` (nor there with their value under READ_AS's name), by name in
    any case: an .mp4's artist is no author kept."""
    back = {name.lower(): value for name, value in read.items()}
    return tuple(sorted(name for name, value in tags.items() if not name.lower().startswith(WARNED_APART)
                        and SAYS_NOTHING.get(name.lower()) != value and name.lower() not in MUXERS_OWN
                        and name.lower() not in back and back.get(READ_AS.get(name.lower(), "")) != value))


def _tagged_stream(trial: av.container.OutputContainer, tags: dict[str, str], rate: Fraction) -> av.stream.Stream:
    """A small video stream of a codec the muxer takes (TRIAL_CODECS), carrying `tags`."""
    stream = trial.add_stream(TRIAL_CODECS.get(trial.format.name, "mpeg4"), rate=rate)
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

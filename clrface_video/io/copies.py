"""The source's audio, subtitle, data and other video streams, tags and chapters, carried onto an output as it advances."""
from __future__ import annotations

import io
import logging
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from clrface_video.errors import one_line
from clrface_video.io import lossless_audio, recoded_audio, stretch_tag, subtitles, trial_file
from clrface_video.io.decode import COPY_STREAM_TYPES, video_stream
from clrface_video.io.kept_tags import TRACK_TAGLESS_MUXERS, say_unkept, unkept_tags, without_clashes
from clrface_video.io.output_stream import CFR_CONTAINERS, PLAYER_MPEG_MUXERS, container_suffix
from clrface_video.io.program_stream import PS_FORMATS
from clrface_video.io.recoded_audio import ordered_layout
from clrface_video.io.sound_damage import SoundCheck
from clrface_video.io.trial_file import close_quietly, on_trial
from clrface_video.types import SPAN_TOLERANCE

log = logging.getLogger(__name__)

# ISO 639-2/T codes that QuickTime's language table knows only by their /B form (deu is stored as ger); MP4
# and Matroska take either. Measured: the mov muxer drops each /T code here and keeps its /B one.
MOV_LANGUAGES = {"sqi": "alb", "hye": "arm", "eus": "baq", "mya": "bur", "zho": "chi", "nld": "dut", "kat": "geo",
                 "deu": "ger", "ell": "gre", "isl": "ice", "mkd": "mac", "msa": "may", "fas": "per", "bod": "tib",
                 "cym": "wel"}
COVER_MUXERS = frozenset({"mp4", "ipod"})  # muxers that store an attached picture as a cover (covr)
COVER_FILES = {"mjpeg": ("cover.jpg", "image/jpeg"), "png": ("cover.png", "image/png")}  # Matroska's cover names
CHAPTER_MUXERS = frozenset({"mp4", "mov", "ipod", "matroska", "webm", "ogg"})  # the muxers that store chapters
# A DVD's navigation packets (PCI/DSI, in private stream 2), which FFmpeg's MPEG-PS demuxer gives as a data stream
# without a codec and no muxer of FFmpeg's writes: authoring tools rebuild them and no player needs them in a file
DVD_NAVIGATION_ID = 0x1BF
# measured: they write no file tags (FFmpeg's MPEG-PS muxers, .mpg and .vob, none either)
TAGLESS_MUXERS = frozenset({"mpegts", "mxf", "dv", "apng", "gif", "image2"}) | PLAYER_MPEG_MUXERS
LEFT_OUT = {  # why copied packets were left out, said for one packet and for several
    "backwards": ("its time runs backwards (damaged data)", "their times run backwards (damaged data)"),
    "untimed": ("without a time the output could give it", "without a time the output could give them"),
}
PCM_ZERO_SILENCE = re.compile(r"pcm_[sf](16|24|32|64)[lb]e")  # linear PCM whose silence is zero bytes (bits)
# 8-bit PCM whose silence is another byte, measured by decoding it: unsigned 0x80 is mid-scale, mu-law 0xFF is 0,
# A-law 0xD5 is +8 of 32768 (A-law has no 0; 0x55 is -8). Old AVI captures store these.
PCM_BYTE_SILENCE = {"pcm_u8": b"\x80", "pcm_alaw": b"\xd5", "pcm_mulaw": b"\xff"}
# Muxers that take an audio stream they write as no demuxer reads it as audio: its copy is muxed on a trial file and
# read back first, as a video's is. MPEG-TS wrote PCM, FLAC and ALAC as data streams (measured), a .ts's sound lost
# unsaid; and its Blu-ray PCM only in an .m2ts's packets, so a copy from an .m2ts into a .ts is tried too.
AUDIO_TRIAL_MUXERS = frozenset({"mpegts"})
M2TS_SUFFIXES = frozenset({".m2ts", ".mts"})  # BDAV MPEG-TS: 192-byte packets (a camcorder's AVCHD files, Blu-ray)
TS_NONSTRICT = 0x20000  # FFmpeg's AVFMT_TS_NONSTRICT: a muxer that takes two packets of one stream at one dts
TIMECODE_MUXERS = frozenset({"mxf", "dv"})  # ... but these two write the "timecode" tag into the file (measured)
# The mov/mp4 muxer builds a timecode track from the video's timecode tag and names it (its handler_name) after
# the video track's handler_name tag, or, where the video has none, "TimeCodeHandler"; the video track untagged
# is named "VideoHandler" (FFmpeg's movenc, measured: a source's TimeCodeHandler came out as VideoHandler).
# FFmpeg's iPod muxer (.m4v) builds it only with write_tmcd set (measured: no tmcd box, no timecode read back).
TMCD_MUXERS = frozenset({"mov", "mp4", "ipod"})
# seconds past a stretch's end that the last packets within it of another track are looked for: QuickTime
# writers interleave their tracks in chunks of up to a second or so; a track that ended earlier is not waited for
STRAGGLER_S = Fraction(2)
SUFFIX_OPTIONS = {".m4v": {"write_tmcd": "1"}}  # muxer options an output's suffix asks for (muxer_options)
MOV_VIDEO_HANDLER, MOV_TIMECODE_HANDLER = "VideoHandler", "TimeCodeHandler"
# Muxers that end a track at its last packet's dts plus its duration, in an edit list: a last audio packet
# without a duration (ALAC in Matroska) lies past that end, and FFmpeg's demuxer and players leave it out.
TRACK_END_MUXERS = frozenset({"mov", "mp4", "ipod", "3gp"})
MATROSKA_MUXERS = frozenset({"matroska", "webm"})
# Muxers that start every stream at 0 and store no earlier start: a stretch's first audio packet, kept whole from
# before its first frame, is heard from 0, as late as it began early (measured, PCM from a DNxHR .mov at
# --start 0.5: 472 samples, 9.8 ms, in .mxf and .avi; .mov and .mp4 skip them by an edit list, .mkv and .nut
# start every stream as much later, in sync)
NO_EARLY_START_MUXERS = frozenset({"mxf", "avi"})
# Tags a muxer or the source's encoder wrote about the file itself (brands, writing application, mkvmerge's
# per-stream statistics, length, an MXF writer's identity and package ids, Matroska's AlphaMode, the stretch an
# earlier restore held: io.stretch_tag): the output's muxer writes its own (AlphaMode where the frames have alpha;
# a copied alpha_mode tag makes it say so always), and the writer its own stretch.
# Every other tag is copied.
MUXER_TAGS = frozenset({"major_brand", "minor_version", "compatible_brands", "encoder", "vendor_id", "duration",
                        "bps", "number_of_frames", "number_of_bytes", "operational_pattern_ul", "uid",
                        "generation_uid", "company_name", "product_name", "product_version", "product_version_num",
                        "product_uid", "toolkit_version_num", "application_platform", "modification_date",
                        "material_package_umid", "file_package_umid", "alpha_mode", stretch_tag.TAG.lower()})


@dataclass(frozen=True)
class Copy:
    """One output stream fed from a source stream: packets copied bit for bit, or, for text subtitles the
    output's container cannot hold as they are, cues re-encoded by `converter`."""

    stream: av.stream.Stream
    converter: subtitles.CueConverter | lossless_audio.SampleConverter | None = None


def packet_time(packet: av.Packet) -> Fraction:
    """A packet's time in seconds (its dts, else its pts)."""
    stamp = packet.dts if packet.dts is not None else packet.pts
    return Fraction(stamp) * packet.time_base


def _silent_sample(codec: str) -> bytes | None:
    """One channel's sample of silence in a PCM codec, so a late track can be padded with it (None for compressed
    audio, which cannot be): zero bytes for signed and float PCM, but 8-bit unsigned and companded PCM would turn
    zero bytes into a full-scale click (u8) or a loud hum (A-law 0x00 is -5504, mu-law's -32124, measured)."""
    pcm = PCM_ZERO_SILENCE.fullmatch(codec)
    return bytes(int(pcm.group(1)) // 8) if pcm is not None else PCM_BYTE_SILENCE.get(codec)


def _muxer_accepts(out: av.container.OutputContainer, template: av.stream.Stream) -> bool:
    """Whether the output's muxer can store a copy of `template`, tried on a throwaway in-memory file (beside a
    stream like the output's video, for a muxer that needs one), with the output's muxer options. A video
    stream's first packets (an audio stream's in AUDIO_TRIAL_MUXERS) are muxed there too and must read back as
    frames (trial_file.reads_back): the codec alone
    passed an H.264 stream with B-frames for AVI, whose muxer then refused its first packet's negative dts
    (avoid_negative_ts off, muxer_options) and failed the whole write, and Matroska's length-prefixed H.264
    for MPEG-PS, which the muxer wrote as no player reads it."""
    def write(trial: av.container.OutputContainer) -> tuple[int, str | None] | None:
        copy = trial.add_stream_from_template(template)
        trial.start_encoding()
        if not _tried_on_packets(out, template):
            return None
        for packet in _first_packets(template):
            packet.stream = copy
            trial.mux(packet)
        # audio: any codec that decodes (MP2 in TS reads back as MP3: its stream type says MPEG audio), not data
        return copy.index, template.codec_context.codec.canonical_name if template.type == "video" else None

    return on_trial(out, write)


def _tried_on_packets(out: av.container.OutputContainer, stream: av.stream.Stream) -> bool:
    """Whether a copy of `stream` must read back from a trial file before it is copied, not only open there: a
    moving video's (cover pictures are stored apart), or audio's in AUDIO_TRIAL_MUXERS."""
    if stream.type == "audio":
        return out.format.name in AUDIO_TRIAL_MUXERS
    return stream.type == "video" and not stream.disposition & av.stream.Disposition.attached_pic


def _timed_packets(stream: av.stream.Stream) -> Iterator[av.Packet]:
    """A stream's packets that hold data and a pts, from the start, read from a second opening of its file: apart
    from the packets copied with the video (untimed ones are left to the muxer, as mux_until leaves them)."""
    with av.open(stream.container.name) as again:
        yield from (p for p in again.demux(again.streams[stream.index]) if p.size and p.pts is not None)


def _first_packets(stream: av.stream.Stream) -> list[av.Packet]:
    """A stream's first timed packets: a video's TRIAL_PACKETS (past its first keyframe's B-frames), an audio's
    first TRIAL_AUDIO_PACKETS times over, each after the one before (its later times may be damaged; trial_file)."""
    if stream.type == "video":
        return [packet for _, packet in zip(range(trial_file.TRIAL_PACKETS), _timed_packets(stream))]
    first = next(_timed_packets(stream), None)
    if first is None:
        return []
    step = first.duration or 1
    return [_moved_on(first, number * step) for number in range(trial_file.TRIAL_AUDIO_PACKETS)]


def _moved_on(packet: av.Packet, ticks: int) -> av.Packet:
    """A copy of `packet`'s bytes `ticks` of its time base later."""
    moved = av.Packet(bytes(packet))
    moved.pts, moved.dts = packet.pts + ticks, (packet.dts if packet.dts is not None else packet.pts) + ticks
    moved.duration, moved.time_base, moved.is_keyframe = packet.duration, packet.time_base, packet.is_keyframe
    return moved


def _converted_subtitles(stream: av.stream.Stream, name: str, out: av.container.OutputContainer) -> Copy | None:
    """A text subtitle stream the output's container cannot hold as it is, in the text codec it takes."""
    target = subtitles.target_codec(name, out.supported_codecs)
    if target is None:
        return None
    trial = av.open(io.BytesIO(), "w", format=out.format.name.split(",")[0])
    try:  # on a throwaway file first: a stream added to the output cannot be taken back
        subtitles.CueConverter(stream, trial.add_stream(target))
    except (av.error.FFmpegError, ValueError) as error:
        log.info("subtitle stream %d (%s) cannot be converted to %s (%s)", stream.index, name, target,
                 one_line(error))  # the caller warns that it is left out
        return None
    finally:
        close_quietly(trial)
    encoded = out.add_stream(target)
    converted = Copy(encoded, subtitles.CueConverter(stream, encoded))
    if name in subtitles.STYLED:
        log.warning("subtitle stream %d (%s) is converted to %s for %s: its text is kept, its positions and "
                    "effects are not", stream.index, name, target, container_suffix(out))
    else:
        log.info("subtitle stream %d (%s) is converted to %s for %s", stream.index, name, target, container_suffix(out))
    return converted


def muxer_options(source: av.container.InputContainer, output: Path) -> dict[str, str]:
    """Options for the output's muxer: a phone's QuickTime "keys" metadata (com.apple.quicktime.make, .model,
    .creationdate, .location.ISO6709) is written by the QuickTime muxer only with use_metadata_tags, which
    writes every tag as such a key (as the phone did). An MP4 keeps its iTunes-style tags instead, without
    the keys (warned). AVI stores frames by their count: FFmpeg would move every stream by a copied MP3 or AAC
    track's encoder delay (a start before 0), half a frame, and so show the first frame twice; there the
    audio starts at the file's start instead (its delay, about 20 ms, is heard late). An .m2ts or .mts (AVCHD, Blu-ray)
    is written in 192-byte packets, as FFmpeg writes an .m2ts anyway, said so that a trial file's muxer writes the
    same (only there does it write Blu-ray PCM as audio: recoded_audio.converted_audio). An .m4v is asked for a
    timecode track (write_tmcd), which FFmpeg's iPod muxer writes only when asked: its timecode was lost."""
    suffix = output.suffix.lower()
    options = {"avoid_negative_ts": "disabled"} if suffix == ".avi" else \
        {"mpegts_m2ts_mode": "1"} if suffix in M2TS_SUFFIXES else SUFFIX_OPTIONS.get(suffix, {})
    if not any(key.startswith("com.apple.quicktime.") for key in source.metadata):
        return options
    if suffix == ".mov":
        return {**options, "movflags": "use_metadata_tags"}
    log.warning("the phone's QuickTime keys (make, model, creation date, location) are kept in .mov only; "
                "%s leaves them out", output.suffix)
    return options


def add_copies(source: av.container.InputContainer, out: av.container.OutputContainer,
               start: Fraction | None = None, end: Fraction | None = None) -> dict[int, Copy]:
    """Output streams for the source's audio, subtitle and data streams, cover pictures and other video streams
    (a second angle, a preview: copied as they are, only the main one is restored), by input stream index; its
    attachments (fonts) go along where the output's container holds them. What cannot be stored is left out
    with a warning, and so is another video stream with no keyframe shown within a stretch [start, end)
    (source seconds), which would be an empty stream (CopiedStreams._keyframe_reached)."""
    copies: dict[int, Copy] = {}
    main = video_stream(source, Path(source.name))
    chapter_track = bool(source.chapters())
    for stream in source.streams:
        if stream.index == main.index:
            continue
        if stream.type == "attachment":
            _add_attachment(stream, out)
            continue
        cover = stream.type == "video" and bool(stream.disposition & av.stream.Disposition.attached_pic)
        if cover and out.format.name.split(",")[0] not in COVER_MUXERS:
            _add_cover_attachment(source, stream, out)
            continue
        if stream.type not in COPY_STREAM_TYPES and stream.type != "video":
            log.warning("%s stream %d is left out (it is not audio, video, subtitles or data)", stream.type,
                        stream.index)
            continue
        if stream.type == "video" and not cover and start is not None and not _keyframe_within(stream, start, end):
            log.warning("video stream %d is left out: it has no keyframe within the stretch, so none of its frames "
                        "there can be copied", stream.index)
            continue
        if stream.type == "data" and "timecode" in stream.metadata:
            continue  # a QuickTime timecode track: the muxer rebuilds it from the video's timecode tag
        ctx = stream.codec_context
        name = ctx.codec.canonical_name if ctx is not None and ctx.codec is not None else None
        if stream.type == "data" and name is None and chapter_track and stream.frames == len(source.chapters()):
            continue  # a QuickTime chapter text track: the muxer writes one from the chapters
        if stream.type == "audio" and not (ctx.sample_rate and ctx.channels):
            log.warning("audio stream %d (%s) is left out: its sample rate and channels cannot be read (damaged or "
                        "cut short)", stream.index, name or "no codec")
            continue
        # its own container held it (DV, MXF muxers need video); not a data stream: an MPEG-PS's DVD navigation
        # packets, held by no muxer that FFmpeg writes an .mpg with, failed the whole output's header
        same_kind = out.format.name == source.format.name and stream.type != "data" and not \
            (stream.type == "audio" and _tried_on_packets(out, stream))
        # data without a decoder (camera telemetry such as GoPro GPMF) is copied as it is, like any other packets
        if (name or stream.type == "data") and not recoded_audio.unplayed(stream, out) \
                and (same_kind or _muxer_accepts(out, stream)):
            try:
                copies[stream.index] = Copy(_template_copy(stream, out))
            except (av.error.FFmpegError, ValueError) as error:
                log.warning("%s stream %d cannot be copied (%s); it is left out", stream.type, stream.index, error)
            continue
        converted = None
        if stream.type == "subtitle" and name:
            converted = _converted_subtitles(stream, name, out)
        elif stream.type == "audio" and name:
            encoded = recoded_audio.converted_audio(stream, name, out)
            converted = None if encoded is None else Copy(encoded, lossless_audio.SampleConverter(
                stream, encoded, from_first_sample=out.format.name in NO_EARLY_START_MUXERS))
        if converted is not None:
            copies[stream.index] = converted
            continue
        if _dvd_navigation(source, stream):
            log.info("data stream %d (DVD navigation packets) is left out of %s: authoring tools rebuild them",
                     stream.index, container_suffix(out))
            continue
        log.warning("%s stream %d (%s) cannot be stored in %s; it is left out",
                    "cover picture" if cover else stream.type, stream.index,
                    name or stream.metadata.get("handler_name") or "no codec", container_suffix(out))
    return copies


def _dvd_navigation(source: av.container.InputContainer, stream: av.stream.Stream) -> bool:
    """Whether `stream` is an MPEG-PS's DVD navigation packets: left out of every healthy VOB, a warning about
    them taught a DVD user to ignore warnings, which then hid a lost telemetry or timecode track."""
    return source.format.name in PS_FORMATS and stream.type == "data" and stream.id == DVD_NAVIGATION_ID


def _keyframe_within(stream: av.stream.Stream, start: Fraction, end: Fraction | None) -> bool:
    """Whether a video stream has a keyframe shown (by its pts, on its own clock) at or after `start` and before
    `end`, the first packet a copy of it in that stretch can begin with (_timed_packets)."""
    for packet in _timed_packets(stream):
        if end is not None and packet_time(packet) >= end:  # decoded after the end: shown after it too
            return False
        if packet.is_keyframe and packet.pts >= round(start / packet.time_base):
            return end is None or packet.pts < round(end / packet.time_base)  # shown within, not after it
    return False


def open_at_its_time(out: av.container.OutputContainer, stream: av.stream.Stream, packet: av.Packet) -> None:
    """Before a video stream's first packet in an AVI, an empty chunk at 0 where that packet comes later. AVI
    times a stream's chunks by their count and stores no start: its muxer writes the first chunk at 0 whatever
    its time, and only the gaps after it as empty chunks (frames not shown), so a stream that began later was
    shown from 0, its first frame held until its second. An empty chunk opening the stream makes the muxer
    fill the gap before the first packet too."""
    stamp = packet.dts if packet.dts is not None else packet.pts
    if out.format.name not in CFR_CONTAINERS or stamp is None \
            or round(stamp * packet.time_base / stream.time_base) <= 0:
        return
    empty = av.Packet(b"")
    empty.stream, empty.time_base, empty.pts, empty.dts = stream, packet.time_base, 0, 0
    out.mux(empty)


def _template_copy(stream: av.stream.Stream, out: av.container.OutputContainer) -> av.stream.Stream:
    """An output stream with `stream`'s codec parameters. Audio whose channels have no order (Matroska stores
    none for PCM) gets the usual layout for its channel count, which MP4 and QuickTime need."""
    copy = out.add_stream_from_template(stream)
    if stream.type == "audio":
        copy.codec_context.layout = ordered_layout(stream.codec_context.layout)
    return copy


def _add_cover_attachment(source: av.container.InputContainer, stream: av.stream.Stream,
                          out: av.container.OutputContainer) -> None:
    """A cover picture (an MP4's attached picture) as Matroska keeps one: an attachment named cover.jpg or .png;
    other containers cannot hold it (QuickTime's muxer drops it unsaid), and a warning says so."""
    kind = COVER_FILES.get(stream.codec_context.name if stream.codec_context else "")
    if not out.format.name.startswith("matroska") or kind is None:
        log.warning("the cover picture cannot be stored in %s; it is left out (.mp4, .m4v and .mkv keep it)",
                    container_suffix(out))
        return
    with av.open(source.name) as again:  # its one packet, read apart from the packets copied with the video
        data = next((bytes(p) for p in again.demux(again.streams[stream.index]) if p.size), None)
    if data is not None:
        out.add_attachment(kind[0], kind[1], data)


def _add_attachment(stream: av.stream.Stream, out: av.container.OutputContainer) -> None:
    """A Matroska attachment (an ASS subtitle's font, a cover image) into an output that holds attachments."""
    name = getattr(stream, "name", None) or stream.metadata.get("filename") or f"attachment{stream.index}"
    if not out.format.name.startswith("matroska"):
        log.warning("attachment %s cannot be stored in %s; it is left out (.mkv keeps it)", name, container_suffix(out))
        return
    out.add_attachment(name, getattr(stream, "mimetype", None) or "application/octet-stream", stream.data)


def _kept_tags(metadata: dict[str, str]) -> dict[str, str]:
    def muxer_written(key: str) -> bool:
        name = key.lower().split("-")[0]  # mkvmerge writes "BPS-eng", "DURATION-eng", ...
        return name in MUXER_TAGS or name.startswith("_statistics")

    return {key: value for key, value in metadata.items() if not muxer_written(key)}


def _track_title(tags: dict[str, str], source: av.container.InputContainer) -> dict[str, str]:
    """A track's tags with an MP4/QuickTime track name ("English", "Commentary") under `title`, the key every
    muxer writes it from: the demuxer reads it as `name`, which no muxer writes back, so it was lost."""
    if source.format.name.startswith("mov,") and "name" in tags and "title" not in tags:
        tags["title"] = tags.pop("name")
    return tags


def copy_metadata(source: av.container.InputContainer, out: av.container.OutputContainer,
                  video: av.stream.Stream, copies: dict[int, Copy], path: Path, *,
                  chapters: bool = True, name_unkept: bool = True) -> None:
    """The source's tags (title, creation time, languages, ...) on the file and on each stream, the streams'
    dispositions (default, forced, ...), and its chapters (unless `chapters` is False: a cut-out stretch),
    onto the output before its header is written; the tags its muxer leaves out named (kept_tags), unless
    `name_unkept` is False (a Ray segment's, whose joined output names its own)."""
    tags = _kept_tags(dict(source.metadata))
    muxer = out.format.name.split(",")[0]
    lost = sorted(set(tags) - ({"timecode"} if muxer in TIMECODE_MUXERS else set()))
    if lost and muxer in TAGLESS_MUXERS:
        log.warning("the file's tags (%s) cannot be stored in %s; they are left out (.mkv keeps them all, .mp4 "
                    "and .mov those they know: title, comment, date, ...)", ", ".join(lost), container_suffix(out))
    tags = without_clashes(out, tags) if name_unkept else tags
    out.metadata.update(tags)
    pairs = [(video_stream(source, path), video)] + [(source.streams[i], c.stream) for i, c in copies.items()]
    lost = av.stream.Disposition(0)
    for original, copy in pairs:
        copy.metadata.update(_track_title(_kept_tags(dict(original.metadata)), source))
        copy.disposition = original.disposition
        if muxer == "mov":
            lost |= original.disposition & ~(av.stream.Disposition.default | av.stream.Disposition.attached_pic)
        language = copy.metadata.get("language")
        if out.format.name == "mov" and language in MOV_LANGUAGES:
            copy.metadata["language"] = MOV_LANGUAGES[language]
    if name_unkept and (muxer not in TAGLESS_MUXERS or muxer in PLAYER_MPEG_MUXERS | TRACK_TAGLESS_MUXERS):
        # an MPEG-PS's tracks' too, and an MXF's or a DV's
        say_unkept(out, unkept_tags(out, {} if muxer in TAGLESS_MUXERS else tags,  # (its file's said above)
                                    {original.index: dict(copy.metadata) for original, copy in pairs},
                                    video.codec_context.framerate or Fraction(25)))
    if lost:
        log.warning("stream flags (%s) cannot be stored in .mov; they are left out (.mp4 and .mkv keep them)",
                    ", ".join(flag.name for flag in av.stream.Disposition if flag & lost and flag.name))
    if muxer in TMCD_MUXERS:
        _name_timecode_track(source, video)
    marks = source.chapters() if chapters else []
    if marks and muxer not in CHAPTER_MUXERS:
        log.warning("%d chapters cannot be stored in %s; they are left out (.mkv, .mp4 and .mov keep them)",
                    len(marks), container_suffix(out))
    elif marks:
        out.set_chapters(marks)


def _name_timecode_track(source: av.container.InputContainer, video: av.stream.Stream) -> None:
    """Keep the name (handler_name) of the source's QuickTime timecode track on the one the muxer builds, which
    takes the video's: a video named FFmpeg's default is left untagged, so that each track gets its own default
    name back (the video's is written all the same); where the two names cannot both be kept, a warning says so."""
    if "timecode" not in video.metadata:
        return
    named = video.metadata.get("handler_name")
    if named in (None, MOV_VIDEO_HANDLER):
        video.metadata.pop("handler_name", None)
        named = MOV_TIMECODE_HANDLER
    wanted = next((stream.metadata.get("handler_name") for stream in source.streams.data
                   if "timecode" in stream.metadata), None)
    if wanted and wanted != named:
        log.warning("the timecode track's name %r is written as %r: FFmpeg names the timecode track it builds after "
                    "the video track", wanted, named)


def _is_mov_text_gap(packet: av.Packet, copy: Copy) -> bool:
    """An empty mov_text cue: the mp4/mov muxer writes its own gap cues, so copying them would double them."""
    return (copy.converter is None and packet.size == 2 and copy.stream.codec_context.name == "mov_text"
            and bytes(packet) == b"\x00\x00")


def _still_shown(packet: av.Packet, shift: Fraction, copy: Copy) -> bool:
    """Whether a subtitle cue that starts before a stretch is still on screen at its start; if so, it is made
    to start there (shortened by as much), so the stretch opens with the line being spoken."""
    if copy.stream.type != "subtitle" or not packet.duration or packet.pts is None:
        return False
    late = round(shift / packet.time_base) - packet.pts  # ticks of the cue before the stretch
    if late >= packet.duration:
        return False
    packet.pts, packet.dts, packet.duration = packet.pts + late, packet.pts + late, packet.duration - late
    return True


def _cut_at_end(packet: av.Packet, end: Fraction, copy: Copy) -> None:
    """A subtitle cue still on screen where a stretch ends is made to end there, as one shown where it starts
    begins there (_still_shown): else an .mp4's subtitle track, and the file with it, ran past the stretch."""
    if copy.stream.type != "subtitle" or not packet.duration or packet.pts is None:
        return
    shown = round(end / packet.time_base) - packet.pts  # ticks of the cue up to the stretch's end
    if 0 < shown < packet.duration:
        packet.duration = shown


def _still_heard(packet: av.Packet, shift: Fraction, copy: Copy) -> bool:
    """Whether an audio packet that starts before a stretch still sounds at its start: it is kept whole (its
    time then lies a little before the video's first frame), so the sound covers the stretch from its first
    frame. MP4 and QuickTime start playback at the frame by an edit list, Matroska within an AAC or Opus track's
    codec delay; elsewhere FFmpeg's muxer starts every stream as much later (measured: FLAC in .mkv). A packet
    the demuxer gives no duration has its length from its stream's next packet by now (_lengthened)."""
    return copy.stream.type == "audio" and bool(packet.duration) and \
        packet_time(packet) + Fraction(packet.duration) * packet.time_base > shift


def _on_frame_grid(packet: av.Packet, stream: av.stream.Stream, follows: int | None = None) -> int | None:
    """Time an audio packet in samples where its stream's clock ticks slower than its samples (but faster than
    its frames), on the grid its codec's fixed-size frames lie on from the encoder delay (-delay, -delay +
    frame_size, ...) wherever that lies within the clock's rounding of its time, else at that time to the
    nearest sample. Matroska times packets to the millisecond: an AAC track's 1024 priming samples at 48 kHz
    (21.33 ms) read as -21 ms, which an MP4's edit list turned into 1008 samples skipped (16 priming samples
    heard), and its frames into 1008 and 1056 samples. A codec that reports no frame size (Opus, whose packets
    may each hold another length) has each packet start where the stream's last one ended (`follows`; the first
    at -delay) within that rounding, as lossless_audio.SampleConverter._packet_start has it: an Opus track's
    pre-skip, 312 samples, read as -7 ms (336), was copied 24 samples (0.5 ms) early into .mp4, .ts and .nut.
    Returns where the packet ends, in samples (None: not timed so, or its length unknown)."""
    if stream.type != "audio":
        return None
    context = stream.codec_context
    rate, size = context.sample_rate, context.frame_size
    if not rate or not Fraction(1, rate) < packet.time_base or size and not packet.time_base < Fraction(size, rate):
        return None
    half_tick = packet.time_base * rate / 2  # in samples: how far the clock's rounding may have moved a time

    def on_grid(ticks: int, anchor: int) -> int:
        exact = ticks * packet.time_base * rate
        nearest = anchor + round((exact - anchor) / size) * size if size else anchor
        return nearest if abs(nearest - exact) <= half_tick else round(exact)

    start = -(context.delay or 0) if size or follows is None else follows
    packet.pts = None if packet.pts is None else on_grid(packet.pts, start)
    packet.dts = None if packet.dts is None else on_grid(packet.dts, start)
    packet.duration = on_grid(packet.duration, 0) if size else round(packet.duration * packet.time_base * rate)
    packet.time_base = Fraction(1, rate)
    return packet.dts + packet.duration if packet.dts is not None and packet.duration else None


class CopiedStreams:
    """The copied streams' packets, demuxed from the source once and muxed into the output in time order.

    `shift` (seconds) is taken off every timestamp when only a stretch of the source is written: packets
    before it are left out, but for an audio packet still sounding there and a subtitle cue still shown; a
    copied video begins at its first keyframe shown at or after the stretch's `start` (seconds, the source's
    clock; the shift where not given). `end` (seconds, the source's clock): where such a stretch ends, which a
    subtitle cue shown past it is cut to, and a copied video at the last frame shown before it (_shown_by_end)."""

    def __init__(self, source: av.container.InputContainer, out: av.container.OutputContainer,
                 *, any_streams: bool = True, start: Fraction | None = None, end: Fraction | None = None) -> None:
        self.out = out
        self._start = start
        self._end = end
        self.copies = add_copies(source, out, start, end) if any_streams else {}
        self._packets: Iterator[av.Packet] = iter(())
        if self.copies:
            self._packets = source.demux([s for s in source.streams if s.index in self.copies])
        self._next: av.Packet | None = None
        self._last: dict[int, tuple[int, int | None]] = {}  # per copied stream, its last packet's dts and end
        self._left_out: Counter[tuple[int, str]] = Counter()  # (stream, LEFT_OUT reason): packets, said at the end
        self._sources = {index: source.streams[index] for index in self.copies}
        self._waiting: dict[int, av.Packet] = {}  # per copied stream, an audio packet without a duration (_lengthened)
        self._keyed: set[int] = set()  # copied video streams that have had their first keyframe (_place)
        self._after_end: dict[int, list[av.Packet]] = {}  # per copied video, packets shown after a stretch's end,
        # held until one shown before it follows (_shown_by_end)
        self._opened: set[int] = set()  # copied videos whose first packet is muxed (_open_at_its_time)
        self._sound_ends: dict[int, Fraction] = {}  # per output audio stream, where its last packet muxed ends (s)
        self._sample_ends: dict[int, int | None] = {}  # per copied audio stream, where its last packet ends in
        # samples (_on_frame_grid), none before the first
        origin = Fraction(source.start_time or 0, av.time_base)
        self._sound_checks = {index: SoundCheck(self._sources[index], origin) for index, copy in self.copies.items()
                              if copy.stream.type == "audio" and copy.converter is None}  # bits copied: damage said

    def opened_earlier(self, early: Fraction) -> None:
        """A stretch whose first frame began `early` seconds before its start ends as much earlier
        (TimeSpan.opened_at), and a copied video begins at its first keyframe from that frame's time, where the
        restored one begins: from the start asked, a second angle keyed with the frame on screen there began at
        its next keyframe, a GOP later (measured: 0.33 s, 8 of 12 frames missing)."""
        self._start = None if self._start is None else self._start - early
        if self._end is not None:
            self._end -= early

    def _give_time(self, packet: av.Packet) -> None:
        """A packet the demuxer gives no time (the later frames of a laced Matroska block) follows its stream's
        last packet, as FFmpeg's own stream copy places it; where that one's length is unknown it stays untimed
        and is counted."""
        end = self._last.get(packet.stream_index, (0, None))[1]
        if end is None:
            self._left_out[packet.stream_index, "untimed"] += 1
            return
        packet.dts = end
        packet.pts = end if packet.pts is None else packet.pts

    def _runs_backwards(self, packet: av.Packet, copy: Copy) -> bool:
        """Whether a packet's dts runs backwards from its stream's last one, as the muxer judges it (a repeated
        dts too, for sound and pictures in a muxer without FFmpeg's AVFMT_TS_NONSTRICT): damaged data, which the
        muxer would refuse with an error that blames the output. Counted; else it becomes the stream's last."""
        last = self._last.get(packet.stream_index)
        repeat_refused = copy.stream.type in ("audio", "video") and not self.out.format.flags & TS_NONSTRICT
        if last is not None and (packet.dts < last[0] or packet.dts == last[0] and repeat_refused):
            self._left_out[packet.stream_index, "backwards"] += 1
            return True
        self._last[packet.stream_index] = (packet.dts, packet.dts + packet.duration if packet.duration else None)
        return False

    def mux_until(self, limit: Fraction | None, shift: Fraction | None = None, last: bool = False) -> None:
        """Mux the packets whose time is <= limit (all of them when limit is None). `last`: no later call follows
        (a stretch's end), so a packet past the limit does not stop it while another track's may still come
        within it (_stragglers_may_follow)."""
        passed: set[int] = set()  # with `last`, the streams that have had a packet past the limit
        while True:
            if self._next is None:
                self._next = next(self._packets, None)
                if self._next is None:
                    return
            packet = self._next
            copy = self.copies.get(packet.stream_index)
            cover = packet.dts is None and copy is not None and packet.size > 0 and \
                bool(self._sources[packet.stream_index].disposition & av.stream.Disposition.attached_pic)
            if cover:
                packet.pts = packet.dts = 0  # a cover picture: one untimed packet, placed at the start
            elif packet.dts is None and copy is not None and packet.size > 0 and copy.stream.type == "audio":
                self._give_time(packet)
            undecoded = packet.dts is None and packet.pts is not None and copy is not None and packet.size > 0 \
                and copy.stream.type == "video"  # Matroska's B-frame video: no dts, which the muxer works out
            if (packet.dts is None and not undecoded) or copy is None or _is_mov_text_gap(packet, copy):
                self._next = None
                continue
            if limit is not None and packet_time(packet) > limit:
                if not last or not self._stragglers_may_follow(packet, limit, passed):
                    return
                self._next = None
                continue
            self._next = None
            if cover:
                self._place(packet, copy, None)
            elif undecoded:
                self._place(packet, copy, shift)
            elif not self._runs_backwards(packet, copy):
                self._sample_ends[packet.stream_index] = _on_frame_grid(
                    packet, self._sources[packet.stream_index], self._sample_ends.get(packet.stream_index))
                for ready in self._lengthened(packet, copy):
                    self._place(ready, copy, shift)

    def _stragglers_may_follow(self, packet: av.Packet, limit: Fraction, passed: set[int]) -> bool:
        """Whether packets within `limit` may still follow `packet`, the first past it of its stream: a file
        interleaves its tracks by chunks, not by time (a QuickTime file stores a frame's first track's sound, then
        its second's), so the packet past a stretch's end met first was one track's, and the other track's last
        packet within it, stored after it, was left out (measured: 20 ms of a .mov's second PCM track's end).
        Until every copied audio and video track has passed the limit, within STRAGGLER_S of it."""
        passed.add(packet.stream_index)
        tracks = {index for index, copy in self.copies.items() if copy.stream.type in ("audio", "video")}
        return not tracks <= passed and packet_time(packet) <= limit + STRAGGLER_S

    def _lengthened(self, packet: av.Packet, copy: Copy) -> list[av.Packet]:
        """The packets of `packet`'s stream ready to be placed. An audio packet the demuxer gives no duration
        (ALAC in Matroska) waits for its stream's next one, whose dts gives its length: a stretch then knows
        whether it still sounds at its start (_still_heard), and an MP4 or QuickTime track ends after it
        (TRACK_END_MUXERS). The stream's last such packet is given its decoded samples' length in finish()."""
        if copy.stream.type != "audio":
            return [packet]
        ready = []
        waiting = self._waiting.pop(packet.stream_index, None)
        if waiting is not None:
            if packet.dts is not None and waiting.dts is not None and packet.dts > waiting.dts:
                waiting.duration = packet.dts - waiting.dts
            ready.append(waiting)
        if packet.duration:
            ready.append(packet)
        else:
            self._waiting[packet.stream_index] = packet
        return ready

    def _place(self, packet: av.Packet, copy: Copy, shift: Fraction | None) -> None:
        """Mux a packet (through its stream's cue converter, if any). With a stretch's `shift`, one before the
        stretch is left out, but for an audio packet still heard and a cue still shown at its start, and every
        one kept moves earlier by the shift; a cue shown past the stretch's end is cut there."""
        if self._end is not None:
            _cut_at_end(packet, self._end, copy)
        if shift is not None:
            if copy.stream.type == "video":
                if not self._keyframe_reached(packet, shift):
                    return
            elif packet_time(packet) < shift and not _still_shown(packet, shift, copy) \
                    and not _still_heard(packet, shift, copy):
                return
        if (sound := self._sound_checks.get(packet.stream_index)) is not None:
            sound.check(packet)
        for kept in self._shown_by_end(packet, copy):
            index = kept.stream_index
            if shift is not None:
                move = round(shift / kept.time_base)
                kept.pts = None if kept.pts is None else kept.pts - move
                kept.dts = None if kept.dts is None else kept.dts - move
                kept = self._cut_to_start(kept, copy)
            self._open_at_its_time(kept, copy)
            for ready in copy.converter.convert(kept) if copy.converter is not None else [kept]:
                ready.stream = copy.stream
                self._say_unmarked_delay(ready, index)
                self._mux(ready)

    def _cut_to_start(self, packet: av.Packet, copy: Copy) -> av.Packet:
        """A stretch's first PCM packet, moved to start before 0 (kept whole: _still_heard), cut at the stretch's
        first sample where the output's muxer stores no earlier start (NO_EARLY_START_MUXERS), so its first sample
        is the one sounding with the first frame. PCM can be cut on any sample boundary (a sample's bytes times
        the channels); compressed audio cannot, and stays whole."""
        source = self._sources[packet.stream_index]
        context = source.codec_context
        silence = _silent_sample(context.codec.canonical_name) if source.type == "audio" else None
        if silence is None or self.out.format.name not in NO_EARLY_START_MUXERS or packet.pts is None \
                or packet.pts >= 0 or copy.converter is not None or not context.sample_rate:
            return packet
        block = len(silence) * context.channels  # bytes per sample, all channels
        early = round(-packet.pts * packet.time_base * context.sample_rate)  # samples before the stretch
        cut = av.Packet(bytes(packet)[early * block:])
        cut.stream, cut.time_base = source, Fraction(1, context.sample_rate)
        cut.pts = cut.dts = 0
        cut.duration = cut.size // block
        return cut

    def _open_at_its_time(self, packet: av.Packet, copy: Copy) -> None:
        """A copied video's or audio's first packet in an AVI is shown or heard at its time (open_at_its_time,
        _heard_at_its_time): a stretch's copy begins at its first keyframe shown in it, a preview track can start
        after the film, a soundtrack after the first frames."""
        if copy.stream.type not in ("video", "audio") or packet.stream_index in self._opened:
            return
        self._opened.add(packet.stream_index)
        if copy.stream.type == "video":
            open_at_its_time(self.out, copy.stream, packet)
        else:
            self._heard_at_its_time(packet, copy)

    def _heard_at_its_time(self, packet: av.Packet, copy: Copy) -> None:
        """Before an audio stream's first packet in an AVI that comes after 0: silence as long as the gap, where
        it is PCM, in its own silent byte (_silent_sample; AVI times its samples by their bytes, so it starts at
        the exact sample); else a warning.
        AVI stores no start per stream, and FFmpeg's muxer put the first chunk at 0: a track that began 0.5 s
        after the video was heard from 0, 0.5 s early (measured, AAC, MP3, AC-3 and PCM from .mp4 and .mkv). An
        empty chunk at 0, which places a video (open_at_its_time), left the audio at 0. A compressed track is
        timed by its packets' count there, so a gap shorter than one packet is no error to warn of."""
        stamp = packet.dts if packet.dts is not None else packet.pts
        source = self._sources[packet.stream_index].codec_context
        if self.out.format.name not in CFR_CONTAINERS or stamp is None or not source.sample_rate:
            return
        rate = source.sample_rate
        gap = round(stamp * packet.time_base * rate)  # samples before the first one
        name = source.codec.canonical_name
        silence = _silent_sample(name)
        if silence is not None and gap > 0:
            frame = silence * source.channels
            for start in range(0, gap, rate):  # a second's chunk at a time
                count = min(rate, gap - start)
                silent = av.Packet(frame * count)
                silent.stream, silent.time_base = copy.stream, Fraction(1, rate)
                silent.pts = silent.dts = start
                silent.duration = count
                self.out.mux(silent)
        elif silence is None and gap > 0 and gap >= (packet.duration or 0) * packet.time_base * rate:
            log.warning("audio stream %d (%s) starts at %.2f s, which %s cannot store for it: it is heard from 0, "
                        "%.2f s early; .mkv or .mp4 keep its start", packet.stream_index, name,
                        gap / rate, container_suffix(self.out), gap / rate)

    def _shown_by_end(self, packet: av.Packet, copy: Copy) -> list[av.Packet]:
        """The packets to mux now, a copied video's cut at the stretch's end by when they are shown (pts), as the
        restored frames are: one shown at or after the end (within SPAN_TOLERANCE) is held until one of its stream
        shown before the end follows in decode order, which goes with it (a B-frame stream decodes the next
        reference frame ahead of the frames shown before it, which need it), and what is still held when the
        copy ends is left out. The muxed packets stop at the end by their dts, and a B-frame stream's last ones
        were frames shown after it (measured: three of x264's at 24 fps). A reference frame a kept one needs is
        shown past the end still: no muxer PyAV drives can mark a frame decoded but not shown."""
        if self._end is None or copy.stream.type != "video" or packet.pts is None:
            return [packet]
        held = self._after_end.setdefault(packet.stream_index, [])
        if packet.pts * packet.time_base >= self._end - SPAN_TOLERANCE:
            held.append(packet)
            return []
        ready = [*held, packet]
        held.clear()
        return ready

    def _keyframe_reached(self, packet: av.Packet, shift: Fraction) -> bool:
        """Whether a copied video's packet is kept in a stretch: every one in decode order from the stream's first
        keyframe shown (by pts) at or after the stretch's start, none before it (they would not decode). Judged
        by the dts, a B-frame stream's keyframe at the start came before it (decoded ahead of the frames shown
        before it), and the copy began at the keyframe after. A keyframe before the start is not taken: its
        frames up to the start would be shown from before 0, which most containers cannot hold. So a stretch
        that starts between keyframes has the copied video begin later than the restored one."""
        index = packet.stream_index
        if index in self._keyed:
            return True
        start = self._start if self._start is not None else shift
        if not packet.is_keyframe or packet.pts is None or packet.pts < round(start / packet.time_base):
            return False  # on the stream's clock, as the shift moves it: Matroska's 333 ms is the frame at 1/3 s
        self._keyed.add(index)
        return True

    def _say_unmarked_delay(self, packet: av.Packet, index: int) -> None:
        """Warn where an audio packet's encoder delay (the samples its decoder skips: an MP4 edit list's AAC
        priming, as FFmpeg's skip_samples) cannot be kept. Matroska stores one only as the track's CodecDelay,
        which FFmpeg's muxer writes from the stream's initial padding, and the MP4 demuxer gives none (PyAV
        cannot set it): the muxer moves every stream later by as much, in sync, and the delay is heard.
        Measured with a plain PyAV remux too."""
        source = self._sources[index]
        if self.out.format.name not in MATROSKA_MUXERS or source.type != "audio" or source.codec_context.delay \
                or not packet.has_sidedata("skip_samples"):
            return
        skipped = lossless_audio.skipped_samples(packet)
        rate = source.codec_context.sample_rate
        if skipped and rate:
            log.warning("audio stream %d (%s): its encoder delay (%d samples) cannot be marked in %s, so those "
                        "%.0f ms are heard and every stream starts that much later, in sync (.mp4 and .mov keep "
                        "it)", index, source.codec_context.codec.canonical_name, skipped, container_suffix(self.out), 1000 * skipped / rate)

    def _lengthen_last(self, packet: av.Packet, index: int) -> None:
        """A stream's last audio packet without a duration, given the length of the samples it decodes to (ALAC
        frames decode alone); where none can be read it keeps none, with a warning where that may lose it."""
        decoder = self._sources[index].codec_context
        try:
            samples = sum(frame.samples for frame in decoder.decode(packet))
        except (av.error.FFmpegError, ValueError):
            samples = 0
        if samples and decoder.sample_rate:
            packet.duration = max(1, round(Fraction(samples, decoder.sample_rate) / packet.time_base))
        elif self.out.format.name.split(",")[0] in TRACK_END_MUXERS:
            log.warning("stream #%d (audio): its last packet's length is unknown, so %s players may leave it out "
                        "(.mkv keeps it)", index, container_suffix(self.out))

    def _mux(self, packet: av.Packet) -> None:
        """Mux a copied packet, noting where an audio one ends (for _sound_to)."""
        self.out.mux(packet)
        if packet.stream.type == "audio" and packet.pts is not None and packet.duration and packet.time_base:
            self._sound_ends[packet.stream.index] = (packet.pts + packet.duration) * packet.time_base

    def _sound_to(self, end: Fraction) -> None:
        """Each PCM track that ends before `end` (seconds, the output's clock: its pictures' end) given silence up
        to it. FFmpeg's MXF muxer lays out a frame's pictures with its sound, and stops the file where a track ends:
        a clip whose sound stopped 1 s before its pictures lost its last second of frames in a .mxf (measured: 91
        of 123 frames of liveportrait_d14.mp4 cut so), unsaid; its DV muxer refused them (a failed run)."""
        for copy in self.copies.values():
            context = copy.stream.codec_context
            silence = _silent_sample(context.name) if copy.stream.type == "audio" else None
            stop = self._sound_ends.get(copy.stream.index)
            if silence is None or stop is None or not context.sample_rate:
                continue
            rate = context.sample_rate
            gap = round((end - stop) * rate)  # samples missing
            if gap > 0:
                padding = av.Packet(silence * context.channels * gap)
                padding.stream, padding.time_base = copy.stream, Fraction(1, rate)
                padding.pts = padding.dts = round(stop * rate)
                padding.duration = gap
                self.out.mux(padding)

    def finish(self, limit: Fraction | None, shift: Fraction | None = None, sound_to: Fraction | None = None) -> None:
        """Mux what is left up to `limit` (None: all), the audio packets still waiting for a duration, then the
        cues the converters still hold; with `sound_to` (seconds, the output's clock), PCM tracks that end before
        it are given silence up to it (_sound_to)."""
        self.mux_until(limit, shift, last=True)
        for index, packet in list(self._waiting.items()):
            del self._waiting[index]
            self._lengthen_last(packet, index)
            self._place(packet, self.copies[index], shift)
        for sound in self._sound_checks.values():
            sound.close()
        for (index, reason), count in self._left_out.items():
            log.warning("stream #%d (%s): %d %s left out, %s", index, self.copies[index].stream.type, count,
                        "packet" if count == 1 else "packets", LEFT_OUT[reason][count != 1])
        for copy in self.copies.values():
            if copy.converter is None:
                continue
            for ready in copy.converter.flush():
                ready.stream = copy.stream
                self._mux(ready)
            if isinstance(copy.converter, subtitles.CueConverter) and copy.converter.overlaps:
                log.info("%d stretches of overlapping subtitle cues show them together (mov_text shows one sample "
                         "at a time)", copy.converter.overlaps)
        if sound_to is not None:
            self._sound_to(sound_to)

"""Damaged and half-downloaded videos: what decodes is restored with one warning that says where the damage is and
what it took, as players show it; a file that states more than it holds is refused in one line."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from tests.media import make_clip
from tests.test_bad_input import assert_refused, restore

TS_PACKET = 188


def frame_times(path: Path) -> list[float]:
    """The video frames' times from the stream's first, in seconds."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [round(float((frame.pts - (stream.start_time or 0)) * stream.time_base), 3)
                for frame in container.decode(stream)]


def _damage_said(records: list) -> list[str]:
    return [r.getMessage() for r in records if "damaged video" in r.getMessage()]


def lost_packets(whole: Path, path: Path, run: int = 10, share: int = 2) -> Path:
    """A copy of the transport stream `whole` at `path` without `run` of its 188-byte packets from its middle (from
    1/`share` of it): a broadcast recording's lost reception."""
    data = whole.read_bytes()
    middle = len(data) // TS_PACKET // share
    path.write_bytes(data[:middle * TS_PACKET] + data[(middle + run) * TS_PACKET:])
    return path


def test_a_transport_stream_that_lost_a_run_of_packets_says_the_frames_it_lost(tmp_path, warnings_logged):
    """A broadcast recording that lost 10 of its 188-byte packets mid-frame: the decoder dropped 7 of its 48
    frames, 0.29 s, up to the next keyframe, and the restore said nothing. It is still restored (what is there
    plays), with one warning that says where and how much."""
    whole = make_clip(tmp_path / "news.ts", frames=48, size=(128, 96), gop=8)
    lost = lost_packets(whole, tmp_path / "news_lost.ts")
    before = lost.read_bytes()
    result = restore(lost, "-o", tmp_path / "out.mp4")
    assert result.exit_code == 0, result.output
    assert lost.read_bytes() == before
    shown, every = frame_times(tmp_path / "out.mp4"), frame_times(whole)
    gone = sorted(set(every) - set(shown))
    assert len(shown) == 41 and len(gone) == 7 and gone[0] == 1.0  # frames 24 to 30
    said = "news_lost.ts: damaged video at 1.000 s is passed over: 7 frames (0.29 s) left out"
    assert _damage_said(warnings_logged.records) == [said]


def garbled(whole: Path, path: Path, at: float, count: int) -> Path:
    """A copy of `whole` at `path` with `count` bytes of garbage written over it from `at` of its length on."""
    data = bytearray(whole.read_bytes())
    start = int(len(data) * at)
    data[start:start + count] = np.random.default_rng(0).integers(0, 256, count, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


def test_a_matroska_file_garbled_in_the_middle_says_the_frames_it_lost(tmp_path, warnings_logged):
    """2000 bytes of garbage at 30% of a .mkv: FFmpeg's demuxer reads on from the next cluster, its packets neither
    refused nor marked corrupt, so 11 of its 48 frames (0.46 s) were left out and nothing said, exit 0. It is still
    restored (what is there plays), with one warning that says where and how much; a whole one says nothing."""
    whole = make_clip(tmp_path / "party.mkv", frames=48, size=(128, 96), gop=12)
    broken = garbled(whole, tmp_path / "party_rot.mkv", 0.3, 2000)
    result = restore(broken, "-o", tmp_path / "out.mp4")
    assert result.exit_code == 0, result.output
    shown, every = frame_times(tmp_path / "out.mp4"), frame_times(whole)
    assert len(shown) == 37 and sorted(set(every) - set(shown)) == every[13:24]
    said = "party_rot.mkv: damaged video at 0.541 s is passed over: 11 frames (0.46 s) left out"
    assert _damage_said(warnings_logged.records) == [said]
    warnings_logged.clear()
    assert restore(whole, "-o", tmp_path / "whole.mp4").exit_code == 0
    assert _damage_said(warnings_logged.records) == []


def test_a_matroska_file_damaged_near_its_end_is_refused_as_damaged_not_cut(tmp_path):
    """1000 bytes of garbage at 80% of a .mkv: nothing after them can be read, and it was refused as "truncated:
    decoding stopped after 37 frames (1.54 s of 2.00 s)", though the file is whole in size; a copy cut short is
    still "truncated"."""
    whole = make_clip(tmp_path / "party.mkv", frames=48, size=(128, 96), gop=12)
    broken = garbled(whole, tmp_path / "party_rot.mkv", 0.8, 1000)
    assert_refused(tmp_path, broken, "party_rot.mkv is damaged at 1.54 s: nothing after it can be read, though the "
                   "file is whole in size (37 frames decoded of its 2.00 s)", "-o", tmp_path / "out.mp4")
    (tmp_path / "party_cut.mkv").write_bytes(whole.read_bytes()[:int(whole.stat().st_size * 0.8)])
    result = restore(tmp_path / "party_cut.mkv", "-o", tmp_path / "cut.mp4")
    assert result.exit_code == 2 and "party_cut.mkv is truncated: decoding stopped after" in result.stderr


def broken_apng(path: Path, frames: int = 6, broken: int = 3) -> Path:
    """An animated PNG of `frames` frames of 0.1 s whose frame `broken` has 40 bytes of its image data flipped:
    its zlib stream no longer inflates."""
    from PIL import Image

    from clrface_video.io.apng import _chunks
    from tests.media import astronaut

    pictures = [Image.fromarray(np.roll(astronaut()[::4, ::4], 8 * i, axis=1)) for i in range(frames)]
    pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=100, loop=0)
    with open(path, "rb") as file:
        data_chunks = [offset for offset, kind, _ in _chunks(file) if kind == b"fdAT"]  # frames 1 on
    data = bytearray(path.read_bytes())
    for k in range(data_chunks[broken - 1] + 20, data_chunks[broken - 1] + 60):
        data[k] ^= 0x5A
    path.write_bytes(bytes(data))
    return path


def test_an_animated_png_with_a_damaged_frame_is_restored_without_it(tmp_path, warnings_logged):
    """Its frame's image data refused by zlib ('Generic error in an external library'), which no damaged packet
    of a video is passed over for: the local run refused the file, 'decoding failed at frame 3 (...)', and Ray
    another way ('decoding segment 3 failed at frame 0'). It is passed over as any damaged frame is."""
    broken = broken_apng(tmp_path / "party.png")
    result = restore(broken, "-o", tmp_path / "out.mp4")
    assert result.exit_code == 0, result.output
    assert frame_times(tmp_path / "out.mp4") == [0.0, 0.1, 0.2, 0.4, 0.5]
    said = "party.png: damaged video at 0.300 s is passed over: 1 frame (0.10 s) left out"
    assert _damage_said(warnings_logged.records) == [said]


def test_an_animated_png_restored_to_one_without_a_damaged_frame_plays_as_long(tmp_path, warnings_logged):
    """The APNG output took each frame's delay from the source, so the frame before the one passed over did not
    take its time: 0.5 s for a source of 0.6 s, its last two frames 0.1 s early (a video output keeps the time)."""
    from clrface_video.io.apng import apng_seconds

    broken = broken_apng(tmp_path / "party.png")
    result = restore(broken, "-o", tmp_path / "out.png")
    assert result.exit_code == 0, result.output
    assert frame_times(tmp_path / "out.png") == [0.0, 0.1, 0.2, 0.4, 0.5]
    assert apng_seconds(tmp_path / "out.png") == apng_seconds(broken) == Fraction(6, 10)


def test_a_frame_the_decoder_conceals_is_not_said_to_be_lost(tmp_path, warnings_logged):
    """Bytes overwritten at the tail of an MP4's packet, which the decoder reads past: every frame comes, so no
    damage is said (a frame is counted lost only where none came)."""
    whole = make_clip(tmp_path / "a.mp4", frames=24, size=(128, 96), audio=False)
    with av.open(str(whole)) as container:
        packets = [(p.pos, p.size) for p in container.demux(video=0) if p.size]
    pos, size = packets[len(packets) // 2]
    data = bytearray(whole.read_bytes())
    data[pos + size - 8:pos + size] = bytes(8)
    (tmp_path / "b.mp4").write_bytes(bytes(data))
    result = restore(tmp_path / "b.mp4", "-o", tmp_path / "out.mp4")
    assert result.exit_code == 0, result.output
    assert len(frame_times(tmp_path / "out.mp4")) == 24 and _damage_said(warnings_logged.records) == []


def test_a_transport_stream_cut_short_is_restored_to_its_end_and_said(tmp_path, warnings_logged):
    """A broadcast recording downloaded half way: restored to where it stops with exit 0 and not a word, as an
    .mpg cut short had been. It states no length either, so it is treated as one is: restored as far as it goes,
    with the line that says so, as its last 188-byte packet is cut short. A whole one says nothing."""
    whole = make_clip(tmp_path / "news.ts", frames=48, size=(128, 96), gop=8)
    data = whole.read_bytes()
    cut = tmp_path / "news_part.ts"
    cut.write_bytes(data[:len(data) // 2 + 100])
    result = restore(cut, "-o", tmp_path / "out.mp4")
    assert result.exit_code == 0, result.output
    shown = frame_times(tmp_path / "out.mp4")
    assert 0 < len(shown) < 48
    said = (f"news_part.ts ends mid-stream (its last packet is cut short: a copy or recording cut off), so it is "
            f"restored up to {shown[-1] + 1 / 24:.2f} s, where its pictures stop; what came after is not in the file")
    assert [r.getMessage() for r in warnings_logged.records if "mid-stream" in r.getMessage()] == [said]
    assert restore(whole, "-o", tmp_path / "whole.mp4").exit_code == 0
    assert [r.getMessage() for r in warnings_logged.records if "mid-stream" in r.getMessage()] == [said]


def test_a_padded_transport_stream_is_whole_and_one_split_mid_packet_is_cut(tmp_path, warnings_logged):
    """Regression: a whole recording that a recorder or a copy padded with zero bytes after its last packet was said
    to be cut short (its size no whole number of packets), every frame restored; and a recording a file splitter
    cut at both ends, starting and ending part way through a packet, was said to be whole. Packets are counted from
    the first sync bytes that line up, and a short tail is a cut packet only where its sync byte stands."""
    whole = make_clip(tmp_path / "news.ts", frames=24, size=(128, 96), gop=8)
    data = whole.read_bytes()
    (tmp_path / "padded.ts").write_bytes(data + bytes(100))
    result = restore(tmp_path / "padded.ts", "-o", tmp_path / "padded.mp4")
    assert result.exit_code == 0, result.output
    assert len(frame_times(tmp_path / "padded.mp4")) == 24
    assert not [r for r in warnings_logged.records if "mid-stream" in r.getMessage()]
    (tmp_path / "split.ts").write_bytes(data[TS_PACKET * 3 + 100:len(data) * 2 // 3 + 50])
    result = restore(tmp_path / "split.ts", "-o", tmp_path / "split.mp4")
    assert result.exit_code == 0, result.output
    assert 0 < len(frame_times(tmp_path / "split.mp4")) < 24
    said = [r.getMessage() for r in warnings_logged.records if "mid-stream" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("split.ts ends mid-stream (its last packet is cut short")


def test_a_gif_cut_short_or_damaged_is_restored_to_where_it_stops_and_said(tmp_path, warnings_logged):
    """A GIF states neither its length nor its frame count, so a download cut off after 4 of its 6 frames, and one
    whose fourth frame has 40 flipped bytes (FFmpeg and Pillow both stop reading there), were restored short
    without a word. Each is still restored to where it stops (what is there plays), with one line saying why."""
    from PIL import Image

    from tests.media import astronaut

    pictures = [Image.fromarray(np.roll(astronaut()[::4, ::4], 8 * i, axis=1)) for i in range(6)]
    pictures[0].save(tmp_path / "wave.gif", save_all=True, append_images=pictures[1:], duration=100, loop=0)
    data = (tmp_path / "wave.gif").read_bytes()
    (tmp_path / "cut.gif").write_bytes(data[:len(data) * 6 // 10])
    damaged = bytearray(data)
    for k in range(len(data) // 2, len(data) // 2 + 40):
        damaged[k] ^= 0x5A
    (tmp_path / "rot.gif").write_bytes(bytes(damaged))
    causes = {"cut": "its last frame is cut short: a copy or download cut off",
              "rot": "a byte stands where a block of its data must begin: damaged, and nothing past it can be read"}
    for name, cause in causes.items():
        warnings_logged.clear()
        result = restore(tmp_path / f"{name}.gif", "-o", tmp_path / f"{name}.mp4")
        assert result.exit_code == 0, result.output
        shown = frame_times(tmp_path / f"{name}.mp4")
        assert 0 < len(shown) < 6
        said = f"{name}.gif ends mid-stream ({cause}), so it is restored up to {shown[-1] + 0.1:.2f} s, where its " \
            "pictures stop"
        assert [r.getMessage() for r in warnings_logged.records if "mid-stream" in r.getMessage()] == [said]
    warnings_logged.clear()
    assert restore(tmp_path / "wave.gif", "-o", tmp_path / "wave.mp4").exit_code == 0
    assert not [r for r in warnings_logged.records if "mid-stream" in r.getMessage()]


def _refused_sound(path: Path) -> list[float]:
    """The times (s) of the audio packets of `path` that its decoder refuses."""
    refused = []
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        for packet in container.demux(stream):
            try:
                packet.decode()
            except av.error.InvalidDataError:
                refused.append(round(float(packet.pts * stream.time_base), 3))
    return refused


def test_a_damaged_audio_packet_is_copied_as_it_is_and_said(tmp_path, warnings_logged):
    """Garbage in one AAC packet of an .mp4: copied into the output bit for bit without a word, where a decoder
    refuses it and players play nothing for 0.02 s. It is still copied as it is (re-coding the sound would change
    every file's bytes), with one warning that says where; a whole file's sound says nothing."""
    whole = make_clip(tmp_path / "a.mp4", frames=48, size=(128, 96))
    with av.open(str(whole)) as container:
        pos, size = [(p.pos, p.size) for p in container.demux(audio=0) if p.size][47]
    data = bytearray(whole.read_bytes())
    data[pos:pos + size] = np.random.default_rng(0).integers(0, 256, size, dtype=np.uint8).tobytes()
    (tmp_path / "b.mp4").write_bytes(bytes(data))
    result = restore(tmp_path / "b.mp4", "-o", tmp_path / "out.mp4")
    assert result.exit_code == 0, result.output
    assert _refused_sound(tmp_path / "out.mp4") == _refused_sound(tmp_path / "b.mp4") == [0.981]
    said = [r.getMessage() for r in warnings_logged.records if "damaged sound" in r.getMessage()]
    line = "stream #1 (audio): damaged sound at 0.981 s is copied as it is: 1 packet (0.02 s) that its decoder " \
        "refuses, which players pass over, leaving a gap in the sound"
    assert said == [line]
    warnings_logged.clear()
    assert restore(whole, "-o", tmp_path / "whole.mp4").exit_code == 0
    assert not [r for r in warnings_logged.records if "damaged sound" in r.getMessage()]


def test_a_gif_without_its_trailer_is_whole_and_one_cut_after_a_frames_control_block_is_cut(tmp_path,
                                                                                          warnings_logged):
    """Regression: a GIF whose last frame's data ends the file, its one-byte trailer left off (as some writers leave
    it), was said to be cut short with its last frame whole: all 6 frames are restored and nothing is said. Cut
    just after the last frame's graphic control block, the frame it announces is gone: that is still a cut."""
    from PIL import Image

    from clrface_video.io.gif_blocks import gif_break
    from tests.media import astronaut

    pictures = [Image.fromarray(np.roll(astronaut()[::4, ::4], 8 * i, axis=1)) for i in range(6)]
    pictures[0].save(tmp_path / "wave.gif", save_all=True, append_images=pictures[1:], duration=100, loop=0)
    data = (tmp_path / "wave.gif").read_bytes()
    assert data[-1:] == b";"
    (tmp_path / "open.gif").write_bytes(data[:-1])
    result = restore(tmp_path / "open.gif", "-o", tmp_path / "open.mp4")
    assert result.exit_code == 0, result.output
    assert len(frame_times(tmp_path / "open.mp4")) == 6
    assert not [r for r in warnings_logged.records if "mid-stream" in r.getMessage()]
    control = data.rindex(b"\x21\xf9\x04")  # the last frame's graphic control block: 8 bytes
    (tmp_path / "announced.gif").write_bytes(data[:control + 8])
    assert gif_break(tmp_path / "announced.gif") == "cut"


def _frames_said(records: list) -> int:
    """The frames left out, summed over the damage warnings."""
    return sum(int(line.split(": ")[-1].split()[0]) for line in _damage_said(records))


def test_frames_a_decoder_drops_after_a_keyframe_and_to_the_end_are_counted(tmp_path, warnings_logged):
    """Regression: an HEVC recording (one keyframe, B-frames) that lost 10 of its 188-byte packets half way was
    restored without its last 54 of 96 frames, and nothing was said: the decoder gives no frame after the keyframe
    past the damage either (which ended the damage), and none to the end (not counted). The warnings now add up to
    the frames lost."""
    whole = make_clip(tmp_path / "match.ts", frames=96, size=(128, 96), codec="libx265", audio=False)
    lost = lost_packets(whole, tmp_path / "match_lost.ts")
    result = restore(lost, "-o", tmp_path / "out.mp4")
    assert result.exit_code == 0, result.output
    gone = len(frame_times(whole)) - len(frame_times(tmp_path / "out.mp4"))
    assert gone > 40 and _frames_said(warnings_logged.records) == gone


@pytest.mark.parametrize(("vfr", "share", "run"), [(False, 3, 25), (True, 2, 10)])
def test_frames_lost_whole_are_counted_by_time_only_where_the_rate_is_steady(tmp_path, warnings_logged, vfr, share,
                                                                           run):
    """Regression: frames whose packets were lost whole leave only their time. A steady 24 fps recording that lost 25
    packets lost 2 frames so and nothing was said; a phone's variable-rate clip (frames 1, 2 and half a step apart)
    that lost 7 frames was said to have lost 16, counted at its nominal rate. Time counts where the rate is steady
    only: the steady one says its 2, and the variable one never says more than it lost."""
    whole = make_clip(tmp_path / "v.ts", frames=96, size=(128, 96), gop=8, vfr=vfr)
    data = whole.read_bytes()
    middle = len(data) // TS_PACKET // share
    lost = tmp_path / "v_lost.ts"
    lost.write_bytes(data[:middle * TS_PACKET] + data[(middle + run) * TS_PACKET:])
    result = restore(lost, "-o", tmp_path / "v.mp4")
    assert result.exit_code == 0, result.output
    gone, said = len(frame_times(whole)) - len(frame_times(tmp_path / "v.mp4")), _frames_said(warnings_logged.records)
    assert 0 < said <= gone if vfr else said == gone == 2


def test_frames_a_decoder_drops_where_no_packet_is_marked_corrupt_are_said(tmp_path, warnings_logged):
    """Regression: an HEVC recording (one keyframe, B-frames) that lost 40 of its 188-byte packets at a fifth, none
    of those left marked corrupt (the run lost left the stream's continuity count where it was): the decoder gave
    10 of its 96 frames and nothing was said. Packets that never came out as a frame, after the first frame shown,
    are lost frames: it says 74 (those past the last frame shown, but the last packet's); the 12 lost whole leave
    no packet and, with nothing marked, no sign that tells them from a camera's own gap in time."""
    whole = make_clip(tmp_path / "match.ts", frames=96, size=(128, 96), codec="libx265", audio=False)
    lost = lost_packets(whole, tmp_path / "match_lost.ts", run=40, share=5)
    with av.open(str(lost)) as container:
        assert not any(packet.is_corrupt for packet in container.demux(video=0))
    result = restore(lost, "-o", tmp_path / "out.mp4")
    assert result.exit_code == 0, result.output
    gone = len(frame_times(whole)) - len(frame_times(tmp_path / "out.mp4"))
    said = _damage_said(warnings_logged.records)
    assert gone == 86 and len(said) == 1 and gone - 12 <= _frames_said(warnings_logged.records) <= gone, said


def test_frames_lost_whole_after_a_keyframe_shown_late_are_said(tmp_path, warnings_logged):
    """Regression: an H.264 recording with B-frames in a .ts that lost 10 of its 188-byte packets after a keyframe
    lost 2 frames whole, and nothing was said: the packet marked corrupt is the one before the damage (the parser
    hands on the packet before the one it is marking), and the keyframe before it, which the threaded decoder gives
    only after the mark, was taken for a fresh start past the damage. A keyframe ends damage only where its packet
    came after the damaged one."""
    from tests.ray_local import short_gop

    whole = short_gop(make_clip(tmp_path / "plain.ts", frames=72, size=(128, 96)), tmp_path / "news.ts", 12)
    lost = lost_packets(whole, tmp_path / "news_lost.ts", run=10, share=4)
    result = restore(lost, "-o", tmp_path / "out.mp4")
    assert result.exit_code == 0, result.output
    gone = sorted(set(frame_times(whole)) - set(frame_times(tmp_path / "out.mp4")))
    assert gone == [0.75, 0.917] and _frames_said(warnings_logged.records) == 2, _damage_said(warnings_logged.records)


CLEAN = [("mk.ts", {"gop": 8}), ("vfr.ts", {"vfr": True}), ("hevc.ts", {"codec": "libx265"}),
         ("hevc.mkv", {"codec": "libx265"}), ("vp9.webm", {"codec": "libvpx-vp9", "audio_codec": "libopus"}), ("fields.ts", {"interlaced": True}),
         ("tape.mpg", {"codec": "mpeg2video", "audio_codec": "mp2"})]


@pytest.mark.parametrize(("name", "options"), CLEAN, ids=[name for name, _ in CLEAN])
def test_whole_recordings_say_no_damage_whole_or_from_a_start(tmp_path, warnings_logged, name, options):
    """A false warning is worse than none: frames the decoder never gives that are no damage (an open GOP's
    leading pictures, B-frames before a seek's keyframe, a field's second half) are not said, over whole files of
    each kind and from a --start part way through them (a seek); B-frames in a .ts and an open-GOP MPEG-2 too."""
    from tests.ray_local import short_gop

    clip = make_clip(tmp_path / name, frames=48, size=(128, 96), **options)
    if name == "mk.ts":
        clip = short_gop(clip, tmp_path / "bframes.ts", 12)
    for start in ("0", "0.9"):
        result = restore(clip, "-o", tmp_path / f"out{start}.mp4", "--start", start)
        assert result.exit_code == 0, result.output
    assert _damage_said(warnings_logged.records) == []


def test_two_recordings_joined_say_no_damage(tmp_path, warnings_logged):
    """Regression: two broadcasts of 48 frames joined into one .ts (MPEG-TS files concatenate), all 96 frames
    restored, were said to have lost 92: the second's times start again, and its packets were taken for frames the
    decoder had dropped. A keyframe timed no later than a packet before it starts the count afresh."""
    first = make_clip(tmp_path / "a.ts", frames=48, size=(128, 96), gop=12)
    second = make_clip(tmp_path / "b.ts", frames=48, size=(128, 96), gop=12)
    joined = tmp_path / "joined.ts"
    joined.write_bytes(first.read_bytes() + second.read_bytes())
    result = restore(joined, "-o", tmp_path / "out.mp4")
    assert result.exit_code == 0, result.output
    assert len(frame_times(tmp_path / "out.mp4")) == 96 and _damage_said(warnings_logged.records) == []


def test_a_block_whose_size_reads_as_a_shorter_header_is_whole(tmp_path):
    """Regression: a whole .mkv that PyAV wrote from a real clip was said to have lost 2 frames: a block of 41,863
    bytes has the header a3 20 a3 87, whose last two bytes read as a 7-byte block's too, and the walk from that
    one went nowhere. Every way the header reads is walked."""
    from clrface_video.io.matroska_blocks import BlockWalk

    data = bytes(16) + bytes.fromhex("a320a387") + bytes(0xA387) + bytes.fromhex("a384") + bytes(4)
    (tmp_path / "blocks.mkv").write_bytes(data)
    assert BlockWalk(tmp_path / "blocks.mkv").joined(20, 20 + 0xA387 + 2)
    assert not BlockWalk(tmp_path / "blocks.mkv").joined(20, 20 + 0xA387 + 1)  # the next block is not there

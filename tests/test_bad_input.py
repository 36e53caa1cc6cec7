"""Damaged inputs found by a sweep of cut, garbled and mixed files: one line, exit 2, no output, input unchanged."""
from __future__ import annotations

import shutil
import tempfile
from fractions import Fraction
from io import BytesIO
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from clrface_video import restore_video
from clrface_video.cli import cli
from clrface_video.errors import ClrfaceError
from clrface_video.io.apng import _chunks
from tests.media import astronaut, make_clip, make_sequence

BASELINE = ["--model", "baseline-bicubic-sharpen", "--device", "cpu", "--no-identity-guidance"]


def restore(*args: object):
    return CliRunner().invoke(cli, ["restore", *(str(a) for a in args), *BASELINE], catch_exceptions=False)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_refused(folder: Path, source: Path, line: str, *extra: object) -> None:
    """restore SOURCE ends with exactly `line` on stderr and status 2, leaving the folder as it was."""
    before = snapshot(folder)
    result = restore(source, *extra)
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == f"error: {line}"
    assert snapshot(folder) == before  # no output, no hidden partial file, the input untouched


def test_a_sequence_frame_of_another_size_is_named(tmp_path):
    """It ended 'unexpected ValueError: frame 2 is (48, 64, 3), expected (96, 128, 3)' with exit 1."""
    pattern = make_sequence(tmp_path / "scan" / "f_%06d.png", frames=4, size=(128, 96))
    Image.fromarray(astronaut()[:48, :64]).save(tmp_path / "scan" / "f_000003.png")
    line = "f_000003.png is 64x48, where the first frame is 128x96: every frame of the sequence f_%06d.png " \
           "must have one size"
    assert_refused(tmp_path, pattern, line)
    assert_refused(tmp_path, pattern, line, "-o", tmp_path / "scan.mp4")


def test_a_video_that_changes_its_frame_size_is_one_line(tmp_path):
    """Two broadcasts joined (MPEG-TS files concatenate): it ended 'unexpected ValueError' with exit 1."""
    first = make_clip(tmp_path / "a.ts", frames=4, size=(128, 96), audio=False)
    second = make_clip(tmp_path / "b.ts", frames=4, size=(96, 64), audio=False)
    joined = tmp_path / "joined.ts"
    joined.write_bytes(first.read_bytes() + second.read_bytes())
    assert_refused(tmp_path, joined, "joined.ts changes its frame size at frame 4 (to 96x64, where the first frame "
                                     "is 128x96), which one output video cannot hold; cut it there and restore "
                                     "each part", "-o", tmp_path / "out.mp4")


def test_with_start_the_frame_of_another_size_is_named_in_the_file_not_the_stretch(tmp_path):
    """With --start the file was named by its place in the stretch: f_000001.png for the fifth file."""
    pattern = make_sequence(tmp_path / "scan" / "f_%06d.png", frames=6, size=(128, 96))
    Image.fromarray(astronaut()[:48, :64]).save(tmp_path / "scan" / "f_000005.png")
    assert_refused(tmp_path, pattern, "f_000005.png is 64x48, where the first frame is 128x96: every frame of the "
                                      "sequence f_%06d.png must have one size", "--start", 3 / 24)


def _ts_part(path: Path, size: tuple[int, int], first_pts: int) -> bytes:
    """Four frames of one size as an MPEG-TS, numbered on from `first_pts` at 24 fps (a recording's next part)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
        stream.options = {"bf": "0"}  # no B-frames: both parts start at the muxer's one delay
        for number in range(first_pts, first_pts + 4):
            frame = av.VideoFrame.from_ndarray(astronaut()[:size[1], :size[0]], format="rgb24")
            frame.pts, frame.time_base = number, Fraction(1, 24)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path.read_bytes()


def test_a_stretch_after_a_frame_size_change_is_refused_in_one_line(tmp_path):
    """The output is made the size of the file's first frame: a --start stretch of frames of another size ended
    'unexpected ValueError: frame 0 is (64, 96, 3), expected (96, 128, 3)' with exit 1."""
    joined = tmp_path / "joined.ts"
    joined.write_bytes(_ts_part(tmp_path / "a.ts", (128, 96), 0) + _ts_part(tmp_path / "b.ts", (96, 64), 4))
    (tmp_path / "a.ts").unlink(), (tmp_path / "b.ts").unlink()
    line = "joined.ts changes its frame size at {} (to 96x64, where the first frame is 128x96), which one output " \
           "video cannot hold; cut it there and restore each part"
    assert_refused(tmp_path, joined, line.format("frame 4"), "-o", tmp_path / "out.mp4")
    assert_refused(tmp_path, joined, line.format("0.167 s"), "-o", tmp_path / "out.mp4", "--start", 0.2)  # on screen


def test_an_empty_frame_file_in_a_sequence_is_refused_before_any_work(tmp_path):
    """image2 stopped at it: the old code wrote the 2 frames before it and exited 0."""
    pattern = make_sequence(tmp_path / "scan" / "f_%06d.png", frames=4, size=(128, 96))
    (tmp_path / "scan" / "f_000003.png").write_bytes(b"")
    assert_refused(tmp_path, pattern, "f_000003.png is empty (0 bytes): frame 3 of the 4 of the sequence "
                                      "f_%06d.png cannot be read")


@pytest.mark.parametrize("damaged", [1, 4, 6])
def test_a_damaged_frame_file_in_a_scan_is_named_not_passed_over(tmp_path, damaged):
    """Passed over as a damaged packet, it left a gap that every later frame filled: t_086404.tif's frame was
    written as t_086403.tif, and so on, the last number missing, exit 0 (the warning naming a later frame's time)."""
    pattern = make_sequence(tmp_path / "scan" / "t_%06d.tif", frames=8, start=86400, size=(128, 96), bit_depth=16)
    frame = tmp_path / "scan" / f"t_{86399 + damaged:06d}.tif"
    frame.write_bytes(frame.read_bytes()[:5000])
    assert_refused(tmp_path, pattern, f"{frame.name} cannot be read (damaged or cut short): frame {damaged} of the 8 "
                                      "of the sequence t_%06d.tif; scan it again, or restore each unbroken run on its own")


def _apng(path: Path) -> Path:
    frames = [Image.fromarray(np.roll(astronaut()[::4, ::4], 8 * i, axis=1)) for i in range(4)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return path


def test_a_truncated_animated_png_is_refused(tmp_path):
    """Cut before its third frame: the old code restored the 2 frames that decode and exited 0."""
    source = _apng(tmp_path / "full.png")
    with open(source, "rb") as file:
        controls = [offset for offset, kind, _ in _chunks(file) if kind == b"fcTL"]
    cut = tmp_path / "party.png"
    cut.write_bytes(source.read_bytes()[:controls[2] + 100])
    source.unlink()
    assert_refused(tmp_path, cut, "party.png is truncated: decoding stopped after 2 of its 4 frames")


def test_a_whole_animated_png_or_sequence_from_start_is_not_taken_for_a_cut_one(tmp_path):
    """--start skips the first frames, which the stated frame count still counts: the count check had called
    both files truncated ('decoding stopped after 2 of its 4 frames'). The stretch starts with the frame on
    screen at --start (the second, from 0.1 s; from 1/24 s in the sequence)."""
    animation = _apng(tmp_path / "wave.png")  # 4 frames of 0.1 s
    result = restore(animation, "--start", 0.15, "-o", tmp_path / "cut.png")
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "cut.png") as image:
        assert image.n_frames == 3
    pattern = make_sequence(tmp_path / "scan" / "f_%06d.png", frames=4, size=(128, 96))  # read at 24 fps
    result = restore(pattern, "--start", 1.5 / 24, "-o", tmp_path / "out" / "g_%06d.png")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["g_000002.png", "g_000003.png", "g_000004.png"]


def test_a_photo_named_as_a_video_is_refused_with_its_extension(tmp_path):
    """A JPEG named .mp4 was restored as a one-frame H.264 video, its EXIF and JPEG quality lost (in a folder
    without a word); a PNG named .mov likewise; an animated WebP named .mp4 is sent to .webp, where it is
    restored as the animation it is."""
    frames = [Image.fromarray(np.roll(astronaut()[::4, ::4], 8 * i, axis=1)) for i in range(3)]
    frames[0].save(tmp_path / "party.mp4", format="WEBP", save_all=True, append_images=frames[1:], duration=100)
    for kind, name, suffix in (("JPEG", "holiday.mp4", "jpg"), ("PNG", "scan.mov", "png"), ("WEBP", "party.mp4",
                                                                                            "webp")):
        if kind != "WEBP":
            frames[0].save(tmp_path / name, format=kind)
        assert_refused(tmp_path, tmp_path / name, f"{name} is a {kind} image, not a video file: name it .{suffix} "
                                                  "and restore it as the image it is (its metadata kept, an "
                                                  "animation too)")


def _png_bytes(level: int) -> bytes:
    with BytesIO() as out:
        Image.fromarray(np.full((48, 64, 3), level, np.uint8)).save(out, format="PNG")
        return out.getvalue()


def _one_frame_apng(path: Path, level: int) -> Path:
    with av.open(str(path), "w", format="apng") as out:
        stream = out.add_stream("apng", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "rgb24"
        frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), level, np.uint8), format="rgb24")
        for packet in [*stream.encode(frame), *stream.encode()]:
            out.mux(packet)
    return path


def test_pictures_read_as_a_video_by_a_picture_reader_are_still_videos(tmp_path):
    """FFmpeg reads a one-frame .apng and PNG frames stored one after another with its PNG picture reader
    (png_pipe), as it reads a lone PNG: both were refused as 'a PNG image, not a video file'."""
    (tmp_path / "frames.mp4").write_bytes(b"".join(_png_bytes(level) for level in (40, 120, 200)))
    sources = {_one_frame_apng(tmp_path / "still.apng", 90): [90], tmp_path / "frames.mp4": [40, 120, 200]}
    for source, levels in sources.items():
        target = tmp_path / f"out{source.suffix}"
        result = restore(source, "-o", target)
        assert result.exit_code == 0, result.output
        with av.open(str(target)) as out:
            means = [frame.to_ndarray(format="rgb24").mean() for frame in out.decode(video=0)]
        assert np.allclose(means, levels, atol=3)
    with BytesIO() as view, BytesIO() as second:  # an MPO or a phone photo: a JPEG, then its other view
        Image.fromarray(astronaut()[::4, ::4]).save(view, format="JPEG")
        Image.fromarray(astronaut()[::16, ::16]).save(second, format="JPEG")
        (tmp_path / "stereo.mp4").write_bytes(view.getvalue() + second.getvalue())
    assert_refused(tmp_path, tmp_path / "stereo.mp4", "stereo.mp4 is a JPEG image, not a video file: name it .jpg "
                                                      "and restore it as the image it is (its metadata kept, an "
                                                      "animation too)")


def test_a_truncated_avi_is_refused(tmp_path):
    """Its index is lost with its end and FFmpeg rebuilds one from what is left: the old code restored 3 of its
    8 frames and exited 0."""
    source = make_clip(tmp_path / "full.avi", frames=8, size=(128, 96), audio_codec="pcm_s16le")
    cut = tmp_path / "tape.avi"
    cut.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    source.unlink()
    assert_refused(tmp_path, cut, "tape.avi is truncated: its index or header points past the end of the file")


def test_an_mp4_cut_before_its_moov_is_said_to_be_truncated(tmp_path):
    """A clip whose index (moov) is written last, cut in half as one still being copied or recorded is: it said
    'cannot read trunc.mp4 as a video (Invalid data found when processing input...)'."""
    source = make_clip(tmp_path / "full.mp4", frames=12, size=(128, 96))
    data = source.read_bytes()
    assert data.rfind(b"moov") > len(data) // 2  # the index is at the end, the cut loses it
    cut = tmp_path / "trunc.mp4"
    cut.write_bytes(data[: len(data) // 2])
    source.unlink()
    assert_refused(tmp_path, cut, "trunc.mp4 is truncated or still being written (its index, the moov box, is "
                                  "missing)")


def test_moov_and_moov_missing_give_one_answer_at_a_cut_header(tmp_path):
    """io.quicktime's moov and moov_missing walked the top-level boxes each on its own, and told a header apart
    differently: a file cut in the 64-bit size of the box after its media data made moov raise struct.error (where
    moov_missing said missing), and a moov running to the end of the file (size 0) was none to moov and present to
    moov_missing. One walk (top_level) now answers both: a cut header, either size, is no moov and a missing one
    (the file said to be truncated); a moov to the end is there for both, its body whole."""
    from clrface_video.io.quicktime import moov, moov_missing, track_end

    source = make_clip(tmp_path / "full.mp4", frames=12, size=(128, 96))
    data = source.read_bytes()
    source.unlink()
    at = data.rfind(b"moov") - 4  # the moov's header, written last
    head, body = data[:at], data[at + 8:]
    cuts = {"short.mp4": data[:at + 5], "wide.mp4": head + b"\0\0\0\x01moov\0\0\0"}
    for name, cut in cuts.items():
        (tmp_path / name).write_bytes(cut)
        assert (moov(tmp_path / name), moov_missing(tmp_path / name)) == (b"", True)
        assert_refused(tmp_path, tmp_path / name, f"{name} is truncated or still being written (its index, the moov "
                                                  "box, is missing)")
        (tmp_path / name).unlink()
    to_end = tmp_path / "to_end.mp4"
    to_end.write_bytes(head + b"\0\0\0\0moov" + body)
    assert (moov(to_end), moov_missing(to_end)) == (body, False)
    assert track_end(to_end, 1) is not None


@pytest.mark.parametrize("kept", [100, 1000, 1500, -8])
def test_a_quicktime_file_cut_inside_its_moov_is_refused_as_truncated(tmp_path, kept):
    """A .mov whose index (moov, written last) was cut short opened with what of it was there: cut 100 bytes in,
    "has no video stream"; 1000 bytes in, an AttributeError from the copier (exit 1); 1500 bytes in or 8 bytes
    before its end, restored with its timecode track lost in silence. Each is now the truncated file's line."""
    source = make_clip(tmp_path / "full.mov", frames=12, size=(128, 96), timecode="01:00:00:00")
    data = source.read_bytes()
    source.unlink()
    at = data.rfind(b"moov") - 4
    assert at + 1500 < len(data) - 8  # the moov is longer than the cuts
    cut = tmp_path / "tape.mov"
    cut.write_bytes(data[:at + kept] if kept > 0 else data[:kept])
    assert_refused(tmp_path, cut, "tape.mov is truncated or still being written (its index, the moov box, is cut "
                                  "short)")


def test_a_truncated_mxf_is_refused(tmp_path):
    """MXF states its length like Matroska: the old code restored the one frame that decoded and exited 0."""
    source = make_clip(tmp_path / "full.mxf", frames=8, size=(128, 96), codec="mpeg2video", audio=False)
    cut = tmp_path / "tape.mxf"
    cut.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    source.unlink()
    assert_refused(tmp_path, cut, "tape.mxf is truncated: decoding stopped after 1 frames (0.08 s of 0.33 s)")


def _garbled_audio(source: Path, target: Path) -> Path:
    """`source` remuxed with every audio packet's bytes replaced by noise (the video packets kept)."""
    noise = np.random.default_rng(0)
    with av.open(str(source)) as inp, av.open(str(target), "w") as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        for packet in inp.demux():
            if packet.dts is None:
                continue
            index = packet.stream.index
            if packet.stream.type == "audio":
                garbled = av.Packet(noise.integers(0, 256, packet.size, dtype=np.uint8).tobytes())
                garbled.pts, garbled.dts, garbled.time_base = packet.pts, packet.dts, packet.time_base
                packet = garbled
            packet.stream = streams[index]
            out.mux(packet)
    return target


def test_a_ts_whose_audio_cannot_be_read_is_restored_without_it_and_says_so(tmp_path, warnings_logged):
    """The old code copied the unreadable track, the muxer refused it, and the error blamed the video codec
    ('a .ts file cannot hold libx264 video'), with exit 2 and no output."""
    clean = make_clip(tmp_path / "clean.ts", frames=8, size=(128, 96), audio_codec="mp2")
    source = _garbled_audio(clean, tmp_path / "news.ts")
    original = source.read_bytes()
    result = restore(source, "-o", tmp_path / "out.ts")
    assert result.exit_code == 0, result.output
    assert source.read_bytes() == original
    with av.open(str(tmp_path / "out.ts")) as out:
        assert [s.type for s in out.streams] == ["video"]
        assert sum(1 for _ in out.decode(video=0)) == 8
    assert "audio stream 1 (mp3) is left out: its sample rate and channels cannot be read (damaged or cut short)" \
        in warnings_logged.text


def _pes_pts(data: bytearray, stream_id: int) -> list[int]:
    """Offsets of the 5-byte PTS fields of an MPEG-TS file's PES packets of one stream id (0xC0: the first
    audio), in file order."""
    found = []
    for at in range(0, len(data) - 188 + 1, 188):
        head = data[at:at + 4]
        if head[0] != 0x47 or not head[1] & 0x40:  # a packet that starts a PES
            continue
        start = at + 4 + (1 + data[at + 4] if head[3] & 0x20 else 0)  # after the adaptation field
        if data[start:start + 3] == b"\x00\x00\x01" and data[start + 3] == stream_id and data[start + 7] & 0x80:
            found.append(start + 9)
    return found


def test_copied_audio_whose_times_run_backwards_is_left_out_and_said(tmp_path, warnings_logged):
    """A broadcast recording with a damaged audio timestamp (one PES's PTS set back to an earlier one's): the
    muxer refused the packet and the run ended 'encoding frame 5 into out.ts failed: Invalid argument', blaming
    the output. Now the packet is left out, in one warning, and every frame is restored."""
    source = make_clip(tmp_path / "in.ts", frames=12, size=(128, 96), audio_codec="mp2")
    data = bytearray(source.read_bytes())
    fields = _pes_pts(data, 0xC0)
    assert len(fields) > 6
    data[fields[5]:fields[5] + 5] = data[fields[2]:fields[2] + 5]
    damaged = tmp_path / "damaged.ts"
    damaged.write_bytes(bytes(data))
    result = restore(damaged, "-o", tmp_path / "out.ts")
    assert result.exit_code == 0, result.output
    assert [r.getMessage() for r in warnings_logged.records] == \
        ["stream #1 (audio): 1 packet left out, its time runs backwards (damaged data)"]
    with av.open(str(tmp_path / "out.ts")) as out:
        assert sum(1 for _ in out.decode(video=0)) == 12


def test_an_output_name_past_the_limit_is_one_line_before_any_work(tmp_path):
    """A legal 250-byte name with _restored added is 259 bytes: it ended as 'File name too long' and the full
    path, with no way out named. Said with -o OUTPUT as the way out, for a photo, a folder and a name that -o
    gives without its extension; nothing is written."""
    photo = tmp_path / ("e" * 246 + ".jpg")
    Image.fromarray(astronaut()).save(photo)
    shown = "e" * 40 + "..." + "eee_restored.jpg"
    assert_refused(tmp_path, photo, f"the output name {shown} is 259 bytes (_restored added to the input's name), "
                                    "more than the 255 a file name may have there; give a shorter one with -o OUTPUT")
    album = tmp_path / ("f" * 250)
    album.mkdir()
    Image.fromarray(astronaut()).save(album / "a.jpg")
    assert_refused(tmp_path, album, f"the output name {'f' * 40}...{'f' * 7}_restored is 259 bytes (_restored "
                                    "added to the input's name), more than the 255 a file name may have there; "
                                    "give a shorter one with -o OUTPUT")
    assert_refused(tmp_path, photo, f"the output name {'g' * 40}...{'g' * 12}.jpg is 257 bytes, more than the "
                                    "255 a file name may have there; give a shorter one with -o OUTPUT",
                   "-o", tmp_path / ("g" * 253))


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header gives a size and whose data is a few rows: restore must refuse it before decoding."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\0" * (3 * width + 1) * 4)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def test_a_photo_past_the_size_limit_is_named_in_one_line(tmp_path):
    """Past 179 MP Pillow refused a photo with its own 'could be decompression bomb DOS attack' message; past
    restore's own 400 MP (its memory) the line names the size, alone and in a folder, whose other photos go on."""
    album = tmp_path / "album"
    album.mkdir()
    huge = album / "panorama.png"
    huge.write_bytes(_png_claiming(25000, 16400))
    line = ("panorama.png is 25000 x 16400 pixels (410,000,000), more than the 400,000,000 restore takes (18-30 bytes of "
            "memory a pixel); scale it down or cut it into parts")
    assert_refused(tmp_path, huge, line)
    Image.fromarray(astronaut()).save(album / "face.jpg")
    result = restore(album)
    assert result.exit_code == 3, result.output  # a folder restored but for the files it names
    assert f"warning: skipped panorama.png: {line.replace('panorama.png', 'it', 1)}" in result.stderr
    assert sorted(p.name for p in (tmp_path / "album_restored").iterdir()) == ["face.jpg"]


def test_an_animated_webp_past_pillows_limit_is_held_to_a_photos_size(tmp_path, monkeypatch):
    """An animated WebP (read by Pillow, restored as a video) past Pillow's limit (179 MP; lowered here, as is
    restore's 400 MP, for a 512 x 512 one) ended 'cannot read ... (Image size (262144 pixels) exceeds limit of
    200000 pixels, could be decompression bomb DOS attack.)'. Its frames are held to a photo's size instead:
    restored under restore's limit, past it refused in restore's own line."""
    from clrface_video.io import photo_read
    from clrface_video.io.webp_frames import probe_webp

    frames = [Image.fromarray(astronaut()), Image.fromarray(astronaut()[:, ::-1])]
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100_000)
    source = tmp_path / "party.webp"
    frames[0].save(source, save_all=True, append_images=frames[1:], duration=100)
    result = restore(source, "-o", tmp_path / "out.webp")
    assert result.exit_code == 0, result.output
    assert probe_webp(tmp_path / "out.webp").frames == 2
    (tmp_path / "out.webp").unlink()
    monkeypatch.setattr(photo_read, "MAX_PIXELS", 200_000)
    assert_refused(tmp_path, source, "party.webp is 512 x 512 pixels (262,144), more than the 200,000 restore takes "
                   "(18-30 bytes of memory a pixel); scale it down or cut it into parts")


JOINED_GIF = "flip.gif holds 2 frames, of which FFmpeg reads 1 (it joins frames stored without a graphic control " \
    "block, as a GIF87a stores them, into one); save it again as a GIF89a with frame delays, an animated PNG or a video"


def joined_gif(folder: Path) -> Path:
    """A GIF87a (Pillow writes one when given no delays): its frames are stored without graphic control blocks,
    which FFmpeg's GIF reader joins into one."""
    source = folder / "flip.gif"
    Image.fromarray(astronaut()).save(source, save_all=True, append_images=[Image.fromarray(astronaut()[::-1])])
    assert source.read_bytes()[:6] == b"GIF87a" and Image.open(source).n_frames == 2
    return source


def test_a_gif_whose_frames_ffmpeg_joins_into_one_is_refused(tmp_path):
    """Restored, its copy was the first frame alone, without a word."""
    assert_refused(tmp_path, joined_gif(tmp_path), JOINED_GIF)


def test_a_gif_whose_frames_ffmpeg_joins_into_one_is_refused_wherever_it_is_read(tmp_path):
    """The check counted the frames decoded from the first one, so a --start stretch (decoded after a seek) and a
    Ray segment (io.decode's frames read by distributed.segments) were restored from the joined picture."""
    from clrface_video.distributed.segments import Segment, read_segment
    from clrface_video.errors import InputError
    from clrface_video.io.decode import read_frames
    from clrface_video.types import TimeSpan

    source = joined_gif(tmp_path)
    assert_refused(tmp_path, source, JOINED_GIF, "--start", "0.05", "-o", tmp_path / "part.mp4")
    for frames in (read_frames(source, span=TimeSpan(0.05, None)), read_segment(source, Segment(0, None, None), False)):
        with pytest.raises(InputError) as refused:
            next(iter(frames))
        assert str(refused.value) == JOINED_GIF


def test_a_camera_raw_file_is_refused_as_raw_not_sent_to_be_renamed(tmp_path):
    """`restore IMG_0001.CR2` said 'is a TIFF image, not a video file: name it .tif', which would restore the
    RAW's small embedded preview; -o out.jpg said to name the frames with a counter."""
    raw = tmp_path / "IMG_0001.CR2"
    buffer = BytesIO()
    Image.fromarray(astronaut()).save(buffer, format="TIFF")  # a CR2 is a TIFF inside, its preview first
    raw.write_bytes(buffer.getvalue())
    line = "IMG_0001.CR2 is a camera RAW file, which restore does not read: export a TIFF or JPEG from your RAW " \
           "developer (Lightroom, darktable, RawTherapee, ...) and restore that"
    assert_refused(tmp_path, raw, line)
    assert_refused(tmp_path, raw, line, "-o", tmp_path / "out.jpg")
    dng = raw.rename(tmp_path / "scan.dng")
    assert_refused(tmp_path, dng, line.replace("IMG_0001.CR2", "scan.dng"))


def test_a_dash_for_standard_input_or_output_is_refused(tmp_path, monkeypatch):
    """-o - wrote a file named -.mp4 (-.jpg for a photo) and input - said 'input not found: -': a job reads and
    writes files only."""
    monkeypatch.chdir(tmp_path)
    clip = make_clip(tmp_path / "clip.mp4", frames=2, size=(64, 48), audio=False)
    Image.fromarray(astronaut()[:48, :64]).save(tmp_path / "photo.jpg")
    output = "-o -: writing to standard output is not supported; give an output file or folder"
    assert_refused(tmp_path, clip.name, output, "-o", "-")
    assert_refused(tmp_path, "photo.jpg", output, "-o", "-")
    assert_refused(tmp_path, "-", "input -: reading standard input is not supported; give an input file or folder")
    assert_refused(tmp_path, "-", "input -: reading standard input is not supported; give an input file or folder",
                   "-o", "out.mp4")
    assert_refused(tmp_path, clip.name, "-o /dev/stdout: writing to a device (/dev/stdout, ...) is not supported; "
                   "give an output file or folder", "-o", "/dev/stdout")
    assert_refused(tmp_path, clip.name, "-o /dev/null: writing to a device (/dev/stdout, ...) is not supported; "
                   "give an output file or folder", "-o", "/dev/null")
    if Path("/dev/shm").is_dir():  # a file system below /dev (RAM), a folder like any other
        shm = Path(tempfile.mkdtemp(dir="/dev/shm"))
        try:
            done = CliRunner().invoke(cli, ["restore", clip.name, "-o", str(shm / "x.mp4"), "--model",
                                            "baseline-bicubic-sharpen", "-q"])
            assert done.exit_code == 0, done.output
            assert (shm / "x.mp4").stat().st_size > 0
        finally:
            shutil.rmtree(shm)
    (tmp_path / "-").write_bytes(clip.read_bytes())  # a video that is named -, given as ./-
    done = CliRunner().invoke(cli, ["restore", "./-", "-o", "dash.mp4", "--model", "baseline-bicubic-sharpen", "-q"])
    assert done.exit_code == 0, done.output
    with av.open(str(tmp_path / "dash.mp4")) as copy:
        assert copy.streams.video[0].frames == 2


def _sound(path: Path) -> tuple[int, float]:
    """A file's audio: its samples, and where they end in seconds from its first picture."""
    with av.open(str(path)) as container:
        start = float(container.streams.video[0].start_time * container.streams.video[0].time_base)
        frames = list(container.decode(audio=0))
    return sum(frame.samples for frame in frames), float(frames[-1].time) + frames[-1].samples / frames[-1].rate - start


def test_an_mpg_cut_short_is_restored_to_its_end_and_said(tmp_path, warnings_logged):
    """An MPEG-PS states no length, so a copy cut off mid-transfer was restored to where it stops with exit 0 and
    not a word: an archivist took it for the whole recording. Its last packet, cut short, says so: it is still
    restored as far as it goes (what is there plays), with one line that names where it ends. Its muxer stores
    sound beside pictures shown up to a second later, so the cut took more of the sound: all that is there is
    kept, and the line says where it stops (it said the pictures' end alone, a second past the last sound)."""
    whole = make_clip(tmp_path / "tape.mpg", frames=72, size=(128, 96), codec="mpeg2video", audio_codec="mp2")
    data = whole.read_bytes()
    cut = tmp_path / "tape_copy.mpg"
    cut.write_bytes(data[:len(data) * 6 // 10])
    result = restore(cut, "-o", tmp_path / "out.mkv")
    assert result.exit_code == 0, result.output
    with av.open(str(cut)) as source:
        there = sum(1 for _ in source.decode(video=0))
    with av.open(str(tmp_path / "out.mkv")) as out:
        assert sum(1 for _ in out.decode(video=0)) == there < 72
    (samples, sound), (kept, _) = _sound(cut), _sound(tmp_path / "out.mkv")
    assert kept == samples  # every sample the cut file holds
    assert sound < there / 24 - 0.5  # the file's own loss: its sound stops well before its pictures
    said = (f"tape_copy.mpg ends mid-stream (its last packet is cut short: a copy or recording cut off), so it is "
            f"restored up to {there / 24:.2f} s, where its pictures stop (its sound stops at {sound:.2f} s); what "
            "came after is not in the file")
    assert {r.getMessage() for r in warnings_logged.records if "mid-stream" in r.getMessage()} == {said}
    assert restore(whole, "-o", tmp_path / "whole.mkv").exit_code == 0  # the whole file: not a word
    assert {r.getMessage() for r in warnings_logged.records if "mid-stream" in r.getMessage()} == {said}


def test_a_folders_output_named_as_a_video_or_photo_is_refused(tmp_path, monkeypatch):
    """restore PHOTOS -o x.mp4 made a folder named x.mp4: a folder's output is a folder, and a name with a video
    or photo extension is almost surely a mistake. One that is a folder already is taken, and so is -o x.mp4/."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "PHOTOS").mkdir()
    Image.fromarray(astronaut()[:48, :64]).save(tmp_path / "PHOTOS" / "a.jpg")
    for name in ("x.mp4", "x.jpg"):
        assert_refused(tmp_path, "PHOTOS", f"-o {name} names a file, but PHOTOS is a folder: its output is a folder "
                       "(for example -o PHOTOS_restored)", "-o", name)
        assert not (tmp_path / name).exists()
    with pytest.raises(ClrfaceError, match=r"^output x.mp4 names a file, but PHOTOS is a folder: its output is a "
                                           r"folder \(for example output PHOTOS_restored\)$"):
        restore_video("PHOTOS", "x.mp4", model="baseline-bicubic-sharpen", device="cpu")
    assert not (tmp_path / "x.mp4").exists()
    assert restore("PHOTOS", "-o", "new.mp4/", "-q").exit_code == 0
    (tmp_path / "old.mp4").mkdir()
    assert restore("PHOTOS", "-o", "old.mp4", "-q").exit_code == 0
    assert (tmp_path / "new.mp4" / "a.jpg").is_file() and (tmp_path / "old.mp4" / "a.jpg").is_file()


def test_an_mxf_output_at_a_rate_it_cannot_hold_is_refused_in_its_one_line_alone(tmp_path):
    """Regression: a 20 fps clip with AAC sound into .mxf printed 'audio stream 1 (aac) cannot be stored in .mxf;
    it is left out' before the error refusing the rate, as the audio was set up before FFmpeg's MXF writer refused
    the rate: a run that writes nothing warned of a track it would lose. The rate is checked first."""
    src = make_clip(tmp_path / "src.mp4", frames=4, size=(64, 48), fps=20, face=False)
    before = snapshot(tmp_path)
    result = restore(src, "-o", tmp_path / "r.mxf")
    assert result.exit_code == 2
    assert result.stderr == ("error: a .mxf file holds only broadcast frame rates (23.976 to 60 fps), and this video "
                             "runs at 20 fps; use .mkv or .mov\n")
    assert snapshot(tmp_path) == before

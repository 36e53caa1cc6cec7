"""A lossless audio track that the output's container cannot hold is coded again losslessly, never left out."""
from __future__ import annotations

import av
import pytest

from clrface_video.io.decode import probe_video, read_frames
from clrface_video.io.encode import VideoWriter
from clrface_video.types import TimeSpan
from tests.media import make_clip
from tests.test_containers_timing import audio_start, decoded_samples, times
from tests.test_io_video import SMALL, copy_video


def audio_codec(path) -> str:
    with av.open(str(path)) as container:
        return container.streams.audio[0].codec_context.name


@pytest.mark.parametrize("suffix", [".mov", ".mxf"])
def test_flac_from_matroska_is_kept_sample_for_sample(tmp_path, warnings_logged, suffix):
    """Regression: the mov and mxf muxers refuse FLAC (mov with strict experimental too), and an editor's .mkv
    with FLAC sound came out of a .mov run silent, with a warning. Its samples are now coded as PCM of their
    depth, each decoded sample the source's (.mxf ends the sound with the last frame, at 1 s)."""
    src = make_clip(tmp_path / "in.mkv", frames=24, size=SMALL, audio_codec="flac")
    out = copy_video(src, tmp_path / f"out{suffix}")
    assert audio_codec(out) == "pcm_s16le"
    heard, played = decoded_samples(src), decoded_samples(out)
    assert len(played) >= 48000 and (played == heard[:len(played)]).all()
    assert f"audio stream 1 (flac) cannot be copied into {suffix}; it is re-encoded losslessly as pcm_s16le, " \
        "every sample kept" in warnings_logged.text and "left out" not in warnings_logged.text


def test_a_stretch_of_flac_coded_again_starts_at_its_first_frames_sample(tmp_path):
    """A stretch of the FLAC track coded again for .mov begins with the source's sample at the first frame's
    time (0.5 s, sample 24000), its first packet's earlier samples left out, and every sample after it follows."""
    src = make_clip(tmp_path / "in.mkv", frames=48, size=SMALL, audio_codec="flac")
    span = TimeSpan(0.5, 1.5)
    with VideoWriter(tmp_path / "part.mov", src, probe_video(src), span=span) as writer:
        for frame in read_frames(src, span=span):
            writer.write(frame)
    assert times(writer.output)[0] == 0 and audio_start(writer.output) == 0
    heard, played = decoded_samples(src), decoded_samples(writer.output)
    assert len(played) >= 48000 and (played[:48000] == heard[24000:72000]).all()


def test_lossy_audio_the_container_refuses_is_still_left_out_not_coded_again(tmp_path, warnings_logged):
    """Lossy audio is not coded again (each coding loses more): AAC, which .mxf refuses, is left out, as before,
    with a warning."""
    src = make_clip(tmp_path / "in.mkv", frames=12, size=SMALL)
    out = copy_video(src, tmp_path / "out.mxf")
    with av.open(str(out)) as container:
        assert not container.streams.audio
    assert "audio stream 1 (aac) cannot be stored in .mxf; it is left out" in warnings_logged.text

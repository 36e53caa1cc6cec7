"""An MPEG program stream cut short is told from a whole one by its last packet, and its sound's end is found."""
from __future__ import annotations

import av

from clrface_video.io.program_stream import cut_short, sound_end
from tests.media import make_clip


def test_a_cut_within_a_pack_or_packet_is_seen_and_a_whole_file_passes(tmp_path):
    """Cuts in a payload, in a PES header and in a pack header are seen; the whole file, its packets ending where
    it does, is not cut; a file of another kind is not judged (None)."""
    whole = make_clip(tmp_path / "tape.mpg", frames=24, size=(128, 96), codec="mpeg2video", audio_codec="mp2")
    data = whole.read_bytes()
    last_pack = data.rindex(b"\x00\x00\x01\xba")
    assert cut_short(whole) is False
    for end in (len(data) - 1, len(data) // 2, last_pack + 5, last_pack + 2, last_pack + 12 + 3):
        cut = tmp_path / f"cut_{end}.mpg"
        cut.write_bytes(data[:end])
        assert cut_short(cut) is True, end
    other = make_clip(tmp_path / "clip.mkv", frames=4, size=(128, 96))
    assert cut_short(other) is None


def test_the_sound_of_a_cut_file_is_found_to_end_before_its_pictures(tmp_path):
    """The muxer stores sound beside later pictures: cut, the file's last audio packet ends about a second before
    its last picture, read from its end; a file without sound has no end of sound (None)."""
    whole = make_clip(tmp_path / "tape.mpg", frames=72, size=(128, 96), codec="mpeg2video", audio_codec="mp2")
    cut = tmp_path / "cut.mpg"
    cut.write_bytes(whole.read_bytes()[:whole.stat().st_size * 6 // 10])
    with av.open(str(cut)) as container:
        sounds = list(container.decode(audio=0))
    with av.open(str(cut)) as container:
        pictures = list(container.decode(video=0))
    heard = float(sounds[-1].time) + sounds[-1].samples / sounds[-1].rate
    assert abs(sound_end(cut) - heard) < 0.001
    assert heard < float(pictures[-1].time) - 0.5
    silent = make_clip(tmp_path / "silent.mpg", frames=24, size=(128, 96), codec="mpeg2video", audio=False)
    assert sound_end(silent) is None

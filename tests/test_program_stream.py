"""An MPEG program stream cut short is told from a whole one by its last packet."""
from __future__ import annotations

from clrface_video.io.program_stream import cut_short
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

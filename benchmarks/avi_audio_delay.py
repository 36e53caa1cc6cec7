"""Measure how late each lossy codec's sound is heard in an .avi, which stores no encoder delay: its priming.

    python benchmarks/avi_audio_delay.py

For each codec a track is coded again in for an .avi (MP3; AAC where LAME is missing) and those of DVD (MP2, AC-3),
0.1 s of noise from 0.5 s at 48 kHz stereo is coded at the rate lossless_audio.HIGH_RATE names, muxed into an
in-memory .avi, decoded back with FFmpeg and found by cross-correlation: it prints the samples and milliseconds by
which it sounds late, beside lossless_audio.encoder_delay (the priming SampleConverter puts in place of a track's
first samples there). A track copied into an .avi keeps its codec's delay heard late, as it cannot be coded again
without loss.
"""
from __future__ import annotations

import io

import av
import numpy as np

from clrface_video.io import lossless_audio

RATE = 48000
CODECS = {"libmp3lame": 320_000, "aac": 512_000, "mp2": 384_000, "ac3": 448_000}


def late(codec: str, bit_rate: int, sound: np.ndarray) -> tuple[int, int]:
    """(samples the burst is heard late by, encoder_delay) for `sound` coded by `codec` into an .avi."""
    data = io.BytesIO()
    with av.open(data, "w", format="avi") as out:
        stream = out.add_stream(codec, rate=RATE, layout="stereo")
        stream.codec_context.format = stream.codec_context.codec.audio_formats[0].name
        stream.codec_context.bit_rate = bit_rate
        stream.codec_context.open()
        delay = lossless_audio.encoder_delay(stream.codec_context)
        size = stream.codec_context.frame_size
        for start in range(0, len(sound), size):
            part = np.pad(sound[start:start + size], (0, max(0, start + size - len(sound))))
            frame = av.AudioFrame.from_ndarray(np.repeat(part, 2)[None], format="flt", layout="stereo")
            frame.sample_rate, frame.pts = RATE, start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    data.seek(0)
    with av.open(data) as back:
        heard = np.concatenate([frame.to_ndarray()[0] if frame.format.is_planar else frame.to_ndarray()[0][::2]
                                for frame in back.decode(audio=0)]).astype(np.float64)
    burst = sound[RATE // 2:RATE * 6 // 10].astype(np.float64)
    return int(np.argmax(np.correlate(heard, burst, "valid"))) - RATE // 2, delay


def main() -> None:
    sound = np.zeros(RATE, np.float32)
    sound[RATE // 2:RATE * 6 // 10] = np.clip(0.3 * np.random.default_rng(1).standard_normal(RATE // 10), -0.9, 0.9)
    print(f"{'codec':<12}{'heard late':>12}{'ms':>8}{'encoder_delay':>15}")
    for codec, bit_rate in CODECS.items():
        if codec in av.codecs_available:
            samples, delay = late(codec, bit_rate, sound)
            print(f"{codec:<12}{samples:>12}{1000 * samples / RATE:>8.1f}{delay:>15}")


if __name__ == "__main__":
    main()

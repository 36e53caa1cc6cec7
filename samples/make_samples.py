"""Generate the degraded astronaut sample clip and still (deterministic: fixed seed, single-threaded x264)."""
from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from skimage import data

SEED = 2024
FPS = 25
SECONDS = 3
SIZE = 320
AUDIO_RATE = 48000
AUDIO_FRAME = 1024
FACE_CENTER = (215.0, 125.0)  # (x, y) of the face in scikit-image's 512x512 astronaut


def degrade(rgb: np.ndarray, rng: np.random.Generator, scale: float = 3.0, sigma: float = 1.0,
            noise: float = 6.0, jpeg_quality: int = 35) -> np.ndarray:
    """Blur, downscale, add noise, JPEG-compress and upscale back: a classic blind degradation."""
    height, width = rgb.shape[:2]
    blurred = cv2.GaussianBlur(rgb, (0, 0), sigma)
    small = cv2.resize(blurred, (round(width / scale), round(height / scale)), interpolation=cv2.INTER_AREA)
    noisy = np.clip(small.astype(np.float32) + rng.normal(0.0, noise, small.shape), 0, 255).astype(np.uint8)
    ok, encoded = cv2.imencode(".jpg", noisy[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    assert ok
    decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR)[..., ::-1]
    return np.ascontiguousarray(cv2.resize(decoded, (width, height), interpolation=cv2.INTER_CUBIC))


def camera_view(image: np.ndarray, t: float, size: int) -> np.ndarray:
    """A slow hand-held pan and zoom over the astronaut (t in 0..1) that keeps the face in view."""
    span = 340.0 - 50.0 * t
    cx = FACE_CENTER[0] + 15.0 * np.sin(2 * np.pi * t)
    cy = FACE_CENTER[1] + 45.0 + 8.0 * np.cos(2 * np.pi * t)
    half = span / 2
    src = np.float32([[cx - half, cy - half], [cx + half, cy - half], [cx - half, cy + half]])
    dst = np.float32([[0, 0], [size, 0], [0, size]])
    matrix = cv2.getAffineTransform(src, dst)
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)


def tone(index: int) -> av.AudioFrame:
    """Frame `index` of a soft two-note mono tone."""
    t = (np.arange(AUDIO_FRAME) + index * AUDIO_FRAME) / AUDIO_RATE
    freq = np.where(t % 1.0 < 0.5, 440.0, 660.0)
    samples = (0.2 * np.sin(2 * np.pi * freq * t)).astype(np.float32)[None, :]
    frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
    frame.sample_rate = AUDIO_RATE
    frame.pts, frame.time_base = index * AUDIO_FRAME, Fraction(1, AUDIO_RATE)
    return frame


def make_video(path: Path, image: np.ndarray, rng: np.random.Generator) -> None:
    frames = FPS * SECONDS
    audio_frames = int(np.ceil(SECONDS * AUDIO_RATE / AUDIO_FRAME))
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=FPS)
        video.width = video.height = SIZE
        video.pix_fmt = "yuv420p"
        video.options = {"crf": "26", "preset": "slow", "threads": "1"}
        ctx = video.codec_context
        ctx.color_primaries, ctx.color_trc, ctx.colorspace, ctx.color_range = 1, 1, 1, 1
        audio = out.add_stream("aac", rate=AUDIO_RATE, layout="mono")
        audio.bit_rate = 48000
        next_audio = 0
        for i in range(frames):
            rgb = degrade(camera_view(image, i / (frames - 1), SIZE), rng)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
                format="yuv420p", dst_colorspace=1, dst_color_range=1)
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            out.mux(video.encode(frame))
            while next_audio < audio_frames and next_audio * AUDIO_FRAME / AUDIO_RATE <= i / FPS:
                out.mux(audio.encode(tone(next_audio)))
                next_audio += 1
        out.mux(video.encode(None))
        for index in range(next_audio, audio_frames):
            out.mux(audio.encode(tone(index)))
        out.mux(audio.encode(None))


def make_still(path: Path, image: np.ndarray, rng: np.random.Generator) -> None:
    rgb = degrade(image, rng, scale=4.0, sigma=1.2, noise=5.0, jpeg_quality=40)
    ok, encoded = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    path.write_bytes(encoded.tobytes())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args()
    image = data.astronaut()
    make_video(args.out / "astronaut_degraded.mp4", image, np.random.default_rng(SEED))
    make_still(args.out / "astronaut.jpg", image, np.random.default_rng(SEED + 1))
    for name in ("astronaut_degraded.mp4", "astronaut.jpg"):
        print(f"{name}: {(args.out / name).stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main()

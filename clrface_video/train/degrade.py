"""Seeded on-the-fly degradations for training pairs: blur, downsampling, noise, JPEG and x264 artefacts."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ..opencv import cv2

# Interpolations drawn at random for the downsampling step, and for the way back up (INTER_AREA and
# INTER_NEAREST enlarge into blocks, which the pipeline's bilinear alignment warp never produces).
INTERPOLATIONS: tuple[int, ...] = (cv2.INTER_NEAREST, cv2.INTER_LINEAR, cv2.INTER_AREA, cv2.INTER_CUBIC)
UPSAMPLE_INTERPOLATIONS: tuple[int, ...] = (cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_LANCZOS4)


@dataclass(frozen=True)
class DegradeConfig:
    """Parameter ranges of the classical blind-restoration degradation model.

    y = up( codec_or_jpeg( down( blur(x) ) + noise ) ), applied in that order, as in GFPGAN /
    CodeFormer training, plus x264 video-codec artefacts for the video product. Each step is applied
    with its probability; ranges are closed intervals sampled uniformly (scales log-uniformly).
    """

    blur_prob: float = 0.9
    motion_blur_prob: float = 0.2  # of the blurred samples, the share that get a motion kernel instead
    gaussian_sigma: tuple[float, float] = (0.2, 3.0)  # pixels at the original resolution
    motion_length: tuple[int, int] = (3, 11)  # kernel length in pixels
    downsample_prob: float = 0.9
    scale: tuple[float, float] = (1.0, 8.0)  # downsampling factor, log-uniform
    noise_prob: float = 0.7
    gaussian_noise: tuple[float, float] = (0.0, 12.0)  # std in 0..255 units
    poisson_prob: float = 0.3  # of the noisy samples, the share that also get shot noise
    poisson_peak: tuple[float, float] = (20.0, 200.0)  # photons at white; lower = noisier
    compress_prob: float = 0.9
    codec_prob: float = 0.35  # of the compressed samples, the share that go through x264 instead of JPEG
    jpeg_quality: tuple[int, int] = (20, 90)
    crf: tuple[int, int] = (30, 48)  # x264 constant rate factor; 51 is the worst
    codec_frames: int = 1  # frames per x264 sequence when degrading one image (1 = intra frame only)
    light_prob: float = 0.0  # share of faces given LIGHT's ranges instead (0 draws nothing extra: seeds unchanged)


# What a decent camera, or a large face scaled down to the crop, leaves: each step with probability 0.5-0.7, all
# mild, a few faces untouched. The blend-gate stage mixes it in so the gate also sees faces that need
# nothing; the restorer's stages never do (light_prob 0).
LIGHT = DegradeConfig(blur_prob=0.5, motion_blur_prob=0.0, gaussian_sigma=(0.2, 1.0), downsample_prob=0.5,
                      scale=(1.0, 2.0), noise_prob=0.5, gaussian_noise=(0.0, 4.0), poisson_prob=0.0,
                      compress_prob=0.7, codec_prob=0.0, jpeg_quality=(60, 95))


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Isotropic Gaussian blur with a kernel of about 6 sigma."""
    k = max(3, int(np.ceil(sigma * 3)) * 2 + 1)
    return cv2.GaussianBlur(image, (k, k), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)


def motion_kernel(length: int, angle_deg: float) -> np.ndarray:
    """A normalised line kernel (length x length) at the given angle."""
    kernel = np.zeros((length, length), np.float32)
    c = (length - 1) / 2
    t = np.linspace(-c, c, 4 * length)
    a = np.deg2rad(angle_deg)
    xs = np.clip(np.round(c + t * np.cos(a)).astype(int), 0, length - 1)
    ys = np.clip(np.round(c + t * np.sin(a)).astype(int), 0, length - 1)
    kernel[ys, xs] = 1.0
    return kernel / kernel.sum()


def resize(image: np.ndarray, width: int, height: int, interpolation: int) -> np.ndarray:
    return cv2.resize(image, (max(1, width), max(1, height)), interpolation=interpolation)


def add_noise(image: np.ndarray, sigma: float, peak: float | None, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise of std sigma (0..255 units), plus Poisson shot noise at `peak` photons when given."""
    x = image.astype(np.float32)
    if peak is not None:
        x = rng.poisson(np.clip(x, 0, 255) / 255.0 * peak).astype(np.float32) * (255.0 / peak)
    if sigma > 0:
        x = x + rng.normal(0.0, sigma, size=x.shape).astype(np.float32)
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """Round trip through OpenCV's JPEG encoder (RGB in, RGB out)."""
    ok, buf = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])


def x264(frames: Sequence[np.ndarray], crf: int) -> list[np.ndarray]:
    """Encode frames of one size with libx264 (yuv420p, ultrafast, given CRF) and decode them back.

    Odd sides are edge-padded to even for 4:2:0 and cropped back afterwards.
    """
    import av

    h, w = frames[0].shape[:2]
    ph, pw = h + h % 2, w + w % 2
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = pw, ph, "yuv420p"
    enc.time_base = Fraction(1, 25)
    enc.options = {"crf": str(int(crf)), "preset": "ultrafast", "tune": "zerolatency"}
    packets = []
    for i, frame in enumerate(frames):
        padded = np.pad(frame, ((0, ph - h), (0, pw - w), (0, 0)), mode="edge") if (ph, pw) != (h, w) else frame
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(padded), format="rgb24").reformat(format="yuv420p")
        vf.pts = i
        packets.extend(enc.encode(vf))
    packets.extend(enc.encode(None))
    dec = av.CodecContext.create("h264", "r")
    out: list[np.ndarray] = []
    for packet in packets:
        out.extend(f.to_ndarray(format="rgb24")[:h, :w] for f in dec.decode(packet))
    out.extend(f.to_ndarray(format="rgb24")[:h, :w] for f in dec.decode(None))
    if len(out) != len(frames):
        raise RuntimeError(f"x264 round trip returned {len(out)} frames for {len(frames)}")
    return out


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def degrade(image: np.ndarray, rng: np.random.Generator, config: DegradeConfig = DegradeConfig()) -> np.ndarray:
    """Degrade one RGB uint8 (H, W, 3) image; returns a uint8 image of the same size.

    Deterministic given the state of `rng`: the same seed gives the same output.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"degrade() expects RGB uint8 (H, W, 3), got {image.shape} {image.dtype}")
    if config.light_prob > 0 and rng.random() < config.light_prob:
        config = LIGHT
    h, w = image.shape[:2]
    x = image
    # 1 blur
    if rng.random() < config.blur_prob:
        if rng.random() < config.motion_blur_prob:
            length = int(rng.integers(config.motion_length[0], config.motion_length[1] + 1))
            x = cv2.filter2D(x, -1, motion_kernel(length, float(rng.uniform(0, 180))), borderType=cv2.BORDER_REFLECT)
        else:
            x = gaussian_blur(x, float(rng.uniform(*config.gaussian_sigma)))
    # 2 downsample
    if rng.random() < config.downsample_prob:
        s = _log_uniform(rng, *config.scale)
        x = resize(x, round(w / s), round(h / s), INTERPOLATIONS[int(rng.integers(len(INTERPOLATIONS)))])
    # 3 noise
    if rng.random() < config.noise_prob:
        sigma = float(rng.uniform(*config.gaussian_noise))
        peak = _log_uniform(rng, *config.poisson_peak) if rng.random() < config.poisson_prob else None
        x = add_noise(x, sigma, peak, rng)
    # 4 compression: JPEG or x264
    if rng.random() < config.compress_prob:
        if rng.random() < config.codec_prob:
            crf = int(rng.integers(config.crf[0], config.crf[1] + 1))
            x = x264([x] * config.codec_frames, crf)[-1]
        else:
            x = jpeg(x, int(rng.integers(config.jpeg_quality[0], config.jpeg_quality[1] + 1)))
    # 5 back to the original size
    if x.shape[:2] != (h, w):
        x = resize(x, w, h, UPSAMPLE_INTERPOLATIONS[int(rng.integers(len(UPSAMPLE_INTERPOLATIONS)))])
    return np.ascontiguousarray(x)


def paint_flat_region(hq: np.ndarray, lq: np.ndarray, rng: np.random.Generator,
                      depth: tuple[float, float] = (0.0, 0.3)) -> tuple[np.ndarray, np.ndarray]:
    """Paint one flat, sharp-edged region into both faces of a (clean, degraded) pair, the same in each.

    It enters from a random side with a straight, slanted edge, each end of the edge `depth` x side in from that
    side: what an aligned crop shows where the frame it came from was padded (as KEEP's aligned clips are) or
    had a letterbox bar. Its colour is a random grey or a random colour. A restorer trained without it judges a
    face's blur by the sharpest edge in the crop and restores a blurred face beside such an edge much less
    (benchmarks/flat_region.py).
    """
    s = hq.shape[0]
    near, far = rng.uniform(depth[0] * s, depth[1] * s, size=2)
    edge = near + (far - near) * (np.arange(s) + 0.5) / s  # the edge's depth at each column, for the top side
    rows = np.arange(s)[:, None] + 0.5
    alpha = np.clip(edge[None, :] - rows + 0.5, 0.0, 1.0)  # 1 inside, 0 outside, one pixel of ramp at the edge
    alpha = np.rot90(alpha, int(rng.integers(4)))[..., None].astype(np.float32)
    colour = np.full(3, rng.uniform(0, 255)) if rng.random() < 0.5 else rng.uniform(0, 255, size=3)
    colour = colour.astype(np.float32)

    def paint(image: np.ndarray) -> np.ndarray:
        out = image.astype(np.float32) * (1.0 - alpha) + colour * alpha
        return np.clip(np.round(out), 0, 255).astype(np.uint8)

    return paint(hq), paint(lq)


def degrade_batch(images: np.ndarray, seeds: Sequence[int], config: DegradeConfig = DegradeConfig()) -> np.ndarray:
    """Degrade (N, H, W, 3) uint8 images, image i with its own generator seeded by seeds[i]."""
    if len(images) != len(seeds):
        raise ValueError(f"{len(images)} images but {len(seeds)} seeds")
    return np.stack([degrade(img, np.random.default_rng(int(s)), config) for img, s in zip(images, seeds)])


def degrade_sequence(frames: Sequence[np.ndarray], rng: np.random.Generator,
                     config: DegradeConfig = DegradeConfig()) -> list[np.ndarray]:
    """Degrade a short clip with one set of parameters and one x264 pass over all frames (inter frames).

    Blur, scale and CRF are drawn once; noise differs per frame, as from a real sensor.
    """
    h, w = frames[0].shape[:2]
    sigma = float(rng.uniform(*config.gaussian_sigma))
    s = _log_uniform(rng, *config.scale)
    noise = float(rng.uniform(*config.gaussian_noise))
    crf = int(rng.integers(config.crf[0], config.crf[1] + 1))
    small = [add_noise(resize(gaussian_blur(f, sigma), round(w / s), round(h / s), cv2.INTER_AREA), noise, None, rng)
             for f in frames]
    return [resize(f, w, h, cv2.INTER_LINEAR) for f in x264(small, crf)]

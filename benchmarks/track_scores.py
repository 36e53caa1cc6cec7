"""Each face track of a video stretch: its detector scores frame by frame and the share of its restoration pasted.

    python benchmarks/track_scores.py VIDEO [--start 0] [--duration 2] [--threshold 0.6]

Detection and tracking as `clrface-video restore` runs them (shot cuts end tracks; a face scored under the
threshold but within the video floor counts when it continues a track), without restoring anything. A
share is what is pasted, as the restore's story computes it: under 1 for a face scored under the threshold,
fading out instead of being left alone, and moved at most 1/8 a frame (story.WeightRamp), so a track found
mid-shot fades in; "-" is a frame where the track's face was not found.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from clrface_video.config import VIDEO_THRESHOLD, RestoreConfig
from clrface_video.io.decode import read_frames
from clrface_video.io.pixels import to_uint8
from clrface_video.pipeline import load_models
from clrface_video.report import StageTimer
from clrface_video.story import FrameStory
from clrface_video.types import TimeSpan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video", type=Path)
    parser.add_argument("--start", type=float, default=0.0)
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--threshold", type=float, default=VIDEO_THRESHOLD)
    args = parser.parse_args()
    config = RestoreConfig(model="baseline-bicubic-sharpen", device="cpu", det_threshold=args.threshold)
    story = FrameStory(load_models(config, video=True), config, StageTimer(), video=True)
    assert story.tracking is not None
    seen: dict[int, dict[int, tuple[float, float]]] = {}  # track -> frame -> (score, share)
    indices = []
    for frame in read_frames(args.video, span=TimeSpan(args.start, args.start + args.duration)):
        image = to_uint8(frame.image)
        indices.append(frame.index)
        for face in story.tracking.update(frame.index, story.detector.detect(image), image):
            share = story.tracking.ramp(face.track_id, frame.index, story.paste_weight(face.landmarks, face.face.score))
            seen.setdefault(face.track_id, {})[frame.index] = (face.face.score, share)
    print(f"{args.video.name}: frames {indices[0]}-{indices[-1]}, threshold {config.det_threshold}, video floor "
          f"{config.detection_floor(video=True):.2f}")
    for track, faces in seen.items():
        span = [i for i in indices if faces and min(faces) <= i <= max(faces)]
        scores = " ".join(f"{faces[i][0]:.2f}" if i in faces else "-" for i in span)
        shares = " ".join(f"{faces[i][1]:.2f}" if i in faces else "-" for i in span)
        low = [s for s, _ in faces.values() if s <= config.det_threshold]
        print(f"track {track}: frames {span[0]}-{span[-1]}, {len(faces)} found, {len(low)} under the threshold")
        print(f"  scores {scores}\n  shares {shares}")


if __name__ == "__main__":
    main()

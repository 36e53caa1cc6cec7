"""Training data: prepared aligned crops in memory, random flips, on-the-fly seeded degradation -> (hq, lq)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import ClrfaceError
from ..io import cv_files
from ..opencv import cv2
from .degrade import DegradeConfig, degrade, paint_flat_region
from .manifest import MANIFEST, PreparedFace, read_manifest


def check_prepared(data_dir: Path, resolution: int, batch_size: int) -> str:
    """Check, before a run folder is touched, that `data_dir` is a prepare-faces folder with at least one batch of
    training faces at the model's side; returns the split the preview grids use ('heldout', else 'train')."""
    manifest = Path(data_dir) / MANIFEST
    if not manifest.is_file():
        raise ClrfaceError(f"{data_dir} is not a prepare-faces folder (no {MANIFEST}); run "
                           f"`clrface-video prepare-faces YOUR_IMAGES {data_dir} --size {resolution}` first")
    rows = read_manifest(manifest)
    train = [r for r in rows if r.split == "train"]
    if len(train) < batch_size:
        raise ClrfaceError(f"{data_dir} has {len(train)} training faces, fewer than one batch of {batch_size}; "
                           "add faces or lower --batch-size")
    first = cv_files.imread(Path(data_dir) / train[0].file, cv2.IMREAD_UNCHANGED)
    if first is None:
        raise ClrfaceError(f"prepared crop missing or unreadable: {Path(data_dir) / train[0].file}")
    if first.shape[:2] != (resolution, resolution):
        raise ClrfaceError(f"the faces in {data_dir} are {first.shape[1]} px and this --config trains at "
                           f"{resolution} px; prepare them with --size {resolution}")
    return "heldout" if any(r.split == "heldout" for r in rows) else "train"


def load_crops(data_dir: Path, rows: list[PreparedFace]) -> np.ndarray:
    """All crops of `rows` as one (N, S, S, 3) uint8 RGB array."""
    images = []
    for row in rows:
        bgr = cv_files.imread(Path(data_dir) / row.file, cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(f"prepared crop missing or unreadable: {Path(data_dir) / row.file}")
        images.append(bgr[..., ::-1])
    if not images:
        raise ValueError(f"no crops listed in {Path(data_dir) / MANIFEST}")
    return np.ascontiguousarray(np.stack(images))


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) or (H, W, 3) uint8 -> (N, 3, H, W) / (3, H, W) float32 in [-1, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(images)).float().div_(127.5).sub_(1.0)
    return t.movedim(-1, -3)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] -> (N, H, W, 3) uint8."""
    x = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.movedim(-3, -1).cpu().numpy()


class FaceDataset(Dataset):
    """Prepared faces of one split, held in memory as uint8.

    Item i -> (hq, lq): (3, S, S) float32 tensors in [-1, 1]. The flip and the degradation of item i
    in epoch e come from a generator seeded by (seed, e, i), so a run is reproducible whatever the
    number of loader workers. With degrade=False, lq is hq (autoencoder stage). A share flat_prob of
    the degraded pairs get a flat region painted into both faces after the degradation (paint_flat_region).
    """

    def __init__(self, data_dir: Path | str, split: str = "train", *, seed: int = 0, flip: bool = True,
                 degrade: bool = True, degrade_config: DegradeConfig | None = None, flat_prob: float = 0.0,
                 limit: int | None = None) -> None:
        self.data_dir = Path(data_dir)
        rows = [r for r in read_manifest(self.data_dir / MANIFEST) if r.split == split]
        if limit is not None:
            rows = rows[:limit]
        if not rows:
            raise ValueError(f"no '{split}' faces in {self.data_dir / MANIFEST}")
        self.rows = rows
        self.images = load_crops(self.data_dir, rows)
        self.seed = seed
        self.flip = flip
        self.degrade = degrade
        self.degrade_config = degrade_config or DegradeConfig()
        self.flat_prob = flat_prob
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.item_at(self.epoch, index)

    def item_at(self, epoch: int, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Item `index` as epoch `epoch` draws it (what the training loader asks for)."""
        rng = np.random.default_rng((self.seed, int(epoch), int(index)))
        hq = self.images[index]
        if self.flip and rng.random() < 0.5:
            hq = hq[:, ::-1]
        hq = np.ascontiguousarray(hq)
        lq = degrade(hq, rng, self.degrade_config) if self.degrade else hq
        if self.degrade and self.flat_prob > 0 and rng.random() < self.flat_prob:
            hq, lq = paint_flat_region(hq, lq, rng)
        return to_tensor(hq), to_tensor(lq)


def fixed_pairs(data_dir: Path | str, split: str = "heldout", count: int = 64, seed: int = 1234,
                degrade_config: DegradeConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A fixed, reproducible set of (hq, lq) uint8 pairs for sample grids and held-out evaluation."""
    data = FaceDataset(data_dir, split, seed=seed, flip=False, degrade=True, degrade_config=degrade_config,
                       limit=count)
    pairs = [data[i] for i in range(len(data))]
    hq = to_uint8(torch.stack([p[0] for p in pairs]))
    lq = to_uint8(torch.stack([p[1] for p in pairs]))
    return hq, lq

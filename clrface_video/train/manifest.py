"""The prepared-faces manifest: one row per aligned face (file, source, identity, split, score), as CSV."""
from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..atomic import atomic

MANIFEST = "manifest.csv"
MANIFEST_FIELDS = ("file", "source", "identity", "dataset", "split", "score", "coverage")


@dataclass(frozen=True)
class PreparedFace:
    file: str  # relative to the output folder
    source: str
    identity: str
    dataset: str
    split: str  # 'train' or 'heldout'
    score: float
    coverage: float  # share of the crop that lies inside the source image


def write_manifest(path: Path, rows: Iterable[PreparedFace]) -> None:
    with atomic(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(MANIFEST_FIELDS)
        for r in rows:
            writer.writerow([r.file, r.source, r.identity, r.dataset, r.split, f"{r.score:.4f}", f"{r.coverage:.4f}"])


def read_manifest(path: Path) -> list[PreparedFace]:
    with open(path, newline="", encoding="utf-8") as fh:
        return [PreparedFace(r["file"], r["source"], r["identity"], r["dataset"], r["split"], float(r["score"]),
                             float(r["coverage"])) for r in csv.DictReader(fh)]

"""prepare-faces: aligned crops, a manifest, held-out identities disjoint from training ones, reserved names unread."""
from __future__ import annotations

import csv
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import SHARED_DATA

from clrface_video.train.manifest import read_manifest
from clrface_video.train.prepare import PrepareConfig, prepare_faces, scan_sources, split_of


def write(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), rgb[..., ::-1])


@pytest.fixture()
def source_tree(tmp_path: Path, astronaut: np.ndarray) -> Path:
    """lfw/<Person>/ folders and a flat utkface/ folder, built from the public-domain astronaut."""
    src = tmp_path / "src"
    face = cv2.resize(astronaut[0:300, 100:400], (200, 200), interpolation=cv2.INTER_AREA)
    people = [f"Person_{c}{i}" for c in "ABCDEFGHIJKLMNOPQRS" for i in range(2)]
    for name in people:
        write(src / "lfw" / name / f"{name}_0001.jpg", face)
    write(src / "lfw" / "Zed_Reserved" / "Zed_Reserved_0001.jpg", face)  # reserved initial: must not be read
    write(src / "utkface" / "30_0_0_20170101000000000.jpg.chip.jpg", face)
    write(src / "utkface" / "31_1_0_20170101000000001.jpg.chip.jpg", np.full((200, 200, 3), 128, np.uint8))
    return src


def test_prepare_writes_aligned_crops_and_a_disjoint_split(source_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    rows = prepare_faces(source_tree, out, PrepareConfig(size=64, holdout_fraction=0.3))
    identities = {r.identity for r in rows}
    assert "lfw/Zed_Reserved" not in identities
    assert not any("Zed" in r.source for r in rows)
    assert len(rows) == 39  # 38 LFW faces + the astronaut UTK face; the grey image has no face
    train = {r.identity for r in rows if r.split == "train"}
    held = {r.identity for r in rows if r.split == "heldout"}
    assert held and train and not (train & held)
    assert all(r.dataset == "lfw" for r in rows if r.split == "heldout")
    for r in rows:
        img = cv2.imread(str(out / r.file))
        assert img.shape == (64, 64, 3)
        assert 0 < r.coverage <= 1 and r.score > 0.6
    assert [(r.file, r.identity, r.split) for r in read_manifest(out / "manifest.csv")] == \
        [(r.file, r.identity, r.split) for r in rows]
    with open(out / "manifest.csv") as fh:
        assert next(csv.reader(fh))[:5] == ["file", "source", "identity", "dataset", "split"]


def test_own_faces_same_names_bad_files_and_bad_folders(tmp_path: Path, astronaut: np.ndarray,
                                                        warnings_logged) -> None:
    """A user's own folder: names that would collide get their own crops, unreadable files are named and
    skipped (a truncated JPEG is not a face with grey rows), and nothing is written where no face is found."""
    from clrface_video.errors import ClrfaceError

    face = cv2.resize(astronaut[0:300, 100:400], (200, 200), interpolation=cv2.INTER_AREA)
    src = tmp_path / "mine"
    write(src / "x" / "face.jpg", face)
    write(src / "x" / "face.png", face[:, ::-1])
    write(src / "y" / "x" / "face.jpg", face)
    good = (src / "x" / "face.jpg").read_bytes()
    (src / "x" / "cut.jpg").write_bytes(good[: len(good) // 2])
    (src / "x" / "empty.png").write_bytes(b"")
    rows = prepare_faces(src, tmp_path / "out", PrepareConfig(size=64))
    assert sorted(r.file for r in rows) == ["train/x_face.jpg", "train/x_face_2.jpg", "train/x_face_3.jpg"]
    assert all((tmp_path / "out" / r.file).is_file() for r in rows)
    assert "cut.jpg" in warnings_logged.text and "empty.png" in warnings_logged.text
    with pytest.raises(ClrfaceError, match="inside the input folder"):
        prepare_faces(src, src / "prepared", PrepareConfig(size=64))
    blank = tmp_path / "walls"
    write(blank / "wall.png", np.full((64, 64, 3), 128, np.uint8))
    with pytest.raises(ClrfaceError, match="no face was found"):
        prepare_faces(blank, tmp_path / "nothing", PrepareConfig(size=64))
    assert not (src / "prepared").exists() and not (tmp_path / "nothing").exists()


def test_split_is_stable_and_about_the_fraction() -> None:
    from clrface_video.train.prepare import SourceImage

    sources = [SourceImage(Path(f"lfw/P{i}/x.jpg"), f"lfw/P{i}", "lfw") for i in range(4000)]
    held = sum(split_of(s, 0.05) == "heldout" for s in sources)
    assert 140 < held < 260
    assert [split_of(s, 0.05) for s in sources] == [split_of(s, 0.05) for s in sources]


def test_shared_training_folder_has_no_reserved_identities() -> None:
    root = SHARED_DATA / "faces-train"
    if not root.exists():
        pytest.skip(f"research data not found: {root} (set CLRFACE_SHARED_DATA to the shared/data folder)")
    sources = scan_sources(root)
    assert sources and not any(s.identity[4:5] in "TUVWXYZ" for s in sources if s.dataset == "lfw")
    few = [s for s in sources if s.dataset == "lfw"][:6] + [s for s in sources if s.dataset != "lfw"][:6]
    assert all(s.path.is_file() for s in few)


def test_the_manifest_is_utf8_whatever_the_locale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """manifest.csv was opened in the locale's encoding, cp1252 on Windows: a source or identity named in another
    script stopped prepare-faces with UnicodeEncodeError once every face was aligned, and a manifest made on Linux
    (UTF-8) could not be read there. Here open() in the manifest module defaults to cp1252, as on Windows."""
    import builtins

    from clrface_video.train import manifest as manifest_module
    from clrface_video.train.manifest import PreparedFace, write_manifest

    def windows_open(file, mode="r", *args, **kwargs):
        if "b" not in mode:
            kwargs.setdefault("encoding", "cp1252")
        return builtins.open(file, mode, *args, **kwargs)

    monkeypatch.setattr(manifest_module, "open", windows_open, raising=False)
    row = PreparedFace("train/photos_1.jpg", "C:/Fotos/张伟/1.jpg", "photos/张伟", "photos", "train", 0.9, 1.0)
    path = tmp_path / "manifest.csv"
    write_manifest(path, [row])
    assert read_manifest(path) == [row]
    assert "张伟" in path.read_text(encoding="utf-8")  # the same bytes as a manifest written on Linux or macOS
    path.write_text("file,source,identity,dataset,split,score,coverage\n"
                    "train/a.jpg,/data/Ýr/a.jpg,lfw/Ýr,lfw,train,0.9000,1.0000\n", encoding="utf-8")
    assert read_manifest(path)[0].identity == "lfw/Ýr"  # UTF-8 'Ý' holds a byte cp1252 leaves undefined


def test_prepare_and_train_in_a_folder_opencv_cannot_name_on_windows(tmp_path: Path, astronaut: np.ndarray,
                                                                     opencv_as_on_windows) -> None:
    """prepare-faces wrote its crops, and training read them and wrote its previews, with cv2.imwrite/imread, which
    on Windows cannot open a path outside the ANSI code page (C:/Users/Zoë/...): prepare-faces stopped with 'could
    not write', training found every crop 'missing or unreadable'. The fixture makes OpenCV behave so here."""
    from types import SimpleNamespace

    import torch
    from PIL import Image

    from clrface_video.train.data import FaceDataset, check_prepared
    from clrface_video.train.loop import save_preview

    src = tmp_path / "Zoë" / "photos"
    src.mkdir(parents=True)
    Image.fromarray(astronaut).save(src / "astronaut.png")
    Image.fromarray(np.ascontiguousarray(astronaut[:, ::-1])).save(src / "mirrored.png")
    out = tmp_path / "Zoë" / "faces"
    rows = prepare_faces(src, out, PrepareConfig(size=64))
    assert len(rows) == 2 and all((out / r.file).is_file() for r in rows)
    assert check_prepared(out, 64, 2) == "train"
    data = FaceDataset(out, "train", degrade=False)
    assert data.images.shape == (2, 64, 64, 3)
    stage = SimpleNamespace(needs_lq=True, preview=lambda hq, lq: lq)
    save_preview(out / "preview.png", stage, data.images, data.images, torch.device("cpu"))
    assert Image.open(out / "preview.png").size == (128, 192)


def test_crop_names_that_differ_only_in_case_are_told_apart() -> None:
    """IMG_1.JPG and img_1.png in one folder got the crop names photos_IMG_1.jpg and photos_img_1.jpg: one file on
    macOS's and Windows' file systems, so the second face overwrote the first and both manifest rows showed it."""
    from clrface_video.train.prepare import SourceImage, output_names

    sources = [SourceImage(Path(f"/src/photos/{name}"), f"photos/{name.split('.')[0]}", "photos")
               for name in ("IMG_1.JPG", "img_1.png", "Img_1.jpeg")]
    names = output_names(sources)
    assert names == ["photos_IMG_1.jpg", "photos_img_1_2.jpg", "photos_Img_1_3.jpg"]
    assert len({name.lower() for name in names}) == 3


def test_prepare_faces_on_windows_asks_for_no_more_processes_than_a_windows_pool_takes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """prepare-faces --workers takes up to 64, and on Windows a ProcessPoolExecutor refuses more than 61
    ('max_workers must be <= 61'): --workers 62 to 64 stopped there. The pool is recorded, not started."""
    from concurrent.futures import process

    from clrface_video.train import prepare

    asked: list[int] = []

    class Recorded(Exception):
        pass

    def pool(max_workers, **kwargs):
        asked.append(max_workers)
        raise Recorded

    monkeypatch.setattr(prepare, "ProcessPoolExecutor", pool)
    monkeypatch.setattr(sys, "platform", "win32")
    with pytest.raises(Recorded):
        next(prepare._results([], PrepareConfig(workers=64), tmp_path))
    monkeypatch.setattr(sys, "platform", "linux")
    with pytest.raises(Recorded):
        next(prepare._results([], PrepareConfig(workers=64), tmp_path))
    assert asked == [process._MAX_WINDOWS_WORKERS, 64]


def test_linked_person_folders_are_scanned_once_and_a_loop_ends(tmp_path: Path) -> None:
    """prepare-faces walked a folder without following its links: a face collection of linked person folders was
    'no images found', where restore follows the same links. Each real folder is read once; a link back up ends."""
    from PIL import Image

    people, root = tmp_path / "people", tmp_path / "src"
    for name in ("Anna", "Bert"):
        (people / name).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(people / name / f"{name}_1.jpg")
    (root / "lfw").mkdir(parents=True)
    (root / "lfw" / "Anna").symlink_to(people / "Anna", target_is_directory=True)
    (root / "lfw" / "Bert").symlink_to(people / "Bert", target_is_directory=True)
    (root / "lfw" / "Bert2").symlink_to(people / "Bert", target_is_directory=True)  # the same folder again
    (people / "Anna" / "up").symlink_to(root, target_is_directory=True)  # a loop
    found = scan_sources(root)
    assert [(s.path.name, s.identity) for s in found] == [("Anna_1.jpg", "lfw/Anna"), ("Bert_1.jpg", "lfw/Bert")]

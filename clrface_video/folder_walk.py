"""What a folder holds to restore: its photos and videos, found by walking its tree, and what is left out."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError, reason
from .io.decode import media_kind
from .paths import restored_from

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FolderContents:
    """What a folder holds to restore: its photos and its videos, each in a stable order, and its subfolders that
    could not be read ('path: reason', as `failed` lists a file: the files in them were never looked at)."""

    photos: list[Path]
    videos: list[Path]
    unread: list[str]


def folder_contents(folder: Path, output: Path | None = None) -> FolderContents:
    """The photos and the videos under `folder`, recursively, each in a stable order (io.decode.media_kind:
    by extension; an animated PNG is a video); hidden files and other files are ignored, camera RAW files
    too, and earlier runs' outputs (_EarlierOutputs), each kind said in one warning. InputError when it holds
    neither. Linked folders and files are followed (a library that links its albums in), each file taken once
    (_walk); a link into `output` is not (its restored files would be read as inputs)."""
    found: dict[str | None, list[Path]] = {"photo": [], "video": [], "raw": [], None: []}
    earlier = _EarlierOutputs(folder)
    files, unread = _walk(folder, output)
    for path in files:
        if not earlier.holds(path):
            found[media_kind(path)].append(path)
    raw = found["raw"]
    left_out = [_unread(raw, folder)] if raw else []
    left_out += [earlier.said()] if earlier.files else []
    if not found["photo"] and not found["video"]:
        held = f"; it holds {' and '.join(left_out)}" if left_out else ""
        held += f"; {len(unread)} of its folders could not be read ({unread[0]}{', ...' if len(unread) > 1 else ''})" \
            if unread else ""
        raise InputError(f"no photos or videos in {folder} (photos by their extension: .jpg, .png, .tif, .webp, "
                         f".heic, ...; videos: .mp4, .mov, .mkv, .avi, .gif, ...){held}")
    for line in left_out:  # each said once for the folder, whose report would otherwise look done or doubled
        log.warning("left out %s", line)
    return FolderContents(found["photo"], found["video"], unread)


def _unread(raw: list[Path], folder: Path) -> str:
    """A folder's camera RAW files for its warning: how many, the first, why and what to do."""
    many = len(raw) > 1
    return (f"{len(raw)} camera RAW file{'s' if many else ''} ({raw[0].relative_to(folder)}{', ...' if many else ''}),"
            " which restore does not read: export TIFF or JPEG from the RAW developer and restore those")


class _EarlierOutputs:
    """The files of a folder that earlier runs wrote: named as the default output of a file or folder beside them
    (paths.restored_from: p_restored.jpg beside p.jpg, movie_restored.mp4 beside movie.mp4, album_restored/
    beside album/). A folder run restored them again, as originals of their own, into restored-twice copies
    nobody asked for. They are counted in one warning for the folder, which the report's warnings carry, not
    listed a line each: a library restored photo by photo holds as many of them as originals."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.files: list[tuple[Path, Path, Path]] = []  # (file, the output it is or is in, that output's source)

    def holds(self, path: Path) -> bool:
        """Whether `path` is an earlier output or inside one (a restored folder's files), noted if it is."""
        for above in (path, *path.relative_to(self.folder).parents[:-1]):
            output = above if above == path else self.folder / above
            if (source := restored_from(output)) is not None:
                self.files.append((path, output, source))
                return True
        return False

    def said(self) -> str:
        """The warning's words: how many, the first and whose output it is, and how to restore one anyway."""
        _, output, source = self.files[0]
        many = len(self.files) > 1
        return (f"{len(self.files)} file{'s earlier runs' if many else ' an earlier run'} wrote "
                f"({output.relative_to(self.folder)}, the restored copy of {source.name} beside it"
                f"{', ...' if many else ''}), not restored again: rename {'one' if many else 'it'} to restore it as "
                "an original")


def _file_id(path: Path) -> tuple[int, int] | str:
    """What tells one file or folder from another, whatever way it is reached: its device and inode, or its
    resolved path on a file system without inodes (every st_ino 0: some network and cloud drives)."""
    stat = path.stat()
    return (stat.st_dev, stat.st_ino) if stat.st_ino else str(path.resolve())


def _shortest(path: Path) -> tuple[int, Path]:
    """The order folders reached through links are walked in: fewest names first, then by name, so that of two
    ways to one folder (and so to its files) the shorter is kept, whichever sorts first."""
    return len(path.parts), path


def _found_already(link: str, first: str) -> None:
    """A second way to a folder or file, skipped in one warning. It is said before any file is restored, so it names
    where the walk found it first: 'restored already' was said of a photo an interrupted run had not come to yet, or
    one that then failed."""
    log.warning("skipped %s: a link to %s, found already", link, first)


def _walk(folder: Path, output: Path | None) -> tuple[list[Path], list[str]]:
    """Every file under `folder` but hidden ones (and the .partial files of an interrupted run), in path order,
    under the names they have there. The folder's own tree is walked before any link is followed, so that a
    folder or file reached both ways keeps its own name, and linked folders are walked shortest path first
    (_shortest), so that one reached through two links keeps the shorter way (zoo/x, not trips/up/zoo/x
    through a link back up from trips); a link to a folder already walked (a loop back up the
    tree, a second link to an album), a linked file found already, a link into the output folder and a broken
    link are each skipped with a one-line warning. Hard links are two files of the tree: both are restored.
    Also the subfolders that could not be listed ('path: reason', for `failed`); `folder` itself is an InputError."""
    own, linked = [folder], []  # folders to walk: the tree's own, then those reached through a link
    walked: dict[tuple[int, int] | str, Path] = {}
    files: list[tuple[bool, Path]] = []  # (reached through a link, path)
    unread: list[str] = []

    def named(path: Path) -> str:
        return str(path.relative_to(folder)) if path != folder else "the input folder"

    while own or linked:
        through_link = not own
        current = own.pop() if own else linked.pop(linked.index(min(linked, key=_shortest)))
        first = walked.setdefault(_file_id(current), current)
        if first != current:
            _found_already(named(current), named(first))
            continue
        try:
            entries = list(current.iterdir())
        except OSError as error:
            if current == folder:
                raise InputError(f"cannot read the folder {folder} ({reason(error)})") from error
            unread.append(f"{named(current)}: cannot read the folder ({reason(error)})")
            continue
        for entry in sorted(entries):
            if entry.name.startswith("."):
                continue
            via_link = through_link or entry.is_symlink()
            if entry.is_symlink() and not entry.exists():
                log.warning("skipped %s: a link to %s, which does not exist", named(entry), os.readlink(entry))
            elif via_link and output is not None and entry.resolve().is_relative_to(output.resolve()):
                log.warning("skipped %s: a link into the output folder %s", named(entry), output)
            elif entry.is_dir():
                (linked if via_link else own).append(entry)
            elif entry.is_file():
                files.append((via_link, entry))
    kept: list[Path] = []
    found: dict[tuple[int, int] | str, Path] = {}
    for via_link, path in sorted(files):  # the tree's own files first
        first = found.setdefault(_file_id(path), path)
        if via_link and first != path:
            _found_already(named(path), named(first))
        else:
            kept.append(path)
    return sorted(kept), unread

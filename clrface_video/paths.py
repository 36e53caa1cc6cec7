"""Where outputs go: the default name beside the input, and checks that no input or read-only output is overwritten."""
from __future__ import annotations

import glob
import logging
import os
import re
import stat
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .atomic import name_max, name_size
from .errors import ClrfaceError, InputError, option_name
from .io.apng import is_animated_png
from .io.decode import check_not_raw, is_image_path, media_kind
from .io.encode import output_exists
from .io.output_stream import known_suffix
from .io.palette import is_gif
from .io.photo_read import is_still_gif
from .io.sequence import CODECS, find_sequence, frame_numbers, frame_path, is_sequence, sequence_codec
from .io.webp_anim import is_animated_webp
from .types import TimeSpan

log = logging.getLogger(__name__)

SUFFIX = "_restored"
STDIO = "-"  # the name that means standard input or output to many tools: a video needs seeking, so never here
_SECONDS = r"(\d+(?:\.\d+)?(?:e[+-]\d+)?)"  # a time as default_output writes it (:g)
_STRETCH = re.compile(rf"_from_{_SECONDS}s|_{_SECONDS}-{_SECONDS}s")  # what it adds for a stretch of a video


def default_output(path: Path, span: TimeSpan | None = None) -> Path:
    """Beside the input with a _restored suffix: movie_restored.mp4, photo_restored.jpg, folder_restored/,
    and an image sequence's frames under the same names in its folder's _restored twin. A stretch of a video
    (--start, --duration) says which in its name, movie_restored_90-100s.mp4, so that the whole video's run
    later does not take the preview for its own finished output."""
    stretch = "" if span is None else f"_from_{span.start:g}s" if span.end is None else \
        f"_{span.start:g}-{span.end:g}s"
    if is_sequence(path):
        return _twin(path.parent, stretch) / path.name
    if path.is_dir():
        return _twin(path)
    return path.with_name(path.stem + SUFFIX + stretch + output_suffix(path))


def output_suffix(source: Path) -> str:
    """The extension a video's output is named with: its own, or for a camcorder's file whose extension FFmpeg
    writes no container under (MOV001.MOD, an MPEG program stream; .TOD, a transport stream) the one players and
    editors know that container by (.mpg, .ts), unless a file by that name lies beside it (MOV001.mpg, whose
    output would be the same). -o NAME.MOD writes the same container under the camcorder's extension."""
    known = known_suffix(source.suffix)
    return source.suffix if known == source.suffix or source.with_suffix(known).exists() else known


def mirrored(path: Path, source: Path, target: Path) -> Path:
    """Where a file of the folder `source` goes in its mirrored tree `target`: under its own name, a camcorder
    file's with the extension players know (output_suffix), as it is when restored alone."""
    relative = path.relative_to(source)
    return target / relative.with_suffix(output_suffix(path))


def say_renamed(videos: list[Path]) -> None:
    """One warning for the camcorder files that are written under another extension (output_suffix)."""
    renamed = [path for path in videos if output_suffix(path) != path.suffix]
    if not renamed:
        return
    what = f"{len(renamed)} camcorder files ({renamed[0].name}, ...) are" if len(renamed) > 1 else \
        f"the camcorder file {renamed[0].name} is"
    names = ", ".join(sorted({f"{path.suffix} as {output_suffix(path)}" for path in renamed}))
    log.warning("%s written under the extension players and editors know its container by (%s); -o NAME%s keeps "
                "the camcorder's", what, names, renamed[0].suffix)


def restored_from(path: Path) -> Path | None:
    """The file (or folder) beside `path` whose default output `path` is named as, or None: p.jpg for
    p_restored.jpg, movie.mp4 for movie_restored.mp4 or a stretch's movie_restored_90-100s.mp4, album for
    album_restored. Such a file is an earlier run's output, which a folder run over them both restored again as
    an original of its own; x_restored.jpg with no x.* beside it is the user's photo like any other. Told by
    default_output itself, each way the name could be split at _restored tried."""
    if SUFFIX not in path.name:
        return None
    stem, suffix = (path.name, "") if path.is_dir() else (path.stem, path.suffix)
    for cut in (m.start() for m in re.finditer(re.escape(SUFFIX), stem)):
        rest = stem[cut + len(SUFFIX):]
        stretch = _STRETCH.fullmatch(rest)
        if rest and stretch is None or not stem[:cut]:
            continue
        start, begin, end = stretch.groups() if stretch else (None, None, None)
        span = None if stretch is None else TimeSpan(float(start)) if start else TimeSpan(float(begin), float(end))
        for source in _named_beside(path, stem[:cut], suffix):
            if source.is_dir() == path.is_dir() and default_output(source, span) == path:
                return source
    return None


def _named_beside(path: Path, stem: str, suffix: str) -> list[Path]:
    """The files (or folder) beside `path` named `stem`: with its extension `suffix` first, then, for a file, with
    any other (a camcorder's MOV001.MOD, whose output is MOV001_restored.mpg: output_suffix)."""
    same = path.with_name(stem + suffix)
    others = [] if path.is_dir() else [p for p in path.parent.glob(glob.escape(stem) + ".*") if p.suffix != suffix]
    return ([same] if same.exists() else []) + sorted(others)


def _twin(folder: Path, stretch: str = "") -> Path:
    """The folder's _restored twin beside it (under its own name: "." and ".." have none to add it to)."""
    named = folder if folder.name not in ("", "..") else folder.resolve()
    if not named.name:  # a drive's root (E:\ of a memory card) or /: nothing beside it to hold the twin
        raise ClrfaceError(f"{folder} is the root of its drive, with no folder beside it for the restored copy; "
                           "give one with -o OUTPUT")
    return named.with_name(named.name + SUFFIX + stretch)


def _animation_into_its_format(source: Path, target: Path) -> bool:
    """Whether an animated PNG or WebP (restored as a video) is written as one again, which is one file."""
    suffix = target.suffix.lower()
    return (is_animated_png(source) and suffix == ".png") or (is_animated_webp(source) and suffix == ".webp")


def gif_as_photo(source: Path, target: Path) -> bool:
    """Whether a GIF is restored as a photo: a still (one-frame) one whose output names a photo format
    (still.gif -o still.png), converted as any photo's format is. Into a GIF or a video it is the video job's."""
    return is_gif(source) and is_image_path(target) and not is_sequence(target) and is_still_gif(source)


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file: the same resolved path, or (hard links) the same file id."""
    return a.resolve() == b.resolve() or _same_id(a, b)


def _same_id(a: Path, b: Path) -> bool:
    """Whether two existing paths have one file id. A file system without file ids gives every file and folder
    st_ino 0 (on Windows: sshfs-win, some network and cloud drives), where samefile calls any two on it one:
    not trusted."""
    try:
        return os.path.samefile(a, b) and os.stat(b).st_ino != 0
    except OSError:  # one of them does not exist (yet)
        return False


def _missing(folder: Path) -> list[Path]:
    """`folder` and those of its parents that do not exist yet, deepest first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def check_name_lengths(target: Path, *, default: bool) -> None:
    """Each name in the output's path fits its file system's limit (a longer one failed as 'File name too long'
    with no hint). A legal input name may not fit with _restored added to it: the default name is not cut
    (two long names that begin alike would share one, and a rerun take the other's output for its own), the
    user names the output instead."""
    where = next((folder for folder in target.absolute().parents if os.path.isdir(folder)), Path.cwd())
    limit = name_max(where)
    for name in target.parts:
        if (size := name_size(name)) > limit:
            shown = name if len(name) <= 60 else f"{name[:40]}...{name[-16:]}"
            why = f" ({SUFFIX} added to the input's name)" if default else ""
            raise ClrfaceError(f"the output name {shown} is {size} bytes{why}, more than the {limit} a file "
                               "name may have there; give a shorter one with -o OUTPUT")


def check_writable(folder: Path, name: str = "") -> None:
    """A file (`name`, for the message) can be created in `folder`, or in the nearest folder above it that exists
    (it will be made)."""
    where = folder.expanduser().absolute()
    missing = _missing(where)
    existing = missing[-1].parent if missing else where
    if not existing.is_dir():
        raise ClrfaceError(f"cannot write {name + ' ' if name else ''}in {folder}: {existing} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise ClrfaceError(f"cannot write {name + ' ' if name else ''}in {existing} ({error.strerror or error})") \
            from error


def read_only(target: Path) -> str | None:
    """Why an existing output may not be redone, or None: a file of it (a video, a photo, a frame of an image
    sequence) that the user has made read-only, as a finished master is protected (chmod a-w). --overwrite
    renamed the new file over it, which a folder's write permission allows whatever the file's; cp refuses to
    write over it. Told by its mode bits (root's access check ignores them): every output is written with its
    owner's write bit (atomic.file_mode), a read-only original's too, so a read-only one is the user's doing."""
    files = [frame_path(target, n) for n in frame_numbers(target)] if is_sequence(target) else [target]
    for path in files:
        try:
            locked = not stat.S_IMODE(path.stat().st_mode) & 0o222
        except OSError:  # not there: nothing to protect
            continue
        if locked:
            return f"{path.name} is read-only; make it writable to redo it"
    return None


@contextmanager
def output_folder(folder: Path) -> Iterator[Path]:
    """Create `folder` and its missing parents for a job's output; if the job fails or is stopped, remove the
    ones it created that are still empty, so that a failure leaves nothing behind."""
    created = _missing(folder)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield folder
    except BaseException:
        for made in created:
            try:
                made.rmdir()
            except OSError:  # not empty (or gone): keep it and everything above it
                break
        raise


def check_outside(folder: Path, source: Path, what: str = "output folder") -> None:
    """An output folder may be neither the input folder nor inside it (its outputs would be read as inputs). Its
    folders that exist are compared as files, not names: on macOS's file system Photos/out is inside photos."""
    inside, within = Path(folder).resolve(), Path(source).resolve()
    if inside.is_relative_to(within) or any(_same_id(above, within) for above in (inside, *inside.parents)):
        raise ClrfaceError(f"{what} {folder} is inside the input folder {source}; choose one outside it")


def check_mirror_apart(folder: Path, source: Path) -> None:
    """The input folder inside the output folder (photos/2009 restored into photos) is refused: the restored copies
    would go in among the photos there. A photo of the same name (photos/x.jpg for 2009/x.jpg), older than
    2009/x.jpg, was taken for a stale copy and written over; and where 2009 holds a folder named as it is within
    photos (2009/2009/x), the copy of 2009/2009/x lands on the input 2009/x. Refused on a first run too, so that a
    rerun is not refused where the first run was not; an output folder apart from the photos has no such files."""
    above, within = Path(folder).resolve(), Path(source).resolve()
    if within != above and within.is_relative_to(above):
        raise ClrfaceError(f"output folder {folder} holds the input folder {source}: the restored copies would go in "
                           f"among its files, over any of the same name; choose an output folder apart from it, "
                           f"such as {source.parent / (source.name + '_restored')}")


def check_within(path: Path, folder: Path) -> None:
    """A file of a folder's restored tree, `path` under the output `folder`, is written inside it: a link in the
    output tree to another folder (the input's album, say) would have its restored copy replace an original."""
    if path.parent.resolve().is_relative_to(folder.resolve()):
        return
    link = next((above for above in (path.parent, *path.parent.parents) if above.is_symlink()), None)
    where = f"is a link to {os.readlink(link)}" if link is not None else f"leads to {path.parent.resolve()}"
    raise ClrfaceError(f"{link or path.parent} in the output folder {where}, out of it: the restored copy could "
                       "replace an original there; remove the link or choose another output folder")


def check_side_output(path: Path, option: str, inputs: Iterable[Path], output: Path | None = None) -> Path:
    """A side file the user names (a report, a drawing, a comparison) never replaces an input or the job's output,
    and its folder is writable; checked before any work. Its writer makes the folder where it is missing
    (RestoreReport.write, photos.draw_faces, eval's write_compare), as a job makes its output's (--report
    nodir/r.json beside -o nodir/out.mp4), so the nearest folder above it that exists must be writable
    (check_writable)."""
    path = path.expanduser()
    for other, what in [(p, "input") for p in inputs] + ([(output, "output")] if output is not None else []):
        if _same_file(path, other):
            raise ClrfaceError(f"{option} {path} is the {what}; choose another file name for it")
    if path.is_dir():
        raise ClrfaceError(f"{option} {path} is a folder; give a file name")
    check_writable(path.parent, f"the {option} file {path.name}")
    return path


def check_files_only(input: str | Path, output: str | Path | None) -> None:
    """Refuse `-` for the input or output: tools read it as standard input or output, which a job does not use
    (a video is read by seeking and written under a temporary name); it was taken as a file named -, written
    as -.mp4 or reported as an input not found. So is a device as the output (_a_device): -o /dev/stdout
    wrote /dev/stdout.mp4. A file that is named - is read (given as ./-)."""
    if str(input) == STDIO and not Path(input).exists():  # a file named - (given as ./-, which Path makes -) is one
        raise InputError("input -: reading standard input is not supported; give an input file or folder")
    if output is not None and str(output) == STDIO:
        raise ClrfaceError("-o -: writing to standard output is not supported; give an output file or folder")
    if output is not None and _a_device(Path(output).expanduser()):
        raise ClrfaceError(f"-o {output}: writing to a device (/dev/stdout, ...) is not supported; give an output "
                           "file or folder")


def check_folder_named(source: Path, target: Path) -> None:
    """Refuse a folder's output named as a video or photo (-o x.mp4) that is not a folder already: a folder's
    output is a folder, and one named x.mp4 was made, almost surely not what was meant."""
    if not target.exists() and media_kind(target) in ("video", "photo"):
        given = option_name("output").split()[0]
        raise ClrfaceError(f"{given} {target} names a file, but {source.name} is a folder: its output is a folder "
                           f"(for example {given} {default_output(source).name})")


def _a_device(output: Path) -> bool:
    """Whether an output names a device, a pipe or a socket (/dev/null, /dev/stdout), or a new file in /dev itself
    (-o /dev/stdout became /dev/stdout.mp4); a file system mounted below /dev (/dev/shm) is a folder like others."""
    if output.exists() and not (output.is_file() or output.is_dir()):
        return True
    return output.absolute().parent == Path("/dev")


def resolve_paths(input: str | Path, output: str | Path | None,
                  span: TimeSpan | None = None) -> tuple[Path, Path]:
    """Check INPUT exists and OUTPUT is not INPUT (nor inside an input folder); fill in the default OUTPUT
    (for the stretch `span` of a video, when one is restored). A new OUTPUT's folder must be writable; one that
    is there is asked only once something must be written to it (a job's output to redo, a folder's file as it
    is written): a rerun with everything up to date writes nothing, and passed no read-only output folder."""
    check_files_only(input, output)
    source = Path(input).expanduser()
    if is_sequence(source):
        find_sequence(source)  # frames there, none missing
    elif not source.exists():
        raise InputError(f"input not found: {source}")
    check_not_raw(source)
    target = default_output(source, span) if output is None else Path(output).expanduser()
    check_name_lengths(target, default=output is None)
    folder = output is not None and str(output).endswith(("/", os.sep))  # -o new/ : a folder, made if need be
    if not source.is_dir() and (folder or target.is_dir() or (is_sequence(source) and not target.suffix)):
        target = target / source.name  # into that folder, under the input's name (a sequence's frame names)
    if not source.is_dir() and not target.suffix:
        target = target.with_name(target.name + source.suffix)  # -o result  ->  result.mp4
        check_name_lengths(target, default=False)
    if _same_file(source, target):
        raise ClrfaceError(f"output {target} is the input; choose another {option_name('output')} "
                           "(the input is never changed)")
    if is_sequence(target) and not (is_image_path(source) and not is_sequence(source)):  # a photo's is a photo
        sequence_codec(target)  # an extension an encoder writes, checked before any work
    elif not source.is_dir() and not is_image_path(source) and is_image_path(target) \
            and not _animation_into_its_format(source, target) \
            and not gif_as_photo(source, target):  # a video's frames
        suffix = target.suffix if target.suffix.lower() in CODECS else ".png"
        raise ClrfaceError(f"{target.name} is one picture; name the frames with a counter to write an image sequence "
                           f"(for example {target.stem}_%06d{suffix})")
    if source.is_dir():
        if not folder:
            check_folder_named(source, target)
        check_outside(target, source)
        check_mirror_apart(target, source)
        if target.exists() and not target.is_dir():
            raise ClrfaceError(f"output {target} is a file but the input is a folder; give a folder for -o")
    if not (target.is_dir() if source.is_dir() else output_exists(target)):  # one there: once it must be redone
        check_writable(target if source.is_dir() else target.parent)  # (a no-op rerun passes in a read-only one)
    return source, target

"""Reruns: whether an output already holds what is asked now (make's rule on dates, the stretch, every frame of a
sequence), and so is left as it is, redone with a word, or refused where the user made it read-only."""
from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

from .config import RestoreConfig
from .errors import ClrfaceError, option_name
from .io.decode import is_image_path
from .io.encode import output_exists
from .io.extent import asked_seconds, other_stretch
from .io.photo_likeness import another_picture
from .io.sequence import is_sequence
from .io.sequence_frames import SequenceOutput, newest_frame, sequence_output
from .io.stretch_start import Numbered, other_start
from .io.stretch_tag import held_stretch
from .paths import read_only
from .types import TimeSpan

log = logging.getLogger(__name__)
MTIME_STEP_NS = 2_000_000_000  # FAT keeps modification times in 2 s steps: a copied date may move that much
# FAT keeps local time, not UTC: after a change to or from daylight-saving time every date on a FAT card or
# drive reads an hour off, the originals' and outputs' alike, unless one side lies on another disk
HOUR_NS = 3600 * 1_000_000_000
CHANGED = "the original changed since it was restored"


def up_to_date(source: Path, target: Path, span: TimeSpan | None = None) -> bool:
    """Whether `target` is there and still `source`'s restored output, as asked now (the stretch `span` of a
    video, all of it when None): see stale."""
    return output_exists(target) and stale(source, target, span) is None


def changed_since(source: Path, target: Path) -> bool:
    """Whether `source` is newer than its copy `target`, which was given its date: by more than FAT's 2 s step,
    and not by FAT's daylight-saving hour (see stale)."""
    lag = source.stat().st_mtime_ns - target.stat().st_mtime_ns
    return lag > MTIME_STEP_NS and abs(lag - HOUR_NS) > MTIME_STEP_NS


def stale(source: Path, target: Path, span: TimeSpan | None = None, fps: Fraction | None = None) -> str | None:
    """Why `target`, which is there, is not `source`'s restored output as asked now, or None while it is. By make's
    rule: every output is given its source's modification time (keep_date_and_mode), so a source newer than it by
    more than FAT's 2 s step was changed after it was restored; an output newer than its source was edited after
    restoring, and stands. A source newer by an hour to within 2 s is FAT's daylight-saving shift (an album on a
    card restored to an internal disk, read again in summer), not an edit: a changed original's date is the time of
    the change. A video's output holds the stretch asked (io.extent.other_stretch): a try of ten
    seconds is not a whole film, nor the other way round; nor ten seconds from another start (the start
    the output's own tag names, io.stretch_tag, or where it names none, a tagless container's or an older
    version's output, its frames unlike the source's from the start asked, io.stretch_start.other_start); a scan's (a sequence input's, read at
    `fps`) too, judged by its newest frame's date. An image sequence's frames are given the run's date: each one
    the run writes is there (a run stopped as it moved them into place, a frame deleted) and none older than its
    source (sequence_stale)."""
    if is_sequence(target):
        return sequence_stale(source, target, span, fps)
    if changed_since(newest_frame(source), target):
        return CHANGED
    if (is_image_path(source) and not is_sequence(source)) or is_image_path(target):
        return None
    why = other_stretch(source, target, span, fps)
    if why is not None:
        return why
    held = held_stretch(target)
    if held is not None:
        return held.other_start(span)
    return None if span is None else other_start(source, target, span, asked_seconds(source, span, fps), fps)


def sequence_stale(source: Path, target: Path, span: TimeSpan | None, fps: Fraction | None) -> str | None:
    """stale for an image-sequence output (io.sequence_frames): every frame the run writes there, none older than
    the source (a scan's newest frame), and from the start asked."""
    frames = sequence_output(source, target, span, fps)
    if frames.missing:
        of = "" if frames.expected is None else f" of its {len(frames.expected)}"
        return f"{len(frames.missing)}{of} frames are missing ({frames.name(frames.missing[0])} first)"
    newest = newest_frame(source)
    if any(changed_since(newest, frame) for frame in frames.written):
        return CHANGED
    if frames.expected is None:
        return None
    numbered = Numbered(frames.expected.start, frames.rate)
    return other_start(source, target, span, len(frames.expected) / frames.rate, fps, numbered)


def left_as_is(source: Path, target: Path, config: RestoreConfig, name: str | None = None) -> bool:
    """Whether a job leaves its output as it is (a rerun goes on past the files done): it is up to date
    (up_to_date) and --overwrite is not given. A stale one is redone, said in one warning naming it (`name`, a
    folder's path for it; the output's file name by default) and why, so that a changed original, or a stretch
    left under the name a whole run asks for, is not passed over; but one the user made read-only (protected) is
    a ClrfaceError, before anything is said or done."""
    if not output_exists(target):
        return False
    if is_sequence(target):
        say_strays(sequence_output(source, target, config.span(), config.fps))
    why_stale = None if config.overwrite else stale(source, target, config.span(), config.fps)
    if not config.overwrite and why_stale is None:
        return True
    why = _refused(source, target, config, why_stale)
    if why is not None:
        raise ClrfaceError(why)
    if not config.overwrite:
        log.warning("redoing %s: %s", name or target.name, why_stale)
    return False


def say_strays(frames: SequenceOutput) -> None:
    """Warn of the frames of a sequence that this run does not write (SequenceOutput.strays): a longer earlier
    run's, or another stretch's of a scan. They are left where they are (a scan restored in parts keeps each
    part's numbers), but not silently beside a shorter output."""
    strays = frames.strays
    if strays:
        log.warning("%s also holds %d frames this run does not write (%s to %s), left by an earlier run; delete "
                    "them if they are not wanted", frames.pattern.name, len(strays), frames.name(strays[0]),
                    frames.name(strays[-1]))


def protected(source: Path, target: Path, config: RestoreConfig) -> str | None:
    """Why an output that is there, and would be redone (--overwrite, or stale), may not be, or None: the user
    made it read-only (paths.read_only), said with why it is stale where that is why it would be redone; None for
    an output not there yet."""
    if not output_exists(target):
        return None
    return _refused(source, target, config,
                    None if config.overwrite else stale(source, target, config.span(), config.fps))


def _refused(source: Path, target: Path, config: RestoreConfig, why_stale: str | None) -> str | None:
    """protected's answer, once why the output is stale (or None) is known: read-only; or, without --overwrite, a
    photo older than its original that shows another picture (not_ours)."""
    why = read_only(target) if config.overwrite or why_stale is not None else None
    if why is None and why_stale == CHANGED:
        return not_ours(source, target)
    return why if why is None or why_stale is None else f"{why} ({why_stale})"


def not_ours(source: Path, target: Path) -> str | None:
    """Why a photo's output, older than its original, is no earlier output of this photo, or None. A photo carries
    no mark of its restoring but its original's date, and a file older than the original looks like an output of
    it retouched since; but a user's own photo under the output's name (x_restored.jpg beside x.jpg, the default
    name) was written over, its picture lost. One that shows another picture (io.photo_likeness) is refused, named
    with --overwrite, which replaces it."""
    if not is_image_path(target) or is_sequence(target) or not another_picture(source, target):
        return None
    return (f"{target.name} is older than its original and shows another picture, no restored copy of it: left as "
            f"it is; choose another {option_name('output')}, or {option_name('overwrite')} replaces it")

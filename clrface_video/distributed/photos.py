"""Photo folders on Ray: the photos still to do are sharded across the worker actors, each runs the local job per photo."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import RestoreConfig
from ..errors import backend_name
from ..folder_walk import folder_contents
from ..paths import resolve_paths
from ..photos import (
    failed_folders,
    interrupted,
    say_failed,
    sidecars_of_done,
    stopped,
    undone,
)
from ..pipeline import finish_report, would_run
from ..report import Progress, RestoreReport, StageTimer, reports_warnings
from .cluster import ask, cancelled, run_all, say_warnings
from .worker import ShardProgress, ShardResult

log = logging.getLogger("clrface_video.photos")

SHARDS_PER_WORKER = 4  # small shards balance the load; each costs one actor call
SO_FAR_SECONDS = 5.0  # a stopped folder's wait for its workers to say what they finished of their shards


@dataclass(frozen=True)
class FolderListing:
    """A folder's photos still to do (relative to `source`) and its report so far (those already done, the
    subfolders that cannot be read, sidecars brought up to date), listed before Ray starts, as a local run lists
    them before its models load: a Ctrl-C or SIGTERM while Ray starts (seconds to minutes) reports them, marked
    interrupted, where it reported nothing. `start`: when the job began (its report's seconds)."""

    source: Path
    target: Path
    todo: list[Path]
    report: RestoreReport
    start: float


def list_folder(input: str | Path, output: str | Path | None, config: RestoreConfig) -> FolderListing:
    """What restore_folder_ray has to do in a folder, no worker needed; its videos, which it leaves out, said."""
    start = time.perf_counter()
    source, target = resolve_paths(input, output)
    contents = folder_contents(source, target)
    photos, videos = contents.photos, contents.videos
    if videos:
        log.warning("%s: %d video%s not restored: %s restores a folder's photos; restore each video on its own, "
                    "or the whole folder with %s", source, len(videos), "s" if len(videos) > 1 else "",
                    backend_name("ray"), backend_name("local"))
    remaining = undone(photos, source, target, config)  # a stale one said there
    todo = [p.relative_to(source) for p in remaining]
    model, device = would_run(config, local=False)  # the workers' own, once there is work for them
    report = RestoreReport(input=str(source), output=str(target), kind="folder", model=model, device=device,
                           skipped=len(photos) - len(todo))
    failed_folders(contents, report)
    sidecars_of_done(photos, remaining, source, target, report)
    return FolderListing(source, target, todo, report, start)


def nothing_to_do(listing: FolderListing) -> RestoreReport:
    """The report of a folder whose photos are all done (or that holds none), finished on the driver: a local
    rerun's line, where starting Ray and its workers for no work took 5-15 s (and a --ray-address was joined)."""
    return finish_report(listing.report, None, StageTimer(), listing.start)


@reports_warnings
def restore_folder_ray(ray: Any, actors: list[Any], input: str | Path, output: str | Path | None = None,
                       config: RestoreConfig | None = None, *, progress: Progress | None = None,
                       listing: FolderListing | None = None) -> RestoreReport:
    """restore_folder on Ray: the same output tree, formats, EXIF/ICC, skip-done and atomic writes.

    Each photo is restored by restore_image on a worker (written under a temporary name, then
    renamed), so a worker killed mid-shard leaves only complete photos; its shard is retried and
    the photos already written are skipped, as a rerun of the whole job skips them. Face noise
    seeds count from config.seed in every photo, here as in restore_image and local folder mode, so
    a photo's result does not depend on which photos a worker did before it.
    listing: the folder as list_folder listed it before Ray started (else it is listed here).
    """
    config = config or RestoreConfig()
    listing = listing or list_folder(input, output, config)
    source, target, todo, report, start = (listing.source, listing.target, listing.todo, listing.report,
                                           listing.start)
    if progress is not None:
        progress.start(len(todo), "images")
    if todo:
        report.model, report.device, _, _ = ask(ray, actors[0].describe)
        target.mkdir(parents=True, exist_ok=True)
    size = max(1, -(-len(todo) // (SHARDS_PER_WORKER * len(actors))))
    shards = [todo[i:i + size] for i in range(0, len(todo), size)]

    said: set[str] = set()
    timer = StageTimer()
    full: list[Path] = []  # the photos a worker could not write for a full disk
    running = dict(enumerate(shards))  # the shards not come back yet
    failures: dict[int, list[str]] = {}  # each shard's failed photos, listed in the report in the folder's order
    before = _inodes(target, todo)  # outputs a rewritten photo replaces (--overwrite, a stale one)

    def advance(position: int, shard: ShardResult) -> None:  # counted as each shard comes back
        del running[position]
        say_warnings(shard.warnings, said)  # as a local run says them as it goes
        failures[position] = _count_shard(shard, report, timer)
        if shard.full is not None:
            full.append(shard.full)
        if progress is not None:
            progress.advance(len(shard.photos))

    try:  # a full disk stops the folder: no shard started after it, one running ends at its first unwritable photo
        run_all(ray, actors, "restore_photos", [(source, target, shard) for shard in shards], advance,
                stop=lambda: bool(full))
    except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM: what was finished is reported, as locally
        for position, so_far in _so_far(ray, actors, running).items():  # the shards still running: their photos
            say_warnings(so_far.warnings, said)                          # finished, with faces, settings, seconds
            failures[position] = _count_shard(ShardResult(so_far.photos), report, timer)
            running[position] = running[position][len(so_far.photos):]
        for actor in actors:  # then, so that (but for a photo finished meanwhile) none is written after
            ray.kill(actor)
        unreported = [p for shard in running.values() for p in shard]
        written = _written(target, unreported, before)
        report.images += len(written)
        report.failed += _in_folder_order(failures)
        finish_report(report, None, timer, start)
        raise interrupted(report, start, [p for p in unreported if p not in written]) from stop
    report.failed += _in_folder_order(failures)
    finish_report(report, None, timer, start)  # face counts summed from the workers' reports
    if full:
        raise stopped(full[0], report)
    return report


def _so_far(ray: Any, actors: list[Any], running: dict[int, list[Path]]) -> dict[int, ShardProgress]:
    """What each shard still running (by its position) has finished, asked of the workers (threaded actors, which
    answer while they restore) when the folder is stopped; a worker that does not answer within SO_FAR_SECONDS
    (its Ray gone) leaves its shard's photos to be counted by their outputs alone (_written)."""
    calls = [actor.shard_so_far.remote() for actor in actors]
    with cancelled(ray, calls):  # a second Ctrl-C
        ready, late = ray.wait(calls, num_returns=len(calls), timeout=SO_FAR_SECONDS)
    for call in late:
        ray.cancel(call)
    found: dict[int, ShardProgress] = {}
    for call in ready:
        try:
            answer = ray.get(call)
        except ray.exceptions.RayError:  # a worker that died meanwhile
            continue
        found.update({position: answer for position, shard in running.items() if shard == answer.relatives})
    return found


def _count_shard(shard: ShardResult, report: RestoreReport, timer: StageTimer) -> list[str]:
    """Add a shard's photos into the folder's report: each restored one's counts and seconds; each failed one said
    in a line (photos.say_failed) as it comes back, as locally (the one a full disk stopped the shard at is said by
    the folder's stop instead), and returned, for the report's `failed` to list in the folder's order whatever
    order the workers finished in."""
    failed = []
    for number, result in enumerate(shard.photos, 1):
        if isinstance(result, str):
            failed.append(result)
            if shard.full is None or number < len(shard.photos):
                say_failed(result)
            continue
        report.images += 1  # also a photo written by an attempt that was then killed (its retry skipped it)
        report.settings = report.settings or result.settings  # each worker's restore_image's, the same
        report.add_counts(result)
        for stage, seconds in result.stages.items():
            timer.add(stage, seconds)
    return failed


def _in_folder_order(failures: dict[int, list[str]]) -> list[str]:
    """The shards' failed photos, shard after shard: the shards are slices of the folder's photos in order."""
    return [line for position in sorted(failures) for line in failures[position]]


def _inodes(target: Path, relatives: list[Path]) -> dict[Path, int]:
    """The inode of each of these photos' outputs that is there (to be redone: --overwrite or stale), before the photos are restored."""
    return {relative: (target / relative).stat().st_ino for relative in relatives if (target / relative).exists()}


def _written(target: Path, relatives: list[Path], before: dict[Path, int]) -> set[Path]:
    """Which of these photos (of shards stopped before their workers said they finished them: one renamed into
    place as the stop landed) have an output this run wrote: there now and, where one was there `before`, another
    file (each photo is written under a temporary name and renamed into place, a new inode; on a file system
    without inodes none of those is counted). Their faces and seconds are not known."""
    written = set()
    for relative in relatives:
        try:
            inode = (target / relative).stat().st_ino
        except OSError:  # not written
            continue
        if relative not in before or inode != before[relative]:
            written.add(relative)
    return written

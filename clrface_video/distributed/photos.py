"""Photo folders on Ray: the photos still to do are sharded across the worker actors, each runs the local job per photo."""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from ..config import RestoreConfig
from ..paths import resolve_paths
from ..photos import folder_contents
from ..pipeline import finish_report, up_to_date, would_run
from ..report import Progress, RestoreReport, StageTimer, reports_warnings
from .cluster import run_all, say_warnings
from .worker import ShardResult

log = logging.getLogger("clrface_video.photos")

SHARDS_PER_WORKER = 4  # small shards balance the load; each costs one actor call


@reports_warnings
def restore_folder_ray(ray: Any, actors: list[Any], input: str | Path, output: str | Path | None = None,
                       config: RestoreConfig | None = None, *, progress: Progress | None = None) -> RestoreReport:
    """restore_folder on Ray: the same output tree, formats, EXIF/ICC, skip-done and atomic writes.

    Each photo is restored by restore_image on a worker (written under a temporary name, then
    renamed), so a worker killed mid-shard leaves only complete photos; its shard is retried and
    the photos already written are skipped, as a rerun of the whole job skips them. Face noise
    seeds count from config.seed in every photo, here as in restore_image and local folder mode, so
    a photo's result does not depend on which photos a worker did before it.
    """
    config = config or RestoreConfig()
    start = time.perf_counter()
    source, target = resolve_paths(input, output)
    photos, videos = folder_contents(source, target)
    if videos:
        log.warning("%s: %d video%s not restored: --backend ray restores a folder's photos; restore each video "
                    "on its own, or the whole folder with --backend local", source, len(videos),
                    "s" if len(videos) > 1 else "")
    todo = [p.relative_to(source) for p in photos  # a stale output is redone, said by the worker's restore_image
            if config.overwrite or not up_to_date(p, target / p.relative_to(source))]
    model, device = would_run(config, local=False)  # the workers' own, once there is work for them
    report = RestoreReport(input=str(source), output=str(target), kind="folder", model=model, device=device,
                           skipped=len(photos) - len(todo))
    if progress is not None:
        progress.start(len(todo), "images")
    if todo:
        report.model, report.device, _, _ = ray.get(actors[0].describe.remote())
        target.mkdir(parents=True, exist_ok=True)
    size = max(1, -(-len(todo) // (SHARDS_PER_WORKER * len(actors))))
    shards = [todo[i:i + size] for i in range(0, len(todo), size)]

    said: set[str] = set()

    def advance(position: int, shard: ShardResult) -> None:
        say_warnings(shard.warnings, said)  # as each shard comes back, as a local run says them as it goes
        if progress is not None:
            progress.advance(len(shard.photos))

    timer = StageTimer()
    for returned in run_all(ray, actors, "restore_photos", [(source, target, shard) for shard in shards], advance):
        for result in returned.photos:
            if isinstance(result, str):
                log.warning("skipped %s", result)
                report.failed.append(result)
                continue
            report.images += 1  # also a photo written by an attempt that was then killed (its retry skipped it)
            report.settings = report.settings or result.settings  # each worker's restore_image's, the same
            report.add_counts(result)
            for stage, seconds in result.stages.items():
                timer.add(stage, seconds)
    return finish_report(report, None, timer, start)  # face counts summed from the workers' reports

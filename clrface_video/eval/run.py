"""Which evaluation a source asks for (a folder of faces, a pair of folders, real degraded faces, a video), run."""
from __future__ import annotations

from pathlib import Path

from ..config import RestoreConfig
from ..errors import ClrfaceError
from ..io.decode import is_video_path
from . import paired, temporal
from . import unpaired as unpaired_eval


def evaluate(source: Path | None, names: list[str], *, clean: Path | None = None, degraded: Path | None = None,
             unpaired: bool = False, degrade_video: bool = False, limit: int | None = None,
             blurriest: int | None = None, seed: int = 0,
             size: int = 128, max_frames: int = 48, fidelity: float = 0.5, identity_guidance: bool = True,
             device: str = "auto") -> paired.PairedResult | temporal.TemporalResult:
    """The input, then each named restorer, on SOURCE: a folder of clean aligned faces (degraded with the seeded
    training recipe), CLEAN and DEGRADED folders of pairs, a folder of real degraded faces (unpaired), or a
    video (against CLEAN, or degraded itself with degrade_video)."""
    is_video = source is not None and source.is_file()
    if degrade_video and not is_video:
        raise ClrfaceError("--degrade-video needs a video SOURCE")
    if blurriest is not None and not unpaired:
        raise ClrfaceError("--blurriest picks among real degraded faces: give it with --unpaired")
    if (degraded is not None or unpaired) and is_video:
        raise ClrfaceError("--degraded and --unpaired are for folders of faces; SOURCE is a video")
    if not is_video and (clean is None) != (degraded is None):
        raise ClrfaceError("give both --clean DIR and --degraded DIR for an existing pair of folders")
    if is_video:
        assert source is not None
        if not is_video_path(source):
            raise ClrfaceError(f"{source.name} is neither a folder of faces nor a video")
        return temporal.evaluate_video(source, names, clean=clean, degrade_seed=seed if degrade_video else None,
                                       max_frames=max_frames,
                                       config=RestoreConfig(device=device, fidelity=fidelity,
                                                            identity_guidance=identity_guidance))
    restorers = paired.make_restorers(names, device, fidelity, guidance=identity_guidance)
    if clean is not None and degraded is not None:
        return paired.evaluate_existing_pairs(clean, degraded, restorers, size=size, limit=limit)
    if source is None:
        raise ClrfaceError("give SOURCE (a folder of faces or a video), or --clean DIR --degraded DIR")
    if unpaired:
        return unpaired_eval.evaluate_unpaired(source, restorers, size=size, limit=limit, blurriest=blurriest)
    return paired.evaluate_folder(source, restorers, size=size, seed=seed, limit=limit)

"""Room for a mammography run's checkpoints (the files themselves are :class:`lca_toolkit.RunDir`'s)."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from lca_toolkit.store import nearest_existing

__all__ = ["check_room"]


def check_room(directory: Path, model: torch.nn.Module) -> None:
    """Refuse to start when a checkpoint cannot fit: free disk space or the file-size limit.

    The checkpoint holds at least the model and Adam's two moment buffers (3x the parameter
    bytes); LCA snapshots add more, so passing this check does not guarantee the saves, it only
    catches the hopeless cases before hours of training.
    """
    need = 3 * sum(p.numel() * p.element_size() for p in model.parameters())
    existing = nearest_existing(directory)
    free = shutil.disk_usage(existing).free
    if free < need:
        raise OSError(
            f"not enough disk space for checkpoints in {directory}: {free / 2**20:.1f} MiB free, "
            f"a checkpoint needs at least {need / 2**20:.1f} MiB"
        )
    try:
        import resource  # POSIX only
    except ImportError:
        return
    limit, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    if limit != resource.RLIM_INFINITY and limit < need:
        raise OSError(
            f"the file-size limit (ulimit -f) of {limit / 2**20:.1f} MiB is below the size of a "
            f"checkpoint in {directory} (at least {need / 2**20:.1f} MiB); raise the limit"
        )

"""File-system probes: can a store (or checkpoint) be written at a path, and is a path a store.

Kept apart from the writer so that the command line and the experiment runner can check an
output folder before any training, without opening a store.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import StoreError
from ._reader import is_run_store


def nearest_existing(path: str | os.PathLike[str]) -> Path:
    """``path`` itself when it is a folder, else its nearest existing ancestor (may be a file)."""
    existing = Path(path)
    existing = existing if existing.is_dir() else existing.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return existing


def check_writable(path: str | os.PathLike[str]) -> None:
    """Fail early when files cannot be created at ``path`` (a store or checkpoint to be written).

    Creates and removes a probe file in the nearest existing folder of ``path``, so a read-only
    folder or file system, missing permissions or a path under a regular file are reported
    before any training, as one message naming the folder.

    Raises:
        StoreError: naming the folder and the operating system's reason.
    """
    target = Path(path)
    existing = nearest_existing(target)
    if not existing.is_dir():
        raise StoreError(
            f"cannot write '{target}': '{existing}' is a file, not a writable directory"
        )
    try:
        with tempfile.TemporaryFile(dir=existing, prefix=".lca-write-probe-") as probe:
            probe.write(b"0")
            probe.flush()
    except OSError as exc:
        raise StoreError(
            f"cannot write '{target}': no file can be created in '{existing}' "
            f"({exc.strerror or exc})"
        ) from exc


def is_run_store_or_empty(path: Path) -> bool:
    """Whether ``overwrite`` may replace ``path``: an empty folder or an lca-toolkit run store."""
    return (path.is_dir() and not any(path.iterdir())) or is_run_store(path)

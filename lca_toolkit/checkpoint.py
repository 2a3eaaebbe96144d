"""Atomic checkpoint files: a crash while saving never leaves a half-written file behind."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file in the same directory, fsync, then rename over ``path``.

    The object is serialised in memory first, so that a failing write (a full disk, a file-size
    limit) surfaces as an ``OSError`` naming ``path`` rather than as an error from inside the
    serialiser; the temporary file is removed and ``path`` keeps its previous checkpoint.
    """
    path = Path(path)
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(buffer.getbuffer())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException as exc:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):  # e.g. a full disk: say which file could not be written
            raise OSError(
                exc.errno, f"cannot write checkpoint {path}: {exc.strerror or exc}"
            ) from exc
        raise

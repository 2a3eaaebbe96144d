"""Checkpoints of mammography runs: atomic saves (from lca_toolkit) and loading."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from lca_toolkit.checkpoint import save_atomic

__all__ = ["CheckpointNotFoundError", "load", "save_atomic"]


class CheckpointNotFoundError(FileNotFoundError):
    """No checkpoint to resume from; the message names the path."""


def load(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_atomic` (our own files: full unpickling)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(f"no checkpoint at {path}")
    return torch.load(path, map_location=map_location, weights_only=False)

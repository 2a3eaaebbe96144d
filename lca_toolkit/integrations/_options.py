"""The Tracker keywords a trainer callback accepts, checked when the callback is built."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import TrackerError

OWNED_BY_CALLBACK: tuple[str, ...] = ("model", "optimizer")
"""Tracker arguments the callback takes from the trainer, never from the user."""


def tracker_options(options: Mapping[str, Any], *, where: str) -> dict[str, Any]:
    """Validate the ``**tracker_options`` of a callback (``where`` names it in errors)."""
    given = sorted(k for k in OWNED_BY_CALLBACK if k in options)
    if given:
        raise TrackerError(
            f"{where}: {', '.join(given)} come(s) from the trainer; do not pass them as options"
        )
    return dict(options)

"""What the Tracker hands its destination: the row records and the :class:`Sink` protocol.

This is the contract between the Tracker and wherever its rows go (the zarr
:class:`~lca_toolkit.store.RunWriter`, :class:`~lca_toolkit.sinks.MemorySink`,
:class:`~lca_toolkit.sinks.NullSink`, or a sink of your own): a block of optimizer steps
(:class:`StepBlock`), one LCA interval (:class:`LcaRecord`), and the calls a sink must accept.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

from .store._records import LcaRecord, StepBlock

__all__ = ["LcaRecord", "Sink", "StepBlock"]


class Sink(Protocol):
    """What the Tracker needs from a destination for its records."""

    def append_steps(self, block: StepBlock) -> None: ...
    def append_lca(self, record: LcaRecord) -> None: ...
    def append_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None: ...
    def write_cumulative_lca(self, arrays: Mapping[str, np.ndarray], at_step: int) -> None: ...
    def write_table(self, name: str, columns: Mapping[str, np.ndarray]) -> None: ...
    def update_attrs(self, **attrs: Any) -> None: ...
    def flush(self) -> None: ...
    def truncate(
        self, *, last_step: int, last_epoch: int | None = None, last_lca_end: int | None = None
    ) -> None: ...
    def close(self, status: str = "finished", reason: str | None = None) -> None: ...

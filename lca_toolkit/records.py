"""What the Tracker hands its destination: the records and the :class:`Sink` protocol.

This is the contract between the Tracker and wherever its rows go (the zarr
:class:`~lca_toolkit.store.RunWriter`, :class:`~lca_toolkit.sinks.MemorySink`,
:class:`~lca_toolkit.sinks.NullSink`, or a sink of your own): a block of optimizer steps
(:class:`StepBlock`), one LCA interval (:class:`LcaRecord`), and the calls a sink must accept.

A quantity of the Tracker emits one of the :data:`Record` kinds once; the Tracker's
:class:`~lca_toolkit.output.Output` routes it to the sink and the mirror. The last four kinds
below wrap the other sink calls, so every record travels the same path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias

import numpy as np

from .store._records import LcaRecord, StepBlock

__all__ = [
    "Attrs",
    "CumulativeLca",
    "EpochRow",
    "LcaRecord",
    "Record",
    "Sink",
    "StepBlock",
    "Table",
]


@dataclass(frozen=True)
class EpochRow:
    """Per-epoch metrics (train/val AUC, losses...), logged after optimizer step ``step``."""

    epoch: int
    metrics: Mapping[str, float]
    step: int


@dataclass(frozen=True)
class CumulativeLca:
    """Per-parameter running sums of LCA (parameter name -> array), up to step ``at_step``."""

    arrays: Mapping[str, np.ndarray]
    at_step: int


@dataclass(frozen=True)
class Table:
    """A small table of the run (1-D columns of one length), replacing an older one of its name."""

    name: str
    columns: Mapping[str, np.ndarray]


@dataclass(frozen=True)
class Attrs:
    """Run-level attributes (JSON-serialisable) stored beside the records."""

    values: Mapping[str, Any] = field(default_factory=dict)


Record: TypeAlias = "StepBlock | LcaRecord | EpochRow | CumulativeLca | Table | Attrs"
"""What a quantity emits; :meth:`~lca_toolkit.output.Output.emit` routes each kind."""


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

"""The one path from the Tracker's quantities to the run store and the live mirror.

A quantity emits each record once (:meth:`Output.emit`); the output hands it to the sink (the
zarr store, memory, or nothing) and, for the kinds a mirror shows, to the mirror right after it.
Which process writes is decided here, once, when the output opens: under DDP or FSDP2 every rank
measures (the measurements are collective) but only rank 0 holds a store and a mirror; the other
ranks route into a :class:`~lca_toolkit.sinks.NullSink` and no mirror, so no quantity ever asks
which rank it is on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from . import distributed
from .errors import TrackerError
from .groups import ParamGroups
from .lca_config import LcaConfig
from .mirrors import GuardedMirror, Mirror, open_mirror
from .records import Attrs, CumulativeLca, EpochRow, LcaRecord, Record, Sink, StepBlock, Table
from .sinks import open_sink


class Output:
    """Routes each emitted record to the sink and the mirror.

    Args:
        sink: where records are stored (the source of truth).
        mirror: the guarded live mirror, or ``None``; it gets step blocks, LCA intervals and
            epoch rows after the sink (tables, cumulative arrays and attributes are store-only).

    Attributes:
        sink: the sink (``Tracker.sink``).
        mirror: the guarded mirror or ``None`` (``Tracker.mirror``).
    """

    def __init__(self, sink: Sink, mirror: GuardedMirror | None = None) -> None:
        self.sink = sink
        self.mirror = mirror
        self._routes: dict[type, Callable[[Any], None]] = {
            StepBlock: self._steps,
            LcaRecord: self._lca,
            EpochRow: self._epoch,
            CumulativeLca: self._cumulative,
            Table: self._table,
            Attrs: self._attrs,
        }

    @classmethod
    def open(
        cls,
        store: str | os.PathLike[str] | Sink | None,
        mirror: str | os.PathLike[str] | Mirror | None,
        *,
        groups: ParamGroups,
        group_names: list[str],
        members: Mapping[str, Any],
        model: Any,
        optimizer: Any,
        lca: LcaConfig | None,
        tensor_names: list[str] | None,
        config: Mapping[str, Any] | None,
        store_mode: str,
        flush_every: int,
    ) -> Output:
        """The Tracker's output: the sink :func:`~lca_toolkit.sinks.open_sink` opens and the
        mirror ``mirror`` names, both on rank 0 only.

        The mirror spec is checked on every rank first (a bad spec or a missing extra fails
        everywhere, before a store exists); its writer opens at the first record.
        """
        guarded = open_mirror(mirror)
        if not distributed.is_main():
            guarded = None
        sink = open_sink(
            store,
            groups=groups,
            group_names=group_names,
            members=members,
            model=model,
            optimizer=optimizer,
            lca=lca,
            tensor_names=tensor_names,
            config=config,
            store_mode=store_mode,
            flush_every=flush_every,
        )
        if guarded is not None:
            guarded.start(group_names)
        return cls(sink, guarded)

    # ----------------------------------------------------------------------------- records
    def emit(self, record: Record) -> None:
        """Store ``record`` (and mirror it when its kind is mirrored).

        Raises:
            TrackerError: ``record`` is not one of the kinds in :mod:`lca_toolkit.records`.
        """
        route = self._routes.get(type(record))
        if route is None:
            kinds = ", ".join(t.__name__ for t in self._routes)
            raise TrackerError(
                f"a quantity emitted a {type(record).__name__}; records are one of {kinds} "
                "(lca_toolkit.records)"
            )
        route(record)

    def _steps(self, block: StepBlock) -> None:
        self.sink.append_steps(block)
        if self.mirror is not None:
            self.mirror.append_steps(block)

    def _lca(self, record: LcaRecord) -> None:
        self.sink.append_lca(record)
        if self.mirror is not None:
            self.mirror.append_lca(record)

    def _epoch(self, row: EpochRow) -> None:
        self.sink.append_epoch(row.epoch, row.metrics)
        if self.mirror is not None:
            self.mirror.append_epoch(row.epoch, row.metrics, row.step)

    def _cumulative(self, record: CumulativeLca) -> None:
        self.sink.write_cumulative_lca(record.arrays, at_step=record.at_step)

    def _table(self, table: Table) -> None:
        self.sink.write_table(table.name, table.columns)

    def _attrs(self, attrs: Attrs) -> None:
        self.sink.update_attrs(**attrs.values)

    # ----------------------------------------------------------------------------- lifecycle
    def truncate(
        self, *, last_step: int, last_epoch: int | None = None, last_lca_end: int | None = None
    ) -> None:
        """Drop what was stored after a checkpoint (resume) from the sink and the mirror."""
        if last_lca_end is None:
            self.sink.truncate(last_step=last_step, last_epoch=last_epoch)
        else:
            self.sink.truncate(
                last_step=last_step, last_epoch=last_epoch, last_lca_end=last_lca_end
            )
        if self.mirror is not None:
            self.mirror.truncate(last_step=last_step)

    def flush(self) -> None:
        """Wait until the sink has written everything; flush the mirror."""
        self.sink.flush()
        if self.mirror is not None:
            self.mirror.flush()

    def close(self, status: str, reason: str | None) -> None:
        """Close the sink with the run's status, then the mirror (even if the sink raised)."""
        try:
            self.sink.close(status=status, reason=reason)
        finally:
            if self.mirror is not None:
                self.mirror.close()

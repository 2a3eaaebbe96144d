"""StoreFile: one run store on disk, written synchronously by one caller at a time.

It creates a store (built in a hidden sibling folder, then moved into place), resumes one (cutting
back rows a killed process left uncommitted), appends a :class:`Batch` of rows as one commit,
truncates back to a checkpoint and records the run's status. It has no thread and no queue: the
background worker of :class:`~lca_toolkit.store.RunWriter` drives it, and tests call it directly.

A commit appends each section's rows to all of its arrays (resize, then write the new rows) and
only then updates the root attribute ``rows`` with the new counts, in one atomic rewrite of the
root ``zarr.json``. Readers cut every array to those counts, so they see a consistent prefix while
the run is writing, and a run killed mid-commit keeps every row committed before.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.metadata
import math
import os
import platform
import shutil
import sys
import uuid
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.storage import LocalStore

from ..errors import RecordError, StoreError, StoreExistsError
from ._fs import is_run_store_or_empty
from ._layout import StoreLayout
from ._reader import read_root_attrs
from ._records import LcaRecord, StepBlock
from ._schema import (
    BY_TENSOR,
    CUMULATIVE_GROUP,
    EPOCH_INDEX,
    ERROR_BY_GROUP,
    LCA_ARRAYS,
    PARAM_NORM,
    SCHEMA_VERSION,
    SECTIONS,
    TABLES_GROUP,
    ArraySpec,
    jsonable,
    metric_spec,
)

Writes = list[Coroutine[Any, Any, None]]
Gather = Callable[[Writes], Coroutine[Any, Any, None]]
"""Awaits all array writes of one commit (see :func:`gather_writes`)."""


@dataclass
class Batch:
    """Everything one commit writes; the rows are appended in list order.

    Attributes:
        steps: blocks of consecutive steps, each after the previous one.
        lca: LCA intervals, each starting at or after the previous one's end.
        epochs: ``(epoch, metrics)`` rows, epochs increasing.
        cumulative: the newest cumulative LCA arrays and the step they include, or ``None``.
        tables: table name -> columns (each replaces the stored table of that name).
        attrs: extra JSON-ready root attributes.
    """

    steps: list[StepBlock] = field(default_factory=list)
    lca: list[LcaRecord] = field(default_factory=list)
    epochs: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    cumulative: tuple[dict[str, np.ndarray], int] | None = None
    tables: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)


async def gather_writes(writes: Writes) -> None:
    """Run all writes; the first failure is raised once every write has settled."""
    results = await asyncio.gather(*writes, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


class StoreFile:
    """An open run store; use :meth:`create` or :meth:`resume`, not the constructor.

    Not thread-safe: every call must come from one thread at a time. The array writes of a commit
    run concurrently on the object's own event loop, created on the first commit and ended by
    :meth:`close`.
    """

    def __init__(self, path: Path, layout: StoreLayout, *, gather: Gather = gather_writes) -> None:
        self._path = path
        self._layout = layout
        self._gather = gather
        self._loop: asyncio.AbstractEventLoop | None = None
        self._root = zarr.open_group(LocalStore(path), mode="r+", use_consolidated=False)
        self._arrays: dict[str, dict[str, zarr.Array]] = {s: {} for s in SECTIONS}
        for section in SECTIONS:
            for name, arr in self._root[section].arrays():
                self._arrays[section][name] = arr
        if PARAM_NORM.name in self._arrays["steps"] and not layout.param_norm:
            # A store that has the column keeps getting rows of it (NaN from producers without).
            self._layout = dataclasses.replace(layout, param_norm=True)
        self._cumulative_arrays: dict[str, zarr.Array] = {}
        self._rows = {s: 0 for s in SECTIONS}
        self._epoch_metrics: list[str] = []
        self._generation = 0
        self._cumulative_at: int | None = None
        self._last_step: int | None = None
        self._last_lca_end: int | None = None
        self._last_epoch: int | None = None

    # ====================================================================== opening
    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        layout: StoreLayout,
        *,
        config: Mapping[str, Any] | None = None,
        model_summary: Mapping[str, Any] | None = None,
        library_version: str | None = None,
        overwrite: bool = False,
        gather: Gather = gather_writes,
    ) -> StoreFile:
        """Build the whole store in a hidden sibling folder, then move it into place.

        Readers therefore never see a half-created store, and ``overwrite`` replaces the old run
        only once the new one is complete.

        Args:
            path: the run's zarr directory.
            layout: its groups, members, learning-rate groups and tensor names.
            config: run configuration (JSON-serialisable), stored in the root attrs.
            model_summary: parameter counts per group and other model facts.
            library_version: the ``lca_toolkit`` version recorded in ``library_versions``.
            overwrite: replace an existing run store (or empty folder) at ``path``.
            gather: awaits the array writes of each commit.

        Raises:
            StoreExistsError: something exists at ``path`` and ``overwrite`` is false, or
                ``overwrite`` and it is not a run store.
            StoreError: the store could not be written (naming the OS error).
        """
        path = Path(path)
        config_json = jsonable(dict(config or {}), "config")
        summary_json = jsonable(dict(model_summary or {}), "model_summary")
        old: Path | None = None
        if os.path.lexists(path):
            if not overwrite:
                raise StoreExistsError(
                    f"'{path}' already exists; pass mode='resume' to continue that run or "
                    "mode='overwrite' to replace it"
                )
            if not is_run_store_or_empty(path):
                raise StoreExistsError(
                    f"refusing to overwrite '{path}': it is not an lca-toolkit run store (delete "
                    "it yourself or choose another path)"
                )
            old = path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.creating"
        try:
            root = zarr.open_group(LocalStore(tmp), mode="w-", zarr_format=3)
            for section in SECTIONS:
                grp = root.create_group(section)
                for spec in layout.fixed_specs(section):
                    layout.create_array(grp, section, spec, rows=0)
            attrs: dict[str, Any] = {
                "schema_version": SCHEMA_VERSION,
                "groups": list(layout.groups),
                "group_members": layout.members,
                "lr_groups": layout.lr_groups,
                "config": config_json,
                "model_summary": summary_json,
                "library_versions": library_versions(library_version),
                "created": _now(),
                "resumed": [],
                "status": "running",
                "status_reason": None,
                "rows": {s: 0 for s in SECTIONS},
                "epoch_metrics": [],
                "generation": 0,
                "lca_cumulative_at_step": None,
            }
            if layout.tensor_names is not None:
                attrs["tensor_names"] = list(layout.tensor_names)
            root.attrs.update(attrs)
            trash = None
            if old is not None:
                trash = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.replaced"
                os.rename(path, trash)
            os.rename(tmp, path)
            if trash is not None:
                shutil.rmtree(trash, ignore_errors=True)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"cannot create run store '{path}': {exc}") from exc
        return cls(path, layout, gather=gather)

    @classmethod
    def resume(
        cls,
        path: str | os.PathLike[str],
        layout: StoreLayout,
        *,
        library_version: str | None = None,
        gather: Gather = gather_writes,
    ) -> StoreFile:
        """Reopen a store: check it matches ``layout``, drop rows a crash left uncommitted.

        Sets the status back to ``running`` and appends an entry to the ``resumed`` attribute.

        Raises:
            StoreNotFoundError: there is no run store at ``path``.
            SchemaVersionError: the store has a newer or missing schema version.
            RunMismatchError: the store has another layout.
            StoreError: the store is damaged or cannot be written.
        """
        path = Path(path)
        attrs = read_root_attrs(path)
        layout.check_matches(attrs, path)
        store = cls(path, layout, gather=gather)
        store._reopen(attrs, library_version)
        return store

    def _reopen(self, attrs: Mapping[str, Any], library_version: str | None) -> None:
        self._rows = {s: int(attrs["rows"][s]) for s in SECTIONS}
        self._epoch_metrics = list(attrs.get("epoch_metrics", []))
        self._generation = int(attrs.get("generation", 0))
        self._cumulative_at = attrs.get("lca_cumulative_at_step")
        try:
            self._add_missing_arrays()
            # A run killed mid-commit may have arrays longer than the committed rows, or a new
            # metric array that never got committed: cut back to the committed state.
            for section in SECTIONS:
                for spec in self._section_specs(section):
                    self._resize(section, spec.name, self._rows[section])
            for name in list(self._arrays["epochs"]):
                if name != EPOCH_INDEX.name and name not in self._epoch_metrics:
                    del self._root["epochs"][name]
                    del self._arrays["epochs"][name]
            self._last_step = self._last_value("steps", "step")
            self._last_lca_end = self._last_value("lca", "end_step")
            self._last_epoch = self._last_value("epochs", "epoch")
            resumed = list(attrs.get("resumed", []))
            resumed.append({"at": _now(), "last_step": self._last_step, "rows": self._rows})
            self._root.attrs.update(
                {
                    "status": "running",
                    "status_reason": None,
                    "resumed": resumed,
                    "library_versions": library_versions(library_version),
                }
            )
        except Exception as exc:  # noqa: BLE001 - any failure here means a damaged store
            raise StoreError(
                f"cannot reopen run store '{self._path}' for resume: {describe(exc)}"
            ) from exc

    def _add_missing_arrays(self) -> None:
        """Give a store written before an array existed that array, NaN in its committed rows.

        So a resumed old store (without ``lca/error_by_group``) keeps one shape for every row.
        """
        for section in SECTIONS:
            for spec in self._layout.fixed_specs(section):
                if spec.name not in self._arrays[section]:
                    grp = self._root[section]
                    arr = self._layout.create_array(grp, section, spec, rows=self._rows[section])
                    self._arrays[section][spec.name] = arr

    def _section_specs(self, section: str) -> tuple[ArraySpec, ...]:
        return self._layout.section_specs(section, self._epoch_metrics)

    def _resize(self, section: str, name: str, rows: int) -> None:
        arr = self._arrays[section][name]
        if arr.shape[0] != rows:
            arr.resize((rows, *arr.shape[1:]))

    def _last_value(self, section: str, name: str) -> int | None:
        n = self._rows[section]
        return None if n == 0 else int(self._arrays[section][name][n - 1])

    # ====================================================================== state
    @property
    def path(self) -> Path:
        """The store's path."""
        return self._path

    @property
    def layout(self) -> StoreLayout:
        """The store's groups, members, learning-rate groups and tensor names."""
        return self._layout

    @property
    def rows(self) -> dict[str, int]:
        """Committed row counts per section."""
        return dict(self._rows)

    @property
    def last_step(self) -> int | None:
        """The last committed step, ``None`` for no steps."""
        return self._last_step

    @property
    def last_lca_end(self) -> int | None:
        """The end step of the last committed LCA interval, ``None`` for none."""
        return self._last_lca_end

    @property
    def last_epoch(self) -> int | None:
        """The last committed epoch, ``None`` for none."""
        return self._last_epoch

    # ====================================================================== appending
    def append(self, batch: Batch) -> None:
        """Append all rows of ``batch``, then publish the new row counts in the root attrs.

        Rows are not checked for order here (the writer does that before queueing them).

        Raises:
            StoreError: a write failed (naming the store and the OS error); the store keeps its
                committed prefix and this object its committed counts.
        """
        try:
            rows = dict(self._rows)
            update: dict[str, Any] = {}
            writes: Writes = []
            if batch.steps:
                blocks = batch.steps
                cols = {
                    s.name: np.concatenate([getattr(b, s.name) for b in blocks])
                    for s in self._layout.fixed_specs("steps")
                }
                rows["steps"] = self._extend("steps", cols, writes)
            if batch.lca:
                recs = batch.lca
                cols = {s.name: np.array([getattr(r, s.name) for r in recs]) for s in LCA_ARRAYS}
                cols[ERROR_BY_GROUP.name] = np.stack([_error_row(r) for r in recs])
                if self._layout.tensor_names is not None:
                    cols[BY_TENSOR.name] = np.stack([r.by_tensor for r in recs])
                rows["lca"] = self._extend("lca", cols, writes)
            if batch.epochs:
                rows["epochs"] = self._extend_epochs(batch.epochs, writes)
                update["epoch_metrics"] = list(self._epoch_metrics)
            if writes:
                self._run_writes(writes)
            if batch.cumulative is not None:
                arrays, at_step = batch.cumulative
                self._write_cumulative(arrays, at_step)
                update["lca_cumulative_at_step"] = at_step
            for table, columns in batch.tables.items():
                self._write_table(table, columns)
            update.update(batch.attrs)
            update["rows"] = rows
            self._root.attrs.update(update)
        except Exception as exc:  # noqa: BLE001 - every failure must reach the caller
            raise StoreError(
                f"writing run store '{self._path}' failed: {describe(exc)}. Rows queued since "
                f"the last commit are lost; the store keeps its committed prefix "
                f"({self._rows['steps']} steps, {self._rows['lca']} LCA intervals, "
                f"{self._rows['epochs']} epochs)"
            ) from exc
        if batch.steps:
            self._last_step = int(batch.steps[-1].step[-1])
        if batch.lca:
            self._last_lca_end = batch.lca[-1].end_step
        if batch.epochs:
            self._last_epoch = batch.epochs[-1][0]
        if batch.cumulative is not None:
            self._cumulative_at = batch.cumulative[1]
        self._rows = rows

    def _run_writes(self, writes: Writes) -> None:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._gather(writes))

    def _extend(self, section: str, cols: Mapping[str, np.ndarray], writes: Writes) -> int:
        """Queue the resize and write of every array of ``section``; returns the new count."""
        n0 = self._rows[section]
        n1 = n0 + len(next(iter(cols.values())))
        for name, data in cols.items():
            writes.append(_grow(self._arrays[section][name], n0, n1, data))
        return n1

    def _extend_epochs(self, rows: list[tuple[int, dict[str, float]]], writes: Writes) -> int:
        n0 = self._rows["epochs"]
        for _, metrics in rows:
            for name in metrics:
                if name not in self._epoch_metrics:
                    # Rows before this epoch read as the fill value, NaN.
                    grp = self._root["epochs"]
                    arr = self._layout.create_array(grp, "epochs", metric_spec(name), n0)
                    self._arrays["epochs"][name] = arr
                    self._epoch_metrics.append(name)
        cols: dict[str, np.ndarray] = {
            EPOCH_INDEX.name: np.array([e for e, _ in rows], dtype=np.int64)
        }
        for name in self._epoch_metrics:
            cols[name] = np.array([m.get(name, math.nan) for _, m in rows], dtype=np.float64)
        return self._extend("epochs", cols, writes)

    def _write_cumulative(self, arrays: Mapping[str, np.ndarray], at_step: int) -> None:
        grp = self._root.require_group(CUMULATIVE_GROUP)
        for name, data in arrays.items():
            arr = self._cumulative_arrays.get(name)
            if arr is None or arr.shape != data.shape:
                arr = grp.create_array(
                    name,
                    shape=data.shape,
                    dtype="float64",
                    fill_value=math.nan,
                    overwrite=True,
                    attributes={"description": "cumulative LCA of the parameter"},
                )
                self._cumulative_arrays[name] = arr
            arr[...] = data
        for name in list(self._cumulative_arrays):
            if name not in arrays:
                del grp[name]
                del self._cumulative_arrays[name]
        grp.attrs.update({"at_step": at_step, "names": list(arrays)})

    def _write_table(self, name: str, columns: Mapping[str, np.ndarray]) -> None:
        grp = self._root.require_group(TABLES_GROUP).require_group(name)
        for col in list(grp.array_keys()):
            if col not in columns:
                del grp[col]
        for col, data in columns.items():
            arr = grp.create_array(col, shape=data.shape, dtype=data.dtype, overwrite=True)
            if data.size:
                arr[...] = data
        grp.attrs.update({"columns": list(columns)})

    # ====================================================================== truncating
    def truncate(
        self,
        last_step: int,
        last_epoch: int | None,
        *,
        allow_gaps: bool = False,
        last_lca_end: int | None = None,
    ) -> None:
        """Cut the store back to a checkpoint: publish the smaller counts first, then shrink.

        Drops step rows with ``step > last_step``, LCA rows with ``end_step > last_lca_end``
        (``last_step`` when ``None``; the checkpoint's last snapshot, so an interval measured
        when the earlier run ended is open again), epoch rows with ``epoch > last_epoch`` (none
        when ``last_epoch`` is ``None``), and the cumulative LCA arrays if they were written
        after the LCA cut.

        Raises:
            RecordError: the store ends before ``last_step`` and ``allow_gaps`` is false.
            StoreError: the store could not be rewritten (naming the OS error).
        """
        steps = np.asarray(self._arrays["steps"]["step"][: self._rows["steps"]])
        if len(steps) and steps[-1] < last_step and not allow_gaps:
            raise RecordError(
                f"cannot resume '{self._path}' at step {last_step}: the store ends at step "
                f"{int(steps[-1])}, so steps {int(steps[-1]) + 1}..{last_step} were never "
                "committed (flush the writer when saving a checkpoint), or pass "
                "allow_step_gaps=True"
            )
        ends = np.asarray(self._arrays["lca"]["end_step"][: self._rows["lca"]])
        lca_cut = last_step if last_lca_end is None else min(last_lca_end, last_step)
        epochs = np.asarray(self._arrays["epochs"]["epoch"][: self._rows["epochs"]])
        rows = {
            "steps": int(np.searchsorted(steps, last_step, side="right")),
            "lca": int(np.searchsorted(ends, lca_cut, side="right")),
            "epochs": len(epochs)
            if last_epoch is None
            else int(np.searchsorted(epochs, last_epoch, side="right")),
        }
        drop_cumulative = self._cumulative_at is not None and self._cumulative_at > lca_cut
        try:
            if rows != self._rows or drop_cumulative:
                self._generation += 1
                update: dict[str, Any] = {"rows": rows, "generation": self._generation}
                if drop_cumulative:
                    update["lca_cumulative_at_step"] = None
                self._root.attrs.update(update)
                self._rows = rows
                for section in SECTIONS:
                    for spec in self._section_specs(section):
                        self._resize(section, spec.name, rows[section])
                if drop_cumulative:
                    if CUMULATIVE_GROUP in self._root:
                        del self._root[CUMULATIVE_GROUP]
                    self._cumulative_arrays = {}
                    self._cumulative_at = None
        except Exception as exc:  # noqa: BLE001
            raise StoreError(
                f"truncating run store '{self._path}' failed: {describe(exc)}"
            ) from exc
        self._last_step = int(steps[rows["steps"] - 1]) if rows["steps"] else None
        self._last_lca_end = int(ends[rows["lca"] - 1]) if rows["lca"] else None
        self._last_epoch = int(epochs[rows["epochs"] - 1]) if rows["epochs"] else None

    # ====================================================================== status
    def set_status(self, status: str, reason: str | None) -> None:
        """Record the run's status (``running``, ``finished``, ``failed``, ``interrupted``).

        Raises:
            StoreError: the root attributes could not be written.
        """
        try:
            self._root.attrs.update({"status": status, "status_reason": reason})
        except Exception as exc:  # noqa: BLE001
            raise StoreError(
                f"writing the final status of '{self._path}' failed: {describe(exc)}"
            ) from exc

    def close(self) -> None:
        """End the event loop of the commits; the committed state stays readable."""
        if self._loop is None:
            return
        loop, self._loop = self._loop, None
        try:
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()


# ========================================================================== helpers
def _error_row(record: LcaRecord) -> np.ndarray:
    """The record's ``error_by_group``, or NaN per group when it has none."""
    if record.error_by_group is None:
        return np.full(record.n_groups, math.nan)
    return record.error_by_group


async def _grow(arr: zarr.Array, n0: int, n1: int, data: np.ndarray) -> None:
    """Resize ``arr`` to ``n1`` rows and write ``data`` into rows ``n0:n1``."""
    target = arr.async_array
    await target.resize((n1, *target.shape[1:]))
    await target.setitem(slice(n0, n1), data)


def describe(exc: BaseException) -> str:
    """An OS error as its own message, anything else prefixed with its type."""
    return str(exc) if isinstance(exc, OSError) else f"{type(exc).__name__}: {exc}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def library_versions(lca_toolkit_version: str | None) -> dict[str, str | None]:
    """Versions that produced the store; torch is looked up without importing it."""
    torch_mod = sys.modules.get("torch")
    torch_version = getattr(torch_mod, "__version__", None)
    if torch_version is None:
        try:
            torch_version = importlib.metadata.version("torch")
        except importlib.metadata.PackageNotFoundError:
            torch_version = None
    return {
        "lca_toolkit": lca_toolkit_version,
        "torch": None if torch_version is None else str(torch_version),
        "numpy": np.__version__,
        "zarr": zarr.__version__,
        "python": platform.python_version(),
    }

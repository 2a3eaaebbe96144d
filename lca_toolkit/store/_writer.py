"""RunWriter: append a run's records to its zarr store from a background thread.

The training thread only checks a record's shape and order and puts it on a queue (a few
microseconds, no zarr I/O). One writer thread per store drains the queue, buffers rows and commits
them every ``flush_every`` rows, ``flush_interval`` seconds after the oldest buffered row, on
``flush()``, ``truncate()`` and ``close()``, and at interpreter exit.

A commit appends each section's rows to all of its arrays (resize, then write the new rows) and
only then updates the root attribute ``rows`` with the new counts, in one atomic rewrite of the
root ``zarr.json``. Readers cut every array to those counts, so they see a consistent prefix while
the run is writing, and a run killed mid-commit keeps every row committed before.

A write that fails in the thread (disk full, permissions) is kept and raised as ``StoreError``
naming the store and the OS error on the next call from the training thread.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import concurrent.futures.thread  # noqa: F401 - its exit hook must be registered before ours
import importlib.metadata
import math
import os
import platform
import queue
import shutil
import sys
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
import zarr
from zarr.storage import LocalStore

from ..errors import (
    RecordError,
    RunMismatchError,
    StoreError,
    StoreExistsError,
)
from ._reader import is_run_store, read_root_attrs
from ._records import LcaRecord, StepBlock
from ._schema import (
    BY_TENSOR,
    CHUNK_ROWS,
    CUMULATIVE_GROUP,
    EPOCH_INDEX,
    ERROR_BY_GROUP,
    LCA_ARRAYS,
    ROOT_ATTR_KEYS,
    ROW_DIM,
    SCHEMA_VERSION,
    SECTIONS,
    STEP_ARRAYS,
    TABLES_GROUP,
    ArraySpec,
    check_members,
    check_names,
    check_node_name,
    jsonable,
    metric_spec,
)

Mode = Literal["create", "resume", "overwrite"]
Status = Literal["finished", "failed", "interrupted"]

_WAIT_POLL_S = 0.5

_OPEN_WRITERS: weakref.WeakSet[RunWriter] = weakref.WeakSet()


def _close_open_writers_at_exit() -> None:
    """Commit what every still-open writer holds when the interpreter exits.

    It must run while zarr can still do I/O: zarr writes through a ``ThreadPoolExecutor`` that
    ``concurrent.futures`` shuts down in a *threading* exit hook, before ``atexit`` handlers
    run. So this is registered as a threading exit hook too, after zarr's import registered
    the executor's, which makes it run first (the hooks run last-registered first). An uncaught
    exception marks the run ``failed``; a normal exit without ``close()`` ``interrupted``.
    """
    exc = getattr(sys, "last_value", None)
    for writer in list(_OPEN_WRITERS):
        if writer._pid != os.getpid():
            continue
        try:
            if exc is not None:
                writer.close("failed", reason=f"uncaught {type(exc).__name__}: {exc}")
            else:
                writer.close("interrupted", reason="the process exited before RunWriter.close()")
        except Exception as err:  # noqa: BLE001 - nothing left to raise to at exit
            print(f"lca_toolkit: could not close run store '{writer.path}': {err}", file=sys.stderr)


_register_threading_exit = getattr(threading, "_register_atexit", None)
if _register_threading_exit is not None:
    _register_threading_exit(_close_open_writers_at_exit)
atexit.register(_close_open_writers_at_exit)  # fallback; finds nothing left to close normally


class RunWriter:
    """Writes one run store; the Tracker is its only producer.

    Args:
        path: the run's zarr directory (a local path), e.g. ``runs/joint.zarr``.
        groups: ordered group names; the column order of every ``n_groups`` axis.
        group_members: group name -> its parameter (or buffer) names; one entry per group.
        lr_groups: ``L``, the number of optimizer param groups (width of ``steps/lr``).
        tensor_names: names of the ``lca/by_tensor`` columns; ``None`` to not store it.
        config: run configuration (JSON-serialisable), stored in the root attrs.
        model_summary: parameter counts per group and other model facts (JSON-serialisable).
        mode: ``create`` refuses an existing path; ``overwrite`` replaces an existing run store
            (and refuses anything else); ``resume`` continues an existing store, sets its status
            back to ``running`` and keeps its config.
        flush_every: commit once this many rows (steps + LCA intervals + epochs) are queued.
        flush_interval: also commit this many seconds after the oldest uncommitted row, so that
            a slow run shows up in a live reader; ``None`` to commit on row counts only.
        allow_step_gaps: accept a step that is not the previous step + 1 (only repeats and steps
            going back are refused).

    Raises:
        StoreExistsError: ``create`` and something exists at ``path``, or ``overwrite`` and the
            path holds something that is not a run store.
        StoreNotFoundError: ``resume`` and there is no run store at ``path``.
        SchemaVersionError: ``resume`` of a store with a newer or missing schema version.
        RunMismatchError: ``resume`` with other groups, members, ``lr_groups`` or tensor names.
        RecordError: bad arguments (duplicate group names, non-JSON config...).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        groups: Sequence[str],
        group_members: Mapping[str, Sequence[str]],
        lr_groups: int = 1,
        tensor_names: Sequence[str] | None = None,
        config: Mapping[str, Any] | None = None,
        model_summary: Mapping[str, Any] | None = None,
        mode: Mode = "create",
        flush_every: int = 256,
        flush_interval: float | None = 5.0,
        allow_step_gaps: bool = False,
    ) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise RecordError(f"path must be a local path (str or os.PathLike), got {path!r}")
        self._path = Path(path)
        self._groups = check_names(groups, "groups")
        self._members = check_members(group_members, self._groups)
        if isinstance(lr_groups, bool) or not isinstance(lr_groups, int) or lr_groups < 1:
            raise RecordError(f"lr_groups must be an integer >= 1, got {lr_groups!r}")
        self._lr_groups = lr_groups
        self._tensor_names = (
            None if tensor_names is None else check_names(tensor_names, "tensor_names")
        )
        if isinstance(flush_every, bool) or not isinstance(flush_every, int) or flush_every < 1:
            raise RecordError(f"flush_every must be an integer >= 1, got {flush_every!r}")
        if flush_interval is not None and not flush_interval > 0:
            raise RecordError(f"flush_interval must be > 0 seconds or None, got {flush_interval!r}")
        self._flush_every = flush_every
        self._flush_interval = flush_interval
        self._allow_gaps = bool(allow_step_gaps)
        config_json = jsonable(dict(config or {}), "config")
        summary_json = jsonable(dict(model_summary or {}), "model_summary")

        if mode == "resume":
            self._open_existing()
        elif mode in ("create", "overwrite"):
            self._create(config_json, summary_json, overwrite=mode == "overwrite")
        else:
            raise RecordError(f"mode must be 'create', 'resume' or 'overwrite', got {mode!r}")

        # Caller-side order checks (training thread).
        self._lock = threading.Lock()
        self._next_step: int | None = None if self._last_step is None else self._last_step + 1
        self._last_lca_end: int | None = self._committed_lca_end
        self._last_epoch: int | None = self._committed_epoch
        self._closed = False
        self._error: StoreError | None = None
        self._error_reported = False
        self._pid = os.getpid()

        # Writer-thread state.
        self._queue: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._pending_steps: list[StepBlock] = []
        self._pending_lca: list[LcaRecord] = []
        self._pending_epochs: list[tuple[int, dict[str, float]]] = []
        self._pending_cumulative: tuple[dict[str, np.ndarray], int] | None = None
        self._pending_tables: dict[str, dict[str, np.ndarray]] = {}
        self._pending_attrs: dict[str, Any] = {}
        self._pending_rows = 0
        self._pending_since: float | None = None
        self._cumulative_arrays: dict[str, zarr.Array] = {}
        self._thread = threading.Thread(
            target=self._run, name=f"lca-store-writer:{self._path.name}", daemon=True
        )
        self._thread.start()
        _OPEN_WRITERS.add(self)

    # ====================================================================== opening
    def _create(self, config: dict[str, Any], summary: dict[str, Any], *, overwrite: bool) -> None:
        """Build the whole store in a hidden sibling folder, then move it into place.

        Readers therefore never see a half-created store, and ``overwrite`` replaces the old run
        only once the new one is complete.
        """
        path = self._path
        old: Path | None = None
        if os.path.lexists(path):
            if not overwrite:
                raise StoreExistsError(
                    f"'{path}' already exists; pass mode='resume' to continue that run or "
                    "mode='overwrite' to replace it"
                )
            if not _is_run_store_or_empty(path):
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
                for spec in self._fixed_specs(section):
                    self._create_array(grp, section, spec, rows=0)
            attrs: dict[str, Any] = {
                "schema_version": SCHEMA_VERSION,
                "groups": list(self._groups),
                "group_members": self._members,
                "lr_groups": self._lr_groups,
                "config": config,
                "model_summary": summary,
                "library_versions": _library_versions(),
                "created": _now(),
                "resumed": [],
                "status": "running",
                "status_reason": None,
                "rows": {s: 0 for s in SECTIONS},
                "epoch_metrics": [],
                "generation": 0,
                "lca_cumulative_at_step": None,
            }
            if self._tensor_names is not None:
                attrs["tensor_names"] = list(self._tensor_names)
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
        self._open_root()
        self._rows = {s: 0 for s in SECTIONS}
        self._epoch_metrics: list[str] = []
        self._generation = 0
        self._cumulative_at: int | None = None
        self._last_step: int | None = None
        self._committed_lca_end: int | None = None
        self._committed_epoch: int | None = None

    def _open_existing(self) -> None:
        """Reopen a store for ``resume``: check it matches, drop rows a crash left uncommitted."""
        attrs = read_root_attrs(self._path)
        self._check_matches(attrs)
        self._open_root()
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
            self._committed_lca_end = self._last_value("lca", "end_step")
            self._committed_epoch = self._last_value("epochs", "epoch")
            resumed = list(attrs.get("resumed", []))
            resumed.append({"at": _now(), "last_step": self._last_step, "rows": self._rows})
            self._root.attrs.update(
                {
                    "status": "running",
                    "status_reason": None,
                    "resumed": resumed,
                    "library_versions": _library_versions(),
                }
            )
        except Exception as exc:  # noqa: BLE001 - any failure here means a damaged store
            raise StoreError(
                f"cannot reopen run store '{self._path}' for resume: {_describe(exc)}"
            ) from exc

    def _check_matches(self, attrs: Mapping[str, Any]) -> None:
        where = f"cannot resume '{self._path}'"
        if list(attrs.get("groups", [])) != self._groups:
            raise RunMismatchError(
                f"{where}: the store has groups {attrs.get('groups')} but this run has "
                f"{self._groups}"
            )
        stored_members = {k: list(v) for k, v in dict(attrs.get("group_members") or {}).items()}
        for g in self._groups:
            if stored_members.get(g) != self._members[g]:
                raise RunMismatchError(
                    f"{where}: group {g!r} has members {stored_members.get(g)} in the store but "
                    f"{self._members[g]} in this run"
                )
        if int(attrs.get("lr_groups", 1)) != self._lr_groups:
            raise RunMismatchError(
                f"{where}: the store has lr_groups={attrs.get('lr_groups')} but this run has "
                f"{self._lr_groups} optimizer param groups"
            )
        stored_tensors = attrs.get("tensor_names")
        if (None if stored_tensors is None else list(stored_tensors)) != self._tensor_names:
            raise RunMismatchError(
                f"{where}: the store has tensor_names {stored_tensors} but this run has "
                f"{self._tensor_names}"
            )

    def _open_root(self) -> None:
        self._root = zarr.open_group(LocalStore(self._path), mode="r+", use_consolidated=False)
        self._arrays: dict[str, dict[str, zarr.Array]] = {s: {} for s in SECTIONS}
        for section in SECTIONS:
            grp = self._root[section]
            for name, arr in grp.arrays():
                self._arrays[section][name] = arr

    def _add_missing_arrays(self) -> None:
        """Give a store written before an array existed that array, NaN in its committed rows.

        So a resumed old store (without ``lca/error_by_group``) keeps one shape for every row.
        """
        for section in SECTIONS:
            for spec in self._fixed_specs(section):
                if spec.name not in self._arrays[section]:
                    grp = self._root[section]
                    arr = self._create_array(grp, section, spec, rows=self._rows[section])
                    self._arrays[section][spec.name] = arr

    def _fixed_specs(self, section: str) -> tuple[ArraySpec, ...]:
        if section == "steps":
            return STEP_ARRAYS
        if section == "lca":
            by_tensor = (BY_TENSOR,) if self._tensor_names is not None else ()
            return LCA_ARRAYS + (ERROR_BY_GROUP,) + by_tensor
        return (EPOCH_INDEX,)

    def _section_specs(self, section: str) -> tuple[ArraySpec, ...]:
        specs = self._fixed_specs(section)
        if section == "epochs":
            specs += tuple(metric_spec(m) for m in self._epoch_metrics)
        return specs

    def _width(self, spec: ArraySpec) -> int | None:
        return {
            None: None,
            "group": len(self._groups),
            "lr_group": self._lr_groups,
            "tensor": len(self._tensor_names or []),
        }[spec.columns]

    def _create_array(
        self, grp: zarr.Group, section: str, spec: ArraySpec, rows: int
    ) -> zarr.Array:
        width = self._width(spec)
        chunk = CHUNK_ROWS[section]
        shape: tuple[int, ...] = (rows,) if width is None else (rows, width)
        chunks: tuple[int, ...] = (chunk,) if width is None else (chunk, max(width, 1))
        dims = [ROW_DIM[section]] if width is None else [ROW_DIM[section], spec.columns]
        return grp.create_array(
            spec.name,
            shape=shape,
            dtype=spec.dtype,
            chunks=chunks,
            fill_value=spec.fill_value,
            dimension_names=dims,
            attributes={"description": spec.description},
        )

    def _resize(self, section: str, name: str, rows: int) -> None:
        arr = self._arrays[section][name]
        if arr.shape[0] != rows:
            arr.resize((rows, *arr.shape[1:]))

    def _last_value(self, section: str, name: str) -> int | None:
        n = self._rows[section]
        return None if n == 0 else int(self._arrays[section][name][n - 1])

    # ====================================================================== producer API
    @property
    def path(self) -> Path:
        """The store's path."""
        return self._path

    @property
    def groups(self) -> list[str]:
        """Ordered group names."""
        return list(self._groups)

    def append_steps(self, block: StepBlock) -> None:
        """Queue a block of consecutive steps; returns at once (no I/O on this thread).

        Raises:
            RecordError: wrong widths, or a first step that repeats or goes back behind the
                last step (or, without ``allow_step_gaps``, skips ahead of it).
            StoreError: an earlier background write failed, or the writer is closed.
        """
        self._check_usable()
        if not isinstance(block, StepBlock):
            raise RecordError(f"append_steps needs a StepBlock, got {type(block).__name__}")
        if block.n_groups != len(self._groups):
            raise RecordError(
                f"StepBlock has {block.n_groups} group columns but '{self._path}' has "
                f"{len(self._groups)} groups {self._groups}"
            )
        if block.n_lr_groups != self._lr_groups:
            raise RecordError(
                f"StepBlock.lr has {block.n_lr_groups} columns but '{self._path}' was opened with "
                f"lr_groups={self._lr_groups}"
            )
        first, last = int(block.step[0]), int(block.step[-1])
        with self._lock:
            expected = self._next_step
            if expected is not None:
                if first < expected:
                    raise RecordError(
                        f"step {first} is not after the last step {expected - 1} already in "
                        f"'{self._path}': a repeated step would corrupt the series. After "
                        "restoring a checkpoint call truncate(last_step=<checkpoint step>) first"
                    )
                if first > expected and not self._allow_gaps:
                    raise RecordError(
                        f"step {first} leaves a gap after step {expected - 1} in '{self._path}' "
                        f"(steps {expected}..{first - 1} missing); pass allow_step_gaps=True to "
                        "the RunWriter if that is intended"
                    )
            self._next_step = last + 1
            self._queue.put(("steps", block))

    def append_lca(self, record: LcaRecord) -> None:
        """Queue one LCA interval; returns at once.

        Raises:
            RecordError: wrong widths, or an interval starting before the previous one's end.
            StoreError: an earlier background write failed, or the writer is closed.
        """
        self._check_usable()
        if not isinstance(record, LcaRecord):
            raise RecordError(f"append_lca needs an LcaRecord, got {type(record).__name__}")
        if record.n_groups != len(self._groups):
            raise RecordError(
                f"LcaRecord has {record.n_groups} groups but '{self._path}' has "
                f"{len(self._groups)} groups {self._groups}"
            )
        if self._tensor_names is None:
            if record.by_tensor is not None:
                raise RecordError(
                    f"LcaRecord.by_tensor given but '{self._path}' was opened without "
                    "tensor_names; pass tensor_names= to the RunWriter to store it"
                )
        elif record.by_tensor is None or record.by_tensor.shape[0] != len(self._tensor_names):
            got = None if record.by_tensor is None else record.by_tensor.shape[0]
            raise RecordError(
                f"LcaRecord.by_tensor must have {len(self._tensor_names)} values (one per "
                f"tensor name of '{self._path}'), got {got}"
            )
        with self._lock:
            if self._last_lca_end is not None and record.start_step < self._last_lca_end:
                raise RecordError(
                    f"LCA interval ({record.start_step}, {record.end_step}] overlaps the previous "
                    f"one ending at step {self._last_lca_end} in '{self._path}'"
                )
            self._last_lca_end = record.end_step
            self._queue.put(("lca", record))

    def append_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """Queue one row of per-epoch metrics; returns at once.

        A metric name seen for the first time gets its own array, NaN in earlier epochs; a
        metric missing from a later row is NaN there.

        Raises:
            RecordError: an epoch not after the previous one, a metric that is not a number, or
                a metric name that cannot be an array name (contains ``/``, or is ``epoch``).
        """
        self._check_usable()
        if isinstance(epoch, (bool, np.bool_)) or not isinstance(epoch, (int, np.integer)):
            raise RecordError(f"epoch must be an integer, got {epoch!r}")
        epoch = int(epoch)
        row: dict[str, float] = {}
        for name, value in metrics.items():
            check_node_name(name, "epoch metric")
            if name == EPOCH_INDEX.name:
                raise RecordError("an epoch metric cannot be called 'epoch' (the row index)")
            try:
                row[name] = float(value)
            except (TypeError, ValueError) as exc:
                raise RecordError(
                    f"epoch {epoch} metric {name!r} must be a number, got {value!r}"
                ) from exc
        with self._lock:
            if self._last_epoch is not None and epoch <= self._last_epoch:
                raise RecordError(
                    f"epoch {epoch} is not after the last epoch {self._last_epoch} in "
                    f"'{self._path}'; after restoring a checkpoint call truncate(last_epoch=...)"
                )
            self._last_epoch = epoch
            self._queue.put(("epoch", epoch, row))

    def write_cumulative_lca(self, arrays: Mapping[str, np.ndarray], at_step: int) -> None:
        """Queue cumulative per-parameter LCA arrays, stored as ``lca_cumulative/<name>``.

        Each call replaces the previous set (only the newest queued set is written). The arrays
        are copied here, so the caller may keep updating its own buffers.

        Args:
            arrays: parameter name -> float array of the parameter's shape.
            at_step: the last step the sums include.
        """
        self._check_usable()
        owned: dict[str, np.ndarray] = {}
        for name, value in arrays.items():
            check_node_name(name, "cumulative LCA parameter")
            arr = np.asarray(value)
            if arr.dtype.kind not in "fiub":
                raise RecordError(f"cumulative LCA of {name!r} must be numbers, got {arr.dtype}")
            owned[name] = np.array(arr, dtype=np.float64, copy=True)
        if isinstance(at_step, bool) or not isinstance(at_step, (int, np.integer)):
            raise RecordError(f"at_step must be an integer, got {at_step!r}")
        self._queue.put(("cumulative", owned, int(at_step)))

    def write_table(self, name: str, columns: Mapping[str, np.ndarray]) -> None:
        """Queue a small table, stored as ``tables/<name>/<column>`` (replacing an older one).

        For per-run results that are not a time series, e.g. the test-set predictions a 3x
        ensemble averages. Columns are 1-D numeric or boolean arrays of one length; they are copied.

        Raises:
            RecordError: a bad name, a non-numeric or non-1-D column, or columns of unequal length.
        """
        self._check_usable()
        check_node_name(name, "table")
        owned: dict[str, np.ndarray] = {}
        for col, value in columns.items():
            check_node_name(col, f"column of table {name!r}")
            arr = np.array(value, copy=True)
            if arr.ndim != 1 or arr.dtype.kind not in "fiub":
                raise RecordError(
                    f"table {name!r}: column {col!r} must be a 1-D numeric array, got "
                    f"shape {arr.shape} dtype {arr.dtype}"
                )
            owned[col] = arr
        lengths = {c: len(a) for c, a in owned.items()}
        if len(set(lengths.values())) > 1:
            raise RecordError(f"table {name!r}: columns have different lengths {lengths}")
        self._queue.put(("table", name, owned))

    def update_attrs(self, **attrs: Any) -> None:
        """Queue extra root attributes (JSON-serialisable), e.g. estimated blending weights.

        Raises:
            RecordError: a value is not JSON-serialisable, or the key is one the store owns
                (``schema_version``, ``groups``, ``rows``, ``status``...).
        """
        self._check_usable()
        taken = sorted(set(attrs) & ROOT_ATTR_KEYS)
        if taken:
            raise RecordError(
                f"update_attrs cannot set {taken}: the store owns these attributes; use other names"
            )
        self._queue.put(("attrs", {k: jsonable(v, f"attrs[{k!r}]") for k, v in attrs.items()}))

    def flush(self) -> None:
        """Block until everything queued so far is written and committed.

        Written means handed to the operating system (it survives the process being killed);
        files are not fsynced, so a power cut may still lose the last commits.

        Raises:
            StoreError: a background write failed (naming the store and the OS error).
        """
        self._check_usable()
        self._call(lambda: None)

    def truncate(self, *, last_step: int, last_epoch: int | None = None) -> None:
        """Cut the store back to a checkpoint, before a resumed run appends again; blocks.

        Drops step rows with ``step > last_step``, LCA rows with ``end_step > last_step``, epoch
        rows with ``epoch > last_epoch`` (none when ``last_epoch`` is ``None``), and the
        cumulative LCA arrays if they were written after ``last_step``. The next appended step
        must be ``last_step + 1``.

        Raises:
            RecordError: the store's last step is before ``last_step`` (rows that the checkpoint
                includes were never committed), unless ``allow_step_gaps``.
        """
        self._check_usable()
        last_step = int(last_step)
        last_epoch = None if last_epoch is None else int(last_epoch)
        with self._lock:
            lca_end, epoch = self._call(lambda: self._truncate(last_step, last_epoch))
            self._next_step = last_step + 1
            self._last_lca_end = lca_end
            self._last_epoch = epoch

    @property
    def last_step(self) -> int | None:
        """The last committed step (``None`` for no steps); flushes first, so it blocks."""
        if not self._closed:
            self.flush()
        return self._last_step

    @property
    def rows(self) -> dict[str, int]:
        """Committed row counts per section; flushes first, so it blocks."""
        if not self._closed:
            self.flush()
        return dict(self._rows)

    def close(self, status: Status = "finished", reason: str | None = None) -> None:
        """Commit everything, record the final status and stop the writer thread.

        Idempotent: a second call does nothing.

        Args:
            status: ``finished``, ``failed`` or ``interrupted``.
            reason: why it failed or stopped (stored as ``status_reason``).

        Raises:
            StoreError: a background write failed and no earlier call reported it.
        """
        if status not in ("finished", "failed", "interrupted"):
            raise RecordError(
                f"close status must be 'finished', 'failed' or 'interrupted', got {status!r}"
            )
        with self._lock:
            if self._closed:
                return
            self._closed = True
        _OPEN_WRITERS.discard(self)
        try:
            self._call(lambda: self._finish(status, reason), final=True)
        except StoreError:
            if self._error is None:
                raise
        finally:
            self._thread.join(timeout=60)
        if self._error is not None and not self._error_reported:
            self._raise_error()

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close("finished")
            return
        status: Status = "interrupted" if issubclass(exc_type, KeyboardInterrupt) else "failed"
        try:
            self.close(status, reason=repr(exc))
        except StoreError as err:
            # Do not hide the exception that ended the run; mention the store's own.
            print(f"lca_toolkit: {err}", file=sys.stderr)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"RunWriter('{self._path}', groups={self._groups}, {state})"

    # ====================================================================== calls into the thread
    def _check_usable(self) -> None:
        if self._closed:
            raise StoreError(f"the RunWriter of '{self._path}' is closed")
        if self._error is not None:
            self._raise_error()

    def _raise_error(self) -> None:
        self._error_reported = True
        err = self._error
        assert err is not None
        raise StoreError(str(err)) from err.__cause__

    def _call(self, fn: Callable[[], Any], *, final: bool = False) -> Any:
        """Run ``fn`` on the writer thread after committing everything queued; wait for it."""
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._queue.put(("call", fn, future, final))
        while True:
            try:
                result = future.result(timeout=_WAIT_POLL_S)
            except TimeoutError:
                if not self._thread.is_alive():
                    raise StoreError(
                        f"the writer thread of '{self._path}' stopped unexpectedly"
                    ) from None
                continue
            except StoreError:
                if self._error is not None:
                    self._error_reported = True
                raise
            return result

    # ====================================================================== the writer thread
    def _run(self) -> None:
        # The thread's own event loop writes all arrays of a commit concurrently.
        self._aio = asyncio.new_event_loop()
        try:
            self._serve()
        finally:
            self._aio.run_until_complete(self._aio.shutdown_default_executor())
            self._aio.close()

    def _serve(self) -> None:
        while True:
            timeout = None
            if self._pending_since is not None and self._flush_interval is not None:
                timeout = max(0.0, self._pending_since + self._flush_interval - time.monotonic())
            try:
                cmd = self._queue.get(timeout=timeout)
            except queue.Empty:
                self._commit_quietly()
                continue
            kind = cmd[0]
            if kind == "call":
                _, fn, future, final = cmd
                try:
                    if self._error is None:
                        try:
                            self._commit()
                        except StoreError:
                            if not final:
                                raise
                    elif not final:
                        raise self._error
                    result = fn()
                except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
                    future.set_exception(exc)
                else:
                    future.set_result(result)
                if final:
                    return
                continue
            if self._error is not None:
                continue  # rows after a failed write are dropped; the caller has been told
            if kind == "steps":
                self._pending_steps.append(cmd[1])
                self._pending_rows += len(cmd[1])
            elif kind == "lca":
                self._pending_lca.append(cmd[1])
                self._pending_rows += 1
            elif kind == "epoch":
                self._pending_epochs.append((cmd[1], cmd[2]))
                self._pending_rows += 1
            elif kind == "cumulative":
                self._pending_cumulative = (cmd[1], cmd[2])
            elif kind == "attrs":
                self._pending_attrs.update(cmd[1])
            elif kind == "table":
                self._pending_tables[cmd[1]] = cmd[2]
            if self._pending_since is None:
                self._pending_since = time.monotonic()
            if self._pending_rows >= self._flush_every:
                self._commit_quietly()

    def _commit_quietly(self) -> None:
        """Commit from the thread's own schedule; a failure is kept for the next caller."""
        try:
            self._commit()
        except StoreError:
            pass

    def _commit(self) -> None:
        """Append all buffered rows, then publish the new row counts in the root attrs."""
        if self._pending_since is None:
            return
        try:
            rows = dict(self._rows)
            update: dict[str, Any] = {}
            writes: list[Coroutine[Any, Any, None]] = []
            if self._pending_steps:
                blocks = self._pending_steps
                cols = {
                    s.name: np.concatenate([getattr(b, s.name) for b in blocks])
                    for s in STEP_ARRAYS
                }
                rows["steps"] = self._extend("steps", cols, writes)
            if self._pending_lca:
                recs = self._pending_lca
                cols = {s.name: np.array([getattr(r, s.name) for r in recs]) for s in LCA_ARRAYS}
                cols[ERROR_BY_GROUP.name] = np.stack([_error_row(r) for r in recs])
                if self._tensor_names is not None:
                    cols[BY_TENSOR.name] = np.stack([r.by_tensor for r in recs])
                rows["lca"] = self._extend("lca", cols, writes)
            if self._pending_epochs:
                rows["epochs"] = self._extend_epochs(self._pending_epochs, writes)
                update["epoch_metrics"] = list(self._epoch_metrics)
            if writes:
                self._aio.run_until_complete(_gather(writes))
            if self._pending_cumulative is not None:
                arrays, at_step = self._pending_cumulative
                self._write_cumulative(arrays, at_step)
                update["lca_cumulative_at_step"] = at_step
            for table, columns in self._pending_tables.items():
                self._write_table(table, columns)
            update.update(self._pending_attrs)
            update["rows"] = rows
            self._root.attrs.update(update)
        except Exception as exc:  # noqa: BLE001 - every failure must reach the caller
            self._error = StoreError(
                f"writing run store '{self._path}' failed: {_describe(exc)}. Rows queued since "
                f"the last commit are lost; the store keeps its committed prefix "
                f"({self._rows['steps']} steps, {self._rows['lca']} LCA intervals, "
                f"{self._rows['epochs']} epochs)"
            )
            self._error.__cause__ = exc
            raise self._error from exc
        if self._pending_steps:
            self._last_step = int(self._pending_steps[-1].step[-1])
        if self._pending_lca:
            self._committed_lca_end = self._pending_lca[-1].end_step
        if self._pending_epochs:
            self._committed_epoch = self._pending_epochs[-1][0]
        if self._pending_cumulative is not None:
            self._cumulative_at = self._pending_cumulative[1]
        self._rows = rows
        self._pending_steps, self._pending_lca, self._pending_epochs = [], [], []
        self._pending_cumulative, self._pending_attrs, self._pending_tables = None, {}, {}
        self._pending_rows, self._pending_since = 0, None

    def _extend(
        self,
        section: str,
        cols: Mapping[str, np.ndarray],
        writes: list[Coroutine[Any, Any, None]],
    ) -> int:
        """Queue the resize and write of every array of ``section``; returns the new count."""
        n0 = self._rows[section]
        n1 = n0 + len(next(iter(cols.values())))
        for name, data in cols.items():
            writes.append(_grow(self._arrays[section][name], n0, n1, data))
        return n1

    def _extend_epochs(
        self,
        rows: list[tuple[int, dict[str, float]]],
        writes: list[Coroutine[Any, Any, None]],
    ) -> int:
        n0 = self._rows["epochs"]
        for _, metrics in rows:
            for name in metrics:
                if name not in self._epoch_metrics:
                    # Rows before this epoch read as the fill value, NaN.
                    arr = self._create_array(self._root["epochs"], "epochs", metric_spec(name), n0)
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

    def _truncate(self, last_step: int, last_epoch: int | None) -> tuple[int | None, int | None]:
        """Thread side of ``truncate``: publish the smaller counts first, then shrink arrays."""
        steps = np.asarray(self._arrays["steps"]["step"][: self._rows["steps"]])
        if len(steps) and steps[-1] < last_step and not self._allow_gaps:
            raise RecordError(
                f"cannot resume '{self._path}' at step {last_step}: the store ends at step "
                f"{int(steps[-1])}, so steps {int(steps[-1]) + 1}..{last_step} were never "
                "committed (flush the writer when saving a checkpoint), or pass "
                "allow_step_gaps=True"
            )
        ends = np.asarray(self._arrays["lca"]["end_step"][: self._rows["lca"]])
        epochs = np.asarray(self._arrays["epochs"]["epoch"][: self._rows["epochs"]])
        rows = {
            "steps": int(np.searchsorted(steps, last_step, side="right")),
            "lca": int(np.searchsorted(ends, last_step, side="right")),
            "epochs": len(epochs)
            if last_epoch is None
            else int(np.searchsorted(epochs, last_epoch, side="right")),
        }
        drop_cumulative = self._cumulative_at is not None and self._cumulative_at > last_step
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
            self._error = StoreError(
                f"truncating run store '{self._path}' failed: {_describe(exc)}"
            )
            self._error.__cause__ = exc
            raise self._error from exc
        self._last_step = int(steps[rows["steps"] - 1]) if rows["steps"] else None
        self._committed_lca_end = int(ends[rows["lca"] - 1]) if rows["lca"] else None
        self._committed_epoch = int(epochs[rows["epochs"] - 1]) if rows["epochs"] else None
        return self._committed_lca_end, self._committed_epoch

    def _finish(self, status: Status, reason: str | None) -> None:
        """Thread side of ``close``: record the status, even after a failed write if possible."""
        if self._error is not None:
            status = "failed"
            reason = f"{reason}; {self._error}" if reason else str(self._error)
        try:
            self._root.attrs.update({"status": status, "status_reason": reason})
        except Exception as exc:  # noqa: BLE001
            if self._error is None:
                self._error = StoreError(
                    f"writing the final status of '{self._path}' failed: {_describe(exc)}"
                )
                self._error.__cause__ = exc


# ========================================================================== helpers
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


async def _gather(writes: list[Coroutine[Any, Any, None]]) -> None:
    """Run all writes; the first failure is raised once every write has settled."""
    results = await asyncio.gather(*writes, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


def _describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, OSError) else f"{type(exc).__name__}: {exc}"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _library_versions() -> dict[str, str | None]:
    """Versions that produced the store; torch is looked up without importing it."""
    from .. import __version__

    torch_mod = sys.modules.get("torch")
    torch_version = getattr(torch_mod, "__version__", None)
    if torch_version is None:
        try:
            torch_version = importlib.metadata.version("torch")
        except importlib.metadata.PackageNotFoundError:
            torch_version = None
    return {
        "lca_toolkit": __version__,
        "torch": None if torch_version is None else str(torch_version),
        "numpy": np.__version__,
        "zarr": zarr.__version__,
        "python": platform.python_version(),
    }


def _is_run_store_or_empty(path: Path) -> bool:
    return (path.is_dir() and not any(path.iterdir())) or is_run_store(path)

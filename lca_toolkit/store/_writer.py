"""RunWriter: append a run's records to its zarr store from a background thread.

The training thread only checks a record's shape and order and puts it on a queue (a few
microseconds, no zarr I/O). One writer thread per store (:class:`~._worker.StoreWorker`) drains
the queue, buffers rows and commits them to the store (:class:`~._file.StoreFile`) every
``flush_every`` rows, ``flush_interval`` seconds after the oldest buffered row, on ``flush()``,
``truncate()`` and ``close()``, and at interpreter exit.

A write that fails in the thread (disk full, permissions) is kept and raised as ``StoreError``
naming the store and the OS error on the next call from the training thread.
"""

from __future__ import annotations

import atexit
import concurrent.futures.thread  # noqa: F401 - its exit hook must be registered before ours
import os
import sys
import threading
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from ..errors import RecordError, StoreError
from ._file import StoreFile
from ._file import gather_writes as _gather
from ._fs import check_writable, nearest_existing
from ._layout import StoreLayout
from ._records import LcaRecord, StepBlock
from ._schema import jsonable
from ._validate import (
    check_lca_record,
    check_step_block,
    epoch_row,
    owned_attrs,
    owned_cumulative,
    owned_table,
)
from ._worker import (
    AppendEpoch,
    AppendLca,
    AppendSteps,
    Finish,
    Flush,
    SetCumulative,
    StoreWorker,
    Truncate,
    UpdateAttrs,
    WriteTable,
)

__all__ = ["Mode", "RunWriter", "Status", "check_writable", "nearest_existing"]

Mode = Literal["create", "resume", "overwrite"]
Status = Literal["finished", "failed", "interrupted"]

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
        param_norm: store ``steps/param_norm`` (the Tracker's stores do). A resumed store that
            has it keeps it whatever this says; one without it gets it, NaN in earlier rows.
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
        library_version: the ``lca_toolkit`` version recorded in the store's
            ``library_versions``; ``None`` for :attr:`default_library_version`.

    Raises:
        StoreExistsError: ``create`` and something exists at ``path``, or ``overwrite`` and the
            path holds something that is not a run store.
        StoreNotFoundError: ``resume`` and there is no run store at ``path``.
        SchemaVersionError: ``resume`` of a store with a newer or missing schema version.
        RunMismatchError: ``resume`` with other groups, members, ``lr_groups`` or tensor names.
        RecordError: bad arguments (duplicate group names, non-JSON config...).
    """

    default_library_version: ClassVar[str | None] = None
    """The version recorded when none is passed; ``lca_toolkit`` sets its own on import."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        groups: Sequence[str],
        group_members: Mapping[str, Sequence[str]],
        lr_groups: int = 1,
        tensor_names: Sequence[str] | None = None,
        param_norm: bool = False,
        config: Mapping[str, Any] | None = None,
        model_summary: Mapping[str, Any] | None = None,
        mode: Mode = "create",
        flush_every: int = 256,
        flush_interval: float | None = 5.0,
        allow_step_gaps: bool = False,
        library_version: str | None = None,
    ) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise RecordError(f"path must be a local path (str or os.PathLike), got {path!r}")
        self._path = Path(path)
        self._layout = StoreLayout.checked(
            groups, group_members, lr_groups, tensor_names, param_norm
        )
        if isinstance(flush_every, bool) or not isinstance(flush_every, int) or flush_every < 1:
            raise RecordError(f"flush_every must be an integer >= 1, got {flush_every!r}")
        if flush_interval is not None and not flush_interval > 0:
            raise RecordError(f"flush_interval must be > 0 seconds or None, got {flush_interval!r}")
        self._allow_gaps = bool(allow_step_gaps)
        config_json = jsonable(dict(config or {}), "config")
        summary_json = jsonable(dict(model_summary or {}), "model_summary")
        version = self.default_library_version if library_version is None else library_version

        # ``_gather`` is read from this module as the writer opens: the step between a commit's
        # array writes and its row counts can be wrapped here (the kill-point tests do).
        if mode == "resume":
            file = StoreFile.resume(
                self._path, self._layout, library_version=version, gather=_gather
            )
        elif mode in ("create", "overwrite"):
            file = StoreFile.create(
                self._path,
                self._layout,
                config=config_json,
                model_summary=summary_json,
                library_version=version,
                overwrite=mode == "overwrite",
                gather=_gather,
            )
        else:
            raise RecordError(f"mode must be 'create', 'resume' or 'overwrite', got {mode!r}")
        self._file = file
        self._layout = file.layout  # a resumed store with steps/param_norm keeps it

        # Caller-side order checks (training thread).
        self._lock = threading.Lock()
        self._next_step: int | None = None if file.last_step is None else file.last_step + 1
        self._last_lca_end: int | None = file.last_lca_end
        self._last_epoch: int | None = file.last_epoch
        self._closed = False
        self._pid = os.getpid()

        self._worker = StoreWorker(
            file,
            flush_every=flush_every,
            flush_interval=flush_interval,
            name=f"lca-store-writer:{self._path.name}",
        )
        _OPEN_WRITERS.add(self)

    # ====================================================================== producer API
    @property
    def path(self) -> Path:
        """The store's path."""
        return self._path

    @property
    def groups(self) -> list[str]:
        """Ordered group names."""
        return list(self._layout.groups)

    def append_steps(self, block: StepBlock) -> None:
        """Queue a block of consecutive steps; returns at once (no I/O on this thread).

        Raises:
            RecordError: wrong widths, or a first step that repeats or goes back behind the
                last step (or, without ``allow_step_gaps``, skips ahead of it).
            StoreError: an earlier background write failed, or the writer is closed.
        """
        self._check_usable()
        check_step_block(block, self._layout, self._path)
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
            self._worker.put(AppendSteps(block))

    def append_lca(self, record: LcaRecord) -> None:
        """Queue one LCA interval; returns at once.

        Raises:
            RecordError: wrong widths, or an interval starting before the previous one's end.
            StoreError: an earlier background write failed, or the writer is closed.
        """
        self._check_usable()
        check_lca_record(record, self._layout, self._path)
        with self._lock:
            if self._last_lca_end is not None and record.start_step < self._last_lca_end:
                raise RecordError(
                    f"LCA interval ({record.start_step}, {record.end_step}] overlaps the previous "
                    f"one ending at step {self._last_lca_end} in '{self._path}'"
                )
            self._last_lca_end = record.end_step
            self._worker.put(AppendLca(record))

    def append_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """Queue one row of per-epoch metrics; returns at once.

        A metric name seen for the first time gets its own array, NaN in earlier epochs; a
        metric missing from a later row is NaN there.

        Raises:
            RecordError: an epoch not after the previous one, a metric that is not a number, or
                a metric name that cannot be an array name (contains ``/``, or is ``epoch``).
        """
        self._check_usable()
        epoch, row = epoch_row(epoch, metrics)
        with self._lock:
            if self._last_epoch is not None and epoch <= self._last_epoch:
                raise RecordError(
                    f"epoch {epoch} is not after the last epoch {self._last_epoch} in "
                    f"'{self._path}'; after restoring a checkpoint call truncate(last_epoch=...)"
                )
            self._last_epoch = epoch
            self._worker.put(AppendEpoch(epoch, row))

    def write_cumulative_lca(self, arrays: Mapping[str, np.ndarray], at_step: int) -> None:
        """Queue cumulative per-parameter LCA arrays, stored as ``lca_cumulative/<name>``.

        Each call replaces the previous set (only the newest queued set is written). The arrays
        are copied here, so the caller may keep updating its own buffers.

        Args:
            arrays: parameter name -> float array of the parameter's shape.
            at_step: the last step the sums include.
        """
        self._check_usable()
        owned, step = owned_cumulative(arrays, at_step)
        self._worker.put(SetCumulative(owned, step))

    def write_table(self, name: str, columns: Mapping[str, np.ndarray]) -> None:
        """Queue a small table, stored as ``tables/<name>/<column>`` (replacing an older one).

        For per-run results that are not a time series, e.g. the test-set predictions a 3x
        ensemble averages. Columns are 1-D numeric or boolean arrays of one length; they are copied.

        Raises:
            RecordError: a bad name, a non-numeric or non-1-D column, or columns of unequal length.
        """
        self._check_usable()
        self._worker.put(WriteTable(name, owned_table(name, columns)))

    def update_attrs(self, **attrs: Any) -> None:
        """Queue extra root attributes (JSON-serialisable), e.g. estimated blending weights.

        Raises:
            RecordError: a value is not JSON-serialisable, or the key is one the store owns
                (``schema_version``, ``groups``, ``rows``, ``status``...).
        """
        self._check_usable()
        self._worker.put(UpdateAttrs(owned_attrs(attrs)))

    def flush(self) -> None:
        """Block until everything queued so far is written and committed.

        Written means handed to the operating system (it survives the process being killed);
        files are not fsynced, so a power cut may still lose the last commits.

        Raises:
            StoreError: a background write failed (naming the store and the OS error).
        """
        self._check_usable()
        self._worker.call(Flush())

    def truncate(
        self, *, last_step: int, last_epoch: int | None = None, last_lca_end: int | None = None
    ) -> None:
        """Cut the store back to a checkpoint, before a resumed run appends again; blocks.

        Drops step rows with ``step > last_step``, LCA rows with ``end_step > last_lca_end``
        (``last_step`` when ``None``: the checkpoint's last LCA snapshot), epoch rows with
        ``epoch > last_epoch`` (none when ``last_epoch`` is ``None``), and the cumulative LCA
        arrays if they were written after the LCA cut. The next appended step must be
        ``last_step + 1``.

        Raises:
            RecordError: the store's last step is before ``last_step`` (rows that the checkpoint
                includes were never committed), unless ``allow_step_gaps``.
        """
        self._check_usable()
        last_step = int(last_step)
        last_epoch = None if last_epoch is None else int(last_epoch)
        with self._lock:
            lca_end, epoch = self._worker.call(
                Truncate(last_step, last_epoch, self._allow_gaps, last_lca_end=last_lca_end)
            )
            self._next_step = last_step + 1
            self._last_lca_end = lca_end
            self._last_epoch = epoch

    @property
    def last_step(self) -> int | None:
        """The last committed step (``None`` for no steps); flushes first, so it blocks."""
        if not self._closed:
            self.flush()
        return self._file.last_step

    @property
    def rows(self) -> dict[str, int]:
        """Committed row counts per section; flushes first, so it blocks."""
        if not self._closed:
            self.flush()
        return self._file.rows

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
        worker = self._worker
        try:
            worker.call(Finish(status, reason))
        except StoreError:
            if worker.error is None:
                raise
        finally:
            worker.join(timeout=60)
        if worker.error is not None and not worker.error_reported:
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
        return f"RunWriter('{self._path}', groups={self._layout.groups}, {state})"

    # ====================================================================== errors
    def _check_usable(self) -> None:
        if self._closed:
            raise StoreError(f"the RunWriter of '{self._path}' is closed")
        if self._worker.error is not None:
            self._raise_error()

    def _raise_error(self) -> None:
        self._worker.error_reported = True
        err = self._worker.error
        assert err is not None
        raise StoreError(str(err)) from err.__cause__

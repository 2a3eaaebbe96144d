"""StoreWorker: the background thread that drives a :class:`StoreFile` for the writer.

The training thread puts typed commands on a queue and returns at once; the worker buffers the
rows and commits them every ``flush_every`` rows, ``flush_interval`` seconds after the oldest
buffered row, and before answering a :class:`Flush`, :class:`Truncate` or :class:`Finish`.

A commit that fails is kept as :attr:`StoreWorker.error` (the first caller to see it marks it
reported); rows queued after it are dropped, and the writer raises it on its next call.
"""

from __future__ import annotations

import concurrent.futures
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import RecordError, StoreError
from ._file import Batch, StoreFile
from ._records import LcaRecord, StepBlock

_WAIT_POLL_S = 0.5
"""How often a waiting caller checks that the worker thread is still alive."""


# ========================================================================== buffered commands
@dataclass(frozen=True)
class AppendSteps:
    """Append a block of steps (already checked for widths and order)."""

    block: StepBlock


@dataclass(frozen=True)
class AppendLca:
    """Append one LCA interval (already checked)."""

    record: LcaRecord


@dataclass(frozen=True)
class AppendEpoch:
    """Append one row of per-epoch metrics (already checked)."""

    epoch: int
    metrics: dict[str, float]


@dataclass(frozen=True)
class SetCumulative:
    """Replace the cumulative LCA arrays (only the newest queued set is written)."""

    arrays: dict[str, np.ndarray]
    at_step: int


@dataclass(frozen=True)
class WriteTable:
    """Replace one table."""

    name: str
    columns: dict[str, np.ndarray]


@dataclass(frozen=True)
class UpdateAttrs:
    """Set extra root attributes at the next commit."""

    attrs: dict[str, Any]


Buffered = AppendSteps | AppendLca | AppendEpoch | SetCumulative | WriteTable | UpdateAttrs
"""Commands the worker buffers until its next commit; nobody waits for them."""


# ========================================================================== requests
def _future() -> concurrent.futures.Future[Any]:
    return concurrent.futures.Future()


@dataclass(frozen=True)
class Flush:
    """Commit everything queued before; answers ``None``."""

    done: concurrent.futures.Future[Any] = field(default_factory=_future, compare=False)


@dataclass(frozen=True)
class Truncate:
    """Commit, then cut the store back; answers ``(last LCA end, last epoch)`` after the cut."""

    last_step: int
    last_epoch: int | None
    allow_gaps: bool
    done: concurrent.futures.Future[Any] = field(default_factory=_future, compare=False)
    last_lca_end: int | None = None


@dataclass(frozen=True)
class Finish:
    """Commit what can be, record the status and stop the thread; answers ``None``.

    After a failed write the status becomes ``failed`` and the error joins the reason.
    """

    status: str
    reason: str | None
    done: concurrent.futures.Future[Any] = field(default_factory=_future, compare=False)


Request = Flush | Truncate | Finish
"""Commands a caller waits for (see :meth:`StoreWorker.call`)."""


# ========================================================================== the worker
class StoreWorker:
    """One thread that owns a :class:`StoreFile` from its start until :class:`Finish`.

    Args:
        file: the open store; only this thread touches it until the thread ends.
        flush_every: commit once this many rows (steps + LCA intervals + epochs) are buffered.
        flush_interval: also commit this many seconds after the oldest buffered command;
            ``None`` to commit on row counts only.
        name: the thread's name.
    """

    def __init__(
        self, file: StoreFile, *, flush_every: int, flush_interval: float | None, name: str
    ) -> None:
        self.error: StoreError | None = None
        """The failure of a background write or truncation, kept for the next caller."""
        self.error_reported = False
        """Whether a caller has been raised :attr:`error` already."""
        self._file = file
        self._flush_every = flush_every
        self._flush_interval = flush_interval
        self._queue: queue.SimpleQueue[Buffered | Request] = queue.SimpleQueue()
        self._batch = Batch()
        self._batch_rows = 0
        self._batch_since: float | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # ====================================================================== caller side
    def put(self, command: Buffered) -> None:
        """Queue ``command``; returns at once."""
        self._queue.put(command)

    def call(self, request: Request) -> Any:
        """Queue ``request`` and wait for its answer.

        Raises:
            StoreError: the request failed, an earlier write failed, or the thread stopped.
            RecordError: a truncation the store cannot honour.
        """
        self._queue.put(request)
        while True:
            try:
                result = request.done.result(timeout=_WAIT_POLL_S)
            except TimeoutError:
                if not self._thread.is_alive():
                    raise StoreError(
                        f"the writer thread of '{self._file.path}' stopped unexpectedly"
                    ) from None
                continue
            except StoreError:
                if self.error is not None:
                    self.error_reported = True
                raise
            return result

    def join(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the thread to end (after :class:`Finish`)."""
        self._thread.join(timeout=timeout)

    # ====================================================================== the thread
    def _run(self) -> None:
        try:
            self._serve()
        finally:
            self._file.close()

    def _serve(self) -> None:
        while True:
            timeout = None  # after a failed commit, wait for the caller: no retry on schedule
            if (
                self._batch_since is not None
                and self._flush_interval is not None
                and self.error is None
            ):
                timeout = max(0.0, self._batch_since + self._flush_interval - time.monotonic())
            try:
                cmd = self._queue.get(timeout=timeout)
            except queue.Empty:
                self._commit_quietly()
                continue
            if isinstance(cmd, (Flush, Truncate, Finish)):
                self._answer(cmd)
                if isinstance(cmd, Finish):
                    return
                continue
            if self.error is not None:
                continue  # rows after a failed write are dropped; the caller has been told
            self._buffer(cmd)
            if self._batch_since is None:
                self._batch_since = time.monotonic()
            if self._batch_rows >= self._flush_every:
                self._commit_quietly()

    def _buffer(self, cmd: Buffered) -> None:
        batch = self._batch
        match cmd:
            case AppendSteps(block):
                batch.steps.append(block)
                self._batch_rows += len(block)
            case AppendLca(record):
                batch.lca.append(record)
                self._batch_rows += 1
            case AppendEpoch(epoch, metrics):
                batch.epochs.append((epoch, metrics))
                self._batch_rows += 1
            case SetCumulative(arrays, at_step):
                batch.cumulative = (arrays, at_step)
            case UpdateAttrs(attrs):
                batch.attrs.update(attrs)
            case WriteTable(name, columns):
                batch.tables[name] = columns

    def _answer(self, request: Request) -> None:
        """Commit, run ``request`` and hand its result (or exception) to the waiting caller.

        :class:`Finish` runs even after a failed commit, so that the status is recorded.
        """
        final = isinstance(request, Finish)
        try:
            if self.error is None:
                try:
                    self._commit()
                except StoreError:
                    if not final:
                        raise
            elif not final:
                raise self.error
            result = self._execute(request)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
            request.done.set_exception(exc)
        else:
            request.done.set_result(result)

    def _execute(self, request: Request) -> Any:
        match request:
            case Flush():
                return None
            case Truncate(last_step, last_epoch, allow_gaps, last_lca_end=lca_end):
                try:
                    self._file.truncate(
                        last_step, last_epoch, allow_gaps=allow_gaps, last_lca_end=lca_end
                    )
                except RecordError:
                    raise  # a checkpoint the store cannot honour; the store is unchanged
                except StoreError as err:
                    self.error = err
                    raise
                return self._file.last_lca_end, self._file.last_epoch
            case Finish(status, reason):
                self._finish(status, reason)
                return None

    def _finish(self, status: str, reason: str | None) -> None:
        """Record the status, even after a failed write if possible."""
        if self.error is not None:
            status = "failed"
            reason = f"{reason}; {self.error}" if reason else str(self.error)
        try:
            self._file.set_status(status, reason)
        except StoreError as err:
            if self.error is None:
                self.error = err

    def _commit_quietly(self) -> None:
        """Commit from the thread's own schedule; a failure is kept for the next caller."""
        try:
            self._commit()
        except StoreError:
            pass

    def _commit(self) -> None:
        if self._batch_since is None:
            return
        try:
            self._file.append(self._batch)
        except StoreError as err:
            self.error = err
            raise
        self._batch = Batch()
        self._batch_rows, self._batch_since = 0, None

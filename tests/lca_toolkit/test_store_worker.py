"""StoreWorker, the thread under RunWriter: typed commands, commit schedule, errors."""

from __future__ import annotations

import dataclasses
import errno
import json
import time
from pathlib import Path

import numpy as np
import pytest
from zarr.storage import LocalStore

from lca_toolkit.errors import RecordError, StoreError
from lca_toolkit.records import StepBlock
from lca_toolkit.store import open_run
from lca_toolkit.store._file import StoreFile
from lca_toolkit.store._layout import StoreLayout
from lca_toolkit.store._worker import (
    AppendEpoch,
    AppendSteps,
    Finish,
    Flush,
    StoreWorker,
    Truncate,
    UpdateAttrs,
)

LAYOUT = StoreLayout.checked(["a"], {"a": ["a.w"]})


def block(start: int, n: int) -> StepBlock:
    steps = np.arange(start, start + n)
    return StepBlock(
        step=steps,
        loss=np.zeros(n),
        grad_norm=np.ones((n, 1)),
        grad_norm_total=np.ones(n),
        rel_sq_norm=np.ones((n, 1)),
        update_norm=np.ones((n, 1)),
        skipped=np.zeros(n, dtype=bool),
        lr=np.ones((n, 1)),
    )


def committed_steps(path: Path) -> int:
    return json.loads((path / "zarr.json").read_text())["attributes"]["rows"]["steps"]


def start(path: Path, **kw) -> StoreWorker:
    kw.setdefault("flush_every", 1000)
    kw.setdefault("flush_interval", None)
    return StoreWorker(StoreFile.create(path, LAYOUT), name="test-writer", **kw)


def test_commands_are_frozen_dataclasses():
    cmd = AppendEpoch(3, {"x": 1.0})
    assert dataclasses.is_dataclass(cmd)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cmd.epoch = 4  # type: ignore[misc]
    assert Flush() == Flush()  # the answer's future is not part of the command's value


def test_rows_wait_for_a_flush_then_finish_records_the_status(tmp_path):
    path = tmp_path / "run.zarr"
    w = start(path)
    w.put(AppendSteps(block(1, 3)))
    w.put(UpdateAttrs({"note": "x"}))
    time.sleep(0.2)
    assert committed_steps(path) == 0  # buffered: below flush_every and no interval
    assert w.call(Flush()) is None
    assert committed_steps(path) == 3
    assert w.call(Finish("finished", None)) is None
    w.join(timeout=10)
    run = open_run(path)
    assert run.status == "finished" and run.attrs["note"] == "x"


def test_flush_every_commits_without_being_asked(tmp_path):
    path = tmp_path / "run.zarr"
    w = start(path, flush_every=4)
    w.put(AppendSteps(block(1, 5)))
    deadline = time.monotonic() + 20
    while committed_steps(path) < 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert committed_steps(path) == 5
    w.call(Finish("finished", None))


def test_flush_interval_commits_a_slow_run(tmp_path):
    path = tmp_path / "run.zarr"
    w = start(path, flush_interval=0.05)
    w.put(AppendSteps(block(1, 1)))
    deadline = time.monotonic() + 20
    while committed_steps(path) < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert committed_steps(path) == 1
    w.call(Finish("finished", None))


def test_truncate_commits_first_and_answers_the_last_rows(tmp_path):
    path = tmp_path / "run.zarr"
    w = start(path)
    w.put(AppendSteps(block(1, 5)))
    w.put(AppendEpoch(0, {"x": 1.0}))
    assert w.call(Truncate(3, None, False)) == (None, 0)
    w.call(Finish("finished", None))
    assert open_run(path).steps()["step"].tolist() == [1, 2, 3]


def test_a_failed_commit_is_kept_reported_once_and_fails_the_run(tmp_path, monkeypatch):
    path = tmp_path / "run.zarr"
    w = start(path)
    w.put(AppendSteps(block(1, 2)))
    w.call(Flush())

    async def no_space(self, key, value, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(LocalStore, "set", no_space)
    w.put(AppendSteps(block(3, 2)))
    with pytest.raises(StoreError, match="No space left on device") as info:
        w.call(Flush())
    assert w.error is info.value and w.error_reported
    monkeypatch.undo()
    w.put(AppendSteps(block(5, 1)))  # dropped: the caller has been told
    with pytest.raises(StoreError, match="No space left on device"):
        w.call(Flush())
    w.call(Finish("finished", None))  # still records the status
    run = open_run(path)
    assert run.steps()["step"].tolist() == [1, 2]
    assert run.status == "failed" and "No space left" in run.attrs["status_reason"]


def test_a_refused_truncation_is_not_kept_as_a_write_failure(tmp_path):
    path = tmp_path / "run.zarr"
    w = start(path)
    w.put(AppendSteps(block(1, 2)))
    with pytest.raises(RecordError, match="never committed"):
        w.call(Truncate(5, None, False))
    assert w.error is None
    w.put(AppendSteps(block(3, 1)))
    w.call(Finish("finished", None))
    assert open_run(path).steps()["step"].tolist() == [1, 2, 3]


def test_after_a_failed_commit_the_thread_waits_instead_of_retrying(tmp_path, monkeypatch):
    path = tmp_path / "run.zarr"
    w = start(path, flush_interval=0.01)
    calls = []

    async def no_space(self, key, value, *args, **kwargs):
        calls.append(key)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(LocalStore, "set", no_space)
    w.put(AppendSteps(block(1, 2)))
    deadline = time.monotonic() + 5
    while not calls and time.monotonic() < deadline:  # the scheduled commit fails once
        time.sleep(0.01)
    time.sleep(0.05)
    tried = len(calls)
    time.sleep(0.3)  # 30 flush intervals: a retrying thread would write again and again
    assert tried > 0 and len(calls) == tried
    monkeypatch.undo()
    with pytest.raises(StoreError, match="No space left on device"):
        w.call(Flush())
    w.call(Finish("finished", None))
    assert open_run(path).status == "failed"

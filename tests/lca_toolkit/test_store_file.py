"""StoreFile, the synchronous layer under RunWriter: create, resume, append, truncate, status."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import numpy as np
import pytest
import zarr
from zarr.storage import LocalStore

from lca_toolkit.errors import (
    RecordError,
    RunMismatchError,
    StoreError,
    StoreExistsError,
    StoreNotFoundError,
)
from lca_toolkit.records import LcaRecord, StepBlock
from lca_toolkit.store import open_run
from lca_toolkit.store._file import Batch, StoreFile, gather_writes
from lca_toolkit.store._layout import StoreLayout

LAYOUT = StoreLayout.checked(["a", "b"], {"a": ["a.w"], "b": ["b.w", "b.b"]})


def block(start: int, n: int) -> StepBlock:
    steps = np.arange(start, start + n)
    return StepBlock(
        step=steps,
        loss=steps * 0.5,
        grad_norm=np.ones((n, 2)),
        grad_norm_total=np.ones(n),
        rel_sq_norm=np.ones((n, 2)),
        update_norm=np.ones((n, 2)),
        skipped=np.zeros(n, dtype=bool),
        lr=np.full((n, 1), 0.1),
    )


def record(start: int, end: int) -> LcaRecord:
    return LcaRecord(
        start_step=start,
        end_step=end,
        by_group=np.array([-0.1, 0.05]),
        abs_by_group=np.array([0.2, 0.1]),
        helped=np.array([3, 1]),
        hurt=np.array([1, 2]),
        loss_start=1.0,
        loss_end=0.95,
        residual=0.0,
        passes=2,
    )


def root_attrs(path: Path) -> dict:
    return json.loads((path / "zarr.json").read_text())["attributes"]


def new_file(path: Path, **kw) -> StoreFile:
    return StoreFile.create(path, LAYOUT, **kw)


def test_create_writes_an_empty_running_store_with_the_given_version(tmp_path):
    path = tmp_path / "run.zarr"
    f = new_file(path, config={"lr": 0.1}, library_version="9.9.9")
    attrs = root_attrs(path)
    assert attrs["status"] == "running"
    assert attrs["rows"] == {"steps": 0, "lca": 0, "epochs": 0}
    assert attrs["config"] == {"lr": 0.1}
    assert attrs["library_versions"]["lca_toolkit"] == "9.9.9"
    assert f.rows == {"steps": 0, "lca": 0, "epochs": 0}
    assert (f.last_step, f.last_lca_end, f.last_epoch) == (None, None, None)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left
    f.close()


def test_append_commits_every_section_and_tracks_the_last_rows(tmp_path):
    path = tmp_path / "run.zarr"
    f = new_file(path)
    f.append(Batch(steps=[block(1, 3), block(4, 2)], lca=[record(0, 3)], epochs=[(0, {"x": 1.0})]))
    f.append(
        Batch(
            epochs=[(1, {"y": 2.0})],
            cumulative=({"a.w": np.arange(4.0)}, 5),
            tables={"preds": {"p": np.array([0.1, 0.9])}},
            attrs={"note": "hi"},
        )
    )
    assert f.rows == {"steps": 5, "lca": 1, "epochs": 2}
    assert (f.last_step, f.last_lca_end, f.last_epoch) == (5, 3, 1)
    f.close()
    run = open_run(path)
    assert run.steps()["step"].tolist() == [1, 2, 3, 4, 5]
    epochs = run.epochs()
    assert epochs["x"].tolist()[0] == 1.0 and np.isnan(epochs["x"].tolist()[1])
    assert root_attrs(path)["note"] == "hi"
    assert root_attrs(path)["lca_cumulative_at_step"] == 5


def test_append_publishes_row_counts_only_after_the_array_writes(tmp_path):
    path = tmp_path / "run.zarr"
    seen: list[dict] = []

    async def gather(writes):
        await gather_writes(writes)
        seen.append(root_attrs(path)["rows"])  # arrays written, counts not yet

    f = StoreFile.create(path, LAYOUT, gather=gather)
    f.append(Batch(steps=[block(1, 4)]))
    assert seen == [{"steps": 0, "lca": 0, "epochs": 0}]
    assert root_attrs(path)["rows"]["steps"] == 4
    f.close()


def test_a_failed_append_raises_store_error_and_keeps_the_committed_prefix(tmp_path, monkeypatch):
    path = tmp_path / "run.zarr"
    f = new_file(path)
    f.append(Batch(steps=[block(1, 2)]))

    async def no_space(self, key, value, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(LocalStore, "set", no_space)
    with pytest.raises(StoreError, match=r"keeps its committed prefix \(2 steps") as info:
        f.append(Batch(steps=[block(3, 2)]))
    assert isinstance(info.value.__cause__, OSError)
    monkeypatch.undo()
    assert f.rows["steps"] == 2 and f.last_step == 2
    f.close()
    assert open_run(path).steps()["step"].tolist() == [1, 2]


def test_create_refuses_an_existing_path_and_overwrite_only_replaces_a_store(tmp_path):
    path = tmp_path / "run.zarr"
    new_file(path).close()
    with pytest.raises(StoreExistsError, match="already exists"):
        new_file(path)
    new_file(path, overwrite=True).close()
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("x")
    with pytest.raises(StoreExistsError, match="not an lca-toolkit run store"):
        new_file(precious, overwrite=True)
    assert (precious / "thesis.tex").exists()


def test_resume_cuts_uncommitted_rows_and_records_the_resume(tmp_path):
    path = tmp_path / "run.zarr"
    f = new_file(path)
    f.append(Batch(steps=[block(1, 3)]))
    f.close()
    # What a process killed mid-commit leaves: arrays longer than the committed count.
    arr = zarr.open_array(LocalStore(path / "steps" / "step"), mode="r+")
    arr.resize((5,))
    arr[3:5] = [4, 5]

    g = StoreFile.resume(path, LAYOUT, library_version="1.2.3")
    assert g.rows["steps"] == 3 and g.last_step == 3
    assert zarr.open_array(LocalStore(path / "steps" / "step"), mode="r").shape == (3,)
    attrs = root_attrs(path)
    assert attrs["resumed"][-1]["last_step"] == 3
    assert attrs["library_versions"]["lca_toolkit"] == "1.2.3"
    g.append(Batch(steps=[block(4, 1)]))
    g.close()
    assert open_run(path).steps()["step"].tolist() == [1, 2, 3, 4]


def test_resume_refuses_a_missing_store_or_another_layout(tmp_path):
    with pytest.raises(StoreNotFoundError):
        StoreFile.resume(tmp_path / "missing.zarr", LAYOUT)
    path = tmp_path / "run.zarr"
    new_file(path).close()
    other = StoreLayout.checked(["a", "b"], {"a": ["a.w"], "b": ["b.w", "b.b"]}, lr_groups=2)
    with pytest.raises(RunMismatchError, match="lr_groups=1 but this run has 2"):
        StoreFile.resume(path, other)


def test_truncate_cuts_back_to_a_checkpoint(tmp_path):
    path = tmp_path / "run.zarr"
    f = new_file(path)
    f.append(
        Batch(
            steps=[block(1, 6)],
            lca=[record(0, 3), record(3, 6)],
            epochs=[(0, {"x": 1.0}), (1, {"x": 2.0})],
            cumulative=({"a.w": np.ones(2)}, 6),
        )
    )
    f.truncate(4, 0)
    assert f.rows == {"steps": 4, "lca": 1, "epochs": 1}
    assert (f.last_step, f.last_lca_end, f.last_epoch) == (4, 3, 0)
    attrs = root_attrs(path)
    assert attrs["generation"] == 1 and attrs["lca_cumulative_at_step"] is None
    f.close()
    assert open_run(path).steps()["step"].tolist() == [1, 2, 3, 4]


def test_truncate_past_the_end_needs_allow_gaps(tmp_path):
    f = new_file(tmp_path / "run.zarr")
    f.append(Batch(steps=[block(1, 2)]))
    with pytest.raises(RecordError, match="steps 3..5 were never committed"):
        f.truncate(5, None)
    f.truncate(5, None, allow_gaps=True)
    assert f.last_step == 2
    f.close()


def test_set_status_and_close_are_plain_calls(tmp_path):
    path = tmp_path / "run.zarr"
    f = new_file(path)
    f.set_status("interrupted", "stopped by hand")
    attrs = root_attrs(path)
    assert (attrs["status"], attrs["status_reason"]) == ("interrupted", "stopped by hand")
    f.close()
    f.close()  # idempotent
    assert f.rows == {"steps": 0, "lca": 0, "epochs": 0}  # state stays readable

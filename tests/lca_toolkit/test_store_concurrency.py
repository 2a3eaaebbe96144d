"""Run store while it is being written: live readers, crashes, resume and interpreter exit.

Writers run in subprocesses so that readers see the files exactly as another process leaves
them, and so that a writer can be killed with SIGKILL in the middle of its work.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import zarr

from lca_toolkit.errors import RecordError
from lca_toolkit.store import LcaRecord, RunWriter, StepBlock, open_run

GROUPS = ["cc", "mlo"]
MEMBERS = {"cc": ["cc.w"], "mlo": ["mlo.w"]}

# Rows are a function of their step, so a row stitched from two different writes is detectable.
PRELUDE = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from lca_toolkit.store import LcaRecord, RunWriter, StepBlock

    def block(start, n):
        s = np.arange(start, start + n)
        g = np.stack([s + 0.25, s + 0.5], axis=1).astype(float)
        return StepBlock(step=s, loss=s * 1.0, grad_norm=g, grad_norm_total=s + 0.75,
                         rel_sq_norm=g * 2, update_norm=g * 3, skipped=s % 2 == 0,
                         lr=(s * 1e-3)[:, None])

    def record(end, every):
        bg = np.array([-1.0, 0.5]) * end
        return LcaRecord(start_step=end - every, end_step=end, by_group=bg,
                         abs_by_group=np.abs(bg), helped=[end, 0], hurt=[0, end],
                         loss_start=2.0 * end, loss_end=2.0 * end - 1.0,
                         residual=-1.0 - bg.sum(), passes=2)
    """
)


def block(start: int, n: int) -> StepBlock:
    s = np.arange(start, start + n)
    g = np.stack([s + 0.25, s + 0.5], axis=1).astype(float)
    return StepBlock(
        step=s,
        loss=s * 1.0,
        grad_norm=g,
        grad_norm_total=s + 0.75,
        rel_sq_norm=g * 2,
        update_norm=g * 3,
        skipped=s % 2 == 0,
        lr=(s * 1e-3)[:, None],
    )


def record(end: int, every: int) -> LcaRecord:
    bg = np.array([-1.0, 0.5]) * end
    return LcaRecord(
        start_step=end - every,
        end_step=end,
        by_group=bg,
        abs_by_group=np.abs(bg),
        helped=[end, 0],
        hurt=[0, end],
        loss_start=2.0 * end,
        loss_end=2.0 * end - 1.0,
        residual=-1.0 - bg.sum(),
        passes=2,
    )


def spawn(script: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def check_prefix(path: Path) -> tuple[int, int]:
    """One live read: every section a consistent prefix. Returns (steps, LCA rows) seen."""
    run = open_run(path)
    st = run.steps()  # building the frame fails if the arrays' lengths differ
    n = len(st)
    s = st["step"].to_numpy()
    np.testing.assert_array_equal(s, np.arange(1, n + 1))  # from 1, +1 each, no fill value
    np.testing.assert_array_equal(st["loss"], s * 1.0)
    np.testing.assert_array_equal(st["grad_norm/cc"], s + 0.25)
    np.testing.assert_array_equal(st["grad_norm/mlo"], s + 0.5)
    np.testing.assert_array_equal(st["update_norm/mlo"], (s + 0.5) * 3)
    np.testing.assert_array_equal(st["skipped"], s % 2 == 0)
    np.testing.assert_array_equal(st["lr"], s * 1e-3)
    lca = run.lca()
    m = len(lca)
    end = lca["end_step"].to_numpy()
    np.testing.assert_array_equal(end, 10 * np.arange(1, m + 1))
    np.testing.assert_array_equal(lca["helped/cc"], end)
    np.testing.assert_allclose(
        lca["loss_change"] - lca["lca/cc"] - lca["lca/mlo"], lca["residual"], atol=1e-9
    )
    ep = run.epochs()
    np.testing.assert_array_equal(ep["epoch"], np.arange(len(ep)))
    if len(ep):
        np.testing.assert_array_equal(ep["val_auc"], ep["epoch"] / 100)
    return n, m


WRITE_FOREVER = """
path, total = sys.argv[1], int(sys.argv[2])
w = RunWriter(path, groups=["cc", "mlo"], group_members={"cc": ["cc.w"], "mlo": ["mlo.w"]},
              flush_every=int(sys.argv[3]), flush_interval=0.05)
step = 1
while total < 0 or step <= total:
    w.append_steps(block(step, 5))
    step += 5
    if (step - 1) % 10 == 0:
        w.append_lca(record(step - 1, 10))
    if (step - 1) % 50 == 0:
        w.append_epoch((step - 1) // 50 - 1, {"val_auc": ((step - 1) // 50 - 1) / 100})
    if step - 1 == 100:
        w.flush()
        print("flushed", flush=True)
    time.sleep(0.0005)
w.close()
"""


def test_reader_sees_a_consistent_prefix_while_another_process_writes(tmp_path):
    path = tmp_path / "live.zarr"
    proc = spawn(WRITE_FOREVER, str(path), "800", "15")
    reads, seen = 0, []
    try:
        while not path.exists():
            assert proc.poll() is None, proc.communicate()[1]
            time.sleep(0.01)
        while proc.poll() is None or reads < 20:
            seen.append(check_prefix(path))
            reads += 1
    finally:
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    n_steps = [n for n, _ in seen]
    assert n_steps == sorted(n_steps)  # committed rows only ever grow
    assert len(set(n_steps)) > 3  # the reader really overlapped the writing
    assert check_prefix(path) == (800, 80)
    assert open_run(path).status == "finished"


def test_reader_in_a_thread_beside_the_writer(tmp_path):
    path = tmp_path / "live.zarr"
    w = RunWriter(path, groups=GROUPS, group_members=MEMBERS, flush_every=8, flush_interval=0.01)
    errors: list[BaseException] = []
    done = threading.Event()

    def read_loop() -> None:
        try:
            while not done.is_set():
                check_prefix(path)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    reader = threading.Thread(target=read_loop)
    reader.start()
    for step in range(1, 301, 5):
        w.append_steps(block(step, 5))
        if (step + 4) % 10 == 0:
            w.append_lca(record(step + 4, 10))
    w.close()
    done.set()
    reader.join()
    assert not errors, errors[0]
    assert check_prefix(path) == (300, 30)


def test_resume_after_sigkill_continues_without_gap_or_duplicate(tmp_path):
    path = tmp_path / "crash.zarr"
    proc = spawn(WRITE_FOREVER, str(path), "-1", "5")
    try:
        assert proc.stdout.readline().strip() == "flushed", proc.stderr.read()
        time.sleep(0.3)  # let it commit more rows, then kill it in the middle of its work
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    run = open_run(path)
    assert run.status == "running"  # nobody could record the end
    n_before, _ = check_prefix(path)
    assert n_before >= 100

    # The checkpoint was saved at step 100 (the flush above); later rows are dropped.
    with RunWriter(path, groups=GROUPS, group_members=MEMBERS, mode="resume") as w:
        assert w.last_step == n_before
        w.truncate(last_step=100, last_epoch=1)
        assert w.last_step == 100
        try:
            w.append_steps(block(100, 1))
            raise AssertionError("a repeated step was accepted")
        except RecordError as exc:
            assert "truncate" in str(exc)
        for step in range(101, 151, 5):
            w.append_steps(block(step, 5))
            if (step + 4) % 10 == 0:
                w.append_lca(record(step + 4, 10))
        w.append_epoch(2, {"val_auc": 0.02})
    assert check_prefix(path) == (150, 15)
    run = open_run(path)
    assert run.status == "finished"
    assert len(run.attrs["resumed"]) == 1
    assert run.attrs["resumed"][0]["last_step"] == n_before
    root = zarr.open_group(path, mode="r")
    for name, arr in root["steps"].arrays():  # nothing left over from the killed commit
        assert arr.shape[0] == 150, name
    for name, arr in root["lca"].arrays():
        assert arr.shape[0] == 15, name


def test_resume_after_close_continues_the_series(tmp_path):
    path = tmp_path / "run.zarr"
    with RunWriter(path, groups=GROUPS, group_members=MEMBERS) as w:
        w.append_steps(block(1, 50))
        w.append_lca(record(50, 50))
    with RunWriter(path, groups=GROUPS, group_members=MEMBERS, mode="resume") as w:
        assert open_run(path).status == "running"
        try:
            w.append_steps(block(50, 3))
            raise AssertionError("a repeated step was accepted")
        except RecordError as exc:
            assert "step 50 is not after the last step 50" in str(exc)
        w.append_steps(block(51, 30))
        w.append_lca(record(80, 30))
    run = open_run(path)
    assert run.steps()["step"].tolist() == list(range(1, 81))
    assert run.lca()["end_step"].tolist() == [50, 80]
    assert run.status == "finished"


def test_truncate_drops_rows_after_the_checkpoint_and_stale_cumulative(tmp_path):
    path = tmp_path / "run.zarr"
    with RunWriter(path, groups=GROUPS, group_members=MEMBERS) as w:
        w.append_steps(block(1, 40))
        for end in (10, 20, 30, 40):
            w.append_lca(record(end, 10))
        for e in range(4):
            w.append_epoch(e, {"val_auc": e / 100})
        w.write_cumulative_lca({"cc.w": np.ones(3)}, at_step=40)
    with RunWriter(path, groups=GROUPS, group_members=MEMBERS, mode="resume") as w:
        w.truncate(last_step=25, last_epoch=1)
        try:
            w.append_epoch(1, {"val_auc": 0.0})
            raise AssertionError("a repeated epoch was accepted")
        except RecordError:
            pass
        w.append_steps(block(26, 5))
    run = open_run(path)
    assert run.steps()["step"].tolist() == list(range(1, 31))
    assert run.lca()["end_step"].tolist() == [10, 20]
    assert run.epochs()["epoch"].tolist() == [0, 1]
    assert run.attrs["lca_cumulative_at_step"] is None  # summed past the checkpoint: dropped
    assert run.attrs["generation"] == 1


def test_truncate_refuses_a_checkpoint_past_the_stored_steps(tmp_path):
    path = tmp_path / "run.zarr"
    with RunWriter(path, groups=GROUPS, group_members=MEMBERS) as w:
        w.append_steps(block(1, 10))
    with RunWriter(path, groups=GROUPS, group_members=MEMBERS, mode="resume") as w:
        try:
            w.truncate(last_step=20)
            raise AssertionError("a checkpoint past the stored steps was accepted")
        except RecordError as exc:
            assert "steps 11..20 were never committed" in str(exc)
        w.append_steps(block(11, 1))  # the store is unchanged and still usable
    assert len(open_run(path).steps()) == 11


EXIT_WITHOUT_CLOSE = """
w = RunWriter(sys.argv[1], groups=["cc", "mlo"], group_members={"cc": ["cc.w"], "mlo": ["mlo.w"]},
              flush_every=10_000, flush_interval=None)
w.append_steps(block(1, 37))
w.append_lca(record(10, 10))
if sys.argv[2] == "raise":
    raise RuntimeError("loss diverged")
"""


def test_rows_are_committed_at_interpreter_exit(tmp_path):
    for how, status in [("exit", "interrupted"), ("raise", "failed")]:
        path = tmp_path / f"{how}.zarr"
        proc = spawn(EXIT_WITHOUT_CLOSE, str(path), how)
        _, err = proc.communicate(timeout=60)
        assert (proc.returncode == 0) == (how == "exit"), err
        assert check_prefix(path) == (37, 1)
        run = open_run(path)
        assert run.status == status
        if how == "raise":
            assert "loss diverged" in run.attrs["status_reason"]

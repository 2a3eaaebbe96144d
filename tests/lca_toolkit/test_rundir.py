"""RunDir: the layout of a run on disk, its state, removal, and the resumable state file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from lca_toolkit import RunDir, RunStateError, Tracker, TrackerError, open_run
from lca_toolkit.job import JobError, load_job, run_job
from lca_toolkit.rundir import load_checkpoint, restore_rng, rng_states

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def write_store(path: Path, status: str = "finished", **attrs) -> None:
    """A run store of one recorded step, closed with ``status``."""
    model = nn.Sequential(nn.Linear(3, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    tracker = Tracker(model, optimizer=optimizer, store=path, config={"who": "test"})
    loss = model(torch.ones(4, 3)).pow(2).mean()
    loss.backward()
    tracker.after_backward(loss)
    optimizer.step()
    tracker.after_step()
    if attrs:
        tracker.update_attrs(**attrs)
    tracker.close(status)


def test_layout_is_named_from_the_store_path():
    run = RunDir("runs/x.zarr", sides=("blend",))
    assert run.store == Path("runs/x.zarr")
    assert run.checkpoint_dir == Path("runs/x.zarr.ckpt")
    assert run.last == Path("runs/x.zarr.ckpt/last.pt")
    assert run.best == Path("runs/x.zarr.ckpt/best.pt")
    assert run.side("blend") == Path("runs/x.zarr.blend")
    assert run.paths == (run.store, run.checkpoint_dir, Path("runs/x.zarr.blend"))
    with pytest.raises(ValueError, match="'other' is not a side folder"):
        run.side("other")
    assert RunDir(Path("a.zarr")) == RunDir("a.zarr")  # frozen, compared by value
    with pytest.raises(AttributeError):
        run.store = Path("y.zarr")  # type: ignore[misc]


def test_states_follow_the_files(tmp_path):
    run = RunDir(tmp_path / "run.zarr")
    assert run.state() == "missing" and not run.can_resume()

    write_store(run.store, status="failed")
    assert run.state() == "stale"  # unfinished, nothing to resume from
    run.save_resumable({"epoch": 1})
    assert run.state() == "resumable" and run.can_resume()
    assert run.state(wanted=lambda r: r.config.get("who") == "someone else") == "stale"

    run.remove()
    write_store(run.store)
    assert run.state() == "finished"
    assert run.state(wanted=lambda r: r.config["who"] == "test") == "finished"
    assert run.state(complete=lambda r: "results" in r.attrs) == "stale"  # no last.pt
    run.save_resumable({"epoch": 1})
    assert run.state(complete=lambda r: "results" in r.attrs) == "resumable"
    run.remove()
    write_store(run.store, results={"auc": 0.5})
    assert run.state(complete=lambda r: "results" in r.attrs) == "finished"

    other = RunDir(tmp_path / "other.zarr")
    other.store.mkdir()
    (other.store / "notes.txt").write_text("mine")
    assert other.state() == "stale"  # something that is not a run store
    broken = RunDir(tmp_path / "broken.zarr")
    write_store(broken.store)
    assert broken.state(wanted=lambda r: 1 / 0) == "stale"  # cannot be read as wanted


def test_remove_deletes_the_run_and_refuses_other_data(tmp_path):
    run = RunDir(tmp_path / "run.zarr", sides=("blend",))
    write_store(run.store)
    run.save_resumable({"epoch": 1})
    run.save_best({"model": {}})
    run.side("blend").mkdir()
    assert run.removable()
    run.remove()
    assert not any(p.exists() for p in run.paths)
    run.remove()  # nothing there: nothing to do

    empty = RunDir(tmp_path / "empty.zarr")
    empty.store.mkdir()
    assert empty.removable()
    empty.remove()
    assert not empty.store.exists()

    precious = RunDir(tmp_path / "precious.zarr")
    precious.store.mkdir()
    (precious.store / "keep.txt").write_text("precious")
    precious.checkpoint_dir.mkdir()
    assert not precious.removable()
    with pytest.raises(RunStateError, match="is not a run store; refusing to delete it"):
        precious.remove()
    assert (precious.store / "keep.txt").read_text() == "precious"
    assert precious.checkpoint_dir.exists()
    a_file = RunDir(tmp_path / "file.zarr")
    a_file.store.write_text("x")
    assert not a_file.removable()
    precious.remove(owned=True)  # a folder the program made: whatever is there goes
    assert not precious.store.exists() and not precious.checkpoint_dir.exists()

    stopped = RunDir(tmp_path / "stopped.zarr")
    stopped.save_resumable({"epoch": 0})
    stopped.remove_checkpoints()
    assert not stopped.checkpoint_dir.exists()


def test_resumable_state_round_trip(tmp_path):
    run = RunDir(tmp_path / "run.zarr")
    state = {"model": {"w": torch.arange(6.0).reshape(2, 3)}, "epoch": 3, "rng": rng_states()[0]}
    run.save_resumable(state)
    assert not list(run.checkpoint_dir.glob("*.tmp"))  # written atomically, nothing left over
    back = run.load_resumable()
    assert back["epoch"] == 3 and torch.equal(back["model"]["w"], state["model"]["w"])
    run.save_resumable({**state, "epoch": 4})  # replaced in place
    assert run.load_resumable()["epoch"] == 4
    run.save_best({"model": state["model"], "epoch": 2})
    assert run.load_best()["epoch"] == 2


def test_missing_or_corrupt_state_is_a_clear_error(tmp_path):
    run = RunDir(tmp_path / "run.zarr")
    with pytest.raises(RunStateError, match=r"^no checkpoint at .*last\.pt$"):
        run.load_resumable()
    run.save_resumable({"model": {"w": torch.zeros(1000)}, "epoch": 1})
    data = run.last.read_bytes()
    run.last.write_bytes(data[: len(data) // 2])  # a truncated file
    with pytest.raises(RunStateError) as info:
        run.load_resumable()
    message = str(info.value)
    assert message.startswith(f"cannot read the checkpoint at {run.last} (")
    assert message.endswith("the file is damaged: start the run again with --overwrite")
    assert "\n" not in message
    run.last.write_bytes(b"not a checkpoint at all")
    with pytest.raises(RunStateError, match="cannot read the checkpoint at"):
        run.load_resumable()
    torch.save([1, 2, 3], run.last)
    with pytest.raises(RunStateError, match="holds a list, not a checkpoint"):
        load_checkpoint(run.last)


def test_rng_states_round_trip():
    saved = rng_states()
    a = torch.rand(5)
    restore_rng(*saved)
    assert torch.equal(torch.rand(5), a)


def test_job_resume_reads_the_state_through_rundir(tmp_path):
    out = tmp_path / "job.zarr"
    first = load_job("user_job:make_job", {"epochs": 1, "n_train": 64}, search_path=EXAMPLES)
    run_job(first, out)
    state = RunDir(out).load_resumable()
    assert state["epoch"] == 1 and {"model", "optimizer", "tracker", "rng", "rng_cuda"} <= set(
        state
    )
    RunDir(out).last.write_bytes(b"garbage")
    again = load_job("user_job:make_job", {"epochs": 2, "n_train": 64}, search_path=EXAMPLES)
    with pytest.raises(RunStateError, match="cannot read the checkpoint at"):
        run_job(again, out, resume=True)
    RunDir(out).remove_checkpoints()
    with pytest.raises(JobError, match="--resume: no checkpoint at"):
        run_job(again, out, resume=True)


def test_tracker_attrs_tables_and_restart(tmp_path):
    path = tmp_path / "run.zarr"
    model = nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with Tracker(model, optimizer=optimizer, store=path) as tracker:
        tracker.restart()  # at step 0: allowed (nothing to drop)
        loss = model(torch.ones(2, 3)).mean()
        loss.backward()
        tracker.after_backward(loss)
        optimizer.step()
        tracker.after_step()
        with pytest.raises(TrackerError, match="restart\\(\\) is for a tracker at step 0"):
            tracker.restart()
        tracker.update_attrs(results={"auc": 0.75})
        tracker.write_table("predictions", {"index": torch.arange(3).numpy()})
    run = open_run(path)
    assert run.attrs["results"] == {"auc": 0.75}
    assert run.table("predictions")["index"].tolist() == [0, 1, 2]


class _RunsCodeWhenUnpickled:
    """Stands for any object a crafted checkpoint could carry: unpickling it calls a function."""

    def __reduce__(self):
        return (print, ("this ran while loading",))


def test_a_checkpoint_whose_pickle_would_run_code_is_refused_in_one_line(tmp_path, capsys):
    run = RunDir(tmp_path / "run.zarr")
    run.save_resumable({"model": {"w": torch.zeros(2)}, "extra": _RunsCodeWhenUnpickled()})
    with pytest.raises(RunStateError) as info:
        run.load_resumable()
    message = str(info.value)
    assert "refusing to load" in message and "holds print," in message and "\n" not in message
    assert "this ran while loading" not in capsys.readouterr().out  # nothing was executed


def test_the_toolkit_s_own_checkpoints_load_without_unpickling_objects(tmp_path):
    from lca_toolkit.rundir import rng_states

    run = RunDir(tmp_path / "run.zarr")
    rng, rng_cuda = rng_states()
    state = {"model": {"w": torch.ones(3)}, "epoch": 2, "best": {"epoch": 1, "val_auc": 0.5},
             "rng": rng, "rng_cuda": rng_cuda, "config": {"lr": 1e-4, "name": None}}  # fmt: skip
    run.save_resumable(state)
    loaded = run.load_resumable()
    assert torch.equal(loaded["rng"], rng) and loaded["config"] == state["config"]

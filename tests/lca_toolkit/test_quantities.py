"""Quantities: a new measurement is a class plus registering it; one output path to store, mirror
and rank 0."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
import torch
from problems import SmoothMLP, mlp_batches, mlp_loss

from lca_toolkit import TrackerError, open_run
from lca_toolkit import output as output_module
from lca_toolkit import sinks as sinks_module
from lca_toolkit.output import Output
from lca_toolkit.quantities import Quantity, Schedule
from lca_toolkit.records import Table
from lca_toolkit.sinks import MemorySink, NullSink
from lca_toolkit.tracker import Tracker


class EvalLoss(Quantity):
    """Toy quantity: the mean loss on a fixed batch every k steps, stored as a table (the shape of
    an evaluation every K steps, such as an input ablation)."""

    name = "eval_loss"

    def __init__(self, model: torch.nn.Module, batch: Any, every: int) -> None:
        super().__init__(Schedule(every=every, at_epoch_end=True))
        self.model, self.batch = model, batch
        self.rows: dict[str, list[float]] = {"step": [], "loss": []}
        self.epoch_ends: list[int] = []

    def at_step(self, step: int, out: Output) -> None:
        with torch.no_grad():
            loss = mlp_loss(self.model, self.batch).mean()
        self.rows["step"].append(step)
        self.rows["loss"].append(float(loss))
        out.emit(Table(self.name, {k: np.asarray(v) for k, v in self.rows.items()}))

    def at_epoch_end(self, epoch: int, step: int, out: Output, metrics: Mapping[str, float]):
        self.epoch_ends.append(epoch)

    def state_dict(self) -> dict[str, Any]:
        return {"rows": {k: list(v) for k, v in self.rows.items()}, "epoch_ends": self.epoch_ends}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.rows = {k: list(v) for k, v in state["rows"].items()}
        self.epoch_ends = list(state["epoch_ends"])


class RecordingMirror:
    """A mirror that keeps what it is handed, by kind."""

    name = "recording"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def start(self, groups):
        self.calls.append("start")

    def append_steps(self, block):
        self.calls.extend(f"step{s}" for s in block.step)

    def append_lca(self, record):
        self.calls.append(f"lca{record.end_step}")

    def append_epoch(self, epoch, metrics, step):
        self.calls.append(f"epoch{epoch}@{step}")

    def truncate(self, *, last_step):
        self.calls.append(f"truncate{last_step}")

    def flush(self):
        pass

    def close(self):
        self.calls.append("close")


def run_steps(tracker: Tracker, model, opt, batches, n: int, by_hand: list[float] | None = None):
    probe = batches[0]
    for batch in batches[:n]:
        opt.zero_grad()
        loss = mlp_loss(model, batch).mean()
        loss.backward()
        tracker.after_backward(loss)
        opt.step()
        if by_hand is not None:
            with torch.no_grad():
                by_hand.append(float(mlp_loss(model, probe).mean()))
        tracker.after_step()


def test_added_quantity_is_measured_on_its_schedule_and_stored_beside_norms_and_lca(tmp_path):
    model = SmoothMLP()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    batches = mlp_batches(n=30, batch_size=5)
    mirror = RecordingMirror()
    probe = EvalLoss(model, batches[0], every=2)
    store = tmp_path / "run.zarr"
    by_hand: list[float] = []
    with Tracker(
        model,
        store=store,
        optimizer=opt,
        loss_fn=mlp_loss,
        eval_batches=batches[:2],
        lca_every=3,
        mirror=mirror,
        quantities=[probe],
    ) as tracker:
        assert [q.name for q in tracker.quantities] == ["step_norms", "lca", "epochs", "eval_loss"]
        run_steps(tracker, model, opt, batches, 5, by_hand)
        tracker.log_epoch(0, {"val_auc": 0.5})
    run = open_run(store)
    table = run.table("eval_loss")
    assert table["step"].tolist() == [2, 4]
    np.testing.assert_allclose(table["loss"], [by_hand[1], by_hand[3]], rtol=1e-12)
    assert probe.epoch_ends == [0]
    assert run.steps()["step"].tolist() == [1, 2, 3, 4, 5]
    assert run.lca()["end_step"].tolist() == [3, 5]  # every 3 steps, then the open interval
    # The mirror got each mirrored record once, the table (store-only) never.
    assert mirror.calls.count("lca3") == 1 and mirror.calls.count("step4") == 1
    assert "epoch0@5" in mirror.calls and not any("eval" in c for c in mirror.calls)


def test_an_added_quantitys_state_round_trips_through_the_tracker_checkpoint():
    model = SmoothMLP()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    batches = mlp_batches(n=20, batch_size=5)
    first = Tracker(model, optimizer=opt, quantities=[EvalLoss(model, batches[0], every=1)])
    run_steps(first, model, opt, batches, 3)
    first.log_epoch(0, {})
    state = first.state_dict()
    saved = state["quantities"]["eval_loss"]
    assert saved["rows"]["step"] == [1, 2, 3] and saved["epoch_ends"] == [0]
    again = EvalLoss(model, batches[0], every=1)
    resumed = Tracker(model, optimizer=torch.optim.SGD(model.parameters(), lr=0.05))
    resumed.add_quantity(again)
    resumed.load_state_dict(state)
    assert resumed.step == 3 and again.rows == saved["rows"] and again.epoch_ends == [0]
    # A checkpoint written without the quantity cannot continue it.
    plain = Tracker(model).state_dict()
    other = Tracker(model, quantities=[EvalLoss(model, batches[0], every=1)])
    with pytest.raises(TrackerError, match="no state for the added quantit.*eval_loss"):
        other.load_state_dict(plain)
    assert "quantities" not in plain  # the built-in checkpoint keeps its flat keys


@pytest.mark.parametrize(
    "bad, message",
    [(object(), "Quantity objects, got object"), (None, "Quantity objects, got NoneType")],
)
def test_something_else_than_a_quantity_is_refused_before_the_store_exists(tmp_path, bad, message):
    store = tmp_path / "run.zarr"
    with pytest.raises(TrackerError, match=message):
        Tracker(SmoothMLP(), store=store, quantities=[bad])
    assert not store.exists()


def test_a_taken_name_is_refused_and_quantities_are_added_before_the_first_step(tmp_path):
    model = SmoothMLP()
    batch = mlp_batches()[0]
    taken = EvalLoss(model, batch, every=1)
    taken.name = "lca"
    store = tmp_path / "run.zarr"
    with pytest.raises(TrackerError, match="a quantity named 'lca' is already measured"):
        Tracker(model, store=store, quantities=[taken])
    assert not store.exists()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    tracker = Tracker(model, optimizer=opt)
    run_steps(tracker, model, opt, mlp_batches(), 1)
    with pytest.raises(TrackerError, match="at step 1: add quantities before the first step"):
        tracker.add_quantity(EvalLoss(model, batch, every=1))


def test_other_ranks_measure_every_quantity_but_write_no_store_and_no_mirror(tmp_path, monkeypatch):
    for module in (output_module.distributed, sinks_module.distributed):
        monkeypatch.setattr(module, "is_main", lambda: False)
    model = SmoothMLP()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    probe = EvalLoss(model, mlp_batches()[0], every=2)
    mirror = RecordingMirror()
    store = tmp_path / "run.zarr"
    with Tracker(model, store=store, optimizer=opt, mirror=mirror, quantities=[probe]) as tracker:
        run_steps(tracker, model, opt, mlp_batches(), 4)
    assert isinstance(tracker.sink, NullSink) and tracker.mirror is None
    assert probe.rows["step"] == [2, 4]  # measured all the same (it may be collective)
    assert not store.exists() and mirror.calls == []


def test_the_output_refuses_a_record_of_no_known_kind():
    out = Output(MemorySink(["a"]))
    with pytest.raises(TrackerError, match="emitted a dict; records are one of StepBlock"):
        out.emit({"step": 1})

"""Tracker.stop_lca: LCA over the first part of a run only, gradient norms for all of it.

The open interval is closed at the stop (like an epoch switch of E), the engine is released, and
a checkpoint written after the stop resumes stopped. All float64 on CPU.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from problems import SmoothMLP, mlp_batches, mlp_loss
from torch import nn

from lca_toolkit import TrackerError, open_run
from lca_toolkit.tracker import Tracker

K = 3
E = mlp_batches(n=12, batch_size=5, seed=100)
TRAIN = mlp_batches(n=4 * 20, batch_size=4, seed=11)  # step t trains on TRAIN[t - 1]


def make_model() -> tuple[nn.Module, torch.optim.Optimizer]:
    model = SmoothMLP(seed=1)
    return model, torch.optim.Adam(model.parameters(), lr=1e-2)


def tracked(model: nn.Module, opt: torch.optim.Optimizer, **kwargs) -> Tracker:
    return Tracker(model, optimizer=opt, loss_fn=mlp_loss, eval_batches=E, lca_every=K, **kwargs)


def train(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    trackers: list[Tracker],
    start: int,
    stop: int,
    stop_lca_at: int | None = None,
) -> dict[int, dict[str, torch.Tensor]]:
    """Optimizer steps ``start + 1 .. stop``, LCA stopped before step ``stop_lca_at + 1``.

    Returns the model state after every step, keyed by step.
    """
    states = {}
    model.train()
    for step in range(start, stop):
        if step == stop_lca_at:
            for t in trackers:
                t.stop_lca()
        opt.zero_grad()
        loss = mlp_loss(model, TRAIN[step]).mean()
        loss.backward()
        for t in trackers:
            t.after_backward(loss)
        opt.step()
        for t in trackers:
            t.after_step()
        states[step + 1] = copy.deepcopy(model.state_dict())
    return states


def fresh_loss(model: nn.Module, state: dict[str, torch.Tensor]) -> float:
    """L_E at a saved state, from scratch: sum of per-sample losses / |E|."""
    probe = copy.deepcopy(model)
    probe.load_state_dict(state)
    probe.eval()
    with torch.no_grad():
        total = sum(float(mlp_loss(probe, b).sum()) for b in E)
    return total / sum(len(b["y"]) for b in E)


def test_stop_closes_the_open_interval_and_only_norms_follow(tmp_path):
    model, opt = make_model()
    tracker = tracked(model, opt, store=tmp_path / "run.zarr")
    states = train(model, opt, [tracker], 0, 5)
    closed = tracker.stop_lca()  # at step 5, inside the interval (3, 6]
    assert (closed.start_step, closed.end_step) == (3, 5)
    assert float(closed.loss_end) == pytest.approx(fresh_loss(model, states[5]), rel=1e-12)
    assert not tracker.lca_active and tracker.engine is None and tracker.lca_stopped_at == 5
    assert tracker.stop_lca() is None  # twice: nothing more
    assert tracker.set_eval_batches(E) is None  # an epoch loop may go on switching E
    with pytest.raises(TrackerError, match="LCA was stopped at step 5"):
        tracker.measure_lca()
    train(model, opt, [tracker], 5, 14)
    tracker.close()

    run = open_run(tmp_path / "run.zarr")
    lca = run.lca()
    assert lca[["start_step", "end_step"]].values.tolist() == [[0, 3], [3, 5]]
    assert lca["loss_end"].iloc[-1] == float(closed.loss_end)
    assert run.array("steps/step").tolist() == list(range(1, 15))
    assert np.isfinite(run.array("steps/grad_norm")).all()  # norms for every step, after too
    assert run.attrs["lca_stopped_at"] == 5


def test_norms_after_the_stop_equal_those_of_a_tracker_without_lca():
    model, opt = make_model()
    stopped = tracked(model, opt)
    plain = Tracker(model, optimizer=opt)  # on the same loop: the same gradients
    train(model, opt, [stopped, plain], 0, 10, stop_lca_at=4)
    stopped.close()
    plain.close()
    assert [(r.start_step, r.end_step) for r in stopped.sink.lca] == [(0, 3), (3, 4)]
    for name in ("step", "grad_norm", "grad_norm_total", "update_norm", "loss"):
        a, b = stopped.sink.step_array(name), plain.sink.step_array(name)
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert stopped.sink.attrs["lca_stopped_at"] == 4


def test_stop_right_after_a_snapshot_or_without_lca_measures_nothing():
    model, opt = make_model()
    tracker = tracked(model, opt)
    train(model, opt, [tracker], 0, 6)
    assert tracker.stop_lca() is None  # (3, 6] was measured by after_step
    assert [(r.start_step, r.end_step) for r in tracker.sink.lca] == [(0, 3), (3, 6)]
    assert tracker.lca_stopped_at == 6
    tracker.close()

    off = Tracker(model, optimizer=opt)
    assert off.stop_lca() is None and off.lca_stopped_at is None
    assert "lca_stopped_at" not in off.sink.attrs
    with pytest.raises(TrackerError, match="set_eval_batches: LCA is off"):
        off.set_eval_batches(E)  # never built with LCA: still the error it was
    off.close()


@pytest.mark.parametrize("saved_at", [4, 5, 8])  # before the stop, at it, after it
def test_a_resumed_run_gives_the_intervals_of_an_uninterrupted_one(saved_at):
    total, stop_at = 12, 5
    model, opt = make_model()
    full = tracked(model, opt)
    train(model, opt, [full], 0, total, stop_lca_at=stop_at)
    full.close()

    model, opt = make_model()
    first = tracked(model, opt)
    train(model, opt, [first], 0, saved_at, stop_lca_at=stop_at)
    checkpoint = copy.deepcopy(
        {"model": model.state_dict(), "opt": opt.state_dict(), "tracker": first.state_dict()}
    )
    assert checkpoint["tracker"]["lca_stopped_at"] == (stop_at if saved_at > stop_at else None)
    first.close("interrupted")

    model, opt = make_model()
    model.load_state_dict(checkpoint["model"])
    opt.load_state_dict(checkpoint["opt"])
    second = tracked(model, opt)  # built with LCA, as the run was
    second.load_state_dict(checkpoint["tracker"])
    assert second.lca_active == (saved_at <= stop_at)
    train(model, opt, [second], saved_at, total, stop_lca_at=stop_at)
    second.close()
    resumed = first.sink.lca + second.sink.lca
    assert [(r.start_step, r.end_step) for r in full.sink.lca] == [(0, 3), (3, 5)]
    assert [(r.start_step, r.end_step) for r in resumed] == [(0, 3), (3, 5)]
    for a, b in zip(full.sink.lca, resumed, strict=True):
        np.testing.assert_array_equal(a.by_group, b.by_group)
        assert (a.loss_start, a.loss_end, a.residual) == (b.loss_start, b.loss_end, b.residual)
    assert second.lca_stopped_at == stop_at
    norms = np.concatenate(
        [first.sink.step_array("grad_norm"), second.sink.step_array("grad_norm")]
    )
    np.testing.assert_array_equal(norms, full.sink.step_array("grad_norm"))


def test_load_state_dict_keeps_refusing_a_real_disagreement():
    model, opt = make_model()
    stopped = tracked(model, opt)
    train(model, opt, [stopped], 0, 2)
    stopped.stop_lca()
    after_stop = stopped.state_dict()
    no_lca = Tracker(model, optimizer=opt)
    with_lca = tracked(model, opt)
    before_stop = with_lca.state_dict()
    del before_stop["lca_stopped_at"]  # a checkpoint written before stop_lca existed
    for tracker, state in ((no_lca, after_stop), (with_lca, no_lca.state_dict())):
        with pytest.raises(TrackerError, match="disagree on whether LCA is recorded"):
            tracker.load_state_dict(state)
    tracked(model, opt).load_state_dict(before_stop)  # old checkpoints still load
    with pytest.raises(TrackerError, match="stop_lca\\(\\) was called on this tracker at step 2"):
        stopped.load_state_dict(before_stop)
    for t in (stopped, no_lca, with_lca):
        t.close()

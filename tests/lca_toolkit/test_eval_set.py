"""Tracker.set_eval_batches: a new evaluation subset E per epoch (SPEC 4, ``lca_set='epoch'``).

An interval never spans two E's: it is closed on the old E at the boundary and the next one starts
there, its left end evaluated on the new E. All float64 on CPU.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from problems import SmoothMLP, mlp_batches, mlp_loss
from torch import nn

from lca_toolkit import LcaError, TrackerError
from lca_toolkit.tracker import Tracker

K = 3


def subset(epoch: int) -> list[dict[str, torch.Tensor]]:
    """E of an epoch: a different draw (and size) every epoch."""
    return mlp_batches(n=12 + 2 * epoch, batch_size=5, seed=100 + epoch)


TRAIN = mlp_batches(n=4 * 40, batch_size=4, seed=11)  # step t trains on TRAIN[t - 1]


def fresh_loss(model: nn.Module, state: dict[str, torch.Tensor], batches) -> float:
    """L_E at a saved state, evaluated from scratch: sum of per-sample losses / |E|."""
    probe = copy.deepcopy(model)
    probe.load_state_dict(state)
    probe.eval()
    with torch.no_grad():
        total = sum(float(mlp_loss(probe, b).sum()) for b in batches)
    return total / sum(len(b["y"]) for b in batches)


def make_model(seed: int = 3) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = SmoothMLP(seed=1)
    model.audio.insert(2, nn.Dropout(0.3))  # uses the global RNG in training
    return model, torch.optim.Adam(model.parameters(), lr=1e-2)


def train(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    tracker: Tracker | None,
    start: int,
    stop: int,
    epoch_len: int,
    switch_first: bool = True,
) -> dict[int, dict[str, torch.Tensor]]:
    """Optimizer steps ``start + 1 .. stop``; E switched to ``subset(epoch)`` at every epoch
    start (at ``start`` itself only with ``switch_first``: a resumed run does not switch again).

    Returns the model state after every step (and at ``start``), keyed by step.
    """
    states = {start: copy.deepcopy(model.state_dict())}
    model.train()
    for step in range(start, stop):
        at_boundary = step % epoch_len == 0 and (switch_first or step > start)
        if tracker is not None and at_boundary:
            tracker.set_eval_batches(subset(step // epoch_len))
        opt.zero_grad()
        loss = mlp_loss(model, TRAIN[step]).mean()
        loss.backward()
        if tracker is not None:
            tracker.after_backward(loss)
        opt.step()
        if tracker is not None:
            tracker.after_step()
        states[step + 1] = copy.deepcopy(model.state_dict())
    return states


def tracked(model, opt, **kwargs) -> Tracker:
    return Tracker(
        model,
        optimizer=opt,
        loss_fn=mlp_loss,
        eval_batches=subset(0),
        lca_every=K,
        **kwargs,
    )


@pytest.mark.parametrize(
    ("epoch_len", "expected"),
    [
        (
            5,
            [(0, 3), (3, 5), (5, 8), (8, 10), (10, 13), (13, 15)],
        ),  # boundaries mid-interval: short ones
        (6, [(0, 3), (3, 6), (6, 9), (9, 12), (12, 15), (15, 18)]),  # on a snapshot: no extra
    ],
)
def test_intervals_never_span_a_boundary(epoch_len, expected):
    model, opt = make_model()
    tracker = tracked(model, opt, quadrature="simpson")
    train(model, opt, tracker, 0, 3 * epoch_len, epoch_len)
    tracker.close()
    spans = [(r.start_step, r.end_step) for r in tracker.sink.lca]
    assert spans == expected
    for start, end in spans:
        assert start // epoch_len == (end - 1) // epoch_len, (start, end)
    # An interval starting at a boundary evaluates its left end on the new E: one pass more.
    passes = [3 if start % epoch_len == 0 else 2 for start, _ in spans]
    assert [r.passes for r in tracker.sink.lca] == passes


def test_each_interval_is_complete_on_its_own_e():
    """Both ends of every interval are real losses on the interval's E, and the LCAs add up."""
    epoch_len = 5
    model, opt = make_model()
    tracker = tracked(model, opt, quadrature="adaptive", rel_tol=1e-10, abs_tol=0.0, max_panels=64)
    states = train(model, opt, tracker, 0, 3 * epoch_len, epoch_len)
    tracker.close()
    assert len(tracker.sink.lca) == 6  # (13, 15] measured at close()
    for r in tracker.sink.lca:
        e = subset(r.start_step // epoch_len)
        where = (r.start_step, r.end_step)
        start = fresh_loss(model, states[r.start_step], e)
        end = fresh_loss(model, states[r.end_step], e)
        assert r.loss_start == pytest.approx(start, rel=1e-12, abs=0), where
        assert r.loss_end == pytest.approx(end, rel=1e-12, abs=0), where
        change = r.loss_end - r.loss_start
        assert abs(r.residual) <= 1e-9 * abs(change), (where, r.residual, change)


def test_first_interval_after_a_switch_starts_at_the_new_e():
    model, opt = make_model()
    tracker = tracked(model, opt)
    states = train(model, opt, tracker, 0, 5, epoch_len=5)
    closed = tracker.set_eval_batches(subset(1))  # at step 5, inside the interval (3, 6]
    assert (closed.start_step, closed.end_step) == (3, 5)
    old_e = fresh_loss(model, states[5], subset(0))
    assert float(closed.loss_end) == pytest.approx(old_e, rel=1e-12)
    assert tracker.engine.stored_endpoint_gradient() is None  # the old E's gradient is gone
    new_e = fresh_loss(model, states[5], subset(1))
    assert new_e != pytest.approx(old_e, rel=1e-3)  # E really changed
    train(model, opt, tracker, 5, 8, epoch_len=5, switch_first=False)
    tracker.close()
    after = tracker.sink.lca[2]
    assert (after.start_step, after.end_step) == (5, 8)
    assert after.loss_start == pytest.approx(new_e, rel=1e-12)


def test_a_switch_right_after_a_snapshot_measures_nothing():
    model, opt = make_model()
    start = copy.deepcopy(model.state_dict())
    tracker = tracked(model, opt)
    assert tracker.set_eval_batches(subset(1)) is None  # at step 0
    train(model, opt, tracker, 0, 3, epoch_len=100, switch_first=False)
    assert [(r.start_step, r.end_step) for r in tracker.sink.lca] == [(0, 3)]
    assert tracker.sink.lca[0].loss_start == pytest.approx(
        fresh_loss(model, start, subset(1)), rel=1e-12
    )
    assert tracker.set_eval_batches(subset(2)) is None  # at step 3, right after a measurement
    assert len(tracker.sink.lca) == 1
    tracker.close()


def test_training_with_and_without_recording_is_bit_identical_across_switches():
    on, opt_on = make_model()
    tracker = tracked(on, opt_on, quadrature="adaptive", cumulative=True, per_tensor=True)
    train(on, opt_on, tracker, 0, 15, epoch_len=5)
    tracker.close()
    rng_on = torch.get_rng_state()
    assert len(tracker.sink.lca) == 6
    off, opt_off = make_model()
    train(off, opt_off, None, 0, 15, epoch_len=5)
    assert torch.equal(rng_on, torch.get_rng_state())
    for (name, a), (_, b) in zip(on.state_dict().items(), off.state_dict().items()):
        assert torch.equal(a, b), name
    state_on, state_off = opt_on.state_dict()["state"], opt_off.state_dict()["state"]
    for k in state_on:
        for key in state_on[k]:
            assert torch.equal(state_on[k][key], state_off[k][key]), (k, key)


@pytest.mark.parametrize("stop_at", [4, 5, 7])  # inside an interval, at a boundary, after one
def test_resume_with_the_e_in_force_continues_the_same_intervals(stop_at):
    epoch_len, total = 5, 10
    model, opt = make_model()
    full = tracked(model, opt)
    train(model, opt, full, 0, total, epoch_len)
    full.close()

    model, opt = make_model()
    first = tracked(model, opt)
    train(model, opt, first, 0, stop_at, epoch_len)
    checkpoint = copy.deepcopy(
        {
            "model": model.state_dict(),
            "opt": opt.state_dict(),
            "tracker": first.state_dict(),
            "rng": torch.get_rng_state(),
        }
    )
    first.close("interrupted")

    model, opt = make_model(seed=99)
    model.load_state_dict(checkpoint["model"])
    opt.load_state_dict(checkpoint["opt"])
    torch.set_rng_state(checkpoint["rng"])
    # The E in force at the checkpoint: one written at a boundary predates the switch.
    in_force = subset((stop_at - 1) // epoch_len)
    second = Tracker(model, optimizer=opt, loss_fn=mlp_loss, eval_batches=in_force, lca_every=K)
    second.load_state_dict(checkpoint["tracker"])
    train(model, opt, second, stop_at, total, epoch_len, switch_first=stop_at % epoch_len == 0)
    second.close()
    resumed = first.sink.lca + second.sink.lca
    spans = [(r.start_step, r.end_step) for r in full.sink.lca]
    assert spans == [(0, 3), (3, 5), (5, 8), (8, 10)]  # (8, 10] at close()
    assert [(r.start_step, r.end_step) for r in resumed] == spans
    for a, b in zip(full.sink.lca, resumed, strict=True):
        np.testing.assert_array_equal(a.by_group, b.by_group)
        assert (a.loss_start, a.loss_end, a.residual) == (b.loss_start, b.loss_end, b.residual)


def test_set_eval_batches_errors():
    model, opt = make_model()
    with pytest.raises(TrackerError, match="set_eval_batches: LCA is off"):
        Tracker(model, optimizer=opt).set_eval_batches(subset(0))
    tracker = tracked(model, opt)
    with pytest.raises(LcaError, match="one-shot iterator"):
        tracker.set_eval_batches(iter(subset(1)))
    tracker.close()

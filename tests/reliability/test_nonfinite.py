"""Non-finite numbers: recorded as such, a stop that names step and groups, or a counted skip."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from lca_toolkit import Tracker, open_run
from lca_toolkit.errors import NonFiniteError, TrackerError

GROUPS = {"first": ["first"], "second": ["second"]}


class TwoLayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.first = nn.Linear(3, 4).double()
        self.second = nn.Linear(4, 1).double()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(torch.tanh(self.first(x))).squeeze(-1)


def per_sample(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch
    return (model(x) - y) ** 2


def batches(n: int, bad: set[int] = frozenset()) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """n batches; those in ``bad`` (1-based steps) carry a NaN input: NaN loss and gradients."""
    g = torch.Generator().manual_seed(1)
    out = []
    for step in range(1, n + 1):
        x = torch.randn(5, 3, generator=g, dtype=torch.float64)
        y = torch.randn(5, generator=g, dtype=torch.float64)
        if step in bad:
            x[0, 0] = math.nan
        out.append((x, y))
    return out


def train(model, opt, tracker, data) -> None:
    for batch in data:
        opt.zero_grad(set_to_none=True)
        loss = per_sample(model, batch).mean()
        loss.backward()
        tracker.after_backward(loss)
        opt.step()
        tracker.after_step()


def test_stop_records_the_row_names_step_loss_and_groups_and_fails_the_store(tmp_path):
    model = TwoLayer()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    path = tmp_path / "stop.zarr"
    data = batches(5, bad={3})
    weights_after_2 = None
    with pytest.raises(NonFiniteError) as info:
        with Tracker(model, GROUPS, optimizer=opt, store=path, on_nonfinite="stop") as tracker:
            train(model, opt, tracker, data[:2])
            weights_after_2 = copy.deepcopy(model.state_dict())
            train(model, opt, tracker, data[2:])
    msg = str(info.value)
    assert "step 3" in msg and "loss nan" in msg and "first, second" in msg
    for k, v in model.state_dict().items():  # the bad step never reached the weights
        assert torch.equal(v, weights_after_2[k]), k
    run = open_run(path)
    assert run.status == "failed"
    assert "NonFiniteError" in run.attrs["status_reason"] and "step 3" in run.attrs["status_reason"]
    steps = run.steps()
    assert steps["step"].tolist() == [1, 2, 3]  # everything before stays, the bad row too
    assert np.isfinite(steps["loss"][:2]).all() and math.isnan(steps["loss"][2])
    assert not np.isfinite(steps["grad_norm/first"][2])
    assert not steps["skipped"].any()


def test_stop_names_only_the_group_whose_gradient_is_not_finite():
    model = TwoLayer()
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    tracker = Tracker(model, GROUPS, optimizer=opt, on_nonfinite="stop")
    model.first.weight.register_hook(lambda g: g * math.inf)
    with pytest.raises(
        NonFiniteError,
        match=r"at step 1: loss [0-9.]+, gradient norm not finite "
        r"in group\(s\) first;",
    ):
        train(model, opt, tracker, batches(1))
    assert tracker.sink.steps[0].step.tolist() == [1]


def test_skip_leaves_weights_and_adam_state_untouched_and_counts_the_step(tmp_path):
    data = batches(6, bad={2, 5})
    path = tmp_path / "skip.zarr"
    model = TwoLayer()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with Tracker(model, GROUPS, optimizer=opt, store=path, on_nonfinite="skip") as tracker:
        train(model, opt, tracker, data[:1])
        before = copy.deepcopy((model.state_dict(), opt.state_dict()))
        train(model, opt, tracker, data[1:2])
        assert tracker.last_skipped
        after = (model.state_dict(), opt.state_dict())
        for k, v in before[0].items():
            assert torch.equal(v, after[0][k]), k
        for pid, state in before[1]["state"].items():  # exp_avg, exp_avg_sq and step count
            for key, value in state.items():
                assert torch.equal(value, after[1]["state"][pid][key]), (pid, key)
        train(model, opt, tracker, data[2:])
        assert not tracker.last_skipped
    # The same as training on the good batches only: a skipped step changes nothing.
    clean = TwoLayer()
    clean_opt = torch.optim.Adam(clean.parameters(), lr=1e-2)
    for x, y in [b for i, b in enumerate(data, 1) if i not in (2, 5)]:
        clean_opt.zero_grad()
        per_sample(clean, (x, y)).mean().backward()
        clean_opt.step()
    for k, v in clean.state_dict().items():
        assert torch.equal(v, model.state_dict()[k]), k
    run = open_run(path)
    assert run.status == "finished"
    assert run.attrs["nonfinite_skipped"] == 2
    steps = run.steps()
    assert steps["step"].tolist() == [1, 2, 3, 4, 5, 6]
    assert steps["skipped"].tolist() == [False, True, False, False, True, False]
    assert math.isnan(steps["loss"][1]) and np.isfinite(steps["loss"][[0, 2, 3, 5]]).all()
    assert (steps.loc[steps["skipped"], "update_norm/first"] == 0).all()


def test_skip_count_survives_a_resume(tmp_path):
    path = tmp_path / "run.zarr"
    model = TwoLayer()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with Tracker(model, GROUPS, optimizer=opt, store=path, on_nonfinite="skip") as tracker:
        train(model, opt, tracker, batches(3, bad={2}))
        state = tracker.state_dict()
    with Tracker(
        model, GROUPS, optimizer=opt, store=path, store_mode="resume", on_nonfinite="skip"
    ) as tracker:
        tracker.load_state_dict(state)
        assert tracker.nonfinite_skipped == 1
        train(model, opt, tracker, batches(5, bad={2, 5})[3:])
    run = open_run(path)
    assert run.attrs["nonfinite_skipped"] == 2
    assert run.steps()["skipped"].tolist() == [False, True, False, False, True]


def test_record_is_the_default_and_changes_nothing():
    model = TwoLayer()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    tracker = Tracker(model, GROUPS, optimizer=opt)
    assert tracker.on_nonfinite == "record"
    train(model, opt, tracker, batches(2, bad={1}))  # no error: NaN is recorded as NaN
    tracker.close()
    rows = tracker.sink.steps[0]
    assert math.isnan(rows.loss[0]) and not rows.skipped.any()
    assert torch.isnan(model.first.weight).all()  # Adam applied the NaN update, as asked


def test_bad_options_are_clear_errors():
    model = TwoLayer()
    with pytest.raises(TrackerError, match="on_nonfinite must be one of record, stop, skip"):
        Tracker(
            model, GROUPS, optimizer=torch.optim.SGD(model.parameters(), lr=1), on_nonfinite="x"
        )
    with pytest.raises(TrackerError, match="pass optimizer="):
        Tracker(model, GROUPS, on_nonfinite="stop")


@pytest.mark.parametrize("quadrature", ["simpson", "adaptive", "trapezoid"])
def test_nan_loss_inside_an_lca_pass_is_recorded_as_nan(quadrature):
    model = TwoLayer()
    opt = torch.optim.SGD(model.parameters(), lr=1e-1)
    passes = {"n": 0}

    def lca_loss(m, batch):
        passes["n"] += 1
        losses = per_sample(m, batch)
        return losses * math.nan if passes["n"] == 2 else losses  # an interpolated point

    tracker = Tracker(
        model,
        GROUPS,
        optimizer=opt,
        loss_fn=lca_loss,
        eval_batches=batches(2),
        lca_every=2,
        quadrature=quadrature,
        on_nonfinite="stop",  # stops on training numbers only, never on an LCA pass
    )
    train(model, opt, tracker, batches(4))
    tracker.close()
    assert [r.end_step for r in tracker.sink.lca] == [2, 4]
    first = tracker.sink.lca[0]
    assert np.isnan(first.by_group).all() or math.isnan(first.residual)
    assert np.isfinite(tracker.sink.lca[1].by_group).all()

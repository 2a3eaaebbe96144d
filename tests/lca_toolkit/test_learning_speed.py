"""Conditional learning speed: ``steps/param_norm`` and the cumulative ||g||^2/||theta||^2 per group,
against values computed by hand from the model's parameters and gradients in the training loop."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from torch import nn

from lca_toolkit import (
    ParamGroups,
    StatisticError,
    Tracker,
    learning_speed,
    learning_speed_ratio,
    open_run,
    open_runs,
)
from lca_toolkit.errors import RecordError
from lca_toolkit.learning_speed import cumulative_speed
from lca_toolkit.plots import PLOT_KINDS, PlotRequest, save_drawing
from lca_toolkit.store import RunWriter, StepBlock

NAN_STEP = 3  # the step whose loss is made NaN, so the Tracker skips it


class TwoTowers(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.cc = nn.Linear(3, 2)
        self.mlo = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cc(x[:, :3]).sum(1) + 3.0 * self.mlo(x[:, 3:]).sum(1)


def train(store=None, steps: int = 6):
    """Train with the Tracker; return it and the hand-computed per-group squares per step."""
    torch.manual_seed(0)
    model = TwoTowers()
    groups = ParamGroups.from_children(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    tracker = Tracker(model, groups, optimizer=opt, store=store, on_nonfinite="skip")
    hand = {"g_sq": [], "p_sq": [], "step": []}
    for step in range(1, steps + 1):
        x, y = torch.randn(8, 7), torch.randn(8)
        opt.zero_grad()
        loss = (model(x) - y).pow(2).mean()
        if step == NAN_STEP:
            loss = loss * math.nan
        loss.backward()
        if step != NAN_STEP:  # ||g||^2 and ||theta||^2 of each group as a whole, before the step
            hand["step"].append(step)
            hand["g_sq"].append([_sq(m.parameters(), grad=True) for m in (model.cc, model.mlo)])
            hand["p_sq"].append([_sq(m.parameters(), grad=False) for m in (model.cc, model.mlo)])
        tracker.after_backward(loss)
        opt.step()
        tracker.after_step()
    tracker.close()
    return tracker, {k: np.array(v) for k, v in hand.items()}


def _sq(params, grad: bool) -> float:
    return float(sum(((p.grad if grad else p).detach().double() ** 2).sum() for p in params))


@pytest.fixture(scope="module")
def memory_run():
    return train()


def test_param_norm_is_the_group_norm_before_the_step(memory_run):
    tracker, hand = memory_run
    sink = tracker.sink
    kept = ~sink.step_array("skipped")
    assert sink.step_array("skipped").tolist() == [s == NAN_STEP for s in range(1, 7)]
    np.testing.assert_allclose(
        sink.step_array("param_norm")[kept], np.sqrt(hand["p_sq"]), rtol=1e-6
    )


def test_learning_speed_is_the_cumulative_group_ratio_without_skipped_steps(memory_run):
    tracker, hand = memory_run
    speed = learning_speed(tracker.sink)
    assert speed.index.tolist() == hand["step"].tolist()  # the skipped step is left out
    assert list(speed.columns) == ["cc", "mlo"]
    want = np.cumsum(hand["g_sq"] / hand["p_sq"], axis=0)
    np.testing.assert_allclose(speed.to_numpy(), want, rtol=1e-6)
    # The group as a whole, not the per-tensor sum that rel_sq_norm records.
    rel = np.cumsum(tracker.sink.step_array("rel_sq_norm")[~tracker.sink.step_array("skipped")], 0)
    assert not np.allclose(rel, want, rtol=1e-3)
    ratio = learning_speed_ratio(tracker.sink, "mlo", "cc")
    np.testing.assert_allclose(ratio.to_numpy(), np.log(want[:, 1] / want[:, 0]), rtol=1e-6)
    assert ratio.name == "log(mlo/cc)" and (ratio > 0).all()  # mlo's output is scaled by 3


def test_store_round_trip_and_plot(tmp_path, memory_run):
    path = tmp_path / "run.zarr"
    train(store=path)
    run = open_run(path)
    wide, long = run.steps(), run.steps(wide=False)
    np.testing.assert_array_equal(
        wide[["param_norm/cc", "param_norm/mlo"]].to_numpy(),
        memory_run[0].sink.step_array("param_norm"),
    )
    assert "param_norm" in set(long["metric"])
    ds = run.to_xarray()
    assert ds["param_norm"].dims == ("step", "group")
    np.testing.assert_array_equal(ds["param_norm"].sel(group="mlo"), wide["param_norm/mlo"])
    np.testing.assert_array_equal(
        learning_speed(path).to_numpy(), learning_speed(memory_run[0].sink).to_numpy()
    )
    kind = PLOT_KINDS["learning-speed"]
    runs = open_runs([path])
    assert kind.missing(runs, PlotRequest()) is None
    (drawing,) = kind.drawings(runs, PlotRequest(pair=("mlo", "cc")))
    top, bottom = drawing.content.axes
    np.testing.assert_allclose(top.lines[1].get_ydata(), learning_speed(path)["mlo"])
    np.testing.assert_allclose(bottom.lines[0].get_ydata(), learning_speed_ratio(path, "mlo", "cc"))
    (png,) = save_drawing(drawing, tmp_path / "speed", format="png")
    assert png.stat().st_size > 10_000


def _old_block(first: int, n: int, **extra) -> StepBlock:
    """A block as producers before param_norm made them (no param_norm given)."""
    steps = np.arange(first, first + n)
    grad = np.full((n, 2), 0.5)
    return StepBlock(
        step=steps,
        loss=np.ones(n),
        grad_norm=grad,
        grad_norm_total=np.full(n, math.sqrt(0.5)),
        rel_sq_norm=np.ones((n, 2)),
        update_norm=np.ones((n, 2)),
        skipped=np.zeros(n, dtype=bool),
        lr=np.full((n, 1), 0.1),
        **extra,
    )


def _writer(path, **kw) -> RunWriter:
    members = {"cc": ["cc.weight"], "mlo": ["mlo.weight"]}
    return RunWriter(path, groups=["cc", "mlo"], group_members=members, **kw)


def test_store_without_param_norm_reads_and_refuses_learning_speed_in_one_line(tmp_path):
    path = tmp_path / "old.zarr"
    with _writer(path) as w:
        w.append_steps(_old_block(1, 4))
    run = open_run(path)
    assert not any(c.startswith("param_norm/") for c in run.steps().columns)
    assert run.steps()["grad_norm/cc"].tolist() == [0.5] * 4
    with pytest.raises(StatisticError, match=f"'{path}' has no steps/param_norm") as err:
        learning_speed(path)
    assert "\n" not in str(err.value)
    runs = open_runs([path])
    assert "no steps/param_norm" in PLOT_KINDS["learning-speed"].missing(runs, PlotRequest())

    # Resumed by a writer that records it: the column appears, NaN in the rows before.
    with _writer(path, mode="resume", param_norm=True) as w:
        w.append_steps(_old_block(5, 2, param_norm=np.ones((2, 2))))
    steps = open_run(path).steps()
    assert np.isnan(steps["param_norm/mlo"][:4]).all() and (steps["param_norm/mlo"][4:] == 1).all()
    with pytest.raises(StatisticError, match=r"no param_norm at 4 recorded step\(s\) \(1\.\.4;"):
        learning_speed_ratio(path, "cc", "mlo")


def test_writer_without_param_norm_refuses_values_it_would_drop(tmp_path):
    with _writer(tmp_path / "x.zarr") as w:
        with pytest.raises(RecordError, match="has no steps/param_norm; open the writer with"):
            w.append_steps(_old_block(1, 2, param_norm=np.ones((2, 2))))


def test_cumulative_speed_conventions():
    grad = np.array([[1.0, 2.0], [np.inf, np.inf], [3.0, 0.0]])
    theta = np.array([[2.0, 0.0], [1.0, 1.0], [1.0, 1.0]])
    got = cumulative_speed(grad, theta, skipped=np.array([False, True, False]))
    # an all-zero group adds nothing; a skipped row (inf gradients) adds nothing
    np.testing.assert_array_equal(got, [[0.25, 0.0], [0.25, 0.0], [9.25, 0.0]])
    assert np.isinf(cumulative_speed(grad, theta)[1:]).all()  # not skipped: unknown from there

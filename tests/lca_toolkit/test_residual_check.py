"""Residuals are never silent: one LcaResidualWarning per run above the tolerance, marked in plots."""

from __future__ import annotations

import warnings

import matplotlib
import numpy as np
import torch
from problems import SmoothMLP, mlp_batches, mlp_loss

from lca_toolkit import AdaptiveOptions, LcaConfig, LcaResidualWarning, Tracker, open_run
from lca_toolkit.plots import plot_residual
from lca_toolkit.residual_check import exceeding

matplotlib.use("Agg")


def record(tmp_path, lca: LcaConfig, lr: float = 0.05) -> tuple[Tracker, list]:
    """Train 9 steps with LCA every 3; returns the tracker and the warnings raised."""
    model = SmoothMLP(seed=3)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tracker = Tracker(
            model, optimizer=opt, store=tmp_path / "run.zarr", lca=lca, loss_fn=mlp_loss,
            eval_batches=mlp_batches(n=12, batch_size=5),
        )  # fmt: skip
        with tracker:
            for batch in mlp_batches(n=36, batch_size=4, seed=9):
                opt.zero_grad()
                loss = mlp_loss(model, batch).mean()
                loss.backward()
                tracker.after_backward(loss)
                opt.step()
                tracker.after_step()
    return tracker, [w for w in caught if issubclass(w.category, LcaResidualWarning)]


def test_an_interval_above_the_tolerance_is_warned_about_once_with_its_numbers(tmp_path):
    # Simpson's residual is tiny but not zero here: a tolerance of 0 makes every interval exceed it.
    _, caught = record(tmp_path, LcaConfig(every=3, quadrature="simpson", residual_tol=0.0))
    assert len(caught) == 1  # three intervals above the tolerance, one warning
    assert caught[0].filename == __file__  # points at the user's after_step(), not the toolkit
    text = str(caught[0].message)
    first = open_run(tmp_path / "run.zarr").lca().iloc[0]
    assert "LCA interval (0, 3]:" in text
    assert f"|residual| {abs(first['residual']):.3g}" in text
    assert f"|loss change| {abs(first['loss_change']):.3g}" in text
    assert "tolerance 0%, rule simpson" in text and "quadrature='adaptive'" in text
    stored = open_run(tmp_path / "run.zarr").config["tracker"]["lca"]
    assert stored["residual_tol"] == 0.0


def test_the_default_rule_stays_within_the_default_tolerance(tmp_path):
    tracker, caught = record(tmp_path, LcaConfig(every=3))
    assert tracker.engine.config.quadrature == "adaptive"
    assert caught == []
    run = open_run(tmp_path / "run.zarr")
    assert run.config["tracker"]["lca"]["quadrature"] == "adaptive"
    assert run.config["tracker"]["lca"]["residual_tol"] == 0.1
    lca = run.lca()
    assert (lca["residual"].abs() <= 0.1 * lca["loss_change"].abs()).all()


def test_the_adaptive_rule_at_its_cap_says_to_raise_the_cap(tmp_path):
    capped = LcaConfig(
        every=3, adaptive=AdaptiveOptions(rel_tol=0.0, max_panels=1), residual_tol=0.0
    )
    _, caught = record(tmp_path, capped)
    assert len(caught) == 1 and "cap of 1 panels: raise max_panels" in str(caught[0].message)


def test_no_tolerance_never_warns(tmp_path):
    _, caught = record(tmp_path, LcaConfig(every=3, quadrature="simpson", residual_tol=None))
    assert caught == []


def test_exceeding_mask():
    mask = exceeding([0.5, 0.05, np.nan, 0.0, 1e-9], [1.0, 1.0, 1.0, 0.0, 0.0], 0.1)
    assert mask.tolist() == [True, False, False, False, True]
    assert not exceeding([1.0], [0.0], None).any()


def test_the_residual_plot_rings_the_intervals_above_the_tolerance(tmp_path):
    record(tmp_path, LcaConfig(every=3, quadrature="simpson", residual_tol=0.0))
    run = open_run(tmp_path / "run.zarr")
    fig = plot_residual(run)
    bottom = fig.axes[1]
    rings = [c for c in bottom.collections if "tolerance" in c.get_label() or "%" in c.get_label()]
    assert len(rings) == 1 and rings[0].get_label() == "|residual| > 0% of |loss change|"
    np.testing.assert_array_equal(rings[0].get_offsets()[:, 0], run.lca()["end_step"])
    np.testing.assert_array_equal(rings[0].get_offsets()[:, 1], run.lca()["residual"])

    fig = plot_residual(tmp_path / "run.zarr", title="x")
    assert len([c for c in fig.axes[1].collections if "%" in c.get_label()]) == 1


def test_no_ring_when_every_interval_is_within_the_tolerance(tmp_path):
    record(tmp_path, LcaConfig(every=3))
    fig = plot_residual(open_run(tmp_path / "run.zarr"))
    assert not [c for c in fig.axes[1].collections if "%" in c.get_label()]

"""``Tracker(lca=LcaConfig(...))``: one config object, never beside the flat keywords, stored whole."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from problems import SmoothMLP, mlp_batches, mlp_loss

from lca_toolkit import AdaptiveOptions, LcaConfig, LcaError, Tracker, TrackerError, open_run

CONFIG = LcaConfig(
    every=3,
    quadrature="adaptive",
    adaptive=AdaptiveOptions(rel_tol=1e-4, abs_tol=1e-9, max_panels=8),
    bn_policy="train",
    per_tensor=True,
    cumulative=True,
)
FLAT = dict(
    lca_every=3,
    quadrature="adaptive",
    rel_tol=1e-4,
    abs_tol=1e-9,
    max_panels=8,
    bn_policy="train",
    per_tensor=True,
    cumulative=True,
)


def lca_inputs() -> dict:
    return dict(loss_fn=mlp_loss, eval_batches=mlp_batches(n=12, batch_size=5))


def test_config_object_and_flat_keywords_measure_the_same(tmp_path):
    model = SmoothMLP(seed=3, bn=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    whole = Tracker(model, optimizer=opt, store=tmp_path / "run.zarr", lca=CONFIG, **lca_inputs())
    flat = Tracker(model, optimizer=opt, **FLAT, **lca_inputs())
    assert whole.engine.config == flat.engine.config == CONFIG
    model.train()
    for batch in mlp_batches(n=28, batch_size=4, seed=9):
        opt.zero_grad()
        loss = mlp_loss(model, batch).mean()
        loss.backward()
        for t in (whole, flat):
            t.after_backward(loss)
        opt.step()
        for t in (whole, flat):
            t.after_step()
    whole.close()
    flat.close()
    records = open_run(tmp_path / "run.zarr").lca()
    assert len(records) == len(flat.sink.lca) == 3  # (0, 3], (3, 6], and (6, 7] at close()
    np.testing.assert_array_equal(
        records["residual"].to_numpy(), [r.residual for r in flat.sink.lca]
    )
    np.testing.assert_array_equal(records["passes"].to_numpy(), [r.passes for r in flat.sink.lca])
    by_group = records[[f"lca/{g}" for g in flat.group_names]].to_numpy()
    np.testing.assert_array_equal(by_group, np.stack([r.by_group for r in flat.sink.lca]))


def test_store_config_holds_every_field(tmp_path):
    model = SmoothMLP(seed=3, bn=True)
    Tracker(model, store=tmp_path / "run.zarr", lca=CONFIG, **lca_inputs()).close()
    stored = open_run(tmp_path / "run.zarr").attrs["config"]["tracker"]["lca"]
    assert stored == {
        "every": 3,
        "quadrature": "adaptive",
        "rel_tol": 1e-4,
        "abs_tol": 1e-9,
        "max_panels": 8,
        "bn_policy": "train",
        "per_tensor": True,
        "cumulative": True,
        "residual_tol": 0.1,
    }
    assert LcaConfig.from_record(stored) == CONFIG


def test_flat_keywords_store_the_whole_config_too(tmp_path):
    model = SmoothMLP(seed=3)
    Tracker(model, store=tmp_path / "run.zarr", lca_every=2, **lca_inputs()).close()
    stored = open_run(tmp_path / "run.zarr").attrs["config"]["tracker"]["lca"]
    assert LcaConfig.from_record(stored) == LcaConfig(every=2)
    assert set(stored) == {f.name for f in dataclasses.fields(LcaConfig)} - {"adaptive"} | {
        "rel_tol",
        "abs_tol",
        "max_panels",
    }


@pytest.mark.parametrize(
    "flat, named",
    [
        (dict(lca_every=3), "lca_every"),
        (dict(quadrature="simpson"), "quadrature"),
        (dict(rel_tol=1e-3, cumulative=False), "cumulative, rel_tol"),
    ],
)
def test_config_object_and_flat_keywords_together_is_an_error(flat, named):
    with pytest.raises(TrackerError, match=f"lca= and the flat LCA keyword\\(s\\) {named};"):
        Tracker(SmoothMLP(), lca=CONFIG, **flat, **lca_inputs())


def test_lca_config_errors():
    with pytest.raises(TrackerError, match="lca must be an LcaConfig, got dict"):
        Tracker(SmoothMLP(), lca={"every": 3}, **lca_inputs())
    with pytest.raises(TrackerError, match="lca needs loss_fn= and eval_batches="):
        Tracker(SmoothMLP(), lca=CONFIG)


def test_flat_keywords_left_out_take_the_config_defaults():
    tracker = Tracker(SmoothMLP(), lca_every=4, max_panels=4, **lca_inputs())
    assert tracker.engine.config == LcaConfig(every=4, adaptive=AdaptiveOptions(max_panels=4))
    tracker.close()
    off = Tracker(SmoothMLP(), quadrature="adaptive", **lca_inputs())  # no k: LCA stays off
    assert off.engine is None
    off.close()


def test_record_round_trip_and_older_stores():
    assert LcaConfig.from_record(CONFIG.as_record()) == CONFIG
    older = {
        "every": 5,
        "quadrature": "simpson",
        "rel_tol": 0.001,
        "abs_tol": 1e-7,
        "max_panels": 16,
        "bn_policy": "interpolate",
    }
    config = LcaConfig.from_record(older)
    assert config == LcaConfig(every=5, quadrature="simpson")
    assert not config.per_tensor and not config.cumulative and config.residual_tol == 0.1
    with pytest.raises(LcaError, match="unknown LCA config field"):
        LcaConfig.from_record({**older, "panels": 4})
    with pytest.raises(LcaError, match="no 'every'"):
        LcaConfig.from_record({"quadrature": "simpson"})

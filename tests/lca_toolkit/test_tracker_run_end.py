"""The last LCA interval: measured when a run finishes, not when it fails, re-opened on resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from problems import SmoothMLP, mlp_batches, mlp_loss

from lca_toolkit import Tracker, open_run

BATCHES = mlp_batches(n=32, batch_size=4, seed=9)  # 8 optimizer steps
E = mlp_batches(n=12, batch_size=5)


def tracker_for(model, opt, store: Path, mode: str = "create") -> Tracker:
    return Tracker(
        model, optimizer=opt, store=store, store_mode=mode, loss_fn=mlp_loss, eval_batches=E,
        lca_every=3, quadrature="simpson",
    )  # fmt: skip


def train(tracker: Tracker, model, opt, batches) -> None:
    for batch in batches:
        opt.zero_grad()
        loss = mlp_loss(model, batch).mean()
        loss.backward()
        tracker.after_backward(loss)
        opt.step()
        tracker.after_step()


def fresh() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    model = SmoothMLP(seed=3)
    return model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)


def test_a_finished_run_measures_its_open_interval_so_intervals_tile_it(tmp_path):
    model, opt = fresh()
    with tracker_for(model, opt, tmp_path / "run.zarr") as tracker:
        train(tracker, model, opt, BATCHES)
    lca = open_run(tmp_path / "run.zarr").lca()
    assert lca[["start_step", "end_step"]].values.tolist() == [[0, 3], [3, 6], [6, 8]]
    np.testing.assert_array_equal(lca["loss_start"].iloc[1:], lca["loss_end"].iloc[:-1])
    groups = [c for c in lca.columns if c.startswith("lca/")]
    total = lca[groups].to_numpy().sum() + lca["residual"].sum()
    change = lca["loss_end"].iloc[-1] - lca["loss_start"].iloc[0]
    assert total == pytest.approx(change, rel=1e-12, abs=1e-15)


def test_a_failed_run_measures_nothing_at_its_end(tmp_path):
    model, opt = fresh()
    with pytest.raises(RuntimeError, match="boom"):
        with tracker_for(model, opt, tmp_path / "run.zarr") as tracker:
            train(tracker, model, opt, BATCHES[:5])
            raise RuntimeError("boom")
    run = open_run(tmp_path / "run.zarr")
    assert run.status == "failed"
    assert run.lca()["end_step"].tolist() == [3]


def test_a_run_stopped_early_and_resumed_gets_the_uninterrupted_intervals(tmp_path):
    model, opt = fresh()
    with tracker_for(model, opt, tmp_path / "whole.zarr") as tracker:
        train(tracker, model, opt, BATCHES)

    model, opt = fresh()
    with tracker_for(model, opt, tmp_path / "part.zarr") as tracker:  # stops after 5 steps
        train(tracker, model, opt, BATCHES[:5])
        checkpoint = {  # written before the run ended, as a trainer's last checkpoint is
            "model": {k: v.clone() for k, v in model.state_dict().items()},
            "optimizer": opt.state_dict(),
            "tracker": tracker.state_dict(),
        }
    assert open_run(tmp_path / "part.zarr").lca()["end_step"].tolist() == [3, 5]

    model, opt = fresh()
    model.load_state_dict(checkpoint["model"])
    opt.load_state_dict(checkpoint["optimizer"])
    with tracker_for(model, opt, tmp_path / "part.zarr", mode="resume") as tracker:
        tracker.load_state_dict(checkpoint["tracker"])
        assert open_run(tmp_path / "part.zarr").lca()["end_step"].tolist() == [3]
        train(tracker, model, opt, BATCHES[5:])
    whole, part = open_run(tmp_path / "whole.zarr"), open_run(tmp_path / "part.zarr")
    for name in ("lca/start_step", "lca/end_step", "lca/by_group", "lca/residual", "steps/loss"):
        np.testing.assert_array_equal(whole.array(name), part.array(name), err_msg=name)

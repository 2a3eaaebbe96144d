"""The small run stores of the plot tests hold what the plots read."""

from __future__ import annotations

import numpy as np
from plot_stores import GROUPS, write_store

from lca_toolkit.store import open_run


def test_written_store_holds_what_the_plots_read(tmp_path):
    path = write_store(tmp_path / "a.zarr", config={"experiment": {"variant": "joint"}})
    run = open_run(path)
    assert run.groups == list(GROUPS)
    steps, lca, epochs = run.steps(), run.lca(), run.epochs()
    assert len(steps) == 24 and steps["grad_norm/bn_buffers"].isna().all()
    assert steps["grad_norm/cc"].notna().all()
    assert list(lca["end_step"]) == [6, 12, 18, 24]
    summed = lca[[f"lca/{g}" for g in GROUPS]].sum(axis=1)
    np.testing.assert_allclose(lca["loss_change"], summed + lca["residual"], atol=1e-12)
    assert list(epochs.columns) == ["epoch", "train_loss", "train_auc", "val_loss", "val_auc"]
    assert run.config["experiment"]["variant"] == "joint"


def test_written_tables_read_back(tmp_path):
    cols = {"index": np.array([3, 1, 2]), "malignant_prob": np.array([0.1, 0.9, 0.5])}
    run = open_run(write_store(tmp_path / "t.zarr", tables={"test_predictions": cols}))
    df = run.table("test_predictions")
    np.testing.assert_array_equal(df["index"], [3, 1, 2])
    np.testing.assert_array_equal(df["malignant_prob"], [0.1, 0.9, 0.5])


def test_store_without_lca_has_no_intervals(tmp_path):
    run = open_run(write_store(tmp_path / "b.zarr", lca_every=None))
    assert run.lca().empty and len(run.steps()) == 24

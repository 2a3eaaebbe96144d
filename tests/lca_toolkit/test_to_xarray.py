"""``open_run(PATH).to_xarray()``: the store's arrays as one labelled Dataset."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from problems import SmoothMLP, mlp_batches, mlp_loss

from lca_toolkit import Tracker, open_run
from lca_toolkit.errors import MissingExtraError

xr = pytest.importorskip("xarray")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """8 steps, LCA every 3 (2 intervals), per-tensor LCA, two optimizer param groups, 2 epochs."""
    path = tmp_path_factory.mktemp("xr") / "run.zarr"
    model = SmoothMLP(seed=2, bn=True)
    head = [p for n, p in model.named_parameters() if n.startswith("head.")]
    rest = [p for n, p in model.named_parameters() if not n.startswith("head.")]
    opt = torch.optim.SGD([{"params": rest}, {"params": head, "lr": 0.01}], lr=0.05)
    with Tracker(
        model,
        optimizer=opt,
        store=path,
        loss_fn=mlp_loss,
        eval_batches=mlp_batches(n=10, batch_size=5),
        lca_every=3,
        per_tensor=True,
        config={"seed": 7, "optim": {"name": "sgd", "lr": 0.05}},
    ) as tracker:
        for i, batch in enumerate(mlp_batches(n=32, batch_size=4, seed=4)):
            opt.zero_grad()
            loss = mlp_loss(model, batch).mean()
            loss.backward()
            tracker.after_backward(loss)
            opt.step()
            tracker.after_step()
            if i in (3, 7):
                tracker.log_epoch(i // 4, {"val_auc": 0.5 + i / 100, "loss": float(i)})
    return path


def test_dataset_values_and_coords_equal_the_frames(store):
    run = open_run(store)
    ds = run.to_xarray()
    steps, lca = run.steps(), run.lca()

    assert ds.grad_norm.dims == ("step", "group") and ds.by_group.dims == ("interval", "group")
    assert ds.sizes["step"] == 8 and ds.sizes["interval"] == 3 and ds.sizes["epoch"] == 2
    assert ds["group"].values.tolist() == run.groups
    np.testing.assert_array_equal(ds["step"], steps["step"])
    np.testing.assert_array_equal(ds["start_step"], lca["start_step"])
    np.testing.assert_array_equal(ds["end_step"], lca["end_step"])
    assert ds["end_step"].dims == ("interval",)
    for metric in ("grad_norm", "rel_sq_norm", "update_norm"):
        for g in run.groups:
            np.testing.assert_array_equal(
                ds[metric].sel(group=g), steps[f"{metric}/{g}"], err_msg=f"{metric}/{g}"
            )
    for name in ("loss", "grad_norm_total", "skipped"):
        np.testing.assert_array_equal(ds[name], steps[name], err_msg=name)
    assert ds.lr.dims == ("step", "lr_group")  # two optimizer param groups
    np.testing.assert_array_equal(ds.lr.sel(lr_group=1), steps["lr/1"])
    for var, prefix in (
        ("by_group", "lca"),
        ("abs_by_group", "abs_lca"),
        ("helped", "helped"),
        ("hurt", "hurt"),
        ("error_by_group", "error"),
    ):
        for g in run.groups:
            np.testing.assert_array_equal(ds[var].sel(group=g), lca[f"{prefix}/{g}"])
    for name in ("loss_start", "loss_end", "loss_change", "residual", "passes"):
        np.testing.assert_array_equal(ds[name], lca[name], err_msg=name)
    assert ds.by_tensor.dims == ("interval", "tensor")
    np.testing.assert_array_equal(ds["tensor"], run.tensor_names)
    np.testing.assert_array_equal(ds.by_tensor, run.lca_by_tensor().iloc[:, 2:])
    epochs = run.epochs()
    np.testing.assert_array_equal(ds["epoch"], epochs["epoch"])
    np.testing.assert_array_equal(ds.epoch_val_auc, epochs["val_auc"])
    np.testing.assert_array_equal(ds.epoch_loss, epochs["loss"])  # no clash with steps/loss

    # Provenance and configuration.
    assert ds.grad_norm.attrs["store_array"] == "steps/grad_norm"
    assert ds.attrs["status"] == "finished" and ds.attrs["schema_version"] == 1
    assert ds.attrs["config.seed"] == 7 and ds.attrs["config.optim.lr"] == 0.05
    assert ds.attrs["config.tracker.lca.every"] == 3
    assert ds["numel"].sel(group="head").item() == 5  # Linear(4, 1)
    # The SPEC invariant holds along the labelled axes.
    gap = ds.loss_change - ds.by_group.sum("group") - ds.residual
    assert float(abs(gap).max()) < 1e-12


def test_one_lr_group_gives_a_per_step_lr_and_an_empty_run_reads(tmp_path):
    tracker = Tracker(SmoothMLP(), store=tmp_path / "empty.zarr")
    tracker.close()
    ds = open_run(tmp_path / "empty.zarr").to_xarray()
    assert ds.lr.dims == ("step",)
    assert ds.sizes["step"] == 0 and ds.sizes["interval"] == 0
    assert ds.grad_norm.shape == (0, 3)


def test_missing_xarray_is_one_line_naming_the_extra(store, monkeypatch):
    monkeypatch.setitem(sys.modules, "xarray", None)
    with pytest.raises(MissingExtraError) as info:
        open_run(store).to_xarray()
    message = str(info.value)
    assert "\n" not in message and "pip install 'lca-toolkit[xarray]'" in message

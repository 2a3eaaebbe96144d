"""The Tracker writing a real zarr store: round trip, invariant, resume after a kill, the example."""

from __future__ import annotations

import runpy
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from problems import SmoothMLP, mlp_batches, mlp_loss
from tracked_run import run

from lca_toolkit import Tracker, open_run

HELPERS = Path(__file__).resolve().parents[1] / "helpers"
ROOT = Path(__file__).resolve().parents[2]


def test_store_holds_exactly_what_the_tracker_measured(tmp_path):
    model = SmoothMLP(seed=3, bn=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    kwargs = dict(
        optimizer=opt,
        loss_fn=mlp_loss,
        eval_batches=mlp_batches(n=12, batch_size=5),
        lca_every=4,
        per_tensor=True,
        cumulative=True,
    )
    on_disk = Tracker(model, store=tmp_path / "run.zarr", config={"lr": 0.05}, **kwargs)
    in_memory = Tracker(model, **kwargs)  # a second tracker on the same loop sees the same numbers
    model.train()
    for batch in mlp_batches(n=48, batch_size=4, seed=9):
        opt.zero_grad()
        loss = mlp_loss(model, batch).mean()
        loss.backward()
        for t in (on_disk, in_memory):
            t.after_backward(loss)
        opt.step()
        for t in (on_disk, in_memory):
            t.after_step()
        if on_disk.step == 6:
            on_disk.log_epoch(0, {"train_auc": 0.5, "val_auc": 0.6})
    on_disk.close()
    in_memory.close()

    run_ = open_run(tmp_path / "run.zarr")
    mem = in_memory.sink
    assert run_.status == "finished"
    assert run_.groups == ["audio", "image", "bn", "head", "bn_buffers"]
    assert run_.attrs["config"]["lr"] == 0.05
    assert run_.attrs["config"]["tracker"]["lca"]["every"] == 4
    for name in (
        "step",
        "loss",
        "grad_norm",
        "grad_norm_total",
        "rel_sq_norm",
        "update_norm",
        "skipped",
        "lr",
    ):
        np.testing.assert_array_equal(
            run_.array(f"steps/{name}"), mem.step_array(name), err_msg=name
        )
    by_group = run_.array("lca/by_group")
    np.testing.assert_array_equal(by_group, np.stack([r.by_group for r in mem.lca]))
    np.testing.assert_array_equal(run_.array("lca/end_step"), [4, 8, 12])
    np.testing.assert_array_equal(
        run_.array("lca/by_tensor"), np.stack([r.by_tensor for r in mem.lca])
    )
    # The SPEC invariant, row by row.
    ls, le, res = (run_.array(f"lca/{k}") for k in ("loss_start", "loss_end", "residual"))
    np.testing.assert_allclose(le - ls - by_group.sum(axis=1), res, rtol=0, atol=1e-15)
    # Cumulative per-parameter LCA equals the sum of the per-tensor records.
    cum = run_.cumulative_lca()
    per_tensor_total = np.stack([r.by_tensor for r in mem.lca]).sum(0)
    names = in_memory.engine.tensor_names
    np.testing.assert_allclose(
        [cum[n].sum() for n in names], per_tensor_total, rtol=1e-12, atol=1e-15
    )
    assert run_.epochs()["val_auc"].tolist() == [0.6]


def test_resume_after_a_kill_continues_with_no_gap_or_duplicate(tmp_path):
    reference = tmp_path / "reference.zarr"
    run(reference, 12)

    store, ckpt = tmp_path / "killed.zarr", tmp_path / "ckpt.pt"
    proc = subprocess.run(
        [
            sys.executable,
            str(HELPERS / "tracked_run.py"),
            str(store),
            "12",
            "--checkpoint-at",
            "5",
            "--checkpoint",
            str(ckpt),
            "--kill-at",
            "8",
        ],
        cwd=HELPERS,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    killed = open_run(store)
    assert killed.status == "running"  # never closed
    assert killed.array("steps/step").max() >= 6  # rows past the checkpoint reached the disk

    run(store, 12, resume_from=ckpt)
    resumed, ref = open_run(store), open_run(reference)
    np.testing.assert_array_equal(resumed.array("steps/step"), np.arange(1, 13))
    for section, names in (
        ("steps", ("loss", "grad_norm", "grad_norm_total", "update_norm", "lr")),
        (
            "lca",
            ("start_step", "end_step", "by_group", "loss_start", "loss_end", "residual", "passes"),
        ),
    ):
        for name in names:
            np.testing.assert_array_equal(
                resumed.array(f"{section}/{name}"), ref.array(f"{section}/{name}"), err_msg=name
            )
    assert resumed.status == "finished"


def test_quickstart_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(
        sys, "argv", ["quickstart.py", "--out", str(tmp_path / "qs.zarr"), "--epochs", "1"]
    )
    runpy.run_path(str(ROOT / "examples" / "quickstart.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "32 steps, 2 LCA intervals" in out
    assert "lca/image" in out

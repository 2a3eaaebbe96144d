"""Lightning LcaCallback: norms equal a reference before each optimizer step, one row per step
under accumulation, LCA invariant, exact resume, bf16, clipping, DDP (rank 0 writes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("lightning")

from lightning.pytorch.callbacks import ModelCheckpoint  # noqa: E402
from lightning_problems import (  # noqa: E402
    GROUPS,
    GradReference,
    TwoTower,
    eval_batches,
    loader,
    per_sample_loss,
    trainer,
)

from lca_toolkit import TrackerError, open_run  # noqa: E402
from lca_toolkit.integrations.lightning import LcaCallback  # noqa: E402

HELPERS = Path(__file__).resolve().parents[1] / "helpers"
ROOT = Path(__file__).resolve().parents[2]


def callback(store, **kwargs) -> LcaCallback:
    return LcaCallback(
        GROUPS, store=store, loss_fn=per_sample_loss, eval_batches=eval_batches(), **kwargs
    )


def assert_norms_match(steps, reference: GradReference) -> None:
    assert len(steps) == len(reference.norms)
    for g in [*GROUPS, "total"]:
        column = "grad_norm_total" if g == "total" else f"grad_norm/{g}"
        expected = [row[g] for row in reference.norms]
        np.testing.assert_allclose(steps[column].to_numpy(), expected, rtol=1e-5)


def assert_lca_complete(lca) -> None:
    by_group = lca[[f"lca/{g}" for g in GROUPS]].sum(axis=1) + lca["residual"]
    np.testing.assert_allclose(by_group, lca["loss_change"], rtol=1e-9, atol=1e-9)


def test_one_row_per_optimizer_step_with_accumulation_and_lca(tmp_path):
    cb, ref = callback(tmp_path / "run.zarr", lca_every=3), GradReference(GROUPS)
    fit = trainer([cb, ref], max_steps=6, accumulate_grad_batches=2)
    fit.fit(TwoTower(), loader())
    run = open_run(tmp_path / "run.zarr")
    steps = run.steps()
    assert fit.global_step == 6
    assert steps["step"].tolist() == [1, 2, 3, 4, 5, 6]
    assert not steps["skipped"].any()
    assert_norms_match(steps, ref)
    np.testing.assert_allclose(steps["lr"], 0.1)
    lca = run.lca()
    assert list(zip(lca["start_step"], lca["end_step"])) == [(0, 3), (3, 6)]
    assert_lca_complete(lca)
    assert run.status == "finished"


def test_clipping_on_records_the_norms_before_clipping(tmp_path):
    cb, ref = callback(tmp_path / "run.zarr"), GradReference(GROUPS)
    fit = trainer([cb, ref], max_steps=4, gradient_clip_val=0.05)
    fit.fit(TwoTower(), loader())
    steps = open_run(tmp_path / "run.zarr").steps()
    assert min(row["total"] for row in ref.norms) > 0.05 * 2  # clipping changed every step
    assert_norms_match(steps, ref)


def test_bf16_mixed_records_finite_unscaled_norms(tmp_path):
    cb, ref = callback(tmp_path / "run.zarr", lca_every=2), GradReference(GROUPS)
    fit = trainer([cb, ref], max_steps=4, precision="bf16-mixed", accumulate_grad_batches=2)
    fit.fit(TwoTower(), loader())
    run = open_run(tmp_path / "run.zarr")
    steps = run.steps()
    assert np.isfinite(steps[[f"grad_norm/{g}" for g in GROUPS]].to_numpy()).all()
    assert_norms_match(steps, ref)
    assert_lca_complete(run.lca())


def test_fp16_grad_scaler_unscaled_norms_and_a_skipped_step(tmp_path):
    # Lightning turns precision="16-mixed" into bf16 on CPU; the plugin keeps fp16 and its scaler.
    from lightning.pytorch.plugins import MixedPrecision

    class Overflow(TwoTower):
        def training_step(self, batch, batch_idx):
            loss = super().training_step(batch, batch_idx)
            return loss * float("inf") if batch_idx == 2 else loss  # the scaler skips step 3

    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    cb, ref = callback(tmp_path / "run.zarr"), GradReference(GROUPS)
    fit = trainer([cb, ref], max_steps=4, plugins=[MixedPrecision("16-mixed", "cpu", scaler)])
    fit.fit(Overflow(), loader())
    steps = open_run(tmp_path / "run.zarr").steps()
    assert steps["skipped"].tolist() == [False, False, True, False]
    assert steps.loc[2, [f"grad_norm/{g}" for g in GROUPS]].isna().all()
    kept = steps.drop(index=2).reset_index(drop=True)
    ref.norms = [ref.norms[i] for i in (0, 1, 3)]
    assert_norms_match(kept, ref)  # unscaled: the reference reads after Lightning unscaled
    assert kept["grad_norm_total"].max() < 100  # not multiplied by the scale (1024)


def test_resume_from_a_lightning_checkpoint_continues_the_store_exactly(tmp_path):
    # 16 samples, batches of 4, accumulation 2: two optimizer steps per epoch; a checkpoint at
    # the end of every epoch, so the resumed fit sees the same batches as the uninterrupted one.
    def fit(store, max_epochs, ckpt_path=None, checkpoint=None):
        callbacks = [callback(store, lca_every=2)] + ([checkpoint] if checkpoint else [])
        t = trainer(
            callbacks,
            max_epochs=max_epochs,
            accumulate_grad_batches=2,
            enable_checkpointing=checkpoint is not None,
        )
        t.fit(TwoTower(), loader(n=16), ckpt_path=ckpt_path)

    fit(tmp_path / "whole.zarr", max_epochs=3)
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", filename="{epoch}", save_top_k=-1)
    fit(tmp_path / "resumed.zarr", max_epochs=2, checkpoint=ckpt)  # steps 1-4 written
    assert open_run(tmp_path / "resumed.zarr").steps()["step"].tolist() == [1, 2, 3, 4]
    fit(tmp_path / "resumed.zarr", max_epochs=3, ckpt_path=tmp_path / "ckpt" / "epoch=0.ckpt")

    whole, resumed = open_run(tmp_path / "whole.zarr"), open_run(tmp_path / "resumed.zarr")
    a, b = whole.steps(), resumed.steps()
    assert b["step"].tolist() == [1, 2, 3, 4, 5, 6]  # rows 3-4 of the first fit replaced once
    for column in ["loss", "grad_norm_total", *[f"grad_norm/{g}" for g in GROUPS]]:
        np.testing.assert_allclose(b[column], a[column], rtol=1e-6)
    la, lb = whole.lca(), resumed.lca()
    assert list(zip(lb["start_step"], lb["end_step"])) == [(0, 2), (2, 4), (4, 6)]
    np.testing.assert_allclose(
        lb[[f"lca/{g}" for g in GROUPS]], la[[f"lca/{g}" for g in GROUPS]], rtol=1e-6, atol=1e-12
    )
    assert_lca_complete(lb)


def test_manual_optimization_is_one_clear_error(tmp_path):
    class Manual(TwoTower):
        def __init__(self) -> None:
            super().__init__()
            self.automatic_optimization = False

    with pytest.raises(TrackerError, match="automatic optimization"):
        trainer([callback(tmp_path / "run.zarr")], max_steps=1).fit(Manual(), loader())


def test_options_owned_by_the_trainer_are_refused():
    with pytest.raises(TrackerError, match="optimizer"):
        LcaCallback(GROUPS, optimizer=torch.optim.SGD([torch.zeros(1, requires_grad=True)]))
    with pytest.raises(TrackerError, match="on_nonfinite"):
        LcaCallback(GROUPS, on_nonfinite="skip")


def test_ddp_two_gloo_processes_rank0_writes(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(HELPERS)])}
    env.pop("LOCAL_RANK", None)
    done = subprocess.run(
        [sys.executable, str(HELPERS / "lightning_ddp.py"), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    info = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [i["sink"] for i in info] == ["RunWriter", "NullSink"]
    assert [i["steps"] for i in info] == [4, 4]
    run = open_run(tmp_path / "run.zarr")
    steps = run.steps()
    assert steps["step"].tolist() == [1, 2, 3, 4]
    ref = GradReference(GROUPS)
    ref.norms = info[0]["reference"]
    assert_norms_match(steps, ref)  # the averaged gradients: the same on both ranks
    np.testing.assert_allclose(
        [r["total"] for r in info[1]["reference"]], steps["grad_norm_total"], rtol=1e-5
    )
    assert_lca_complete(run.lca())
    assert len(run.lca()) == 2


def test_fsdp2_under_model_parallel_strategy_resumed_equals_one_process(tmp_path):
    """ModelParallelStrategy shards with fully_shard; killed at step 2, resumed to 4."""
    from torchrun import torchrun

    done = torchrun(2, str(HELPERS / "lightning_fsdp.py"), str(tmp_path), timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    sharded = open_run(tmp_path / "run.zarr")
    # One process over the same global batches (2 ranks x 4), 2 steps an epoch.
    callback = LcaCallback(
        GROUPS, store=tmp_path / "one.zarr", loss_fn=per_sample_loss,
        eval_batches=eval_batches(), lca_every=2,
    )  # fmt: skip
    trainer([callback], max_steps=4).fit(TwoTower(), loader(n=16, batch_size=8))
    one = open_run(tmp_path / "one.zarr")
    s1, s2 = one.steps(), sharded.steps()
    assert s2["step"].tolist() == [1, 2, 3, 4]
    cols = [c for c in s1.columns if c.startswith(("loss", "grad_norm", "update_norm"))]
    np.testing.assert_allclose(s2[cols].to_numpy(), s1[cols].to_numpy(), rtol=1e-5)
    lca_cols = ["lca/a", "lca/b", "lca/head", "loss_start", "loss_end"]
    np.testing.assert_allclose(
        sharded.lca()[lca_cols].to_numpy(), one.lca()[lca_cols].to_numpy(), rtol=1e-4, atol=1e-7
    )

"""Hugging Face LcaCallback: norms equal a reference before each optimizer step, one row per step
under gradient accumulation, LCA invariant, exact resume, bf16, clipping (pre-clip norms)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("accelerate")

from hf_problems import (  # noqa: E402
    GROUPS,
    ReferenceTrainer,
    TwoTower,
    arguments,
    eval_batches,
    per_sample_loss,
    samples,
)

from lca_toolkit import TrackerError, open_run  # noqa: E402
from lca_toolkit.integrations.transformers import STATE_FILE, LcaCallback  # noqa: E402


def callback(store, **kwargs) -> LcaCallback:
    return LcaCallback(
        GROUPS, store=store, loss_fn=per_sample_loss, eval_batches=eval_batches(), **kwargs
    )


def train(tmp_path, store, *, resume=None, n=64, **kwargs) -> ReferenceTrainer:
    trainer = ReferenceTrainer(
        model=TwoTower(),
        args=arguments(tmp_path / "out", **kwargs),
        train_dataset=samples(n),
        callbacks=[callback(store, lca_every=kwargs.pop("lca_every", None) or 3)],
        groups=GROUPS,
    )
    trainer.train(resume_from_checkpoint=resume)
    return trainer


def assert_norms_match(steps, norms) -> None:
    assert len(steps) == len(norms)
    for g in [*GROUPS, "total"]:
        column = "grad_norm_total" if g == "total" else f"grad_norm/{g}"
        np.testing.assert_allclose(steps[column].to_numpy(), [r[g] for r in norms], rtol=1e-5)


def assert_lca_complete(lca) -> None:
    total = lca[[f"lca/{g}" for g in GROUPS]].sum(axis=1) + lca["residual"]
    np.testing.assert_allclose(total, lca["loss_change"], rtol=1e-9, atol=1e-9)


def test_one_row_per_optimizer_step_with_accumulation_and_lca(tmp_path):
    trainer = train(tmp_path, tmp_path / "run.zarr", max_steps=6, gradient_accumulation_steps=2)
    run = open_run(tmp_path / "run.zarr")
    steps = run.steps()
    assert trainer.state.global_step == 6
    assert steps["step"].tolist() == [1, 2, 3, 4, 5, 6]
    assert not steps["skipped"].any()
    assert_norms_match(steps, trainer.norms)
    hf_loss = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    np.testing.assert_allclose(steps["loss"], hf_loss, rtol=1e-4)
    np.testing.assert_allclose(steps.filter(like="lr").to_numpy(), 0.05)  # decay, no decay
    lca = run.lca()
    assert list(zip(lca["start_step"], lca["end_step"])) == [(0, 3), (3, 6)]
    assert_lca_complete(lca)
    assert run.status == "finished"


def test_clipping_on_records_the_norms_before_clipping(tmp_path):
    trainer = train(tmp_path, tmp_path / "run.zarr", max_steps=4, max_grad_norm=0.05)
    steps = open_run(tmp_path / "run.zarr").steps()
    assert min(r["total"] for r in trainer.norms) > 0.05 * 2  # clipping changed every step
    assert_norms_match(steps, trainer.norms)
    hf_grad_norm = [h["grad_norm"] for h in trainer.state.log_history if "grad_norm" in h]
    np.testing.assert_allclose(steps["grad_norm_total"], hf_grad_norm, rtol=1e-5)


def test_bf16_records_finite_unscaled_norms(tmp_path):
    trainer = train(tmp_path, tmp_path / "run.zarr", max_steps=4, bf16=True,
                    gradient_accumulation_steps=2)
    run = open_run(tmp_path / "run.zarr")
    steps = run.steps()
    assert np.isfinite(steps[[f"grad_norm/{g}" for g in GROUPS]].to_numpy()).all()
    assert_norms_match(steps, trainer.norms)
    assert_lca_complete(run.lca())


def test_resume_from_checkpoint_continues_the_store_exactly(tmp_path):
    common = dict(max_steps=6, gradient_accumulation_steps=2, save_strategy="steps", save_steps=2)
    train(tmp_path / "a", tmp_path / "whole.zarr", **common)
    train(tmp_path / "b", tmp_path / "resumed.zarr", **common)
    assert (tmp_path / "b" / "out" / "checkpoint-2" / STATE_FILE).is_file()
    # The store holds steps 1-6; resuming at step 2 replaces rows 3-6 once, continuing from there.
    resume = tmp_path / "b" / "out" / "checkpoint-2"
    train(tmp_path / "b", tmp_path / "resumed.zarr", resume=str(resume), **common)
    whole, resumed = open_run(tmp_path / "whole.zarr"), open_run(tmp_path / "resumed.zarr")
    a, b = whole.steps(), resumed.steps()
    assert b["step"].tolist() == [1, 2, 3, 4, 5, 6]
    for column in ["loss", "grad_norm_total", *[f"grad_norm/{g}" for g in GROUPS]]:
        np.testing.assert_allclose(b[column], a[column], rtol=1e-5)
    la, lb = whole.lca(), resumed.lca()
    assert list(zip(lb["start_step"], lb["end_step"])) == [(0, 3), (3, 6)]
    np.testing.assert_allclose(lb[[f"lca/{g}" for g in GROUPS]], la[[f"lca/{g}" for g in GROUPS]],
                               rtol=1e-5, atol=1e-10)
    assert_lca_complete(lb)


def test_resume_without_the_tracker_state_is_one_clear_error(tmp_path):
    common = dict(max_steps=2, save_strategy="steps", save_steps=2)
    train(tmp_path, tmp_path / "run.zarr", **common)
    (tmp_path / "out" / "checkpoint-2" / STATE_FILE).unlink()
    with pytest.raises(TrackerError, match="no tracker state"):
        train(tmp_path, tmp_path / "run.zarr", resume=str(tmp_path / "out" / "checkpoint-2"),
              max_steps=4, save_strategy="no")

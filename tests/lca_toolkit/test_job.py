"""The user-job contract behind `lca-run job`: loading, errors, resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lca_toolkit import open_run
from lca_toolkit.job import Job, JobError, load_job, run_job

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_load_job_errors_name_the_problem(tmp_path):
    with pytest.raises(JobError, match="must look like MODULE:FUNCTION"):
        load_job("no_colon")
    with pytest.raises(JobError, match="cannot import module 'missing_mod'"):
        load_job("missing_mod:make", search_path=tmp_path)
    (tmp_path / "bad_job.py").write_text(
        "def make():\n    return 42\n\ndef make2(epochs):\n    pass\n"
    )
    with pytest.raises(JobError, match="has no function 'nope'"):
        load_job("bad_job:nope", search_path=tmp_path)
    with pytest.raises(JobError, match="returned int, expected lca_toolkit.job.Job"):
        load_job("bad_job:make", search_path=tmp_path)
    with pytest.raises(JobError, match=r"arguments \['lr'\] do not fit make2"):
        load_job("bad_job:make2", {"lr": 1.0}, search_path=tmp_path)


def test_run_job_resumes_from_its_epoch_checkpoint(tmp_path):
    job = load_job("user_job:make_job", {"epochs": 2, "n_train": 128}, search_path=EXAMPLES)
    assert isinstance(job, Job)
    full = run_job(job, tmp_path / "full.zarr", lca_every=2)
    assert full.steps == 8

    first = load_job("user_job:make_job", {"epochs": 1, "n_train": 128}, search_path=EXAMPLES)
    run_job(first, tmp_path / "part.zarr", lca_every=2)
    rest = load_job("user_job:make_job", {"epochs": 2, "n_train": 128}, search_path=EXAMPLES)
    run_job(rest, tmp_path / "part.zarr", lca_every=2, resume=True)
    a, b = open_run(tmp_path / "full.zarr"), open_run(tmp_path / "part.zarr")
    for name in ("steps/step", "steps/grad_norm", "lca/by_group", "lca/residual"):
        np.testing.assert_array_equal(a.array(name), b.array(name), err_msg=name)
    with pytest.raises(JobError, match="needs the job to provide eval_batches"):
        job.eval_batches = None
        run_job(job, tmp_path / "x.zarr", lca_every=2)


def test_epoch_metrics_are_stored_per_epoch_in_eval_mode(tmp_path):
    job = load_job("user_job:make_job", {"epochs": 2, "n_train": 64}, search_path=EXAMPLES)
    seen = []

    def metrics(model):
        seen.append((model.training, torch.is_grad_enabled()))
        return {"probe": float(sum(p.sum() for p in model.head.parameters())), "calls": len(seen)}

    job.epoch_metrics = metrics
    run_job(job, tmp_path / "run.zarr")
    assert seen == [(False, False), (False, False)]  # eval mode, no gradients
    assert job.model.training  # back in training mode afterwards
    epochs = open_run(tmp_path / "run.zarr").epochs()
    assert epochs["calls"].tolist() == [1.0, 2.0]
    with torch.no_grad():
        final = float(sum(p.sum() for p in job.model.head.parameters()))
    assert epochs["probe"].iloc[-1] == pytest.approx(final)
    assert "train_loss_last" in epochs

    job.epoch_metrics = lambda model: [0.5]
    with pytest.raises(JobError, match="epoch_metrics must return a mapping"):
        run_job(job, tmp_path / "bad.zarr")


def test_a_job_with_modalities_records_input_ablation(tmp_path):
    job = load_job("user_job:make_job", {"epochs": 1, "n_train": 128}, search_path=EXAMPLES)
    with pytest.raises(JobError, match="--ablation-every needs the job to provide modalities"):
        run_job(job, tmp_path / "none.zarr", ablation_every=2)
    job.modalities = {"audio": "audio", "image": "image"}
    run_job(job, tmp_path / "run.zarr", ablation_every=2)  # no LCA: ablation alone builds on E
    run = open_run(tmp_path / "run.zarr")
    table = run.table("ablation")
    assert table["step"].tolist() == [2, 4]
    total = table["loss_contribution_audio"] + table["loss_contribution_image"]
    np.testing.assert_allclose(
        total, table["loss_without_audio+image"] - table["loss_without_none"]
    )
    assert run.lca().empty


def test_resume_refuses_other_recording_settings(tmp_path):
    def job():
        return load_job("user_job:make_job", {"epochs": 1, "n_train": 64}, search_path=EXAMPLES)

    run_job(job(), tmp_path / "run.zarr", lca_every=2)
    with pytest.raises(JobError, match="--lca-every: the run at .* was recorded with 2, this"):
        run_job(job(), tmp_path / "run.zarr", lca_every=3, resume=True)
    run_job(job(), tmp_path / "run.zarr", lca_every=2, resume=True)  # the same: accepted

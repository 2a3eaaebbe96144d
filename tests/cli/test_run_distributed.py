"""`lca-run mammo` and `lca-run job` under torchrun with 2 gloo ranks on the CPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from lca_toolkit_cli.run import main

from lca_toolkit import open_run

ROOT = Path(__file__).resolve().parents[2]
LCA_RUN = Path(sys.executable).parent / "lca-run"

JOB = """
import torch
from problems import SmoothMLP, mlp_batches, mlp_loss
from lca_toolkit.job import Job


def make_job():
    model = SmoothMLP(seed=0)
    return Job(
        model=model,
        loss_fn=mlp_loss,
        optimizer=torch.optim.Adam(model.parameters(), lr=0.05),
        train_batches=mlp_batches(n=24, batch_size=6, seed=3),
        eval_batches=mlp_batches(n=22, batch_size=5, seed=1),
        groups={"audio": "audio.", "image": "image.", "head": "head."},
        epochs=2,
    )
"""


def torchrun_lca_run(*args: str) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node=2 --no-python lca-run ARGS``."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests" / "helpers")]),
        "OMP_NUM_THREADS": "1",
        "LCA_DIST_TIMEOUT_S": "120",
    }
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd += ["--no-python", str(LCA_RUN), *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)


def test_mammo_tiny_under_torchrun_finishes_and_rank_0_writes(tmp_path):
    out = tmp_path / "ddp.zarr"
    done = torchrun_lca_run(
        "mammo", "--preset", "tiny", "--quiet", "--synthetic-root", str(tmp_path / "synth"),
        "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("run store:") == 1  # only rank 0 prints the summary
    run = open_run(out)
    assert run.status == "finished"
    assert run.attrs["config"]["tracker"]["world_size"] == 2
    steps = run.steps()["step"].tolist()
    assert steps == list(range(1, len(steps) + 1)) and len(steps) == 8  # 16 breasts, batch 4
    assert run.epochs()["epoch"].tolist() == [0, 1]
    assert {"train_loss", "train_auc", "val_auc"} <= set(run.epochs().columns)
    assert np.isfinite(run.epochs()["train_loss"]).all()
    assert len(run.lca()) >= 1 and "test_auc" in run.attrs["results"]
    assert (Path(f"{out}.ckpt") / "last.pt").is_file()


def test_job_under_torchrun_equals_one_process(tmp_path):
    (tmp_path / "ddp_job.py").write_text(JOB)
    spec = f"{tmp_path / 'ddp_job.py'}:make_job"
    done = torchrun_lca_run("job", spec, "--out", str(tmp_path / "two.zarr"), "--lca-every", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("epoch 2/2") == 1

    result = CliRunner().invoke(
        main, ["job", spec, "--out", str(tmp_path / "one.zarr"), "--lca-every", "2"]
    )
    assert result.exit_code == 0, result.output
    one, two = open_run(tmp_path / "one.zarr"), open_run(tmp_path / "two.zarr")
    s1, s2 = one.steps(), two.steps()
    assert s2["step"].tolist() == list(range(1, 9))
    cols = ["loss", "grad_norm_total", "grad_norm/audio", "grad_norm/image", "grad_norm/head"]
    np.testing.assert_allclose(s2[cols].to_numpy(), s1[cols].to_numpy(), rtol=1e-12)
    lca_cols = ["lca/audio", "lca/image", "lca/head", "loss_start", "loss_end", "residual"]
    np.testing.assert_allclose(
        two.lca()[lca_cols].to_numpy(), one.lca()[lca_cols].to_numpy(), rtol=1e-12, atol=1e-14
    )
    np.testing.assert_allclose(
        two.epochs()["train_loss_last"], one.epochs()["train_loss_last"], rtol=1e-12
    )


def test_job_sharded_with_fsdp_and_resumed_equals_one_process(tmp_path):
    """``--fsdp`` on the FSDP2 example's job: killed after one epoch, resumed, one process's rows."""
    spec = f"{ROOT / 'examples' / 'fsdp2_two_tower.py'}:make_job"
    two = tmp_path / "two.zarr"
    common = ["--lca-every", "2", "--arg", "n_train=96", "--fsdp"]
    done = torchrun_lca_run("job", spec, "--out", str(two), *common, "--arg", "epochs=1")
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in Path(f"{two}.ckpt").iterdir()) == [
        "last.pt", "rank0.pt", "rank1.pt"  # the full model and optimizer; each rank's shards
    ]  # fmt: skip
    done = torchrun_lca_run(
        "job", spec, "--out", str(two), *common, "--arg", "epochs=2", "--resume"
    )
    assert done.returncode == 0, done.stderr[-3000:]

    args = ["job", spec, "--out", str(tmp_path / "one.zarr"), *common[:-1], "--arg", "epochs=2"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    one, sharded = open_run(tmp_path / "one.zarr"), open_run(two)
    assert sharded.attrs["config"]["tracker"]["sharding"] == "fsdp2"
    s1, s2 = one.steps(), sharded.steps()
    assert s2["step"].tolist() == list(range(1, 7))
    cols = [c for c in s1.columns if c.startswith(("loss", "grad_norm", "update_norm"))]
    np.testing.assert_allclose(s2[cols].to_numpy(), s1[cols].to_numpy(), rtol=2e-5)
    l1, l2 = one.lca(), sharded.lca()
    assert l2["end_step"].tolist() == [2, 4, 6]
    lca_cols = ["lca/image", "lca/text", "lca/head", "loss_start", "loss_end"]
    np.testing.assert_allclose(
        l2[lca_cols].to_numpy(), l1[lca_cols].to_numpy(), rtol=1e-4, atol=1e-6
    )

"""`lca-run`: every variant and regulariser on the tiny preset, jobs, sweeps, resume, bad input."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from killed_experiment import tiny_config
from lca_toolkit_cli.run import main

from lca_toolkit import open_run
from mammo_models import VARIANTS
from mammo_models.training import Experiment

ROOT = Path(__file__).resolve().parents[2]
HELPERS = ROOT / "tests" / "helpers"
EXPECTED_GROUPS = {  # LCA with train-mode BN (the mammography default): no bn_buffers group
    "uni_cc": ["cc", "shared"],
    "uni_mlo": ["mlo", "shared"],
    "joint": ["cc", "mlo", "shared"],
    "shared": ["column", "cc", "mlo", "shared"],
    "split": ["cc", "mlo"],
}


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("synthetic")


def lca_run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def tiny(synth: Path, out: Path, *extra: str) -> tuple[int, str]:
    return lca_run(
        "mammo", "--preset", "tiny", "--quiet", "--synthetic-root", synth, "--out", out, *extra
    )


def check_store(path: Path, groups: list[str], epochs: int = 2) -> None:
    run = open_run(path)
    assert run.status == "finished"
    assert run.groups == groups
    steps = run.steps()
    assert len(steps) > 0 and steps["step"].tolist() == list(range(1, len(steps) + 1))
    for g in groups:
        assert np.isfinite(steps[f"grad_norm/{g}"]).all() and (steps[f"grad_norm/{g}"] > 0).any()
    lca = run.lca()
    assert len(lca) >= 1
    by_group = run.array("lca/by_group")
    np.testing.assert_allclose(
        run.array("lca/loss_end") - run.array("lca/loss_start") - by_group.sum(1),
        run.array("lca/residual"),
        rtol=0,
        atol=1e-12,
    )
    ep = run.epochs()
    assert ep["epoch"].tolist() == list(range(epochs))
    assert {"val_auc", "val_loss", "train_auc", "train_loss"} <= set(ep.columns)
    assert "test_auc" in run.attrs["results"]
    preds = run.table("test_predictions")
    assert ((preds["malignant_prob"] > 0) & (preds["malignant_prob"] < 1)).all()


@pytest.fixture(scope="module")
def uni_runs(synth, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("uni")
    stores = {}
    for variant in ("uni_cc", "uni_mlo"):
        code, text = tiny(synth, out / f"{variant}.zarr", "--model", variant)
        assert code == 0, text
        stores[variant] = out / f"{variant}.zarr"
    return stores


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_runs_and_records(variant, synth, uni_runs, tmp_path):
    if variant in uni_runs:
        path = uni_runs[variant]
    else:  # joint and the uni-view runs keep the default rule; the others' LCA is checked
        path = tmp_path / f"{variant}.zarr"  # for its groups and identity: Simpson's 2 passes
        rule = [] if variant == "joint" else ["--quadrature", "simpson"]
        ablation = ["--ablation-every", "2"] if variant == "shared" else []
        code, text = tiny(synth, path, "--model", variant, *rule, *ablation)
        assert code == 0, text
        assert "test AUC" in text and "share of the loss reduction" in text
    check_store(path, EXPECTED_GROUPS[variant])
    if variant == "shared":  # --ablation-every 2: each view removed by its mean image over E
        table = open_run(path).table("ablation")
        steps = open_run(path).steps()["step"]
        assert table["step"].tolist() == [s for s in steps if s % 2 == 0]
        full, empty = table["loss_without_none"], table["loss_without_cc+mlo"]
        total = table["loss_contribution_cc"] + table["loss_contribution_mlo"]
        np.testing.assert_allclose(total, empty - full, rtol=0, atol=1e-9)


@pytest.mark.parametrize(
    "regularizer, extra, groups",
    [
        ("modality_dropout", ["--dropout", "0.3", "0.5"], ["cc", "mlo", "shared"]),
        ("split_lr", ["--alphas", "-0.5", "0.5", "0"], ["cc", "mlo", "shared"]),
        ("gradient_blending", [], ["cc", "mlo", "shared"]),
        ("pretraining", None, ["shared"]),
    ],
)
def test_every_regularizer_runs_and_records(regularizer, extra, groups, synth, uni_runs, tmp_path):
    if extra is None:
        extra = [
            "--pretrained-cc",
            f"{uni_runs['uni_cc']}.ckpt/best.pt",
            "--pretrained-mlo",
            f"{uni_runs['uni_mlo']}.ckpt/best.pt",
        ]
    path = tmp_path / f"{regularizer}.zarr"  # LCA checked for groups and identity: Simpson
    code, text = tiny(synth, path, "--regularizer", regularizer, *extra, "--quadrature", "simpson")
    assert code == 0, text
    epochs = 1 if regularizer == "pretraining" else (3 if regularizer == "modality_dropout" else 2)
    check_store(path, groups, epochs=epochs)
    experiment = open_run(path).config["experiment"]
    if regularizer == "split_lr":
        rates = experiment["split_lr"]
        assert rates["cc"] == pytest.approx(1e-4 * 10**-0.5) and rates["mlo"] == pytest.approx(
            1e-4 * 10**0.5
        )
        lrs = open_run(path).array("steps/lr")
        assert lrs.shape[1] == 3 and np.allclose(
            lrs[0], [rates["cc"], rates["mlo"], rates["shared"]]
        )
    if regularizer == "gradient_blending":
        weights = experiment["blend_estimation"]["weights"]
        assert sum(weights.values()) == pytest.approx(1.0) and min(weights.values()) >= 0
        assert Path(f"{path}.blend/uni_cc.zarr").exists()
        # The estimation runs are reused only for exactly the same settings.
        from dataclasses import replace

        from mammo_models.training import ExperimentConfig
        from mammo_models.training.blending import _finished_with, estimation_configs

        config = ExperimentConfig.from_dict(experiment)
        assert config.to_dict() == {k: experiment[k] for k in config.to_dict()}
        same = estimation_configs(config)
        assert all(_finished_with(cfg) for cfg in same.values())
        other = estimation_configs(replace(config, lr=1e-3))
        assert not any(_finished_with(cfg) for cfg in other.values())


def test_resume_after_kill_mid_epoch_equals_uninterrupted(synth, tmp_path):
    reference = tmp_path / "reference.zarr"
    Experiment(tiny_config(reference, synth), progress=False).run()

    killed = tmp_path / "killed.zarr"
    proc = subprocess.run(
        [sys.executable, str(HELPERS / "killed_experiment.py"), str(killed), str(synth), "7"],
        cwd=HELPERS,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert open_run(killed).status == "running"
    state = torch.load(f"{killed}.ckpt/last.pt", weights_only=False)
    assert state["tracker"]["step"] == 6 and state["start"] == 2  # mid-epoch checkpoint

    code, text = lca_run("mammo", "--out", killed, "--resume", "--quiet", "--lr", "1e-2")
    assert (
        code == 2 and "--resume continues the run with its own settings; do not pass --lr" in text
    )
    code, text = lca_run("mammo", "--out", killed, "--resume", "--quiet", "--checkpoint-every", "3")
    assert code == 0, text  # the run's own settings come from its store
    assert "resuming at epoch 1, step 6" in text
    a, b = open_run(reference), open_run(killed)
    for name in (
        "steps/step",
        "steps/loss",
        "steps/grad_norm",
        "steps/update_norm",
        "lca/by_group",
        "lca/residual",
        "lca/end_step",
        "epochs/val_auc",
        "epochs/train_loss",
    ):
        np.testing.assert_array_equal(a.array(name), b.array(name), err_msg=name)
    assert a.attrs["results"]["test_auc"] == b.attrs["results"]["test_auc"]
    wa = torch.load(f"{reference}.ckpt/last.pt", weights_only=False)["model"]
    wb = torch.load(f"{killed}.ckpt/last.pt", weights_only=False)["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert a.array("lca/end_step").tolist() == [3, 6, 8]  # 8 steps, k = 3: the last one too


def test_job_runs_the_example(tmp_path):
    out = tmp_path / "job.zarr"
    code, text = lca_run(
        "job",
        ROOT / "examples" / "user_job.py:make_job",
        "--out",
        out,
        "--lca-every",
        "8",
        "--arg",
        "epochs=1",
        "--arg",
        "n_train=256",
    )
    assert code == 0, text
    run = open_run(out)
    assert run.groups == ["audio", "image", "head", "bn_buffers"]
    assert len(run.steps()) == 8 and len(run.lca()) == 1
    assert run.config["job"]["n_train"] == 256
    # --ablation-every reaches the job: this one declares no modalities, so it is refused
    code, text = lca_run(
        "job", ROOT / "examples" / "user_job.py:make_job", "--out", tmp_path / "abl.zarr",
        "--ablation-every", "2", "--arg", "epochs=1",
    )  # fmt: skip
    assert code != 0 and "--ablation-every needs the job to provide modalities" in text
    assert not (tmp_path / "abl.zarr").exists()


def test_sweep_writes_distinct_lrs_in_range_and_an_index(synth, tmp_path):
    out = tmp_path / "sweep"
    args = (
        "sweep",
        "--kind",
        "lr",
        "--model",
        "uni_cc",
        "--n",
        "3",
        "--preset",
        "tiny",
        "--quiet",
        "--no-lca",
        "--epochs",
        "1",
        "--synthetic-root",
        synth,
        "--out",
        out,
    )
    code, text = lca_run(*args)
    assert code == 0, text
    index = pd.read_csv(out / "index.csv")
    assert len(index) == 3 and (index["status"] == "finished").all()
    assert index["lr"].nunique() == 3 and index["lr"].between(1e-5, 3e-3).all()
    for store, lr in zip(index["store"], index["lr"]):
        assert open_run(store).array("steps/lr")[0, 0] == pytest.approx(lr)
    code, text = lca_run(*args)  # running it again skips the finished runs
    assert code == 0 and "[1/3]" not in text


def test_bad_input_is_one_clear_line(synth, tmp_path):
    code, text = lca_run("mammo", "--model", "triple", "--out", tmp_path / "x.zarr")
    assert code == 2 and "'triple' is not one of" in text
    code, text = lca_run(
        "mammo",
        "--data",
        "manifest",
        "--manifest",
        tmp_path / "missing.csv",
        "--out",
        tmp_path / "x.zarr",
    )
    assert code == 2 and "missing.csv" in text and "does not exist" in text
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code, text = tiny(synth, blocker / "run.zarr")
    assert code != 0 and "not a writable directory" in text and "Traceback" not in text
    code, text = tiny(synth, tmp_path / "never.zarr", "--resume")
    assert code != 0 and "no run store at" in text
    existing = tmp_path / "existing.zarr"
    existing.mkdir()
    (existing / "keep.txt").write_text("precious")
    code, text = tiny(synth, existing)
    assert code != 0 and "already exists" in text
    assert (existing / "keep.txt").read_text() == "precious"
    code, text = tiny(synth, existing, "--overwrite")
    assert code != 0 and "not a run store; refusing to delete it" in text
    assert (existing / "keep.txt").read_text() == "precious"


def test_resume_refuses_settings_that_differ_from_the_checkpoint(synth, tmp_path):
    from dataclasses import replace

    from mammo_models.training import ResumeError

    out = tmp_path / "run.zarr"
    config = tiny_config(out, synth)
    Experiment(replace(config, max_steps=2), progress=False).run()
    with pytest.raises(
        ResumeError, match=r"differ from the run's: lr \(checkpoint 0.001, now 0.01\)"
    ):
        Experiment(replace(config, lr=1e-2), resume=True, progress=False).run()
    # A run stopped by max_steps mid-epoch resumes inside that epoch and finishes it.
    Experiment(config, resume=True, progress=False).run()
    assert open_run(out).array("steps/step").tolist() == list(range(1, 9))
    assert open_run(out).epochs()["epoch"].tolist() == [0, 1]


NAN_JOB = """
import math
import torch
from torch import nn
from lca_toolkit.job import Job


def make_job(bad_batch: int = 3):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 1))
    batches = []
    for i in range(8):
        x = torch.randn(4, 2)
        if i == bad_batch:
            x[0, 0] = math.nan
        batches.append({"x": x, "y": torch.randn(4, 1)})
    return Job(
        model=model,
        loss_fn=lambda m, b: ((m(b["x"]) - b["y"]) ** 2).squeeze(1),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        train_batches=batches,
    )
"""


@pytest.mark.parametrize("policy", ["stop", "skip"])
def test_job_on_nonfinite_stops_naming_the_step_or_skips_and_counts(tmp_path, policy):
    (tmp_path / "nan_job.py").write_text(NAN_JOB)
    out = tmp_path / f"{policy}.zarr"
    code, text = lca_run(
        "job", tmp_path / "nan_job.py:make_job", "--out", out, "--on-nonfinite", policy
    )
    run = open_run(out)
    if policy == "stop":
        assert code == 1 and "non-finite numbers at step 4" in text, text
        assert "Traceback" not in text
        assert run.status == "failed" and len(run.steps()) == 4
    else:
        assert code == 0, text
        assert run.status == "finished" and run.attrs["nonfinite_skipped"] == 1
        steps = run.steps()
        assert len(steps) == 8 and steps["skipped"].tolist() == [i == 3 for i in range(8)]
        assert np.isfinite(open_run(out).steps()["grad_norm_total"].to_numpy()[4:]).all()

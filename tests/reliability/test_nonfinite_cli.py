"""`lca-run mammo --on-nonfinite`: a NaN loss at step 2 stops the run or is skipped and counted."""

from __future__ import annotations

import math

import pytest
import torch
from click.testing import CliRunner
from lca_toolkit_cli.run import main

from lca_toolkit import open_run
from mammo_models.training import experiment


@pytest.fixture
def nan_at_step_2(monkeypatch):
    """The training loss of the second step is NaN (the loop's only loss call per step)."""
    calls = {"n": 0}
    real = experiment.per_sample_loss

    def loss(outputs, batch):
        calls["n"] += 1
        out = real(outputs, batch)
        return out * math.nan if calls["n"] == 2 else out

    monkeypatch.setattr(experiment, "per_sample_loss", loss)


def lca_run(tmp_path, out, *extra):
    args = ["mammo", "--preset", "tiny", "--quiet", "--device", "cpu", "--no-lca"]
    args += ["--synthetic-root", str(tmp_path.parent / "synthetic"), "--out", str(out), *extra]
    result = CliRunner().invoke(main, args)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def test_stop_is_one_line_naming_step_and_groups_exit_1_store_failed(nan_at_step_2, tmp_path):
    out = tmp_path / "stop.zarr"
    code, text = lca_run(tmp_path, out)
    assert code == 1
    last = text.strip().splitlines()[-1]
    assert last.startswith("Error: non-finite numbers at step 2: loss nan")
    assert "gradient norm not finite in group(s) cc, mlo, shared" in last
    assert "Traceback" not in text
    run = open_run(out)
    assert run.status == "failed" and "step 2" in run.attrs["status_reason"]
    steps = run.steps()
    assert steps["step"].tolist() == [1, 2]
    assert math.isfinite(steps["loss"][0]) and math.isnan(steps["loss"][1])


def test_skip_counts_the_step_in_the_store_and_the_summary(nan_at_step_2, tmp_path):
    out = tmp_path / "skip.zarr"
    code, text = lca_run(tmp_path, out, "--on-nonfinite", "skip", "--max-steps", "3")
    assert code == 0, text
    assert "note: 1 step(s) with a non-finite loss or gradient skipped" in text
    run = open_run(out)
    assert run.status == "finished"
    assert run.attrs["nonfinite_skipped"] == 1
    assert run.steps()["skipped"].tolist() == [False, True, False]
    assert run.config["experiment"]["record"]["on_nonfinite"] == "skip"
    assert math.isfinite(run.epochs()["train_loss"][0])  # the skipped batch is not in it
    weights = torch.load(f"{out}.ckpt/last.pt", weights_only=False)["model"]
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())

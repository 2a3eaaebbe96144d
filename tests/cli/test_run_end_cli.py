"""`lca-run job`: the steps after the last snapshot are measured when the run ends."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from click.testing import CliRunner
from lca_toolkit_cli.run import main

from lca_toolkit import open_run

ROOT = Path(__file__).resolve().parents[2]


def test_a_run_whose_steps_are_not_a_multiple_of_k_measures_its_last_interval(tmp_path):
    out = tmp_path / "job.zarr"
    job = ROOT / "examples" / "user_job.py:make_job"  # 2 epochs of 4 steps at n_train=128
    args = ["job", str(job), "--out", str(out), "--lca-every", "5", "--arg", "n_train=128"]
    args += ["--quadrature", "simpson"]  # the cheapest rule that checks the tiling
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "(8 steps, 2 epochs)" in result.output
    run = open_run(out)
    lca = run.lca()
    assert lca[["start_step", "end_step"]].values.tolist() == [[0, 5], [5, 8]]
    # The intervals tile the run: their LCA and residuals add up to its loss change on E.
    allocated = lca[[f"lca/{g}" for g in run.groups]].to_numpy().sum() + lca["residual"].sum()
    change = lca["loss_end"].iloc[-1] - lca["loss_start"].iloc[0]
    np.testing.assert_allclose(allocated, change, rtol=1e-10)

"""What ``lca-run`` prints while it works: one bar style, --quiet, refused options, warnings."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest
from click.testing import CliRunner
from lca_toolkit_cli._console import one_line_warnings
from lca_toolkit_cli._resume import RESUMABLE_FLAGS
from lca_toolkit_cli.run import main

from mammo_models.training.evaluate import split_metrics

JOB = """
import torch
from problems import SmoothMLP, mlp_batches, mlp_loss
from lca_toolkit.job import Job


def make_job():
    model = SmoothMLP(seed=0)
    return Job(
        model=model,
        loss_fn=mlp_loss,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.05),
        train_batches=mlp_batches(n=8, batch_size=4, seed=3),
        epochs=2,
    )
"""

PREDICTIONS = pd.DataFrame(  # four test breasts, none benign: the benign AUC is undefined
    {
        "malignant_label": [0, 1, 0, 1],
        "malignant_prob": [0.1, 0.8, 0.3, 0.6],
        "benign_label": [0, 0, 0, 0],
        "benign_prob": [0.2, 0.1, 0.4, 0.3],
        "loss": [0.1, 0.2, 0.3, 0.4],
    }
)

BAR = "step/s"  # tqdm's rate: in every bar it draws, never in a plain line


@pytest.fixture()
def job_spec(tmp_path) -> str:
    (tmp_path / "tiny_job.py").write_text(JOB)
    return f"{tmp_path / 'tiny_job.py'}:make_job"


def test_job_draws_a_bar_of_its_steps_and_quiet_draws_none(job_spec, tmp_path):
    shown = CliRunner().invoke(main, ["job", job_spec, "--out", str(tmp_path / "a.zarr")])
    assert shown.exit_code == 0, shown.output
    assert BAR in shown.output and "4/4" in shown.output  # 2 batches x 2 epochs
    assert "epoch 2/2: step 4" in shown.output
    quiet = CliRunner().invoke(
        main, ["job", job_spec, "--out", str(tmp_path / "b.zarr"), "--quiet"]
    )
    assert quiet.exit_code == 0, quiet.output
    assert BAR not in quiet.output and "%|" not in quiet.output
    assert "run store:" in quiet.output


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (
            ["job", "x.py:f", "--quadrature", "adaptive"],
            "--quadrature is used only with --lca-every",
        ),
        (["mammo", "--dropout", "0.1", "0.2"], "--dropout is used only with --regularizer"),
        (["mammo", "--no-lca", "--lca-every", "5"], "--lca-every is used only when LCA is"),
        (["mammo", "--quadrature", "simpson", "--rel-tol", "0.1"], "--rel-tol is used only"),
        (["sweep", "--kind", "lr", "--lr", "1e-3"], "--lr is used only by sweeps other than"),
        (["sweep", "--kind", "seed", "--n", "3"], "--n is used only by sweeps that sample"),
        (["recipe", "fig3", "fig4", "--seeds", "0", "--dry-run"], "--seeds is read only by table1"),
        (
            ["recipe", "table1", "--lca-epochs", "2", "--dry-run"],
            "--lca-epochs is read only by fig4",
        ),
    ],
)
def test_an_option_the_command_would_ignore_is_refused(args, needle, tmp_path):
    res = CliRunner().invoke(
        main,
        [*args, "--out", str(tmp_path / "o")]
        if args[0] != "recipe"
        else [*args, "--runs", str(tmp_path)],
    )
    assert res.exit_code == 2, res.output
    (error,) = [x for x in res.output.splitlines() if x.startswith("Error:")]
    assert needle in error and "would ignore" in error
    assert not (tmp_path / "o").exists()  # refused before anything is written


def test_recipe_options_that_a_named_recipe_reads_are_accepted(tmp_path):
    res = CliRunner().invoke(
        main, ["recipe", "fig3", "table1", "--seeds", "0", "--runs", str(tmp_path), "--dry-run"]
    )
    assert res.exit_code == 0, res.output
    assert "table1 --search fixed: 5 runs" in res.output  # one seed of five rows


def test_resume_help_names_every_option_a_resume_may_change():
    res = CliRunner().invoke(main, ["mammo", "--help"])
    text = " ".join(res.output.split())
    help_of_resume = text[text.index("--resume Continue") :][:400]
    assert len(RESUMABLE_FLAGS) == 5
    for flag in RESUMABLE_FLAGS:
        assert flag in help_of_resume, flag


def test_the_toolkits_warnings_are_one_line_without_a_source_line():
    before = warnings.formatwarning, warnings.showwarning
    try:
        one_line_warnings()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            split_metrics(PREDICTIONS, "test")  # as a run evaluates its test split
        (w,) = caught
        text = warnings.formatwarning(w.message, w.category, w.filename, w.lineno, None)
        assert text == (
            "warning: test benign AUC is undefined (NaN): all 4 labels are 0, so the split has "
            "no positive breast\n"
        )
        other = warnings.formatwarning("x", UserWarning, __file__, 1, None)
        assert __file__ in other  # a warning from elsewhere keeps its place
    finally:
        warnings.formatwarning, warnings.showwarning = before

"""``lca-run job|mammo --tensorboard DIR``: the run's scalars also go to TensorBoard event files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from lca_toolkit_cli.run import main

from lca_toolkit import open_run
from mammo_models.training import ConfigError

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import (  # noqa: E402
    EventAccumulator,
)

ROOT = Path(__file__).resolve().parents[2]


def lca_run(*args: object) -> tuple[int, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def scalar_tags(log_dir: Path) -> EventAccumulator:
    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return acc


def test_job_tensorboard_mirrors_norms_and_lca(tmp_path):
    out, tb = tmp_path / "job.zarr", tmp_path / "tb"
    code, text = lca_run(
        "job",
        ROOT / "examples" / "user_job.py:make_job",
        "--out", out,
        "--lca-every", "2",
        "--arg", "epochs=1",
        "--arg", "n_train=128",
        "--tensorboard", tb,
    )  # fmt: skip
    assert code == 0, text
    run = open_run(out)
    acc = scalar_tags(tb)
    steps = run.steps()
    for g in ("audio", "image", "head"):
        events = acc.Scalars(f"grad_norm/{g}")
        assert [e.step for e in events] == steps["step"].tolist() == [1, 2, 3, 4]
        np.testing.assert_allclose([e.value for e in events], steps[f"grad_norm/{g}"], rtol=2e-7)
    lca = run.lca()
    events = acc.Scalars("lca/audio")
    assert [e.step for e in events] == lca["end_step"].tolist() == [2, 4]
    np.testing.assert_allclose([e.value for e in events], lca["lca/audio"], rtol=2e-7)
    assert {"lca/residual", "lca/loss_change", "lca_error/head"} <= set(acc.Tags()["scalars"])


def test_mammo_passes_tensorboard_to_the_experiment(tmp_path, monkeypatch):
    """The option reaches ``Experiment(mirror=...)`` (a real tiny run costs too long here; the
    Tracker side is covered by the job test and tests/lca_toolkit/test_mirror_tensorboard.py)."""
    import lca_toolkit_cli.run as cli_run

    seen = {}

    class Stop(ConfigError):
        pass

    class FakeExperiment:
        def __init__(self, config, **kwargs):
            seen.update(kwargs)

        def run(self):
            raise Stop("stopped before training")

    monkeypatch.setattr(cli_run, "Experiment", FakeExperiment)
    tb = tmp_path / "tb"
    code, text = lca_run(
        "mammo", "--preset", "tiny", "--quiet", "--out", tmp_path / "j.zarr", "--tensorboard", tb
    )
    assert code == 1 and "stopped before training" in text
    assert seen["mirror"] == f"tensorboard:{tb}"
    code, text = lca_run("mammo", "--preset", "tiny", "--quiet", "--out", tmp_path / "k.zarr")
    assert seen["mirror"] is None

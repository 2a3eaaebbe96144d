"""``lca-plot``: every kind from small stores, outputs only under --out, one-line errors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import plot_stores as stores
import pytest
from click.testing import CliRunner
from lca_toolkit_cli.plot import main
from PIL import Image

from lca_toolkit.plots import auc_table


def predictions(seed: int, n: int = 30) -> dict:
    labels = np.random.default_rng(0)
    mal, ben = (labels.random(n) < 0.4).astype(int), (labels.random(n) < 0.5).astype(int)
    rng = np.random.default_rng(seed)
    return {
        "index": np.arange(n),
        "malignant_label": mal,
        "benign_label": ben,
        "malignant_prob": 0.3 * mal + 0.7 * rng.random(n),
        "benign_prob": 0.2 * ben + 0.8 * rng.random(n),
    }


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> list[Path]:
    """Two joint seeds (one a Split Learning Rates run) and one shared run, with predictions."""
    tmp = tmp_path_factory.mktemp("runs")
    specs = [
        ("joint", 0, {"cc": 1e-4, "mlo": 3e-5, "shared": 1e-3}),
        ("joint", 1, None),
        ("shared", 0, None),
    ]
    paths = []
    for i, (variant, seed, split) in enumerate(specs):
        exp = {"variant": variant, "seed": seed, "lr": 1e-4}
        if split:
            exp["split_lr"] = split
        paths.append(
            stores.write_store(
                tmp / f"{variant}{seed}.zarr",
                n_steps=12,
                lca_every=4,
                n_epochs=3,
                config={"experiment": exp},
                tables={"test_predictions": predictions(i)},
                seed=i,
            )
        )
    return paths


def digest(paths: list[Path]) -> dict[str, str]:
    out = {}
    for root in paths:
        for f in sorted(root.rglob("*")):
            if f.is_file():
                out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def run_cli(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_clean_error(result, *fragments: str) -> str:
    """Non-zero exit, an ``Error:`` line naming the fragments, no traceback."""
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    return errors[0]


def test_all_kinds_by_default(sweep, tmp_path):
    before = digest(sweep)
    out = tmp_path / "figs"
    result = run_cli(*sweep, "--out", out)
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        [f"{k}_{v}.png" for k in ("grad_norm", "lca", "residual") for v in ("joint", "shared")]
        + ["curves.png", "lr_dist.png", "table.md", "table.csv"]
    )
    for name in names:
        if name.endswith(".png"):
            with Image.open(out / name) as img:
                img.verify()
    with Image.open(out / "grad_norm_joint.png") as img:
        assert img.size == (1050, 600)
    table = pd.read_csv(out / "table.csv")
    expected = auc_table(sweep, group_by="experiment.variant")
    pd.testing.assert_frame_equal(table, expected, check_dtype=False)
    assert "| Joint ResNet | 2 |" in (out / "table.md").read_text()
    assert f"wrote {out / 'curves.png'}" in result.output
    assert digest(sweep) == before  # inputs untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figs"]  # nothing outside --out


def test_one_kind_format_and_smoothing(sweep, tmp_path):
    result = run_cli(
        sweep[0],
        "-o",
        tmp_path,
        "--kind",
        "grad-norm",
        "--format",
        "pdf",
        "--smooth",
        "3",
        "--log-y",
    )
    assert result.exit_code == 0, result.output
    assert [p.name for p in tmp_path.iterdir()] == ["grad_norm.pdf"]
    assert (tmp_path / "grad_norm.pdf").read_bytes().startswith(b"%PDF")


def test_per_run_and_group_by(sweep, tmp_path):
    result = run_cli(
        *sweep, "-o", tmp_path / "a", "-k", "lca", "-k", "residual", "--per-run", "--format", "svg"
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(
        f"{k}_{r}.svg" for k in ("lca", "residual") for r in ("joint0", "joint1", "shared0")
    )
    result = run_cli(*sweep, "-o", tmp_path / "b", "-k", "table", "--group-by", "experiment.seed")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "b" / "table.csv")
    assert list(table["setting"]) == [0, 1] and list(table["runs"]) == [2, 1]


def test_help_shows_an_example():
    result = run_cli("--help")
    assert result.exit_code == 0
    assert "Examples:" in result.output
    assert "lca-plot runs/joint.zarr --out figs" in result.output


def test_not_a_store(tmp_path):
    folder = tmp_path / "notastore"
    folder.mkdir()
    assert_clean_error(run_cli(folder, "--out", tmp_path / "o"), str(folder), "not a run store")
    file = tmp_path / "file.txt"
    file.write_text("x")
    assert_clean_error(run_cli(file, "--out", tmp_path / "o"), str(file), "is a file")
    missing = tmp_path / "missing.zarr"
    assert_clean_error(run_cli(missing, "--out", tmp_path / "o"), str(missing))
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("version", [0, 99])
def test_older_or_newer_schema(tmp_path, version):
    path = stores.write_store(tmp_path / "old.zarr", n_steps=4, lca_every=2, n_epochs=0)
    stores.set_schema_version(path, version)
    assert_clean_error(
        run_cli(path, "--out", tmp_path / "o"), str(path), f"schema_version {version}"
    )


def test_different_group_names(tmp_path):
    a = stores.write_store(
        tmp_path / "a.zarr", groups=["cc", "mlo", "shared"], n_steps=4, lca_every=2
    )
    b = stores.write_store(tmp_path / "b.zarr", groups=["audio", "image"], n_steps=4, lca_every=2)
    for kind in ("grad-norm", "lca", "all"):
        line = assert_clean_error(
            run_cli(a, b, "--out", tmp_path / "o", "--kind", kind), str(a), str(b)
        )
        assert "['cc', 'mlo', 'shared']" in line and "['audio', 'image']" in line
    # each store on its own is fine
    result = run_cli(a, b, "--out", tmp_path / "o", "--kind", "grad-norm", "--per-run")
    assert result.exit_code == 0, result.output


def test_bad_output_folder(sweep, tmp_path):
    file = tmp_path / "taken"
    file.write_text("keep me")
    assert_clean_error(run_cli(sweep[0], "--out", file), str(file), "is a file")
    assert file.read_text() == "keep me"
    inside = sweep[0] / "figs"
    assert_clean_error(run_cli(sweep[0], "--out", inside), str(inside), "inside the input store")
    assert not inside.exists()


def test_unsupported_kind_and_bad_group_by(sweep, tmp_path):
    assert_clean_error(
        run_cli(sweep[1], "--out", tmp_path, "--kind", "lr-dist"), "lr-dist", "experiment.split_lr"
    )
    assert_clean_error(
        run_cli(sweep[1], "--out", tmp_path, "--kind", "curves", "--group-by", "experiment.nope"),
        str(sweep[1]),
        "experiment.nope",
    )
    nolca = stores.write_store(tmp_path / "nolca.zarr", lca_every=None, n_steps=4)
    assert_clean_error(
        run_cli(nolca, "--out", tmp_path / "o", "--kind", "lca"), str(nolca), "no LCA"
    )
    result = run_cli(nolca, "--out", tmp_path / "o2")  # all: skips what it cannot make
    assert result.exit_code == 0, result.output
    assert "skipped lca" in result.output
    assert (tmp_path / "o2" / "grad_norm.png").is_file()


def test_groups_metrics_and_loss_curves_for_generic_runs(tmp_path):
    path = stores.write_store(
        tmp_path / "job.zarr",
        groups=["audio", "image", "head"],
        n_steps=6,
        lca_every=3,
        n_epochs=2,
        epoch_metrics=("train_loss", "val_loss"),
    )
    result = run_cli(
        path, "-o", tmp_path / "o", "-k", "grad-norm", "-k", "curves", "--group", "image"
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["curves.png", "grad_norm.png"]
    result = run_cli(path, "-o", tmp_path / "o", "-k", "grad-norm", "--group", "cc")
    assert_clean_error(result, "['cc']", str(path))
    result = run_cli(path, "-o", tmp_path / "o", "-k", "curves", "--metric", "val_auc")
    assert_clean_error(result, "val_auc")


def test_a_store_given_twice(sweep, tmp_path):
    assert_clean_error(run_cli(sweep[0], sweep[0], "--out", tmp_path), str(sweep[0]), "twice")


def test_a_sweep_of_two_learning_rates_plots_two_settings(tmp_path):
    runs = [
        stores.write_store(
            tmp_path / f"lr{i}_seed{seed}.zarr",
            n_steps=6,
            lca_every=None,
            n_epochs=2,
            config={"experiment": {"variant": "joint", "lr": lr, "seed": seed}},
            seed=2 * i + seed,
        )
        for i, lr in enumerate((1e-4, 1e-3))
        for seed in (0, 1)
    ]
    result = run_cli(*runs, "-o", tmp_path / "auto", "-k", "grad-norm", "-k", "curves", "--dpi", 40)
    assert result.exit_code == 0, result.output
    assert "settings by: experiment.lr" in result.output
    names = sorted(p.name for p in (tmp_path / "auto").iterdir())
    assert names == ["curves.png", "grad_norm_0.0001.png", "grad_norm_0.001.png"]
    given = run_cli(
        *runs,
        "-o",
        tmp_path / "by",
        "-k",
        "grad-norm",
        "--group-by",
        "experiment.variant,experiment.lr",
        "--dpi",
        40,
    )
    assert given.exit_code == 0, given.output
    assert "settings by: experiment.variant, experiment.lr" in given.output
    assert sorted(p.name for p in (tmp_path / "by").iterdir()) == [
        "grad_norm_joint_0.0001.png",
        "grad_norm_joint_0.001.png",
    ]


def test_curves_of_a_job_store_and_of_one_epoch(tmp_path):
    job = stores.write_store(
        tmp_path / "job.zarr",
        n_steps=6,
        n_epochs=3,
        epoch_metrics=("train_loss_last",),  # what lca-run job records per epoch
        config={"job": {"epochs": 3}},
    )
    one = stores.write_store(tmp_path / "one.zarr", n_steps=4, n_epochs=1)
    for store in (job, one):
        out = tmp_path / f"figs_{store.stem}"
        result = run_cli(store, "--out", out, "--kind", "curves")
        assert result.exit_code == 0, result.output
        with Image.open(out / "curves.png") as img:
            assert img.size == (630, 540)

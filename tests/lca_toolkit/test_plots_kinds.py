"""The registry of plot kinds: complete for ``lca-plot``, and one clear reason per missing need."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import plot_stores as stores
import pytest
from click.testing import CliRunner
from lca_toolkit_cli.plot import main as lca_plot
from matplotlib.figure import Figure

from lca_toolkit import open_run
from lca_toolkit.plots import (
    NEEDS,
    PLOT_KINDS,
    Drawing,
    PlotKind,
    PlotRequest,
    PlotTable,
    curve_metrics,
    save_drawing,
)
from lca_toolkit.store import Runs

ORDER = ["grad-norm", "lca", "residual", "learning-speed", "curves", "lr-dist", "table"]


def predictions(n: int = 20) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    labels = np.tile([0, 1], n // 2)
    return {
        "index": np.arange(n),
        "malignant_label": labels,
        "benign_label": labels[::-1].copy(),
        "malignant_prob": 0.5 * labels + 0.5 * rng.random(n),
        "benign_prob": rng.random(n),
    }


@pytest.fixture(scope="module")
def full(tmp_path_factory) -> Path:
    """A store every kind can draw from."""
    return stores.write_store(
        tmp_path_factory.mktemp("kinds") / "full.zarr",
        n_steps=8,
        lca_every=4,
        n_epochs=2,
        config={"experiment": {"variant": "joint", "split_lr": {"cc": 1e-4, "mlo": 1e-3}}},
        tables={"test_predictions": predictions()},
        param_norm=True,
    )


def runs_of(*paths: Path) -> Runs:
    return Runs([open_run(p) for p in paths])


def test_every_kind_has_what_the_cli_needs():
    assert list(PLOT_KINDS) == ORDER  # the order ``--kind all`` makes them
    for name, kind in PLOT_KINDS.items():
        assert isinstance(kind, PlotKind) and kind.name == name
        assert kind.stem == name.replace("-", "_")
        assert kind.help.strip() and "\n" not in kind.help
        assert kind.needs and all(need in NEEDS for need in kind.needs)
        assert callable(kind.draw)
        assert (kind.title is not None) == kind.per_setting
    per_setting = ["grad-norm", "lca", "residual", "learning-speed"]
    assert [k for k, v in PLOT_KINDS.items() if v.per_setting] == per_setting
    kind_option = next(p for p in lca_plot.params if p.name == "kinds")
    assert list(kind_option.type.choices) == [*ORDER, "all"]


def test_the_registry_is_read_only():
    with pytest.raises(TypeError):
        PLOT_KINDS["new"] = PLOT_KINDS["lca"]  # type: ignore[index]
    with pytest.raises(TypeError):
        NEEDS["new"] = NEEDS["lca"]  # type: ignore[index]


def test_a_kind_must_name_known_needs():
    with pytest.raises(ValueError, match="unknown needs"):
        replace(PLOT_KINDS["lca"], needs=("lca", "gpu"))
    with pytest.raises(ValueError, match="needs a title"):
        replace(PLOT_KINDS["lca"], title=None)


def test_a_full_store_makes_every_kind(full, tmp_path):
    runs, request = runs_of(full), PlotRequest()
    for kind in PLOT_KINDS.values():
        assert kind.missing(runs, request) is None, kind.name
        drawings = list(kind.drawings(runs, request))
        assert len(drawings) == 1 and drawings[0].suffix is None
        content = drawings[0].content
        assert isinstance(content, PlotTable if kind.name == "table" else Figure)
        written = save_drawing(drawings[0], tmp_path / kind.stem, format="svg")
        expected = ["table.md", "table.csv"] if kind.name == "table" else [f"{kind.stem}.svg"]
        assert [p.name for p in written] == expected
        assert all(p.is_file() for p in written)
    title = PLOT_KINDS["table"].draw(runs, request, None).title
    assert title == "Test AUC by experiment.variant"


def test_per_setting_kinds_draw_one_figure_per_setting(tmp_path):
    paths = [
        stores.write_store(
            tmp_path / f"{variant}{seed}.zarr",
            n_steps=4,
            lca_every=2,
            n_epochs=1,
            config={"experiment": {"variant": variant, "seed": seed}},
            seed=seed,
        )
        for variant, seed in [("joint", 0), ("joint", 1), ("shared", 0)]
    ]
    runs = runs_of(*paths)
    drawings = list(PLOT_KINDS["lca"].drawings(runs, PlotRequest()))
    assert [d.suffix for d in drawings] == ["joint", "shared"]
    titles = [d.content.axes[0].get_title() for d in drawings]
    assert titles[0].startswith("Cumulative LCA per group — ") and "2 runs" in titles[0]
    per_run = list(PLOT_KINDS["residual"].drawings(runs, PlotRequest(per_run=True)))
    assert [d.suffix for d in per_run] == runs.labels
    assert isinstance(per_run[0], Drawing)


@pytest.mark.parametrize(
    ("kind", "store", "reason"),
    [
        ("grad-norm", {"n_steps": 0, "lca_every": None}, "{paths} have no steps recorded"),
        ("lca", {"lca_every": None}, "{paths} have no LCA intervals (recorded without lca_every)"),
        (
            "residual",
            {"lca_every": None},
            "{paths} have no LCA intervals (recorded without lca_every)",
        ),
        ("curves", {"n_epochs": 0}, "{paths} have no epoch metrics"),
        ("lr-dist", {}, "no store has config 'experiment.split_lr' (Split Learning Rates runs)"),
        ("table", {}, "{paths} have neither test predictions nor stored test results"),
    ],
)
def test_a_store_lacking_a_need_gives_one_clear_reason(tmp_path, kind, store, reason):
    path = stores.write_store(tmp_path / "lacking.zarr", **{"n_steps": 4, **store})
    expected = reason.format(paths=[str(path)])
    assert PLOT_KINDS[kind].missing(runs_of(path), PlotRequest()) == expected
    result = CliRunner().invoke(lca_plot, [str(path), "--out", str(tmp_path / "o"), "-k", kind])
    assert result.exit_code == 1 and result.exception is not None
    assert f"Error: cannot make {kind}: {expected}" in " ".join(result.output.split())
    assert not (tmp_path / "o").exists()


def test_curve_metrics_follow_what_the_runs_have(tmp_path):
    auc = runs_of(stores.write_store(tmp_path / "auc.zarr", n_steps=2, lca_every=None))
    loss = runs_of(
        stores.write_store(
            tmp_path / "loss.zarr",
            n_steps=2,
            lca_every=None,
            epoch_metrics=("train_loss", "val_loss"),
        )
    )
    assert curve_metrics(auc, None) == ["train_auc", "val_auc"]
    assert curve_metrics(loss, None) == ["train_loss", "val_loss"]
    assert curve_metrics(loss, ["val_loss"]) == ["val_loss"]
    asked = PlotRequest(metrics=["val_auc"])
    assert PLOT_KINDS["curves"].missing(loss, asked) == "no store has the epoch metrics ['val_auc']"

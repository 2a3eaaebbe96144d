"""Every plot kind on small stores: the saved file, and the drawn data against the store's."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import plot_stores as stores
import pytest
from matplotlib.collections import PolyCollection
from PIL import Image

from lca_toolkit import open_run, open_runs
from lca_toolkit.errors import RunMismatchError
from lca_toolkit.plots import (
    GROUP_COLORS,
    LCA_YLABEL,
    PlotError,
    plot_cumulative_lca,
    plot_grad_norm,
    plot_learning_curves,
    plot_lr_distribution,
    plot_residual,
    save_figure,
)


def lines_by_label(ax) -> dict:
    return {line.get_label(): line for line in ax.lines}


def band(ax, color) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, lower, upper) of the fill_between band drawn in ``color``."""
    rgba = matplotlib.colors.to_rgba(color)
    colls = [
        c
        for c in ax.collections
        if isinstance(c, PolyCollection) and np.allclose(c.get_facecolor()[0][:3], rgba[:3])
    ]
    assert len(colls) == 1, f"expected one band in {color}, found {len(colls)}"
    verts = np.concatenate([p.vertices for p in colls[0].get_paths()])
    xs = np.unique(verts[:, 0])
    lo = np.array([verts[verts[:, 0] == x, 1].min() for x in xs])
    hi = np.array([verts[verts[:, 0] == x, 1].max() for x in xs])
    return xs, lo, hi


def assert_png(path: Path, size: tuple[int, int]) -> None:
    assert path.is_file()
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        assert img.format == "PNG"
        assert img.size == size


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Three joint runs (seeds) and two uni_cc runs, same groups (read-only for the tests)."""
    tmp_path = tmp_path_factory.mktemp("sweep")
    paths = []
    for i, variant in enumerate(["joint", "joint", "joint", "uni_cc", "uni_cc"]):
        cfg = {"experiment": {"variant": variant, "lr": 10.0 ** -(3 + i % 3), "seed": i}}
        paths.append(stores.write_store(tmp_path / f"run{i}.zarr", config=cfg, seed=i))
    return paths


# ------------------------------------------------------------------ gradient norm (Fig. 4a)
def test_grad_norm_single_run_draws_the_store_values(sweep, tmp_path):
    run = open_run(sweep[0])
    fig = plot_grad_norm(run)
    out = save_figure(fig, tmp_path / "out" / "grad_norm")
    assert out.suffix == ".png"
    assert_png(out, (1050, 600))
    ax = fig.axes[0]
    lines = lines_by_label(ax)
    steps = run.steps()
    # bn_buffers is NaN everywhere: left out, with no error
    assert set(lines) == {"CC", "MLO", "shared", "_zero"} - {"_zero"}
    for g, name in [("cc", "CC"), ("mlo", "MLO"), ("shared", "shared")]:
        np.testing.assert_array_equal(lines[name].get_xdata(), steps["step"])
        np.testing.assert_array_equal(lines[name].get_ydata(), steps[f"grad_norm/{g}"])
        assert matplotlib.colors.same_color(lines[name].get_color(), GROUP_COLORS[g])
    assert ax.get_xlabel() == "iteration (optimizer step)"
    assert ax.get_yscale() == "linear"


@pytest.mark.parametrize("kind", ["ema", "rolling"])
def test_grad_norm_smoothing_matches_pandas(sweep, kind):
    run = open_run(sweep[1])
    fig = plot_grad_norm(run, smooth_window=5, smooth_kind=kind, log_y=True, groups=["mlo"])
    ax = fig.axes[0]
    lines = lines_by_label(ax)
    raw = run.steps()["grad_norm/mlo"]
    expected = raw.ewm(span=5, adjust=True).mean() if kind == "ema" else raw.rolling(5, 1).mean()
    np.testing.assert_allclose(lines["MLO"].get_ydata(), expected.to_numpy())
    np.testing.assert_array_equal(lines["_mlo raw"].get_ydata(), raw)
    assert "CC" not in lines
    assert ax.get_yscale() == "log"
    assert str(5) in ax.get_ylabel()


def test_ema_by_hand():
    """The EMA the plot uses is the bias-corrected recurrence with alpha = 2 / (span + 1)."""
    from lca_toolkit.plots import smooth

    x = pd.Series([1.0, 3.0, np.nan, 2.0, 5.0])
    a = 2 / (3 + 1)
    num = den = 0.0
    expected = []
    for v in x:
        if not np.isnan(v):
            num, den = (1 - a) * num + v, (1 - a) * den + 1
        expected.append(num / den)
    np.testing.assert_allclose(smooth(x, 3, "ema"), expected)


def test_grad_norm_several_runs_mean_and_std_equal_pandas(sweep):
    fig = plot_grad_norm(sweep[:3])
    ax = fig.axes[0]
    frame = open_runs(sweep[:3]).steps()
    stats = frame.groupby("step")["grad_norm/cc"].agg(["mean", "std"])
    line = lines_by_label(ax)["CC"]
    np.testing.assert_array_equal(line.get_xdata(), stats.index)
    np.testing.assert_allclose(line.get_ydata(), stats["mean"])
    xs, lo, hi = band(ax, GROUP_COLORS["cc"])
    np.testing.assert_array_equal(xs, stats.index)
    np.testing.assert_allclose(lo, stats["mean"] - stats["std"])
    np.testing.assert_allclose(hi, stats["mean"] + stats["std"])
    assert "3 runs" in ax.get_title()


def test_grad_norm_refuses_runs_with_different_groups(tmp_path):
    a = stores.write_store(tmp_path / "a.zarr", groups=["cc", "mlo", "shared"])
    b = stores.write_store(tmp_path / "b.zarr", groups=["cc", "mlo", "shared", "column"])
    with pytest.raises(RunMismatchError, match=r"a\.zarr.*b\.zarr"):
        plot_grad_norm([a, b])


def test_grad_norm_unknown_group_and_metric(sweep):
    with pytest.raises(PlotError, match=r"\['audio'\].*run0\.zarr"):
        plot_grad_norm(sweep[0], groups=["audio"])
    with pytest.raises(PlotError, match="metric must be one of"):
        plot_grad_norm(sweep[0], metric="norm")
    with pytest.raises(PlotError, match="no finite grad_norm"):
        plot_grad_norm(sweep[0], groups=["bn_buffers"])


def test_unknown_group_gets_a_stable_colour_of_its_own(tmp_path):
    path = stores.write_store(tmp_path / "x.zarr", groups=["audio", "image", "cc"])
    fig = plot_grad_norm(path)
    colors = {line.get_label(): line.get_color() for line in fig.axes[0].lines}
    assert colors["CC"] == "tab:blue"
    assert len(set(colors.values())) == 3
    again = plot_grad_norm(path).axes[0].lines
    assert [line.get_color() for line in again] == list(colors.values())


def test_draws_into_a_given_axes(sweep):
    from matplotlib.figure import Figure

    fig = Figure()
    ax1, ax2 = fig.subplots(1, 2)
    assert plot_grad_norm(sweep[0], ax=ax1) is fig
    assert plot_cumulative_lca(sweep[0], ax=ax2) is fig
    assert ax1.lines and ax2.lines


# ------------------------------------------------------------------ cumulative LCA (Fig. 4b)
def test_cumulative_lca_single_run(sweep, tmp_path):
    run = open_run(sweep[0])
    fig = plot_cumulative_lca(run)
    assert_png(save_figure(fig, tmp_path / "lca.png"), (1050, 600))
    ax = fig.axes[0]
    assert ax.get_ylabel() == LCA_YLABEL == "cumulative LCA (negative = helped)"
    lca = run.lca()
    lines = lines_by_label(ax)
    for g, name in [
        ("cc", "CC"),
        ("mlo", "MLO"),
        ("shared", "shared"),
        ("bn_buffers", "BN statistics"),
    ]:
        # Every curve starts at zero at the first interval's start step.
        x0 = lca["start_step"].iloc[0]
        np.testing.assert_array_equal(lines[name].get_xdata(), [x0, *lca["end_step"]])
        np.testing.assert_allclose(lines[name].get_ydata(), [0.0, *np.cumsum(lca[f"lca/{g}"])])
    total = lines["actual loss change"].get_ydata()
    np.testing.assert_allclose(total, [0.0, *(lca["loss_end"] - lca["loss_start"].iloc[0])])


def test_cumulative_lca_several_runs_mean_and_std_equal_pandas(sweep):
    fig = plot_cumulative_lca(sweep[:3], groups=["mlo"], show_total=False)
    ax = fig.axes[0]
    frame = open_runs(sweep[:3]).lca()
    frame["cum"] = frame.groupby("run", observed=True)["lca/mlo"].cumsum()
    stats = frame.groupby("end_step")["cum"].agg(["mean", "std"])
    line = lines_by_label(ax)["MLO"]
    np.testing.assert_allclose(line.get_ydata(), [0.0, *stats["mean"]])  # anchored at zero
    xs, lo, hi = band(ax, GROUP_COLORS["mlo"])
    np.testing.assert_allclose(lo, [0.0, *(stats["mean"] - stats["std"])])
    np.testing.assert_allclose(hi, [0.0, *(stats["mean"] + stats["std"])])
    assert set(lines_by_label(ax)) == {"MLO", "_zero"}


def test_lca_plots_need_lca_rows(sweep, tmp_path):
    path = stores.write_store(tmp_path / "nolca.zarr", lca_every=None)
    assert open_run(sweep[0]).has_lca and not open_run(path).has_lca
    one_wording = r"nolca\.zarr' has no LCA intervals \(recorded without lca_every\); nothing"
    with pytest.raises(PlotError, match=one_wording):
        plot_cumulative_lca(path)
    with pytest.raises(PlotError, match=one_wording):
        plot_residual([sweep[0], path])


# ------------------------------------------------------------------ residual (Fig. 5)
def test_residual_two_panels_equal_the_store(sweep, tmp_path):
    run = open_run(sweep[2])
    fig = plot_residual(run)
    out = save_figure(fig, tmp_path / "res", format="svg")
    assert out.name == "res.svg" and out.read_text().lstrip().startswith("<?xml")
    top, bottom = fig.axes
    lca = run.lca()
    summed = lca[[f"lca/{g}" for g in run.groups]].sum(axis=1)
    t, b = lines_by_label(top), lines_by_label(bottom)
    np.testing.assert_allclose(
        t["actual loss change L(end) − L(start)"].get_ydata(), lca["loss_change"]
    )
    np.testing.assert_allclose(t["Σ LCA over all groups"].get_ydata(), summed)
    np.testing.assert_allclose(b["residual = actual − Σ LCA"].get_ydata(), lca["residual"])
    np.testing.assert_allclose(lca["loss_change"] - summed, lca["residual"], atol=1e-12)


def test_residual_several_runs_and_single_axes(sweep):
    from matplotlib.figure import Figure

    ax = Figure().subplots()
    plot_residual(sweep[:3], ax=ax)
    frame = open_runs(sweep[:3]).lca()
    stats = frame.groupby("end_step")["residual"].agg(["mean", "std"])
    line = lines_by_label(ax)["residual = actual − Σ LCA"]
    np.testing.assert_allclose(line.get_ydata(), stats["mean"])
    xs, lo, hi = band(ax, "tab:gray")
    np.testing.assert_allclose(hi - lo, 2 * stats["std"])


# ------------------------------------------------------------------ learning curves (Fig. 3)
def test_learning_curves_mean_and_std_per_setting_equal_pandas(sweep, tmp_path):
    fig = plot_learning_curves(sweep, group_by="experiment.variant")
    out = save_figure(fig, tmp_path / "curves.png", dpi=100)
    assert_png(out, (840, 360))
    assert [a.get_title() for a in fig.axes] == [
        "Joint ResNet (n=3 runs)",
        "uni-view CC (n=2 runs)",
    ]
    frame = open_runs(sweep).epochs(with_config=["experiment.variant"])
    for ax, variant in zip(fig.axes, ["joint", "uni_cc"]):
        sub = frame[frame["experiment.variant"] == variant]
        for metric, name, color in [
            ("train_auc", "train AUC", "black"),
            ("val_auc", "validation AUC", "tab:red"),
        ]:
            stats = sub.groupby("epoch")[metric].agg(["mean", "std"])
            line = lines_by_label(ax)[name]
            np.testing.assert_array_equal(line.get_xdata(), stats.index)
            np.testing.assert_allclose(line.get_ydata(), stats["mean"])
            xs, lo, hi = band(ax, color)  # an AUC band stays in [0, 1]
            np.testing.assert_allclose(lo, np.clip(stats["mean"] - stats["std"], 0, 1))
            np.testing.assert_allclose(hi, np.clip(stats["mean"] + stats["std"], 0, 1))


def test_learning_curves_other_grouping_and_errors(sweep, tmp_path):
    fig = plot_learning_curves(sweep, group_by=None, metrics=["val_loss"])
    assert len(fig.axes) == 1 and fig.axes[0].get_title() == "all runs (n=5 runs)"
    assert fig.axes[0].get_ylabel() == "loss"
    fig = plot_learning_curves(sweep, group_by="experiment.lr")
    assert len(fig.axes) == 3
    with pytest.raises(PlotError, match=r"run0\.zarr.*experiment\.nothing"):
        plot_learning_curves(sweep, group_by="experiment.nothing")
    with pytest.raises(PlotError, match="none of the epoch metrics"):
        plot_learning_curves(sweep, metrics=["test_auc"])


def test_learning_curves_skip_runs_without_the_metric(tmp_path):
    a = stores.write_store(tmp_path / "a.zarr", epoch_metrics=("train_auc", "val_auc"), seed=1)
    b = stores.write_store(tmp_path / "b.zarr", epoch_metrics=("train_auc",), seed=2)
    ax = plot_learning_curves([a, b], group_by=None).axes[0]
    val = lines_by_label(ax)["validation AUC"]
    np.testing.assert_allclose(val.get_ydata(), open_run(a).epochs()["val_auc"])


# ------------------------------------------------------------------ learning rates (Fig. 8)
def test_lr_distribution_histograms_equal_numpy(tmp_path):
    rng = np.random.default_rng(3)
    paths, rates = [], {"cc": [], "mlo": [], "shared": []}
    for i in range(6):
        split = {k: float(1e-4 * 10 ** rng.uniform(-1, 1)) for k in rates}
        for k, v in split.items():
            rates[k].append(v)
        cfg = {"experiment": {"variant": "joint", "regularizer": "split_lr", "split_lr": split}}
        paths.append(stores.write_store(tmp_path / f"s{i}.zarr", config=cfg, n_steps=6, seed=i))
    paths.append(stores.write_store(tmp_path / "plain.zarr", n_steps=6))  # skipped: no split_lr
    fig = plot_lr_distribution(paths, bins=6)
    assert_png(save_figure(fig, tmp_path / "lr.png"), (int(3 * 3.6 * 150), int(3.2 * 150)))
    assert len(fig.axes) == 3
    lo = min(min(v) for v in rates.values())
    hi = max(max(v) for v in rates.values())
    for ax, (k, values) in zip(fig.axes, rates.items()):
        assert ax.get_xscale() == "log"
        heights = np.array([p.get_height() for p in ax.patches])
        lefts = np.array([p.get_x() for p in ax.patches])
        edges = np.logspace(np.log10(lo), np.log10(hi), 7)  # shared, log-spaced bins
        edges[[0, -1]] = lo, hi
        np.testing.assert_allclose(lefts, edges[:-1], rtol=1e-12)
        np.testing.assert_array_equal(heights, np.histogram(values, bins=edges)[0])
        assert heights.sum() == 6
        assert matplotlib.colors.same_color(ax.patches[0].get_facecolor()[:3], GROUP_COLORS[k])


def test_lr_distribution_errors(tmp_path):
    plain = stores.write_store(tmp_path / "plain.zarr", n_steps=6)
    with pytest.raises(PlotError, match=r"plain\.zarr.*experiment\.split_lr"):
        plot_lr_distribution(plain)
    bad = stores.write_store(
        tmp_path / "bad.zarr", n_steps=6, config={"experiment": {"split_lr": {"cc": -1}}}
    )
    with pytest.raises(PlotError, match=r"bad\.zarr.*experiment\.split_lr\.cc.*positive"):
        plot_lr_distribution(bad)


def test_save_figure_formats(sweep, tmp_path):
    fig = plot_grad_norm(sweep[0])
    pdf = save_figure(fig, tmp_path / "g.pdf")
    assert pdf.read_bytes().startswith(b"%PDF")
    assert save_figure(fig, tmp_path / "h", format="svg").name == "h.svg"
    with pytest.raises(PlotError, match=r"suffix '\.png' but format 'pdf'"):
        save_figure(fig, tmp_path / "g.png", format="pdf")
    with pytest.raises(PlotError, match=r"suffix '\.jpg'"):
        save_figure(fig, tmp_path / "g.jpg")

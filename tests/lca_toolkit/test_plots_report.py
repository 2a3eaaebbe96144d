"""``save_run_figures``: a run's standard figures are the registry's ``run_figure`` kinds."""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

import matplotlib

matplotlib.use("Agg")

import numpy as np
import plot_stores as stores
import pytest
from PIL import Image

from lca_toolkit.plots import (
    PLOT_KINDS,
    plot_cumulative_lca,
    plot_grad_norm,
    save_figure,
    save_run_figures,
)
from lca_toolkit.plots import report as report_module


@pytest.fixture(scope="module")
def run_path(tmp_path_factory):
    return stores.write_store(tmp_path_factory.mktemp("report") / "run.zarr")


def test_a_run_gets_every_flagged_kind_in_registry_order(run_path, tmp_path, monkeypatch):
    saved = []

    def keep(figure, path, **kwargs):
        saved.append(figure)
        return save_figure(figure, path, **kwargs)

    monkeypatch.setattr(report_module, "save_figure", keep)
    written = save_run_figures(run_path, tmp_path / "figs", smooth_window=3)
    flagged = [kind.stem for kind in PLOT_KINDS.values() if kind.run_figure]
    assert flagged == ["grad_norm", "lca", "residual"]
    assert written == [tmp_path / "figs" / f"{stem}.png" for stem in flagged]
    for path in written:
        with Image.open(path) as img:
            assert img.format == "PNG"

    def ydata(figure):
        return [
            np.asarray(line.get_ydata(), float).round(12).tolist() for line in figure.axes[0].lines
        ]

    # the gradient norms are smoothed as asked, and the LCA figure is the run's cumulative LCA
    assert ydata(saved[0]) == ydata(plot_grad_norm(run_path, smooth_window=3))
    assert ydata(saved[0]) != ydata(plot_grad_norm(run_path, smooth_window=None))
    assert ydata(saved[1]) == ydata(plot_cumulative_lca(run_path))


def test_a_run_without_lca_gets_its_gradient_norms_only(tmp_path):
    path = stores.write_store(tmp_path / "nolca.zarr", lca_every=None)
    assert save_run_figures(path, tmp_path / "figs") == [tmp_path / "figs" / "grad_norm.png"]


def test_flagging_a_kind_in_the_registry_is_all_it_takes(run_path, tmp_path, monkeypatch):
    kinds = {name: replace(kind, run_figure=name == "curves") for name, kind in PLOT_KINDS.items()}
    monkeypatch.setattr(report_module, "PLOT_KINDS", MappingProxyType(kinds))
    assert save_run_figures(run_path, tmp_path) == [tmp_path / "curves.png"]

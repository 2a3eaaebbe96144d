"""Helpers behind every plot: config paths, grouping runs, aggregation, colours, run input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plot_stores as stores
import pytest

from lca_toolkit import open_run, open_runs
from lca_toolkit.errors import StoreNotFoundError
from lca_toolkit.plots import (
    GROUP_COLORS,
    PlotError,
    aggregate,
    config_value,
    display_name,
    group_colors,
    labelled_runs,
    smooth,
    split_by,
)


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("three")
    configs = [
        {"experiment": {"variant": "uni_cc", "lr": 1e-4}, "optim.wd": 0.1},
        {"experiment": {"variant": "uni_mlo", "lr": 1e-4}, "optim.wd": 0.1},
        {"experiment": {"variant": "uni_cc", "lr": 1e-3}, "optim.wd": 0.2},
    ]
    return [
        stores.write_store(tmp / f"r{i}.zarr", config=c, n_steps=4, lca_every=2, n_epochs=1)
        for i, c in enumerate(configs)
    ]


def test_config_value_follows_dotted_paths(three):
    run = open_run(three[0])
    assert config_value(run, "experiment.variant") == "uni_cc"
    assert config_value(run, "optim.wd") == 0.1  # a key that contains a dot
    assert config_value(run, "experiment.nope", None) is None
    with pytest.raises(PlotError, match=r"r0\.zarr.*'experiment\.nope'.*\['lr', 'variant'\]"):
        config_value(run, "experiment.nope")


def test_split_by_keeps_order_of_appearance(three):
    runs = labelled_runs(three)
    parts = split_by(runs, "experiment.variant")
    assert list(parts) == ["uni_cc", "uni_mlo"]
    assert [label for label, _ in parts["uni_cc"]] == ["r0", "r2"]
    both = split_by(runs, ["experiment.variant", "experiment.lr"])
    assert list(both) == ["uni_cc, 0.0001", "uni_mlo, 0.0001", "uni_cc, 0.001"]
    assert list(split_by(runs, None)) == ["all runs"]


def test_labelled_runs_accepts_paths_runs_and_runs_objects(three, tmp_path):
    assert [label for label, _ in labelled_runs(three[0])] == ["r0"]
    assert [label for label, _ in labelled_runs(open_runs(three))] == ["r0", "r1", "r2"]
    assert [label for label, _ in labelled_runs([open_run(three[1]), three[2]])] == ["r1", "r2"]
    with pytest.raises(PlotError, match="no runs given"):
        labelled_runs([])
    with pytest.raises(StoreNotFoundError, match="missing"):
        labelled_runs(tmp_path / "missing.zarr")


def test_aggregate_equals_numpy_with_missing_rows():
    a = pd.DataFrame({"x": [1, 2, 3], "v": [1.0, 2.0, 3.0]})
    b = pd.DataFrame({"x": [1, 2], "v": [3.0, np.nan]})
    c = pd.DataFrame({"x": [1, 2, 3], "v": [5.0, 4.0, 7.0]})
    out = aggregate([a, b, c], "x", ["v"])
    np.testing.assert_array_equal(out["x"], [1, 2, 3])
    np.testing.assert_allclose(out["v/mean"], [3.0, 3.0, 5.0])
    np.testing.assert_allclose(
        out["v/std"], [np.std([1, 3, 5], ddof=1), np.std([2, 4], ddof=1), np.std([3, 7], ddof=1)]
    )
    np.testing.assert_array_equal(out["v/n"], [3, 2, 2])


def test_rolling_smoothing_by_hand():
    x = pd.Series([1.0, 3.0, np.nan, 2.0, 5.0])
    np.testing.assert_allclose(smooth(x, 2, "rolling"), [1.0, 2.0, 3.0, 2.0, 3.5])
    assert smooth(x, None) is x
    with pytest.raises(PlotError, match="smooth_kind"):
        smooth(x, 3, "gauss")
    with pytest.raises(PlotError, match="smooth must be"):
        smooth(x, 0)


def test_group_colours_are_fixed_and_distinct():
    colors = group_colors(["shared", "mlo", "cc", "column", "bn_buffers"])
    assert colors == {g: GROUP_COLORS[g] for g in colors}
    assert (colors["cc"], colors["mlo"]) == ("tab:blue", "tab:orange")
    many = group_colors([f"g{i}" for i in range(8)])
    assert len(set(many.values())) == 8
    assert group_colors(["g3"])["g3"] == group_colors(["cc", "g3"])["g3"]


def test_display_names():
    assert display_name("uni_cc") == "uni-view CC"
    assert display_name("shared") == "shared"
    assert display_name("shared", "experiment.variant") == "Shared ResNet"
    assert display_name("my_group") == "my_group"

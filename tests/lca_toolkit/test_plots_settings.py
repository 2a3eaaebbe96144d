"""Settings of several runs found from their configs; learning curves legible and honest."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import plot_stores as stores
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection

from lca_toolkit.plots import differing_paths, labelled_runs, plot_learning_curves, setting_name


@pytest.fixture(scope="module")
def lr_sweep(tmp_path_factory):
    """Two learning rates x two seeds, as ``lca-run sweep --kind lr --seeds 0,1`` writes them."""
    tmp = tmp_path_factory.mktemp("lr_sweep")
    paths = []
    for i, lr in enumerate((1e-4, 3e-3)):
        for seed in (0, 1):
            exp = {"variant": "uni_cc", "lr": lr, "seed": seed, "out": f"lr{i}_seed{seed}.zarr"}
            tracker = {"lca": {"every": 6}, "world_size": 1}
            paths.append(
                stores.write_store(
                    tmp / f"lr{i}_seed{seed}.zarr",
                    n_steps=6,
                    n_epochs=3,
                    config={"experiment": exp, "tracker": tracker},
                    seed=2 * i + seed,
                )
            )
    return paths


def test_a_sweep_of_two_learning_rates_is_two_settings_of_two_runs(lr_sweep):
    runs = labelled_runs(lr_sweep)
    assert differing_paths(runs) == ["experiment.lr"]  # seed and out differ too: not settings
    fig = plot_learning_curves(lr_sweep)
    titles = [a.get_title() for a in fig.axes]
    assert titles == ["lr=0.0001 (n=2 runs)", "lr=0.003 (n=2 runs)"]
    assert setting_name(runs[0][1], ["experiment.variant", "experiment.lr"]) == (
        "uni-view CC, lr=0.0001"
    )


def test_the_trackers_copy_of_a_setting_is_not_a_second_setting(tmp_path):
    paths = [
        stores.write_store(
            tmp_path / f"k{k}.zarr",
            n_steps=6,
            n_epochs=1,
            config={"experiment": {"record": {"lca_every": k}}, "tracker": {"lca": {"every": k}}},
        )
        for k in (2, 3)
    ]
    assert differing_paths(labelled_runs(paths)) == ["experiment.record.lca_every"]
    job = [  # a job store has the Tracker's copy only: it is the setting there
        stores.write_store(
            tmp_path / f"job{k}.zarr", n_steps=6, config={"job": {}, "tracker": {"every": k}}
        )
        for k in (2, 3)
    ]
    assert differing_paths(labelled_runs(job)) == ["tracker.every"]


def _overlaps(boxes) -> bool:
    boxes = sorted(boxes, key=lambda b: b.x0)
    return any(a.x1 > b.x0 for a, b in zip(boxes, boxes[1:]))


def test_one_epoch_and_a_long_title_are_drawn_legibly(tmp_path):
    one = stores.write_store(
        tmp_path / "one.zarr",
        n_steps=4,
        n_epochs=1,
        config={"experiment": {"variant": "joint"}},
    )
    title = "Learning curves of a Joint ResNet trained for one epoch on the synthetic testbed"
    fig = plot_learning_curves(one, title=title)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    figure_box = fig.bbox
    for text in [fig._suptitle, *(a.title for a in fig.axes)]:  # whole titles, not cut
        box = text.get_window_extent(renderer)
        assert box.x0 >= figure_box.x0 and box.x1 <= figure_box.x1, text.get_text()
    ax = fig.axes[0]
    lo, hi = ax.get_xlim()
    assert lo <= 0 and hi >= 2  # the one epoch (1) sits inside an axis of whole epochs
    ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
    assert ticks and all(float(t).is_integer() for t in ticks)
    labels = [t for t in ax.get_xticklabels() if t.get_text()]
    assert not _overlaps([t.get_window_extent(renderer) for t in labels])
    assert ax.get_lines()[0].get_xdata().tolist() == [1]


def test_auc_bands_stay_within_0_and_1_and_no_metric_takes_a_views_colour(tmp_path):
    # val AUC 0.99 and 0.5 in two runs: mean 0.745, std 0.35, so mean + std is 1.09
    paths = [
        stores.write_store(
            tmp_path / f"r{i}.zarr",
            n_steps=4,
            n_epochs=2,
            config={"experiment": {"variant": "uni_cc"}},
            epoch_values={"val_auc": [v, v], "train_auc": [0.02 * (1 - i), 0.0]},
            seed=i,
        )
        for i, v in enumerate((0.99, 0.5))
    ]
    ax = plot_learning_curves(paths).axes[0]
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 2
    for band in bands:
        y = np.concatenate([p.vertices[:, 1] for p in band.get_paths()])
        assert y.max() <= 1.0 and y.min() >= 0.0
    assert max(np.concatenate([p.vertices[:, 1] for b in bands for p in b.get_paths()])) == 1.0
    colors = {line.get_label(): line.get_color() for line in ax.get_lines()}
    # CC is blue and MLO orange in every figure: no metric takes those colours
    assert not {"tab:blue", "tab:orange"} & set(colors.values())
    assert colors["train AUC"] != colors["validation AUC"]

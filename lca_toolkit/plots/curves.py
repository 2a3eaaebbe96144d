"""Train and validation AUC against epoch, mean +/- std across runs per setting (Figure 3)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ._data import (
    PlotError,
    RunsLike,
    aggregate,
    all_nan,
    config_value,
    differing_paths,
    labelled_runs,
    split_by,
)
from ._style import (
    FAMILY_LINESTYLES,
    axes_list,
    curve_color,
    curve_family,
    display_name,
    draw_series,
    integer_x_axis,
    marker_kw,
    new_figure,
    root_figure,
    set_suptitle,
    set_title,
    setting_name,
)

AUTO = "auto"
"""``group_by`` default: every config value that differs between the runs
(:func:`~lca_toolkit.plots._data.differing_paths`); when none does, ``experiment.variant`` if
every run has it, else all runs together."""

DEFAULT_GROUP_BY = "experiment.variant"
DEFAULT_METRICS: tuple[str, ...] = ("train_auc", "val_auc")


def resolve_group_by(
    runs: Sequence[tuple[str, Any]], group_by: str | Sequence[str] | None
) -> str | list[str] | None:
    """``group_by`` with :data:`AUTO` replaced by the paths that differ between the runs (one
    path as a string), else ``experiment.variant`` when every run has it, else ``None``."""
    if group_by != AUTO:
        return group_by
    differ = differing_paths(runs)
    if differ:
        return differ[0] if len(differ) == 1 else differ
    missing = object()
    has = all(config_value(r, DEFAULT_GROUP_BY, missing) is not missing for _, r in runs)
    return DEFAULT_GROUP_BY if has else None


def learning_curve_stats(
    runs: Sequence[tuple[str, Any]], metrics: Sequence[str]
) -> dict[str, pd.DataFrame]:
    """Mean, std (ddof=1) and count over runs per epoch of each metric a run has.

    Returns:
        metric -> frame with ``epoch``, ``<metric>/mean``, ``<metric>/std``, ``<metric>/n``;
        a metric no run has (or NaN everywhere) is absent.
    """
    frames = [(label, run.epochs()) for label, run in runs]
    out = {}
    for metric in metrics:
        having = [df for _, df in frames if metric in df and not all_nan(df[metric])]
        if having:
            out[metric] = aggregate(having, "epoch", [metric])
    return out


def plot_learning_curves(
    data: RunsLike,
    *,
    group_by: str | Sequence[str] | None = AUTO,
    metrics: Sequence[str] = DEFAULT_METRICS,
    ax: Axes | Sequence[Axes] | None = None,
    title: str | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Learning curves of a sweep: one panel per setting, mean over its runs +/- one std.

    Reads ``epochs/epoch`` and the metric arrays (``epochs/train_auc``, ``epochs/val_auc`` by
    default) and the config value at ``group_by``. In the paper's Figure 3 each panel holds ten
    runs of one view (``uni_cc``, ``uni_mlo``) trained with different learning rates: an earlier
    validation peak means the model overfits sooner.

    Runs are aligned on ``epoch``; the std is the sample std (ddof=1) over the runs that have
    the epoch, so a setting with one run shows no band.

    Args:
        data: runs or run store paths (one run works too).
        group_by: dotted config path(s) whose value splits runs into panels, e.g.
            ``experiment.variant``; ``None`` puts all runs in one panel; ``"auto"`` splits by
            every config value that differs between the runs (see :func:`resolve_group_by`).
        metrics: epoch metrics to draw in each panel; default train and validation AUC
            (malignant). Train is black and validation red (never a group's colour: CC is
            blue and MLO orange in every figure); further metric families (benign AUC) are
            dashed. AUC bands are clipped to [0, 1].
        ax: ``None`` for a new figure; else one axes per setting.
        title: figure title (suptitle of a new figure); a default describes the grouping.
        figsize: size in inches of a new figure; 4.2 x 3.6 per panel by default (a long
            title is wrapped to the figure's width).

    Returns:
        The figure drawn into.

    Raises:
        PlotError: a run lacks the ``group_by`` path, or a setting has none of the metrics.
    """
    runs = labelled_runs(data)
    if isinstance(metrics, str):
        metrics = [metrics]
    group_by = resolve_group_by(runs, group_by)
    settings = split_by(runs, group_by)
    n = len(settings)
    if ax is None:
        fig = new_figure(figsize or (4.2 * n, 3.6), ncols=n, sharey=True)
        axes = fig.axes
        if title is None:
            several = any(len(m) > 1 for m in settings.values())
            title = (
                "Learning curves"
                + (": mean ± std over runs" if several else "")
                + (f", by {_path_text(group_by)}" if group_by is not None else "")
            )
        set_suptitle(fig, title)
    else:
        axes = axes_list(ax, n, f"plot_learning_curves with {n} settings")
    for (key, members), a in zip(settings.items(), axes, strict=True):
        stats = learning_curve_stats(members, metrics)
        if not stats:
            raise PlotError(
                f"runs {[str(r.path) for _, r in members]} have none of the epoch metrics "
                f"{list(metrics)}; pick metrics they have (see Run.epochs())"
            )
        families = list(dict.fromkeys(curve_family(m) for m in metrics))
        epochs: list[float] = []
        for metric in metrics:
            if metric not in stats:
                continue
            s = stats[metric]
            epochs += list(s["epoch"])
            draw_series(
                a,
                s["epoch"],
                s[f"{metric}/mean"],
                std=s[f"{metric}/std"],
                color=curve_color(metric),
                label=display_name(metric),
                linestyle=FAMILY_LINESTYLES[
                    families.index(curve_family(metric)) % len(FAMILY_LINESTYLES)
                ],
                bounds=(0.0, 1.0) if "auc" in metric else None,
                **marker_kw(len(s)),
            )
        name = key if group_by is None else setting_name(members[0][1], group_by)
        set_title(a, f"{name} (n={len(members)} run{'s' if len(members) != 1 else ''})")
        a.set_xlabel("epoch")
        integer_x_axis(a, epochs)
        a.grid(True, alpha=0.3)
        a.legend()
    axes[0].set_ylabel(_ylabel(metrics))
    if ax is not None and title is not None:
        set_title(axes[0], title)
    return root_figure(axes[0])


def _path_text(group_by: str | Sequence[str]) -> str:
    return group_by if isinstance(group_by, str) else " + ".join(group_by)


def _ylabel(metrics: Sequence[str]) -> str:
    if all("auc" in m for m in metrics):
        return "AUC"
    if all("loss" in m for m in metrics):
        return "loss"
    return "value"

"""Distributions of the per-component learning rates of a Split Learning Rates sweep (Fig. 8)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ._data import PlotError, RunsLike, config_value, labelled_runs, path_of
from ._style import (
    axes_list,
    display_name,
    group_colors,
    new_figure,
    root_figure,
    set_suptitle,
)

DEFAULT_PATH = "experiment.split_lr"
"""Where the sampled rates live: ``{"cc": lr, "mlo": lr, "shared": lr}``."""


def split_learning_rates(
    runs: Sequence[tuple[str, Any]], path: str = DEFAULT_PATH
) -> dict[str, np.ndarray]:
    """Component -> the learning rates of every run that has ``path`` in its config.

    Runs without ``path`` (not Split Learning Rates runs) are skipped.

    Raises:
        PlotError: no run has ``path``, or a value there is not a mapping of positive numbers
            (naming the run and the component).
    """
    missing = object()
    rates: dict[str, list[float]] = {}
    for _, run in runs:
        value = config_value(run, path, missing)
        if value is missing:
            continue
        if not isinstance(value, Mapping) or not value:
            raise PlotError(
                f"run '{path_of(run)}' config {path} must map component -> learning rate "
                f"(e.g. {{'cc': 1e-4, 'mlo': 1e-4, 'shared': 1e-4}}), got {value!r}"
            )
        for component, lr in value.items():
            try:
                lr = float(lr)
            except (TypeError, ValueError):
                lr = math.nan
            if not (math.isfinite(lr) and lr > 0):
                raise PlotError(
                    f"run '{path_of(run)}' config {path}.{component} must be a positive "
                    f"learning rate, got {value[component]!r}"
                )
            rates.setdefault(str(component), []).append(lr)
    if not rates:
        raise PlotError(
            f"none of the runs {[path_of(r) for _, r in runs]} has config '{path}'; "
            "learning-rate distributions need Split Learning Rates runs"
        )
    return {k: np.asarray(v, dtype=np.float64) for k, v in rates.items()}


def log_bins(values: Sequence[np.ndarray], bins: int) -> np.ndarray:
    """``bins + 1`` log-spaced edges covering all values (one decade wide if all are equal)."""
    flat = np.concatenate([np.asarray(v, dtype=np.float64) for v in values])
    lo, hi = math.log10(flat.min()), math.log10(flat.max())
    if hi - lo < 1e-9:
        return np.logspace(lo - 0.5, hi + 0.5, int(bins) + 1)
    edges = np.logspace(lo, hi, int(bins) + 1)
    edges[0], edges[-1] = flat.min(), flat.max()  # 10**log10(x) may miss x by one ulp
    return edges


def plot_lr_distribution(
    data: RunsLike,
    *,
    path: str = DEFAULT_PATH,
    components: Sequence[str] | None = None,
    bins: int = 12,
    ax: Axes | Sequence[Axes] | None = None,
    title: str | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Histograms of the learning rate each model component was trained with, log x axis.

    Reads the config value at ``path`` of every run (``experiment.split_lr`` by default,
    ``{"cc": lr, "mlo": lr, "shared": lr}``); runs without it are skipped. In the paper each
    component's rate is ``lr * 10**alpha`` with ``alpha ~ U[-1, 1]``, so the histograms should
    look flat over two decades around the base rate.

    All components share the same log-spaced bin edges, so bar heights compare directly.

    Args:
        data: runs or run store paths.
        path: dotted config path of the per-component rates.
        components: components to draw, in this order; all found by default.
        bins: number of log-spaced bins.
        ax: ``None`` for one panel per component; one axes to overlay them; or one axes per
            component.
        title: figure title; a default counts the runs.
        figsize: size in inches of a new figure; 3.6 x 3.2 per panel by default.

    Returns:
        The figure drawn into.

    Raises:
        PlotError: no run has ``path``, a bad rate, an unknown component, or ``bins < 1``.
    """
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise PlotError(f"bins must be a whole number >= 1, got {bins!r}")
    runs = labelled_runs(data)
    rates = split_learning_rates(runs, path)
    if components is None:
        components = list(rates)
    unknown = [c for c in components if c not in rates]
    if unknown:
        raise PlotError(f"components {unknown} are not in config '{path}'; found {list(rates)}")
    edges = log_bins([rates[c] for c in components], bins)
    colors = group_colors(components)
    n = len(components)
    if ax is None:
        fig = new_figure(figsize or (3.6 * n, 3.2), ncols=n, sharex=True, sharey=True)
        axes = fig.axes
    else:
        given = [ax] if isinstance(ax, Axes) else list(ax)
        axes = given * n if len(given) == 1 else axes_list(given, n, "plot_lr_distribution")
    overlay = len({id(a) for a in axes}) == 1
    for c, a in zip(components, axes, strict=True):
        a.hist(
            rates[c],
            bins=edges,
            color=colors[c],
            alpha=0.6 if overlay else 0.85,
            edgecolor="white",
            label=f"{display_name(c)} (n={len(rates[c])})",
        )
        a.set_xscale("log")
        a.set_xlabel("learning rate")
        if not overlay:
            a.set_title(f"η of {display_name(c)}")
        a.grid(True, alpha=0.3)
        a.legend()
    axes[0].set_ylabel("runs")
    n_runs = max(len(v) for v in rates.values())
    text = title or f"Per-component learning rates of {n_runs} Split Learning Rates run(s)"
    fig = root_figure(axes[0])
    if ax is None:
        set_suptitle(fig, text)
    elif overlay:
        axes[0].set_title(text)
    return fig

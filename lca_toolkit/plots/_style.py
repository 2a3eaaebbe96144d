"""Colours, display names, figure creation and saving shared by every plot.

Colours are fixed per group so that the same group looks the same in every figure: ``cc`` is
``tab:blue`` and ``mlo`` is ``tab:orange`` as in Wu et al. (MIDL 2020), ``shared`` green,
``column`` purple and ``bn_buffers`` grey. Any other group name gets a colour from
:data:`OTHER_COLORS` picked by a stable hash of the name, so it keeps its colour across runs
and figures (moving on to the next free colour only if two groups of one figure collide).
"""

from __future__ import annotations

import math
import os
import textwrap
import zlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ._data import PlotError, config_value, setting_key

GROUP_COLORS: dict[str, str] = {
    "cc": "tab:blue",
    "mlo": "tab:orange",
    "shared": "tab:green",
    "column": "tab:purple",
    "bn_buffers": "tab:gray",
}
"""Fixed colours of the groups the mammography models use."""

OTHER_COLORS: tuple[str, ...] = (
    "tab:red",
    "tab:brown",
    "tab:pink",
    "tab:olive",
    "tab:cyan",
    "#1b3a6b",
    "#8c6d00",
    "#5c0f2e",
)
"""Colours for any other group name, chosen by a stable hash of the name."""

SPLIT_COLORS: tuple[tuple[str, str], ...] = (
    ("train_subset_", "tab:brown"),
    ("val_part_", "tab:pink"),
    ("train_", "black"),
    ("val_", "tab:red"),
)
"""Learning-curve colour by the metric's split prefix (the first matching prefix wins): train
black, validation red, never a group's colour (CC is blue and MLO orange in every figure).
A metric with none of the prefixes is drawn in :data:`OTHER_CURVE_COLOR`."""

OTHER_CURVE_COLOR = "tab:olive"

FAMILY_LINESTYLES: tuple[str, ...] = ("-", "--", "-.", ":")
"""Learning-curve line styles of the metric families of a panel (AUC, benign AUC, loss), in
order: ``train_auc`` and ``val_auc`` are solid, ``train_auc_benign`` and ``val_auc_benign``
dashed."""


DISPLAY_NAMES: dict[str, str] = {
    # groups
    "cc": "CC",
    "mlo": "MLO",
    "shared": "shared",
    "column": "shared column",
    "bn_buffers": "BN statistics",
    # experiment.variant
    "uni_cc": "uni-view CC",
    "uni_mlo": "uni-view MLO",
    "joint": "Joint ResNet",
    "split": "Split ResNet",
    # experiment.regularizer
    "none": "no regulariser",
    "pretraining": "+ Pretraining",
    "modality_dropout": "+ Modality Dropout",
    "split_lr": "+ Split Learning Rates",
    "gradient_blending": "+ Gradient Blending",
    # epoch metrics
    "train_auc": "train AUC",
    "val_auc": "validation AUC",
    "train_auc_benign": "train AUC (benign)",
    "val_auc_benign": "validation AUC (benign)",
    "train_loss": "train loss",
    "train_loss_last": "train loss (last batch)",
    "val_loss": "validation loss",
}
"""Readable names of known group names, config values and metrics; others are shown as-is."""

SETTING_NAMES: dict[str, dict[str, str]] = {
    "experiment.variant": {"shared": "Shared ResNet"},
}
"""Names that depend on the config path (``shared`` is a group *and* a model variant)."""

FORMATS: tuple[str, ...] = ("png", "pdf", "svg")
"""Output formats, chosen by the file suffix or an explicit ``format``."""

DPI: int = 150
"""Resolution of saved raster images: a 7 x 4 inch figure is 1050 x 600 pixels."""

BAND_ALPHA: float = 0.2
"""Opacity of the +/- std bands."""

RAW_ALPHA: float = 0.25
"""Opacity of the unsmoothed series drawn under a smoothed one."""


def display_name(value: object, path: str | None = None) -> str:
    """The readable name of a group, metric or config value (``uni_cc`` -> ``uni-view CC``).

    Args:
        value: the raw name or config value.
        path: the dotted config path the value came from, for names that depend on it.
    """
    text = str(value)
    if path is not None and text in SETTING_NAMES.get(path, {}):
        return SETTING_NAMES[path][text]
    return DISPLAY_NAMES.get(text, text)


def setting_name(run: Any, paths: str | Sequence[str]) -> str:
    """The readable name of the setting ``run`` belongs to, under the grouping ``paths``.

    A value with a readable name (:func:`display_name`: ``uni_cc`` -> ``uni-view CC``) is shown
    by it; any other as ``key=value`` with the path's last key and floats to 3 significant
    digits (``lr=0.000123``), joined by ``", "`` for several paths.
    """
    paths = [paths] if isinstance(paths, str) else list(paths)
    parts = []
    for path in paths:
        raw = setting_key(config_value(run, path))
        shown = display_name(raw, path)
        if shown == raw:
            value = config_value(run, path)
            if isinstance(value, float) and not isinstance(value, bool):
                shown = f"{value:.3g}"
            shown = f"{path.rsplit('.', 1)[-1]}={shown}"
        parts.append(shown)
    return ", ".join(parts)


def wrapped(text: str, width_in: float, fontsize: float = 12.0) -> str:
    """``text`` broken into lines that fit ``width_in`` inches at ``fontsize`` points.

    Matplotlib centres a long title and cuts it at both edges of the figure; a character of
    the default sans-serif font is about 0.55 of the font size wide, so that many fit a line.
    """
    chars = max(12, int(width_in * 72 / (0.55 * fontsize)))
    return "\n".join(textwrap.wrap(text, chars, break_long_words=False)) or text


def set_suptitle(fig: Figure, text: str) -> None:
    """The figure's title, wrapped to its width (:func:`wrapped`)."""
    fig.suptitle(wrapped(text, fig.get_figwidth(), 12.0), fontsize=12.0)


def set_title(ax: Axes, text: str) -> None:
    """An axes' title, wrapped to the axes' width (:func:`wrapped`)."""
    fig = root_figure(ax)
    width = fig.get_figwidth() * ax.get_position().width
    ax.set_title(wrapped(text, width, 11.0), fontsize=11.0)


def integer_x_axis(ax: Axes, x: Iterable[float]) -> None:
    """Whole-number ticks on an x axis of epochs, at least one unit wide.

    A single epoch would otherwise get an axis of +/- 5% around it, ticked in fractions that
    overlap (0.945, 0.960, ...).
    """
    values = [float(v) for v in x if math.isfinite(float(v))]
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins="auto", min_n_ticks=1))
    if values and max(values) - min(values) < 2:
        ax.set_xlim(min(values) - 1, max(values) + 1)


def curve_color(metric: str) -> str:
    """The colour of a learning-curve metric, by its split (:data:`SPLIT_COLORS`)."""
    for prefix, color in SPLIT_COLORS:
        if metric.startswith(prefix):
            return color
    return OTHER_CURVE_COLOR


def curve_family(metric: str) -> str:
    """The metric without its split prefix: ``val_auc`` and ``train_auc`` are one family."""
    for prefix, _ in SPLIT_COLORS:
        if metric.startswith(prefix):
            return metric[len(prefix) :]
    return metric


def group_colors(groups: Iterable[str]) -> dict[str, str]:
    """A colour per group: the fixed ones first, others by a stable hash of the name.

    Two unknown groups of the same figure whose hashes collide get different colours (the
    second takes the next free one), so a figure never shows two groups in one colour while
    there are free colours left.
    """
    out: dict[str, str] = {}
    used: set[str] = set()
    names = list(groups)
    for g in names:
        if g in GROUP_COLORS:
            out[g] = GROUP_COLORS[g]
            used.add(out[g])
    for g in names:
        if g in out:
            continue
        start = zlib.crc32(g.encode("utf-8")) % len(OTHER_COLORS)
        for k in range(len(OTHER_COLORS)):
            color = OTHER_COLORS[(start + k) % len(OTHER_COLORS)]
            if color not in used:
                break
        else:
            color = OTHER_COLORS[start]
        out[g] = color
        used.add(color)
    return out


def new_figure(figsize: tuple[float, float], nrows: int = 1, ncols: int = 1, **kw) -> Figure:
    """A pyplot-free figure (no global state) with a constrained layout and a grid of axes.

    Raster files saved from it are exactly ``figsize * DPI`` pixels (no tight bounding box).
    """
    fig = Figure(figsize=figsize, layout="constrained")
    fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig


def axes_list(ax: Axes | Sequence[Axes], n: int, what: str) -> list[Axes]:
    """``ax`` as a list of ``n`` axes; a single Axes counts as one.

    Raises:
        PlotError: the number of axes is not ``n``.
    """
    axes = [ax] if isinstance(ax, Axes) else list(ax)
    if len(axes) != n:
        raise PlotError(f"{what} needs {n} axes, got {len(axes)}; pass ax=None for a new figure")
    return axes


def output_path(path: str | os.PathLike[str], format: str | None = None) -> tuple[Path, str]:
    """Resolve the file and format of a figure: ``format`` or the suffix, ``png`` by default.

    Raises:
        PlotError: an unknown format, or a suffix that contradicts ``format``.
    """
    path = Path(path)
    suffix = path.suffix.lower().lstrip(".")
    if format is not None:
        fmt = format.lower().lstrip(".")
        if fmt not in FORMATS:
            raise PlotError(f"format must be one of {list(FORMATS)}, got {format!r}")
        if suffix in FORMATS and suffix != fmt:
            raise PlotError(
                f"output '{path}' has suffix '.{suffix}' but format {fmt!r} was asked for; "
                f"use '{path.with_suffix('.' + fmt)}' or drop the format"
            )
        return (path if suffix == fmt else path.with_name(path.name + "." + fmt)), fmt
    if suffix in FORMATS:
        return path, suffix
    if suffix:
        raise PlotError(
            f"output '{path}' has suffix '.{suffix}'; expected one of "
            f"{['.' + f for f in FORMATS]} (or pass format=)"
        )
    return path.with_name(path.name + ".png"), "png"


def save_figure(
    fig: Figure,
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    dpi: int = DPI,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Save ``fig`` as PNG, PDF or SVG, chosen by ``format`` or the suffix of ``path``.

    Args:
        fig: the figure a plot function returned.
        path: output file; a missing suffix is added from ``format`` (``png`` by default).
        format: ``png``, ``pdf`` or ``svg``.
        dpi: raster resolution (PNG size in pixels is ``figsize * dpi``).
        metadata: extra file metadata (title, description).

    Returns:
        The path written.
    """
    out, fmt = output_path(path, format)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format=fmt, dpi=dpi, metadata=dict(metadata or {}) or None)
    return out


def root_figure(ax: Axes) -> Figure:
    """The top-level figure of an axes (also when it sits in a SubFigure)."""
    fig = ax.figure
    while not isinstance(fig, Figure):
        fig = fig.figure
    return fig


def draw_column(
    ax: Axes,
    frames: list,
    agg,
    column: str,
    x: str,
    **kw,
) -> None:
    """Draw ``column`` of one run (``agg is None``) or the mean +/- std of several (``agg``)."""
    if agg is None:
        draw_series(ax, frames[0][x], frames[0][column], **kw)
    else:
        draw_series(ax, agg[x], agg[f"{column}/mean"], std=agg[f"{column}/std"], **kw)


def draw_series(
    ax: Axes,
    x: np.ndarray,
    y: np.ndarray,
    *,
    color: str,
    label: str,
    std: np.ndarray | None = None,
    bounds: tuple[float, float] | None = None,
    **line_kw,
) -> None:
    """One line, and a mean +/- std band in the same colour when ``std`` is given.

    The band is drawn only where ``std`` is finite (a single run has no band), and clipped to
    ``bounds`` where the quantity cannot leave them (an AUC stays in [0, 1]).
    """
    x = np.asarray(x)
    y = np.asarray(y, dtype=np.float64)
    ax.plot(x, y, color=color, label=label, **line_kw)
    if std is not None:
        std = np.asarray(std, dtype=np.float64)
        if (np.isfinite(std) & np.isfinite(y)).any():
            draw_band(ax, x, y, std, color=color, label=f"_{label} ± std", bounds=bounds)


def draw_band(
    ax: Axes,
    x: np.ndarray,
    y: np.ndarray,
    half: np.ndarray,
    *,
    color: str,
    label: str,
    bounds: tuple[float, float] | None = None,
) -> None:
    """A translucent ``y +/- half`` band in ``color``, drawn where both are finite and clipped
    to ``bounds`` (``None``: not clipped)."""
    where = np.isfinite(half) & np.isfinite(y)
    low, high = y - half, y + half
    if bounds is not None:
        low, high = np.clip(low, *bounds), np.clip(high, *bounds)
    ax.fill_between(
        x,
        low,
        high,
        where=where,
        color=color,
        alpha=BAND_ALPHA,
        linewidth=0,
        label=label,
    )


def marker_kw(n_points: int) -> dict[str, object]:
    """Small markers for sparse series (LCA intervals, epochs), none for dense ones."""
    return {"marker": "o", "markersize": 3} if n_points <= 60 else {}

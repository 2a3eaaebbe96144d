"""Colours, display names, figure creation and saving shared by every plot.

Colours are fixed per group so that the same group looks the same in every figure: ``cc`` is
``tab:blue`` and ``mlo`` is ``tab:orange`` as in Wu et al. (MIDL 2020), ``shared`` green,
``column`` purple and ``bn_buffers`` grey. Any other group name gets a colour from
:data:`OTHER_COLORS` picked by a stable hash of the name, so it keeps its colour across runs
and figures (moving on to the next free colour only if two groups of one figure collide).
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ._data import PlotError

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

METRIC_COLORS: tuple[str, ...] = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")
"""Learning-curve colours in metric order: train blue, validation orange as in the paper."""

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
    **line_kw,
) -> None:
    """One line, and a mean +/- std band in the same colour when ``std`` is given.

    The band is drawn only where ``std`` is finite (a single run has no band).
    """
    x = np.asarray(x)
    y = np.asarray(y, dtype=np.float64)
    ax.plot(x, y, color=color, label=label, **line_kw)
    if std is not None:
        std = np.asarray(std, dtype=np.float64)
        if (np.isfinite(std) & np.isfinite(y)).any():
            draw_band(ax, x, y, std, color=color, label=f"_{label} ± std")


def draw_band(
    ax: Axes, x: np.ndarray, y: np.ndarray, half: np.ndarray, *, color: str, label: str
) -> None:
    """A translucent ``y +/- half`` band in ``color``, drawn where both are finite."""
    where = np.isfinite(half) & np.isfinite(y)
    ax.fill_between(
        x,
        y - half,
        y + half,
        where=where,
        color=color,
        alpha=BAND_ALPHA,
        linewidth=0,
        label=label,
    )


def marker_kw(n_points: int) -> dict[str, object]:
    """Small markers for sparse series (LCA intervals, epochs), none for dense ones."""
    return {"marker": "o", "markersize": 3} if n_points <= 60 else {}

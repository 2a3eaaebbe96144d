"""Every kind of figure or table drawn from run stores, in one registry.

Each :class:`PlotKind` says how it is drawn, what it needs from the stores (steps, LCA
intervals, epoch metrics, Split Learning Rates config, test predictions), which file stem it is
written to, and whether several runs are split into settings drawn as mean +/- std. A front end
(``lca-plot``) reads :data:`PLOT_KINDS` instead of keeping its own per-kind tables, so adding a
kind, or changing what it needs, happens here once::

    from lca_toolkit import open_runs
    from lca_toolkit.plots import PLOT_KINDS, PlotRequest, save_drawing

    runs, request = open_runs(["runs/a.zarr", "runs/b.zarr"]), PlotRequest(smooth=20)
    kind = PLOT_KINDS["grad-norm"]
    if (reason := kind.missing(runs, request)) is None:
        for drawing in kind.drawings(runs, request):
            save_drawing(drawing, f"figs/{kind.stem}_{drawing.suffix or 'all'}", format="png")
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import pandas as pd
from matplotlib.figure import Figure

from ..learning_speed import has_param_norm
from ._data import NO_LCA, config_value, split_by
from ._style import DPI, save_figure, setting_name
from .curves import AUTO, DEFAULT_METRICS, plot_learning_curves, resolve_group_by
from .grad_norm import plot_grad_norm
from .lca import plot_cumulative_lca
from .learning_speed import plot_learning_speed
from .lr_dist import DEFAULT_PATH as SPLIT_LR_PATH
from .lr_dist import plot_lr_distribution
from .residual import plot_residual
from .tables import PREDICTIONS, RESULT_KEYS, auc_table, write_auc_table

if TYPE_CHECKING:
    from ..store import Run, Runs

LOSS_METRICS: tuple[str, ...] = ("train_loss", "val_loss")
"""Learning curves drawn when the stores have no AUC metrics (runs of a user's own job)."""


@dataclass(frozen=True)
class PlotRequest:
    """What the caller asks of every kind; each kind reads only the fields it uses."""

    groups: Sequence[str] | None = None
    """grad-norm, lca, learning-speed: the parameter groups to draw (``None``: all)."""
    pair: tuple[str, str] | None = None
    """learning-speed: the two groups of the log-ratio panel (``None``: each against the first)."""
    smooth: int | None = None
    """grad-norm: smoothing window in steps."""
    smooth_kind: str = "ema"
    """grad-norm: ``ema`` or ``rolling``."""
    log_y: bool = False
    """grad-norm: logarithmic y axis."""
    metrics: Sequence[str] | None = None
    """curves: epoch metrics to draw (``None``: see :func:`curve_metrics`)."""
    group_by: str | Sequence[str] | None = AUTO
    """Dotted config path(s) splitting runs into settings; :data:`AUTO` or ``None`` (all runs)."""
    per_run: bool = False
    """Per-setting kinds: one figure per store instead of the mean over a setting's runs."""


@dataclass(frozen=True)
class PlotTable:
    """A table kind's result: written as Markdown and CSV, not as an image."""

    frame: pd.DataFrame
    title: str


@dataclass(frozen=True)
class Drawing:
    """One output of a kind; ``suffix`` names its setting (``None``: the kind's stem alone)."""

    content: Figure | PlotTable
    suffix: str | None = None


Need = Callable[["Runs", PlotRequest], "str | None"]
"""Why the stores lack something a kind needs, or ``None`` when they have it."""

Draw = Callable[[Any, PlotRequest, "str | None"], "Figure | PlotTable"]
"""Draw runs (one setting's, or all of them) with the request and an optional title."""


def curve_metrics(runs: Runs, metrics: Sequence[str] | None) -> list[str]:
    """``metrics``, else what the runs have: train/validation AUC, else train/validation loss,
    else every epoch metric named ``*loss*`` (``train_loss_last`` of ``lca-run job``), else
    every epoch metric, in the order the stores list them."""
    if metrics:
        return list(metrics)
    have = _epoch_metrics(runs)
    for candidates in (DEFAULT_METRICS, LOSS_METRICS):
        if have & set(candidates):
            return list(candidates)
    ordered = list(dict.fromkeys(m for r in runs for m in r.attrs.get("epoch_metrics", [])))
    losses = [m for m in ordered if "loss" in m]
    return losses or ordered or list(DEFAULT_METRICS)


def _epoch_metrics(runs: Runs) -> set[str]:
    return {m for r in runs for m in r.attrs.get("epoch_metrics", [])}


def _lacking(runs: Runs, has: Callable[[Run], bool], what: str) -> str | None:
    bad = [str(r.path) for r in runs if not has(r)]
    return f"{bad} {what}" if bad else None


def _need_steps(runs: Runs, request: PlotRequest) -> str | None:
    return _lacking(runs, lambda r: r.rows.get("steps", 0) > 0, "have no steps recorded")


def _need_lca(runs: Runs, request: PlotRequest) -> str | None:
    return _lacking(runs, lambda r: r.has_lca, f"have {NO_LCA}")


def _need_param_norm(runs: Runs, request: PlotRequest) -> str | None:
    return _lacking(
        runs,
        has_param_norm,
        "have no steps/param_norm (written before lca-toolkit recorded it)",
    )


def _need_epochs(runs: Runs, request: PlotRequest) -> str | None:
    return _lacking(runs, lambda r: r.rows.get("epochs", 0) > 0, "have no epoch metrics")


def _need_epoch_metrics(runs: Runs, request: PlotRequest) -> str | None:
    metrics = curve_metrics(runs, request.metrics)
    if not _epoch_metrics(runs) & set(metrics):
        return f"no store has the epoch metrics {metrics}"
    return None


def _need_split_lr(runs: Runs, request: PlotRequest) -> str | None:
    missing = object()
    if any(config_value(r, SPLIT_LR_PATH, missing) is not missing for r in runs):
        return None
    return f"no store has config '{SPLIT_LR_PATH}' (Split Learning Rates runs)"


def _need_test_results(runs: Runs, request: PlotRequest) -> str | None:
    return _lacking(
        runs,
        lambda r: (
            PREDICTIONS in r.tables or RESULT_KEYS["malignant"] in (r.attrs.get("results") or {})
        ),
        "have neither test predictions nor stored test results",
    )


NEEDS: Mapping[str, Need] = MappingProxyType(
    {
        "steps": _need_steps,
        "lca": _need_lca,
        "param-norm": _need_param_norm,
        "epochs": _need_epochs,
        "epoch-metrics": _need_epoch_metrics,
        "split-lr": _need_split_lr,
        "test-results": _need_test_results,
    }
)
"""What a kind can need from the stores, each with the check that says why it is missing."""


@dataclass(frozen=True)
class PlotKind:
    """One kind of output: how it is drawn, what it needs, where it goes."""

    name: str
    """What ``lca-plot --kind`` calls it."""
    draw: Draw
    """The plot function, given one setting's runs (per-setting kinds) or all runs."""
    needs: tuple[str, ...]
    """Keys of :data:`NEEDS`, checked in order; the first missing one is the reason."""
    stem: str
    """Output file name without suffix or extension, e.g. ``grad_norm``."""
    help: str
    """One line saying what the kind shows."""
    title: str | None = None
    """Per-setting kinds: figure title, followed by `` — <setting>``."""
    per_setting: bool = False
    """Several runs: one figure per setting (mean +/- std), or per store with ``per_run``."""
    run_figure: bool = False
    """One of a run's standard figures (``save_run_figures``, ``lca-run mammo --figures``)."""

    def __post_init__(self) -> None:
        unknown = [n for n in self.needs if n not in NEEDS]
        if unknown:
            raise ValueError(f"plot kind {self.name!r}: unknown needs {unknown}; see NEEDS")
        if self.per_setting and not self.title:
            raise ValueError(f"plot kind {self.name!r}: a per-setting kind needs a title")

    def missing(self, runs: Runs, request: PlotRequest) -> str | None:
        """Why ``runs`` cannot make this kind, or ``None`` when they can."""
        for need in self.needs:
            reason = NEEDS[need](runs, request)
            if reason is not None:
                return reason
        return None

    def drawings(self, runs: Runs, request: PlotRequest) -> Iterator[Drawing]:
        """Draw the kind's outputs one at a time (one per setting for per-setting kinds)."""
        if not self.per_setting:
            yield Drawing(self.draw(runs, request, None))
            return
        for suffix, name, members in _settings(runs, request):
            who = name if len(members) == 1 else f"{name} (mean ± std, {len(members)} runs)"
            yield Drawing(self.draw(members, request, f"{self.title} — {who}"), suffix)


def _settings(runs: Runs, request: PlotRequest) -> list[tuple[str | None, str, list[Run]]]:
    """(file suffix, readable name, runs) of every figure of a per-setting kind."""
    pairs = list(zip(runs.labels, runs, strict=True))
    if request.per_run or len(runs) == 1:
        return [(label if len(runs) > 1 else None, label, [run]) for label, run in pairs]
    group_by = resolve_group_by(pairs, request.group_by)
    parts = split_by(pairs, group_by)
    out = []
    for key, members in parts.items():
        name = key if group_by is None else setting_name(members[0][1], group_by)
        out.append((key if len(parts) > 1 else None, name, [run for _, run in members]))
    return out


def save_drawing(
    drawing: Drawing, path: str | Path, *, format: str | None = None, dpi: int = DPI
) -> list[Path]:
    """Write a drawing at ``path`` (no extension): a figure as ``format``, a table as .md and .csv.

    Returns:
        The files written.
    """
    content = drawing.content
    if isinstance(content, PlotTable):
        return list(write_auc_table(content.frame, path, title=content.title))
    return [save_figure(content, path, format=format, dpi=dpi)]


def _draw_grad_norm(runs: Sequence[Run], request: PlotRequest, title: str | None) -> Figure:
    return plot_grad_norm(
        runs,
        groups=request.groups,
        smooth_window=request.smooth,
        smooth_kind=request.smooth_kind,
        log_y=request.log_y,
        title=title,
    )


def _draw_lca(runs: Sequence[Run], request: PlotRequest, title: str | None) -> Figure:
    return plot_cumulative_lca(runs, groups=request.groups, title=title)


def _draw_learning_speed(runs: Sequence[Run], request: PlotRequest, title: str | None) -> Figure:
    return plot_learning_speed(runs, groups=request.groups, pair=request.pair, title=title)


def _draw_residual(runs: Sequence[Run], request: PlotRequest, title: str | None) -> Figure:
    return plot_residual(runs, title=title)


def _draw_curves(runs: Runs, request: PlotRequest, title: str | None) -> Figure:
    return plot_learning_curves(
        runs, group_by=request.group_by, metrics=curve_metrics(runs, request.metrics)
    )


def _draw_lr_dist(runs: Runs, request: PlotRequest, title: str | None) -> Figure:
    return plot_lr_distribution(runs)


def _draw_table(runs: Runs, request: PlotRequest, title: str | None) -> PlotTable:
    group_by = resolve_group_by(list(zip(runs.labels, runs, strict=True)), request.group_by)
    frame = auc_table(runs, group_by=group_by)
    if group_by is None:
        what = "all runs"
    else:
        what = group_by if isinstance(group_by, str) else " + ".join(group_by)
    return PlotTable(frame, f"Test AUC by {what}")


PLOT_KINDS: Mapping[str, PlotKind] = MappingProxyType(
    {
        kind.name: kind
        for kind in (
            PlotKind(
                "grad-norm",
                _draw_grad_norm,
                needs=("steps",),
                stem="grad_norm",
                run_figure=True,
                help="Gradient norm of each parameter group against the step.",
                title="Gradient norm per group",
                per_setting=True,
            ),
            PlotKind(
                "lca",
                _draw_lca,
                needs=("lca",),
                stem="lca",
                run_figure=True,
                help="Cumulative loss change allocated to each parameter group.",
                title="Cumulative LCA per group",
                per_setting=True,
            ),
            PlotKind(
                "residual",
                _draw_residual,
                needs=("lca",),
                stem="residual",
                run_figure=True,
                help="Actual loss change against the summed LCA, and the residual, per interval.",
                title="LCA completeness per interval",
                per_setting=True,
            ),
            PlotKind(
                "learning-speed",
                _draw_learning_speed,
                needs=("steps", "param-norm"),
                stem="learning_speed",
                help="Cumulative ||g||^2/||theta||^2 per group and its log-ratio (Wu et al. 2022).",
                title="Conditional learning speed per group",
                per_setting=True,
            ),
            PlotKind(
                "curves",
                _draw_curves,
                needs=("epochs", "epoch-metrics"),
                stem="curves",
                help="Learning curves (AUC, else loss) against the epoch, mean +/- std per setting.",
            ),
            PlotKind(
                "lr-dist",
                _draw_lr_dist,
                needs=("split-lr",),
                stem="lr_dist",
                help="Distributions of the sampled Split Learning Rates per component.",
            ),
            PlotKind(
                "table",
                _draw_table,
                needs=("test-results",),
                stem="table",
                help="Test AUC per setting: mean and std over its runs, and their ensemble.",
            ),
        )
    }
)
"""Every kind, in the order ``lca-plot --kind all`` makes them."""

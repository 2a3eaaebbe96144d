"""A run's standard figures in one call (what ``lca-run mammo --figures`` writes).

Which figures those are is said once, in the plot-kind registry: every :data:`~.kinds.PLOT_KINDS`
entry flagged ``run_figure`` (today gradient norm, cumulative LCA and residual), drawn and named
as ``lca-plot`` draws and names it.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..store import Runs
from ._data import RunsLike, labelled_runs
from ._style import save_figure
from .kinds import PLOT_KINDS, PlotRequest


def save_run_figures(
    data: RunsLike,
    out_dir: str | os.PathLike[str],
    *,
    smooth_window: int | None = 20,
    format: str = "png",
) -> list[Path]:
    """Write every standard figure of a run that it has the data for, as ``<stem>.<format>``.

    A kind whose needs the run lacks is skipped, not an error: a run recorded without
    ``lca_every`` gets its gradient-norm figure and no LCA figures.

    Args:
        data: a run or its store path (several runs draw their mean +/- std).
        out_dir: the folder to write into; created if missing.
        smooth_window: gradient-norm smoothing window in steps (``None``: raw).
        format: file format and extension, e.g. ``png`` or ``pdf``.

    Returns:
        The files written, in registry order.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs = Runs([run for _, run in labelled_runs(data)])
    request = PlotRequest(smooth=smooth_window)
    written = []
    for kind in PLOT_KINDS.values():
        if kind.run_figure and kind.missing(runs, request) is None:
            figure = kind.draw(runs, request, None)
            written.append(save_figure(figure, out / f"{kind.stem}.{format}"))
    return written

"""The three per-group figures of one run in one call (what ``lca-run --figures`` writes)."""

from __future__ import annotations

import os
from pathlib import Path

from ._data import RunsLike
from ._style import save_figure
from .grad_norm import plot_grad_norm
from .lca import plot_cumulative_lca
from .residual import plot_residual


def save_run_figures(
    data: RunsLike,
    out_dir: str | os.PathLike[str],
    *,
    smooth_window: int | None = 20,
    format: str = "png",
) -> list[Path]:
    """Write ``grad_norm``, ``lca`` (cumulative, per group) and ``residual`` figures of a run.

    The LCA figures are skipped when the run has no LCA intervals.

    Returns:
        The files written, in that order.
    """
    from lca_toolkit.store import open_run

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run = open_run(data) if isinstance(data, (str, os.PathLike)) else data
    written = [
        save_figure(plot_grad_norm(run, smooth_window=smooth_window), out / f"grad_norm.{format}")
    ]
    if run.has_lca:
        written.append(save_figure(plot_cumulative_lca(run), out / f"lca.{format}"))
        written.append(save_figure(plot_residual(run), out / f"residual.{format}"))
    return written

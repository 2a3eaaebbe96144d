"""Figures and tables from run stores: per-group gradient norms, cumulative LCA, the LCA
residual, conditional learning speed, learning curves across runs, learning-rate distributions and test AUC tables.

Every plot takes data (a :class:`~lca_toolkit.store.Run`, a :class:`~lca_toolkit.store.Runs`,
or store path(s)) and an optional ``ax``, returns the matplotlib ``Figure``, and never touches
a model or optimizer. Several runs are drawn as their mean with a +/- one std band. Groups keep
their colour in every figure (``cc`` blue, ``mlo`` orange, ``shared`` green, ``column`` purple,
``bn_buffers`` grey)::

    from lca_toolkit.plots import plot_grad_norm, plot_cumulative_lca, save_figure

    fig = plot_grad_norm("runs/joint.zarr", smooth_window=50)
    save_figure(fig, "figs/grad_norm.pdf")

:data:`PLOT_KINDS` lists every kind of figure and table with what it needs from the stores;
front ends such as ``lca-plot`` draw from it.

Figures are created without pyplot (no global state); in a notebook, display the returned
figure or pass ``ax=`` from your own ``plt.subplots()``.
"""

from ._data import (
    SMOOTH_KINDS,
    PlotError,
    aggregate,
    config_value,
    differing_paths,
    labelled_runs,
    smooth,
    split_by,
)
from ._style import (
    DISPLAY_NAMES,
    FORMATS,
    GROUP_COLORS,
    display_name,
    group_colors,
    save_figure,
    setting_name,
)
from .curves import AUTO, learning_curve_stats, plot_learning_curves, resolve_group_by
from .grad_norm import plot_grad_norm
from .kinds import (
    NEEDS,
    PLOT_KINDS,
    Drawing,
    PlotKind,
    PlotRequest,
    PlotTable,
    curve_metrics,
    save_drawing,
)
from .lca import LCA_YLABEL, cumulative_lca, plot_cumulative_lca
from .learning_speed import plot_learning_speed
from .lr_dist import plot_lr_distribution, split_learning_rates
from .report import save_run_figures
from .residual import plot_residual, residual_frame
from .tables import (
    AucUndefinedWarning,
    MissingPredictionsWarning,
    auc_covariance,
    auc_table,
    ensemble_predictions,
    safe_auc,
    to_markdown,
    write_auc_table,
)

__all__ = [
    "save_run_figures",
    "AUTO",
    "NEEDS",
    "PLOT_KINDS",
    "Drawing",
    "PlotKind",
    "PlotRequest",
    "PlotTable",
    "curve_metrics",
    "save_drawing",
    "DISPLAY_NAMES",
    "FORMATS",
    "GROUP_COLORS",
    "LCA_YLABEL",
    "SMOOTH_KINDS",
    "AucUndefinedWarning",
    "MissingPredictionsWarning",
    "PlotError",
    "aggregate",
    "auc_covariance",
    "auc_table",
    "config_value",
    "cumulative_lca",
    "differing_paths",
    "display_name",
    "ensemble_predictions",
    "group_colors",
    "labelled_runs",
    "learning_curve_stats",
    "plot_cumulative_lca",
    "plot_grad_norm",
    "plot_learning_speed",
    "plot_learning_curves",
    "plot_lr_distribution",
    "plot_residual",
    "residual_frame",
    "resolve_group_by",
    "safe_auc",
    "save_figure",
    "setting_name",
    "smooth",
    "split_by",
    "split_learning_rates",
    "to_markdown",
    "write_auc_table",
]

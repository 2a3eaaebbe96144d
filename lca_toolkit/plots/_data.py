"""Turn what a user hands a plot (a Run, Runs, paths) into labelled runs and aligned frames.

Every plot accepts one run or several. Several runs are drawn as the mean over runs with a
+/- one standard deviation band (sample std, ``ddof=1``; NaN, so no band, for a single run),
aligned on the x column (step, interval end or epoch): a run that lacks a row at some x simply
does not count there.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from ..errors import LcaToolkitError, RunMismatchError
from ..store import Run, Runs, open_runs

RunsLike: TypeAlias = "Run | Runs | str | os.PathLike[str] | Sequence[Run | str | os.PathLike[str]]"
"""One run, several runs, or the path(s) of run stores."""

SMOOTH_KINDS: tuple[str, ...] = ("ema", "rolling")

_MISSING = object()


class PlotError(LcaToolkitError, ValueError):
    """The data handed to a plot or table cannot make it (no rows, missing metric, bad option)."""


NO_LCA = "no LCA intervals (recorded without lca_every)"
"""What a run without LCA lacks: the one wording of every LCA plot's refusal and of ``lca-plot``."""


def require_lca(run: Any) -> None:
    """Refuse, naming the store, a run without LCA intervals (``Run.has_lca``).

    Raises:
        PlotError: the run has no LCA intervals.
    """
    if not run.has_lca:
        raise PlotError(f"run '{path_of(run)}' has {NO_LCA}; nothing to plot")


def labelled_runs(data: Any) -> list[tuple[str, Any]]:
    """``(label, run)`` pairs of every run in ``data``, in the order given.

    Labels are those of :class:`~lca_toolkit.store.Runs`: the store's file name without suffix,
    with parent folders added where two runs would share a name.

    Args:
        data: a ``Run``, a ``Runs``, a path, or a sequence of runs and paths.

    Raises:
        StoreNotFoundError, SchemaVersionError: a path is not a readable run store.
        PlotError: ``data`` holds no run.
    """
    if isinstance(data, Runs):
        runs = data
    elif isinstance(data, (str, os.PathLike)):
        runs = open_runs([data], require_same_groups=False)
    elif isinstance(data, Sequence) or _is_run(data):
        items = [data] if _is_run(data) else list(data)
        if not items:
            raise PlotError("no runs given: pass a run, a Runs or the path(s) of run stores")
        opened = [x if _is_run(x) else Run(x) for x in items]
        runs = Runs(opened)
    else:
        raise PlotError(
            f"expected a Run, a Runs, or run store path(s), got {type(data).__name__}: {data!r}"
        )
    if len(runs) == 0:
        raise PlotError("no runs given: pass a run, a Runs or the path(s) of run stores")
    return list(zip(runs.labels, runs, strict=True))


def _is_run(x: Any) -> bool:
    return isinstance(x, Run) or (hasattr(x, "attrs") and hasattr(x, "path"))


def run_config(run: Any) -> dict[str, Any]:
    """The run's config (``Run.config``, or ``attrs["config"]`` for run-like objects)."""
    config = getattr(run, "config", None)
    if config is None:
        config = run.attrs.get("config") or {}
    return dict(config)


def config_value(run: Any, path: str, default: Any = _MISSING) -> Any:
    """The value at a dotted config path, ``experiment.variant`` -> ``config["experiment"]["variant"]``.

    A key that itself contains dots (``config["optim.lr"]``) is found too.

    Raises:
        PlotError: the path is missing and no ``default`` was given; names the run and the keys
            that exist at the level where the path broke off.
    """
    config = run_config(run)
    if path in config:
        return config[path]
    node: Any = config
    walked: list[str] = []
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            if default is not _MISSING:
                return default
            where = ".".join(walked) or "config"
            keys = sorted(node) if isinstance(node, Mapping) else type(node).__name__
            raise PlotError(
                f"run '{path_of(run)}' has no config value '{path}': {where} has keys "
                f"{keys}; pick another --group-by / config path"
            )
        node = node[part]
        walked.append(part)
    return node


def setting_key(value: Any) -> str:
    """A hashable, printable key for a config value (dicts and lists as compact JSON)."""
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


NOT_SETTINGS: frozenset[str] = frozenset(
    {
        "out",
        "seed",
        "sweep_seed",
        "device",
        "num_workers",
        "workers",
        "checkpoint_every",
        "feed",
        "synthetic_root",
        "data_root",
        "world_size",
        "pretrained",
        "n_epochs",
        "blend_estimation",
    }
)
"""Config keys that differ between runs of one setting (seeds, paths, machines, values derived
or estimated per run such as Gradient Blending's weights); the automatic grouping
(:func:`differing_paths`) never splits runs by a path that passes through one of them."""


def _leaves(node: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted path -> value of every leaf of a nested config (lists and tuples are leaves)."""
    if not isinstance(node, Mapping) or not node:
        return {prefix: node} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in node.items():
        out.update(_leaves(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def differing_paths(runs: Sequence[tuple[str, Any]]) -> list[str]:
    """The config paths whose values differ between runs: what makes them different settings.

    Only paths every run has count, and never those through a key of :data:`NOT_SETTINGS`
    (a sweep of two learning rates over three seeds is two settings, not six). Paths that split
    the runs exactly as another one does are kept (a learning rate and a model that differ
    together are both named), except the Tracker's own copies: ``tracker.lca.every`` is left
    out where ``experiment.record.lca_every`` already splits the runs that way.

    Returns:
        Dotted paths in config order, the ``tracker`` ones last; empty for one run or when
        every run has the same settings.
    """
    if len(runs) < 2:
        return []
    leaves = [_leaves(run_config(run)) for _, run in runs]
    common = [p for p in leaves[0] if all(p in other for other in leaves[1:])]
    common.sort(key=lambda p: p.startswith("tracker."))
    kept: list[str] = []
    partitions: set[tuple[int, ...]] = set()
    for path in common:
        if NOT_SETTINGS.intersection(path.split(".")):
            continue
        keys = [setting_key(leaf[path]) for leaf in leaves]
        if len(set(keys)) < 2:
            continue
        partition = tuple(keys.index(k) for k in keys)  # the runs' grouping, whatever the values
        if path.startswith("tracker.") and partition in partitions:
            continue
        partitions.add(partition)
        kept.append(path)
    return kept


def split_by(
    runs: Sequence[tuple[str, Any]], paths: str | Sequence[str] | None
) -> dict[str, list[tuple[str, Any]]]:
    """Group labelled runs by the value(s) at one or more config paths, in order of appearance.

    Args:
        runs: ``(label, run)`` pairs.
        paths: a dotted config path, several (the key joins their values with ``", "``), or
            ``None`` for one group ``"all runs"``.

    Raises:
        PlotError: a run lacks one of the paths.
    """
    if paths is None:
        return {"all runs": list(runs)}
    paths = [paths] if isinstance(paths, str) else list(paths)
    out: dict[str, list[tuple[str, Any]]] = {}
    for label, run in runs:
        key = ", ".join(setting_key(config_value(run, p)) for p in paths)
        out.setdefault(key, []).append((label, run))
    return out


def check_same_groups(runs: Sequence[tuple[str, Any]], kind: str) -> list[str]:
    """The group names shared by all runs, for plots that draw one series per group.

    Raises:
        RunMismatchError: two runs have different group names or order, naming both.
    """
    first = runs[0][1]
    for _, run in runs[1:]:
        if list(run.groups) != list(first.groups):
            raise RunMismatchError(
                f"the {kind} plot averages runs per group, but '{first.path}' has groups "
                f"{list(first.groups)} and '{run.path}' has {list(run.groups)}; plot them one "
                "at a time (--per-run) or split them by a config value (--group-by)"
            )
    return list(first.groups)


def path_of(run: Any) -> str:
    """The store path of a run, for messages."""
    return str(getattr(run, "path", run))


def smooth(values: pd.Series, window: int | None, kind: str = "ema") -> pd.Series:
    """Smooth a per-step series in step order.

    Args:
        values: the series (NaN at skipped steps).
        window: ``None`` or 1 for no smoothing. ``ema``: exponential moving average with span
            ``window`` (weight ``2 / (window + 1)`` on the newest value), bias-corrected at the
            start (pandas ``ewm(span=window, adjust=True, ignore_na=True)``) so the first
            points are not pulled towards zero. ``rolling``: mean of the trailing ``window``
            values (fewer at the start), NaN values left out.
        kind: ``ema`` or ``rolling``.

    Raises:
        PlotError: an unknown kind or a window below 1.
    """
    if kind not in SMOOTH_KINDS:
        raise PlotError(f"smooth_kind must be one of {list(SMOOTH_KINDS)}, got {kind!r}")
    if window is None or window == 1:
        return values
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise PlotError(f"smooth must be a whole number of steps >= 1, got {window!r}")
    if kind == "ema":
        return values.ewm(span=int(window), adjust=True, ignore_na=True).mean()
    return values.rolling(int(window), min_periods=1).mean()


def aggregate(frames: Sequence[pd.DataFrame], x: str, columns: Sequence[str]) -> pd.DataFrame:
    """Mean, sample std (ddof=1) and count over runs of each column, aligned on ``x``.

    Args:
        frames: one frame per run, each with column ``x`` and ``columns``.
        x: the alignment column (``step``, ``end_step``, ``epoch``).
        columns: value columns to aggregate.

    Returns:
        A frame sorted by ``x`` with ``x`` and ``<column>/mean``, ``<column>/std``,
        ``<column>/n`` (runs with a non-NaN value there).
    """
    stacked = pd.concat([f[[x, *columns]] for f in frames], ignore_index=True)
    grouped = stacked.groupby(x, sort=True)[list(columns)]
    mean, std, n = grouped.mean(), grouped.std(ddof=1), grouped.count()
    out = pd.DataFrame({x: mean.index.to_numpy()})
    for c in columns:
        out[f"{c}/mean"] = mean[c].to_numpy()
        out[f"{c}/std"] = std[c].to_numpy()
        out[f"{c}/n"] = n[c].to_numpy()
    return out


def all_nan(values: pd.Series | np.ndarray) -> bool:
    """True when a series has no finite value (``bn_buffers`` gradient norms)."""
    arr = np.asarray(values, dtype=np.float64)
    return arr.size == 0 or not np.isfinite(arr).any()


def select_groups(groups: Sequence[str] | str | None, all_groups: list[str], run: Any) -> list[str]:
    """The requested groups in the requested order (all when ``None``), checked to exist.

    Raises:
        PlotError: a requested group is not in the run, naming the run and its groups.
    """
    if groups is None:
        return list(all_groups)
    if isinstance(groups, str):
        groups = [groups]
    unknown = [g for g in groups if g not in all_groups]
    if unknown:
        raise PlotError(f"groups {unknown} are not in run '{path_of(run)}'; it has {all_groups}")
    return list(groups)

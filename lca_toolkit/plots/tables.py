"""Test AUC tables: mean +/- std over seeds and the ensemble of the seeds (Tables 1-3 and 5).

Each run of a setting (a value of ``group_by``, e.g. ``experiment.variant``) is one seed. Its
test predictions are the table ``test_predictions`` of its store, with columns ``index``
(int64, the breast's position in the test set: the join key across seeds), ``malignant_label``,
``benign_label``, ``malignant_prob`` and ``benign_prob``.

- **AUC**: ``sklearn.metrics.roc_auc_score`` of each run's predictions, then the mean and the
  sample standard deviation (ddof=1; NaN for a single run) over the runs of the setting.
  A run without a ``test_predictions`` table falls back to ``attrs["results"]["test_auc"]``
  (``test_auc_benign`` for benign).
- **Ensemble** (the paper's "3x ensemble"): the mean of the predicted probabilities of all runs
  of the setting, joined on ``index``, scored the same way. The runs must have predicted the
  same breasts with the same labels; it is NaN, with a :class:`MissingPredictionsWarning`, when a run of the
  setting has no predictions.
- **95% intervals** (``<task>_auc_margin``, ``<task>_ensemble_margin``: half-widths): the mean
  over seeds by the verdict rule of :mod:`lca_toolkit.stats`, ``t * std / sqrt(n)`` plus the test
  set's own sampling error of that mean, ``1.96 * sqrt(w^T S w)`` with ``S`` DeLong's covariance
  of the seeds' AUCs on the same test breasts and ``w = 1/n`` each (NaN for one run); the
  ensemble by DeLong alone, ``1.96 * SE``. A small test set cannot rank models on seeds alone.
  NaN when a run has no predictions or a class has fewer than 2 cases.
- A label set with a single class has no AUC: the value is NaN and an
  :class:`AucUndefinedWarning` names the run and task.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from ..errors import LcaToolkitError, StatisticError
from ..stats import AucCovariance, delong, t_interval
from ._data import PlotError, RunsLike, labelled_runs, path_of, split_by
from ._style import setting_name

PREDICTIONS = "test_predictions"
"""Name of the stored table of test-set predictions."""

TASKS: tuple[str, ...] = ("malignant", "benign")
"""Tasks of the bundled models; each has ``<task>_label`` and ``<task>_prob`` columns."""

RESULT_KEYS: dict[str, str] = {"malignant": "test_auc", "benign": "test_auc_benign"}
"""``attrs["results"]`` key holding a run's test AUC of each task (fallback without a table)."""


class AucUndefinedWarning(UserWarning):
    """An AUC was asked of labels with a single class; it is reported as NaN."""


class MissingPredictionsWarning(UserWarning):
    """A run of a setting has no prediction table, so the setting has no ensemble AUC."""


def safe_auc(labels: np.ndarray, scores: np.ndarray, *, what: str) -> float:
    """``roc_auc_score(labels, scores)``, or NaN with a warning when only one class occurs.

    Args:
        labels: ``(n,)`` 0/1 labels.
        scores: ``(n,)`` predicted probabilities of class 1.
        what: names the run and task in the warning.
    """
    labels = np.asarray(labels)
    if np.unique(labels).size < 2:
        warnings.warn(
            f"{what}: labels hold only class {np.unique(labels).tolist()}, so AUC is undefined; "
            "reported as NaN",
            AucUndefinedWarning,
            stacklevel=3,
        )
        return math.nan
    return float(roc_auc_score(labels, np.asarray(scores, dtype=np.float64)))


def read_predictions(
    run: Any, tasks: Sequence[str], table: str = PREDICTIONS
) -> pd.DataFrame | None:
    """The run's prediction table indexed by ``index``, or ``None`` when it has none.

    Raises:
        PlotError: the table lacks a column or repeats an ``index``, naming the run.
    """
    reader = getattr(run, "table", None)
    if reader is None:
        return None
    names = getattr(run, "tables", None)
    if names is not None and table not in names:
        return None
    try:
        df = reader(table)
    except (LcaToolkitError, KeyError, FileNotFoundError):
        return None
    need = ["index", *(f"{t}_{c}" for t in tasks for c in ("label", "prob"))]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise PlotError(
            f"run '{path_of(run)}' table '{table}' lacks columns {missing}; it has "
            f"{list(df.columns)}"
        )
    dupes = df["index"][df["index"].duplicated()].unique().tolist()
    if dupes:
        raise PlotError(
            f"run '{path_of(run)}' table '{table}' repeats index values {dupes[:5]}; each "
            "breast of the test set must appear once"
        )
    return df.set_index("index").sort_index()


def _result_auc(run: Any, task: str) -> float:
    results = run.attrs.get("results") or {}
    key = RESULT_KEYS.get(task, f"test_auc_{task}")
    if key not in results:
        raise PlotError(
            f"run '{path_of(run)}' has neither a '{PREDICTIONS}' table nor "
            f"attrs['results']['{key}']; it cannot enter the test AUC table"
        )
    return float(results[key])


def ensemble_predictions(
    members: Sequence[tuple[Any, pd.DataFrame]], tasks: Sequence[str]
) -> pd.DataFrame:
    """Mean predicted probability per ``index`` over the runs; labels checked to agree.

    Args:
        members: ``(run, predictions indexed by index)`` of every run of a setting.
        tasks: task names.

    Returns:
        Frame indexed by ``index`` with ``<task>_label`` and ``<task>_prob`` (the mean).

    Raises:
        PlotError: the runs predicted different breasts, or disagree on a label.
    """
    first_run, first = members[0]
    probs = {t: [first[f"{t}_prob"].to_numpy(dtype=np.float64)] for t in tasks}
    for run, df in members[1:]:
        if not df.index.equals(first.index):
            only_here = df.index.difference(first.index)
            only_there = first.index.difference(df.index)
            raise PlotError(
                f"cannot ensemble '{path_of(run)}' with '{path_of(first_run)}': their test "
                f"predictions cover different index values ({len(only_here)} only in the first, "
                f"{len(only_there)} only in the second, e.g. "
                f"{(only_here.tolist() or only_there.tolist())[:3]}); were they tested on the "
                "same test set?"
            )
        for t in tasks:
            differ = df[f"{t}_label"].to_numpy() != first[f"{t}_label"].to_numpy()
            if differ.any():
                where = df.index[differ].tolist()[:3]
                raise PlotError(
                    f"cannot ensemble '{path_of(run)}' with '{path_of(first_run)}': "
                    f"{t}_label differs at index {where}"
                )
            probs[t].append(df[f"{t}_prob"].to_numpy(dtype=np.float64))
    out = pd.DataFrame(index=first.index)
    for t in tasks:
        out[f"{t}_label"] = first[f"{t}_label"].to_numpy()
        out[f"{t}_prob"] = np.mean(np.stack(probs[t]), axis=0)
    return out


def auc_covariance(
    runs: Sequence[Any], task: str = "malignant", table: str = PREDICTIONS
) -> AucCovariance:
    """DeLong's covariance of the test AUCs of ``runs``, all scored on the same test breasts.

    Raises:
        StatisticError: a run has no prediction table, or a class has fewer than 2 cases.
        PlotError: the runs predicted different breasts or disagree on a label.
    """
    preds = [(run, read_predictions(run, [task], table)) for run in runs]
    lacking = [str(path_of(run)) for run, df in preds if df is None]
    if lacking or not preds:
        raise StatisticError(
            f"runs {lacking} have no '{table}' table: their test AUC has no DeLong error"
        )
    ensemble_predictions(preds, [task])  # the same breasts and labels, or a clear error
    first = preds[0][1]
    scores = np.stack([df[f"{task}_prob"].to_numpy(dtype=np.float64) for _, df in preds])
    return delong(first[f"{task}_label"].to_numpy(), scores)


def _margins(preds: list, aucs: list[float], ensemble: pd.DataFrame | None, task: str):
    """(mean's, ensemble's) 95% half-widths, NaN where DeLong has nothing to work with."""
    try:
        runs = [run for run, _ in preds]
        cov = auc_covariance(runs, task)
        n = len(runs)
        mean = t_interval(aucs, extra=cov.half_width([1 / n] * n)).margin
        labels = ensemble[f"{task}_label"].to_numpy()
        whole = delong(labels, ensemble[f"{task}_prob"].to_numpy()).half_width([1.0])
        return mean, whole
    except (StatisticError, TypeError, KeyError):
        return math.nan, math.nan


def auc_table(
    data: RunsLike,
    *,
    group_by: str | Sequence[str] | None = "experiment.variant",
    tasks: Sequence[str] = TASKS,
    table: str = PREDICTIONS,
) -> pd.DataFrame:
    """One row per setting: number of runs, mean/std of their test AUC and the ensemble AUC.

    Args:
        data: runs or run store paths; each run is one seed of its setting.
        group_by: dotted config path(s) defining a setting (``experiment.variant`` for Table 1,
            ``experiment.regularizer`` for Table 2); ``None`` makes all runs one setting.
        tasks: tasks to score; each needs ``<task>_label`` and ``<task>_prob`` columns.
        table: name of the prediction table in each store.

    Returns:
        Rows in order of first appearance with columns ``setting`` (the raw config value(s)),
        ``name`` (readable), ``runs``, and per task ``<task>_auc_mean``, ``<task>_auc_std``,
        ``<task>_ensemble_auc`` and the 95% half-widths ``<task>_auc_margin`` and
        ``<task>_ensemble_margin`` (module docstring).

    Raises:
        PlotError: a run lacks the ``group_by`` path, has neither predictions nor stored
            results, or runs of a setting cannot be ensembled.
    """
    if isinstance(tasks, str):
        tasks = [tasks]
    runs = labelled_runs(data)
    rows = []
    for key, members in split_by(runs, group_by).items():
        row: dict[str, Any] = {
            "setting": key,
            "name": key if group_by is None else setting_name(members[0][1], group_by),
            "runs": len(members),
        }
        preds = [(run, read_predictions(run, tasks, table)) for _, run in members]
        aucs_by_task = {}
        for t in tasks:
            aucs = [
                _result_auc(run, t)
                if df is None
                else safe_auc(df[f"{t}_label"], df[f"{t}_prob"], what=f"run '{path_of(run)}' {t}")
                for run, df in preds
            ]
            row[f"{t}_auc_mean"] = float(np.mean(aucs))
            row[f"{t}_auc_std"] = float(pd.Series(aucs).std(ddof=1)) if len(aucs) > 1 else math.nan
            row[f"{t}_ensemble_auc"] = math.nan
            row[f"{t}_auc_margin"] = row[f"{t}_ensemble_margin"] = math.nan
            aucs_by_task[t] = aucs
        complete = [(run, df) for run, df in preds if df is not None]
        if len(complete) == len(preds):
            ens = ensemble_predictions(complete, tasks)
            for t in tasks:
                row[f"{t}_ensemble_auc"] = safe_auc(
                    ens[f"{t}_label"], ens[f"{t}_prob"], what=f"ensemble of setting {key!r} {t}"
                )
                row[f"{t}_auc_margin"], row[f"{t}_ensemble_margin"] = _margins(
                    complete, aucs_by_task[t], ens, t
                )
        else:
            lacking = [path_of(run) for run, df in preds if df is None]
            warnings.warn(
                f"setting {key!r}: runs {lacking} have no '{table}' table, so the ensemble AUC "
                "is NaN",
                MissingPredictionsWarning,
                stacklevel=2,
            )
        rows.append(row)
    return pd.DataFrame(rows)


def _fmt(x: float) -> str:
    return "–" if not math.isfinite(x) else f"{x:.3f}"


INTERVAL_NOTE = (
    "In brackets: 95% intervals; of the mean, t over the seeds plus the test set's own error "
    "of that mean (DeLong); of the ensemble, DeLong's."
)


def interval_text(value: float, margin: float) -> str:
    """`` [low, high]`` of a 95% interval, or nothing when it is not known."""
    if not (math.isfinite(value) and math.isfinite(margin)):
        return ""
    return f" [{value - margin:.3f}, {value + margin:.3f}]"


def to_markdown(df: pd.DataFrame, tasks: Sequence[str] = TASKS, *, title: str | None = None) -> str:
    """The table as GitHub Markdown, ``mean ± std`` to three decimals as in the paper, each AUC
    followed by its 95% interval in brackets where known (module docstring).

    The ensemble column is headed ``Nx ensemble`` when every setting has ``N`` runs.
    """
    if isinstance(tasks, str):
        tasks = [tasks]
    counts = set(df["runs"].tolist())
    ens = f"{counts.pop()}x ensemble" if len(counts) == 1 else "ensemble"
    header = ["setting", "runs"]
    for t in tasks:
        header += [f"AUC ({t})", f"{ens} ({t})"]
    lines = [f"**{title}**", ""] if title else []
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    for _, r in df.iterrows():
        cells = [str(r["name"]).replace("|", "\\|"), str(int(r["runs"]))]
        for t in tasks:
            mean, std = r[f"{t}_auc_mean"], r[f"{t}_auc_std"]
            cells.append(
                _fmt(mean)
                + (f" ± {std:.3f}" if math.isfinite(std) else "")
                + interval_text(mean, r.get(f"{t}_auc_margin", math.nan))
            )
            ens_auc = r[f"{t}_ensemble_auc"]
            cells.append(
                _fmt(ens_auc) + interval_text(ens_auc, r.get(f"{t}_ensemble_margin", math.nan))
            )
        lines.append("| " + " | ".join(cells) + " |")
    if any(f"{t}_auc_margin" in df for t in tasks):
        lines += ["", INTERVAL_NOTE]
    return "\n".join(lines) + "\n"


def write_auc_table(
    df: pd.DataFrame,
    path: str | os.PathLike[str],
    tasks: Sequence[str] = TASKS,
    *,
    title: str | None = None,
) -> tuple[Path, Path]:
    """Write the table as ``<path>.md`` (readable) and ``<path>.csv`` (full precision).

    Args:
        df: what :func:`auc_table` returned.
        path: output path; a ``.md`` or ``.csv`` suffix is replaced.
        tasks: tasks to show in the Markdown.
        title: a bold line above the Markdown table.

    Returns:
        The Markdown and CSV paths.
    """
    path = Path(path)
    if path.suffix.lower() in (".md", ".csv"):
        path = path.with_suffix("")
    path.parent.mkdir(parents=True, exist_ok=True)
    md, csv = path.with_name(path.name + ".md"), path.with_name(path.name + ".csv")
    md.write_text(to_markdown(df, tasks, title=title), encoding="utf-8")
    df.to_csv(csv, index=False)
    return md, csv

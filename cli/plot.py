"""``lca-plot``: figures and tables from run stores; parses, calls lca_toolkit.plots, exits."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import click

from lca_toolkit.errors import LcaToolkitError
from lca_toolkit.plots import (
    FORMATS,
    SMOOTH_KINDS,
    auc_table,
    config_value,
    display_name,
    plot_cumulative_lca,
    plot_grad_norm,
    plot_learning_curves,
    plot_lr_distribution,
    plot_residual,
    save_figure,
    split_by,
    write_auc_table,
)
from lca_toolkit.plots.curves import AUTO, DEFAULT_METRICS, resolve_group_by
from lca_toolkit.plots.lr_dist import DEFAULT_PATH as SPLIT_LR_PATH
from lca_toolkit.plots.tables import PREDICTIONS, RESULT_KEYS
from lca_toolkit.store import Run, Runs, open_run

KINDS: tuple[str, ...] = ("grad-norm", "lca", "residual", "curves", "lr-dist", "table")
"""What ``--kind`` can ask for (besides ``all``), in the order ``all`` makes them."""

STEMS: dict[str, str] = {k: k.replace("-", "_") for k in KINDS}
"""Output file stem of each kind: ``grad-norm`` -> ``grad_norm.png``."""

TITLES: dict[str, str] = {
    "grad-norm": "Gradient norm per group",
    "lca": "Cumulative LCA per group",
    "residual": "LCA completeness per interval",
}

LOSS_METRICS: tuple[str, ...] = ("train_loss", "val_loss")
"""Learning curves drawn when the stores have no AUC metrics (runs of a user's own job)."""

EXAMPLES = """\b
Examples:
  lca-plot runs/joint.zarr --out figs
      every figure the store supports: figs/grad_norm.png, lca.png, residual.png, ...
  lca-plot runs/joint.zarr --out figs --kind grad-norm --smooth 50 --log-y --group cc --group mlo
  lca-plot runs/sweep/*.zarr --out figs --kind curves --group-by experiment.variant
  lca-plot runs/seeds/*.zarr --out tables --kind table --group-by experiment.regularizer

\b
Several stores: per-group kinds (grad-norm, lca, residual) draw the mean +/- std over the runs
of each setting (value of --group-by; by default experiment.variant when every run has it),
one file per setting named <kind>_<setting>.<format> (just <kind>.<format> for one), or one
file per store with --per-run. Runs averaged together must have the same group names.
"""


@dataclass(frozen=True)
class Options:
    """Parsed options shared by every kind."""

    out: Path
    fmt: str
    dpi: int
    smooth: int | None
    smooth_kind: str
    log_y: bool
    groups: list[str] | None
    metrics: list[str] | None
    group_by: str | list[str] | None
    per_run: bool
    inputs: tuple[Path, ...]


# ------------------------------------------------------------------ inputs and outputs
def _open(stores: Sequence[Path]) -> Runs:
    """Open every store once, naming the one at fault in a one-line error."""
    seen: dict[Path, Path] = {}
    runs = []
    for path in stores:
        key = path.resolve()
        if key in seen:
            raise click.BadParameter(
                f"'{path}' is given twice (also as '{seen[key]}'); each run must count once",
                param_hint="STORE",
            )
        seen[key] = path
        try:
            runs.append(open_run(path))
        except LcaToolkitError as exc:
            raise click.BadParameter(_one_line(exc), param_hint="STORE") from None
    return Runs(runs)


def _check_out(out: Path, stores: Sequence[Path]) -> None:
    """Refuse an output folder that is, or lies inside, one of the input stores."""
    target = out.resolve()
    for store in stores:
        s = store.resolve()
        if target == s or s in target.parents:
            raise click.BadParameter(
                f"'{out}' is inside the input store '{store}'; write figures elsewhere",
                param_hint="'--out'",
            )


def _one_line(exc: BaseException | Warning | str) -> str:
    return " ".join(str(exc).split())


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_.") or "run"


def _outfile(opts: Options, kind: str, suffix: str | None, taken: set[Path]) -> Path:
    """``<out>/<stem>[_<suffix>]`` (no extension yet), unique among this call's outputs."""
    stem = STEMS[kind] + ("" if suffix is None else "_" + _slug(suffix))
    path, k = opts.out / stem, 2
    while path in taken:
        path, k = opts.out / f"{stem}-{k}", k + 1
    taken.add(path)
    for ext in (opts.fmt, "md", "csv"):
        target = path.with_name(f"{path.name}.{ext}").resolve()
        for store in opts.inputs:
            if target == store.resolve():
                raise click.ClickException(f"refusing to write '{target}': it is the input store")
    return path


# ------------------------------------------------------------------ one maker per kind
def _settings(runs: Runs, opts: Options) -> list[tuple[str | None, str, list[Run]]]:
    """(file suffix, readable name, runs) of every figure of a per-group kind."""
    pairs = list(zip(runs.labels, runs, strict=True))
    if opts.per_run or len(runs) == 1:
        return [(label if len(runs) > 1 else None, label, [run]) for label, run in pairs]
    group_by = resolve_group_by(pairs, opts.group_by)
    parts = split_by(pairs, group_by)
    out = []
    for key, members in parts.items():
        name = display_name(key, group_by) if isinstance(group_by, str) else key
        out.append((key if len(parts) > 1 else None, name, [run for _, run in members]))
    return out


def _per_group(kind: str, runs: Runs, opts: Options, taken: set[Path]) -> list[Path]:
    written = []
    for suffix, name, members in _settings(runs, opts):
        who = name if len(members) == 1 else f"{name} (mean ± std, {len(members)} runs)"
        title = f"{TITLES[kind]} — {who}"
        if kind == "grad-norm":
            fig = plot_grad_norm(
                members,
                groups=opts.groups,
                smooth_window=opts.smooth,
                smooth_kind=opts.smooth_kind,
                log_y=opts.log_y,
                title=title,
            )
        elif kind == "lca":
            fig = plot_cumulative_lca(members, groups=opts.groups, title=title)
        else:
            fig = plot_residual(members, title=title)
        path = _outfile(opts, kind, suffix, taken)
        written.append(save_figure(fig, path, format=opts.fmt, dpi=opts.dpi))
    return written


def _curve_metrics(runs: Runs, opts: Options) -> list[str]:
    """``--metric``, else train/validation AUC, else train/validation loss (what the runs have)."""
    if opts.metrics:
        return opts.metrics
    have = {m for r in runs for m in r.attrs.get("epoch_metrics", [])}
    for candidates in (DEFAULT_METRICS, LOSS_METRICS):
        if have & set(candidates):
            return list(candidates)
    return list(DEFAULT_METRICS)


def _curves(runs: Runs, opts: Options, taken: set[Path]) -> list[Path]:
    fig = plot_learning_curves(runs, group_by=opts.group_by, metrics=_curve_metrics(runs, opts))
    path = _outfile(opts, "curves", None, taken)
    return [save_figure(fig, path, format=opts.fmt, dpi=opts.dpi)]


def _lr_dist(runs: Runs, opts: Options, taken: set[Path]) -> list[Path]:
    fig = plot_lr_distribution(runs)
    path = _outfile(opts, "lr-dist", None, taken)
    return [save_figure(fig, path, format=opts.fmt, dpi=opts.dpi)]


def _table(runs: Runs, opts: Options, taken: set[Path]) -> list[Path]:
    group_by = resolve_group_by(list(zip(runs.labels, runs, strict=True)), opts.group_by)
    df = auc_table(runs, group_by=group_by)
    if group_by is None:
        what = "all runs"
    else:
        what = group_by if isinstance(group_by, str) else " + ".join(group_by)
    path = _outfile(opts, "table", None, taken)
    return list(write_auc_table(df, path, title=f"Test AUC by {what}"))


MAKERS: dict[str, Callable[[Runs, Options, set[Path]], list[Path]]] = {
    "grad-norm": lambda runs, o, t: _per_group("grad-norm", runs, o, t),
    "lca": lambda runs, o, t: _per_group("lca", runs, o, t),
    "residual": lambda runs, o, t: _per_group("residual", runs, o, t),
    "curves": _curves,
    "lr-dist": _lr_dist,
    "table": _table,
}


def unsupported(kind: str, runs: Runs, opts: Options) -> str | None:
    """Why the stores cannot make ``kind``, or ``None`` when they can."""
    if kind == "grad-norm":
        bad = [str(r.path) for r in runs if r.rows.get("steps", 0) == 0]
        return f"{bad} have no steps recorded" if bad else None
    if kind in ("lca", "residual"):
        bad = [str(r.path) for r in runs if r.rows.get("lca", 0) == 0]
        return f"{bad} have no LCA intervals (recorded without lca_every)" if bad else None
    if kind == "curves":
        bad = [str(r.path) for r in runs if r.rows.get("epochs", 0) == 0]
        if bad:
            return f"{bad} have no epoch metrics"
        metrics = _curve_metrics(runs, opts)
        if not {m for r in runs for m in r.attrs.get("epoch_metrics", [])} & set(metrics):
            return f"no store has the epoch metrics {metrics}"
        return None
    if kind == "lr-dist":
        missing = object()
        if any(config_value(r, SPLIT_LR_PATH, missing) is not missing for r in runs):
            return None
        return f"no store has config '{SPLIT_LR_PATH}' (Split Learning Rates runs)"
    if kind == "table":
        bad = [
            str(r.path)
            for r in runs
            if PREDICTIONS not in r.tables
            and RESULT_KEYS["malignant"] not in (r.attrs.get("results") or {})
        ]
        return f"{bad} have neither test predictions nor stored test results" if bad else None
    raise AssertionError(f"unknown kind {kind!r}")


# ------------------------------------------------------------------ the command
@click.command(
    epilog=EXAMPLES,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.argument("stores", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write into (created if needed); nothing else is written.",
)
@click.option(
    "--kind",
    "-k",
    "kinds",
    multiple=True,
    default=("all",),
    show_default=True,
    type=click.Choice([*KINDS, "all"]),
    help="What to make; repeat for several. 'all' makes every kind the stores support.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="png",
    show_default=True,
    help="Figure file format.",
)
@click.option(
    "--smooth",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="grad-norm: smooth over N steps (see --smooth-kind); raw series shown faintly.",
)
@click.option(
    "--smooth-kind",
    type=click.Choice(SMOOTH_KINDS),
    default="ema",
    show_default=True,
    help="ema: exponential moving average with span N; rolling: trailing mean of N steps.",
)
@click.option("--log-y", is_flag=True, help="grad-norm: logarithmic y axis.")
@click.option(
    "--group",
    "groups",
    multiple=True,
    metavar="NAME",
    help="grad-norm, lca: draw only this parameter group; repeat for several (default: all).",
)
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    metavar="NAME",
    help="curves: epoch metric to draw; repeat for several (default: train_auc and val_auc, "
    "or train_loss and val_loss when no store has AUCs).",
)
@click.option(
    "--group-by",
    "group_by",
    multiple=True,
    metavar="PATH",
    help="Dotted config path splitting runs into settings, e.g. experiment.variant (default "
    "when every run has it); repeat to combine paths.",
)
@click.option(
    "--per-run",
    is_flag=True,
    help="grad-norm, lca, residual: one figure per store instead of the mean over runs.",
)
@click.option(
    "--dpi",
    type=click.IntRange(min=30, max=1200),
    default=150,
    show_default=True,
    help="Resolution of PNG figures.",
)
def main(
    stores: tuple[Path, ...],
    out: Path,
    kinds: tuple[str, ...],
    fmt: str,
    smooth: int | None,
    smooth_kind: str,
    log_y: bool,
    groups: tuple[str, ...],
    metrics: tuple[str, ...],
    group_by: tuple[str, ...],
    per_run: bool,
    dpi: int,
) -> None:
    """Plot per-group gradient norms, cumulative LCA, the LCA residual, learning curves,
    learning-rate distributions and test AUC tables from run STORE(s) into --out.
    """
    runs = _open(stores)
    _check_out(out, stores)
    opts = Options(
        out=out,
        fmt=fmt,
        dpi=dpi,
        smooth=smooth,
        smooth_kind=smooth_kind,
        log_y=log_y,
        groups=list(groups) or None,
        metrics=list(metrics) or None,
        group_by=(group_by[0] if len(group_by) == 1 else list(group_by)) if group_by else AUTO,
        per_run=per_run,
        inputs=stores,
    )
    explicit = "all" not in kinds
    todo = [k for k in KINDS if k in kinds] if explicit else list(KINDS)
    taken: set[Path] = set()
    written: list[Path] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for kind in todo:
                reason = unsupported(kind, runs, opts)
                if reason is not None:
                    if explicit:
                        raise click.ClickException(f"cannot make {kind}: {reason}")
                    click.echo(f"skipped {kind}: {reason}", err=True)
                    continue
                out.mkdir(parents=True, exist_ok=True)
                written += MAKERS[kind](runs, opts, taken)
        for w in caught:
            click.echo(f"warning: {_one_line(w.message)}", err=True)
    except LcaToolkitError as exc:
        raise click.ClickException(_one_line(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot write into '{out}': {_one_line(exc)}") from None
    if not written:
        raise click.ClickException(
            f"nothing to make from {[str(s) for s in stores]}: none of {list(KINDS)} is supported"
        )
    for path in written:
        click.echo(f"wrote {path}")


__all__ = ["KINDS", "main", "unsupported"]

"""``lca-plot``: figures and tables from run stores; parses, calls lca_toolkit.plots, exits."""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import click

from lca_toolkit.errors import LcaToolkitError
from lca_toolkit.plots import (
    AUTO,
    FORMATS,
    PLOT_KINDS,
    SMOOTH_KINDS,
    PlotKind,
    PlotRequest,
    resolve_group_by,
    save_drawing,
)
from lca_toolkit.store import Runs, open_run

EXAMPLES = """\b
Examples:
  lca-plot runs/joint.zarr --out figs
      every figure the store supports: figs/grad_norm.png, lca.png, residual.png, ...
  lca-plot runs/joint.zarr --out figs --kind grad-norm --smooth 50 --log-y --group cc --group mlo
  lca-plot runs/sweep/*.zarr --out figs --kind curves --group-by experiment.variant
  lca-plot runs/joint.zarr --out figs --kind learning-speed --pair mlo,cc
  lca-plot runs/seeds/*.zarr --out tables --kind table --group-by experiment.regularizer

\b
Several stores: per-group kinds (grad-norm, lca, residual) draw the mean +/- std over the runs
of each setting (the values of --group-by; by default every config value that differs between
the runs, so a sweep of two learning rates over three seeds is two settings of three runs),
one file per setting named <kind>_<setting>.<format> (just <kind>.<format> for one), or one
file per store with --per-run. Runs averaged together must have the same group names.
"""


@dataclass(frozen=True)
class Options:
    """Where and how the outputs are written; ``request`` is what every kind draws from."""

    out: Path
    fmt: str
    dpi: int
    request: PlotRequest
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


def _outfile(opts: Options, kind: PlotKind, suffix: str | None, taken: set[Path]) -> Path:
    """``<out>/<stem>[_<suffix>]`` (no extension yet), unique among this call's outputs."""
    stem = kind.stem + ("" if suffix is None else "_" + _slug(suffix))
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


def _make(kind: PlotKind, runs: Runs, opts: Options, taken: set[Path]) -> list[Path]:
    """Draw and write every output of ``kind``, each drawn just before it is written."""
    written = []
    for drawing in kind.drawings(runs, opts.request):
        path = _outfile(opts, kind, drawing.suffix, taken)
        written += save_drawing(drawing, path, format=opts.fmt, dpi=opts.dpi)
    return written


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
    type=click.Choice([*PLOT_KINDS, "all"]),
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
    help="grad-norm, lca, learning-speed: draw only this parameter group; repeat for several "
    "(default: all).",
)
@click.option(
    "--pair",
    metavar="A,B",
    default=None,
    help="learning-speed: draw log(speed A / speed B) (default: each group against the first).",
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
    metavar="KEY[,KEY]",
    help="Dotted config path(s) splitting runs into settings, e.g. experiment.lr or "
    "experiment.variant,experiment.lr (or repeat the option) [default: every config value "
    "that differs between the runs, seeds, paths and devices aside; printed as 'settings by'].",
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
    pair: str | None,
    metrics: tuple[str, ...],
    group_by: tuple[str, ...],
    per_run: bool,
    dpi: int,
) -> None:
    """Plot per-group gradient norms, cumulative LCA, the LCA residual, conditional learning
    speed, learning curves,
    learning-rate distributions and test AUC tables from run STORE(s) into --out.
    """
    runs = _open(stores)
    _check_out(out, stores)
    pair_groups = None if pair is None else tuple(p.strip() for p in pair.split(","))
    if pair_groups is not None and (len(pair_groups) != 2 or not all(pair_groups)):
        raise click.BadParameter(
            f"expected two group names A,B, got {pair!r}", param_hint="'--pair'"
        )
    paths = [p.strip() for item in group_by for p in item.split(",") if p.strip()]
    request = PlotRequest(
        groups=list(groups) or None,
        pair=pair_groups,
        smooth=smooth,
        smooth_kind=smooth_kind,
        log_y=log_y,
        metrics=list(metrics) or None,
        group_by=(paths[0] if len(paths) == 1 else paths) if paths else AUTO,
        per_run=per_run,
    )
    if len(runs) > 1 and not per_run:
        resolved = resolve_group_by(list(zip(runs.labels, runs, strict=True)), request.group_by)
        shown = "none (all runs are one setting)" if resolved is None else resolved
        if not isinstance(resolved, (str, type(None))):
            shown = ", ".join(resolved)
        click.echo(f"settings by: {shown}", err=True)
    opts = Options(out=out, fmt=fmt, dpi=dpi, request=request, inputs=stores)
    explicit = "all" not in kinds
    todo = [k for name, k in PLOT_KINDS.items() if name in kinds or not explicit]
    taken: set[Path] = set()
    written: list[Path] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for kind in todo:
                reason = kind.missing(runs, request)
                if reason is not None:
                    if explicit:
                        raise click.ClickException(f"cannot make {kind.name}: {reason}")
                    click.echo(f"skipped {kind.name}: {reason}", err=True)
                    continue
                out.mkdir(parents=True, exist_ok=True)
                written += _make(kind, runs, opts, taken)
        for w in caught:
            click.echo(f"warning: {_one_line(w.message)}", err=True)
    except LcaToolkitError as exc:
        raise click.ClickException(_one_line(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot write into '{out}': {_one_line(exc)}") from None
    if not written:
        raise click.ClickException(
            f"nothing to make from {[str(s) for s in stores]}: "
            f"none of {list(PLOT_KINDS)} is supported"
        )
    for path in written:
        click.echo(f"wrote {path}")


__all__ = ["main"]

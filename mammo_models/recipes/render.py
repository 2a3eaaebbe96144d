"""Figures and tables from the recipes' run stores, with the numbers ``figures/README.md`` quotes.

Every function reads finished stores only (through :mod:`lca_toolkit.plots`), writes its files and
returns them with one-line findings measured on the same stores, so the README never states a
number the figure does not show.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from lca_toolkit import open_run, open_runs
from lca_toolkit.errors import StatisticError
from lca_toolkit.plots import (
    auc_table,
    plot_cumulative_lca,
    plot_grad_norm,
    plot_learning_curves,
    plot_lr_distribution,
    plot_residual,
    save_figure,
    to_markdown,
)
from lca_toolkit.plots.tables import auc_covariance, write_auc_table

from ..training.experiment import lca_summary
from . import checks, plans, verdicts
from .checks import Check
from .settings import RecipeSettings
from .verdicts import Verdict

VIEW_GROUPS = ["cc", "mlo"]


@dataclass
class Rendered:
    """Files written by one recipe and what they show, in numbers."""

    files: list[Path] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    markdown: str = ""
    verdicts: list[Verdict] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)


def _stores(s: RecipeSettings, names: list[str]) -> list[Path]:
    return [s.root / f"{n}.zarr" for n in names]


def _pct(x: float, digits: int = 0) -> str:
    return "n/a" if not math.isfinite(x) else f"{100 * x:.{digits}f}%"


# ------------------------------------------------------------------------------------ Figure 3
def fig3(s: RecipeSettings) -> Rendered:
    """Train and validation AUC per epoch, mean +/- std over the learning rates, per view."""
    runs = open_runs(_stores(s, [r.name for r in plans.fig3_runs(s)]), require_same_groups=False)
    fig = plot_learning_curves(
        runs,
        group_by="experiment.variant",
        title="Uni-view models: mean ± std over learning rates",
    )
    out = save_figure(fig, s.figures_dir / "fig3_learning_curves.png")
    findings = []
    by_view = {}
    for view, label in (("uni_cc", "CC"), ("uni_mlo", "MLO")):
        members = [r for r in runs if r.config["experiment"]["variant"] == view]
        by_view[view] = members
        epochs = [r.epochs() for r in members]
        best_epoch = np.mean(
            [e["epoch"].iloc[int(e["val_auc"].fillna(-1).argmax())] for e in epochs]
        )
        best_val = np.mean([e["val_auc"].max() for e in epochs])
        first_train = np.mean([e["train_auc"].iloc[0] for e in epochs])
        chosen = max(members, key=lambda r: _finite(r.attrs["results"].get("best_val_auc")))
        findings.append(
            f"{label} models: train AUC after the first epoch {first_train:.3f} (mean), best "
            f"validation AUC {best_val:.3f} (mean) at epoch {best_epoch:.1f} (mean; epochs "
            f"counted from 0 as on the x axis); the model with the best validation AUC "
            f"(lr {chosen.config['experiment']['lr']:.1e}) has test AUC "
            f"{chosen.attrs['results']['test_auc']:.3f}."
        )
    parts = verdicts.f3(by_view["uni_cc"], by_view["uni_mlo"], f"uni-view, {s.testbed}")
    findings += [p.line() for p in parts]
    findings.append(
        f"F3 as a whole (lower and earlier, combined by the rule of the verdicts): "
        f"**{verdicts.combine(parts)}**."
    )
    return Rendered([out], findings, verdicts=parts)


def _finite(x: object) -> float:
    return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else -math.inf


# -------------------------------------------------------------------------------- Figures 4-7
def _lca_stores(s: RecipeSettings, lr: float, testbed: str | None = None) -> list[Path]:
    return _stores(s, [r.name for r in plans.lca_runs(s, lr, testbed)])


def grad_norm_and_lca(s: RecipeSettings, lr: float, stem: str, controls: bool = False) -> Rendered:
    """Panel (a): gradient norm of the CC and MLO columns; (b): their cumulative LCA; both as
    mean ± std over the seeds. With ``controls``, a second figure shows the cumulative LCA on
    each control testbed, and every planted testbed is contrasted with ``balanced``
    (:mod:`.checks`); the paper's findings are judged on the main testbed only."""
    runs = open_runs(_lca_stores(s, lr))
    fig = Figure(figsize=(13.0, 4.4), layout="constrained")
    a, b = fig.subplots(1, 2)
    plot_grad_norm(
        runs, groups=VIEW_GROUPS, smooth_window=20, ax=a, title="(a) gradient norm per column"
    )
    plot_cumulative_lca(runs, groups=VIEW_GROUPS, ax=b, title="(b) cumulative LCA per column")
    fig.suptitle(
        f"Joint ResNet, learning rate {lr:g}, testbed {s.testbed}: mean ± std over "
        f"{len(runs)} seeds"
    )
    files = [save_figure(fig, s.figures_dir / f"{stem}.png")]
    where = f"{s.testbed}, lr {lr:g}"
    found = [verdicts.f1(runs, where), *verdicts.f2(runs, where)]
    findings = _lca_numbers(runs)
    checked: list[Check] = []
    if controls and s.control_testbeds:
        by_testbed = {s.testbed: runs}
        fig = Figure(figsize=(6.5 * len(s.control_testbeds), 4.4), layout="constrained")
        for ax, testbed in zip(
            fig.subplots(1, len(s.control_testbeds), squeeze=False)[0],
            s.control_testbeds,
            strict=True,
        ):
            control = open_runs(_lca_stores(s, lr, testbed))
            by_testbed[testbed] = control
            plot_cumulative_lca(control, groups=VIEW_GROUPS, ax=ax, title=f"testbed {testbed}")
        fig.suptitle(f"Controls: cumulative LCA per column, learning rate {lr:g}")
        files.append(save_figure(fig, s.figures_dir / f"{stem}_controls.png"))
        baseline = by_testbed.get(checks.BASELINE)
        if baseline is not None:
            for testbed, planted in by_testbed.items():
                if testbed in checks.EXPECTED_SIGN:
                    checked += checks.contrasts(planted, baseline, testbed, f"lr {lr:g}")
    findings += [v.line() for v in found]
    findings += [c.line() for c in checked]
    return Rendered(files, findings, verdicts=found, checks=checked)


def _lca_numbers(runs) -> list[str]:
    """Per-seed numbers behind the verdicts of one setting."""
    shares = [lca_summary(r)[0] for r in runs]
    fractions = [verdicts.grad_norm_fraction(r) for r in runs]
    ratios = [
        float((r.steps()["grad_norm/mlo"] / r.steps()["grad_norm/cc"]).median()) for r in runs
    ]
    lines = [
        "gradient norm: MLO column above the CC column in "
        + ", ".join(_pct(f) for f in fractions)
        + f" of the steps (seeds {', '.join(str(r.config['experiment']['seed']) for r in runs)}; "
        "median ratio MLO/CC " + ", ".join(f"{x:.2f}" for x in ratios) + ").",
        "share of the summed LCA (each group's LCA over the sum over groups; LCA < 0 lowers the "
        "loss), per seed: "
        + "; ".join(", ".join(f"{g} {_pct(v)}" for g, v in sh.items()) for sh in shares)
        + ".",
    ]
    return lines


def fig5(s: RecipeSettings) -> Rendered:
    """Actual loss change vs summed LCA per interval, and the residual (seed 0 of Figure 4)."""
    lr = s.lca_lrs[0]
    run = open_run(_lca_stores(s, lr)[0])
    fig = plot_residual(run, title=f"LCA residual, Joint ResNet, learning rate {lr:g}")
    out = save_figure(fig, s.figures_dir / "fig5_lca_residual.png")
    lca = run.lca()
    _, rel = lca_summary(run)
    change = lca["loss_change"].abs()
    whole = lca["residual"].abs().sum() / change.sum() if change.sum() else math.nan
    quad = run.config.get("tracker", {}).get("lca", {}) or {}
    rule = quad.get("quadrature")
    if rule == "adaptive":
        rule = (
            f"adaptive rule (rel_tol {quad.get('rel_tol'):g}, at most {quad.get('max_panels')} "
            f"panels; {lca['passes'].mean():.1f} gradient passes per interval on average)"
        )
    else:
        rule = f"{rule} rule"
    findings = [
        f"{len(lca)} intervals of k = {quad.get('every')} steps, {rule}: "
        f"median |residual| / |loss change| {_pct(float(rel), 2)}, "
        f"sum |residual| / sum |loss change| {_pct(float(whole), 2)}."
    ]
    return Rendered([out], findings)


# ------------------------------------------------------------------------------------ Figure 8
def fig8(s: RecipeSettings) -> Rendered:
    """Histograms of the per-component learning rates of the Split Learning Rates sweep."""
    runs = open_runs(_stores(s, [r.name for r in plans.fig8_runs(s)]))
    fig = plot_lr_distribution(runs, components=["cc", "mlo", "shared"])
    out = save_figure(fig, s.figures_dir / "fig8_split_lr.png")
    rates = pd.DataFrame([r.config["experiment"]["split_lr"] for r in runs])
    best = plans.best_split_lr_alphas([Path(r.path) for r in runs])
    findings = [
        f"{len(runs)} runs; sampled rates from {rates.min().min():.1e} to {rates.max().max():.1e}; "
        "best validation AUC with alphas "
        + ", ".join(f"{k} {v:+.2f}" for k, v in best.items())
        + " (repeated over the seeds in Table 2)."
    ]
    return Rendered([out], findings)


# ------------------------------------------------------------------------------------ Tables
TABLES: dict[str, tuple[str, tuple[tuple[str, str], ...], str]] = {
    "table1": ("heatmaps", plans.TABLE1_ROWS, "Table 1: test AUC of uni-view models and variants"),
    "table2": (
        "heatmaps",
        plans.TABLE2_ROWS,
        "Table 2: test AUC of Joint ResNet with regularizers",
    ),
    "table3": ("images", plans.TABLE3_ROWS, "Table 3: test AUC without heatmaps"),
}


def table(s: RecipeSettings, name: str) -> Rendered:
    """Mean +/- std over seeds and the ensemble of the seeds, one row per setting."""
    folder, rows, title = TABLES[name]
    frames = []
    for row, label in rows:
        df = auc_table(open_runs(plans.row_stores(s, folder, row)), group_by=None)
        df["setting"], df["name"] = row, label
        frames.append(df)
    df = pd.concat(frames, ignore_index=True)
    md, csv = write_auc_table(df, s.figures_dir / f"{name}_test_auc", title=title)
    found = _f4(s, name, folder, rows)
    best = df.loc[df["malignant_auc_mean"].idxmax()]
    findings = [
        f"highest mean malignant test AUC: {best['name']} "
        f"({best['malignant_auc_mean']:.3f} over {int(best['runs'])} seeds)."
    ]
    findings += _ranking_caveat(df)
    findings += plans.selection_lines(s, folder, rows)
    findings += [v.line() for v in found]
    return Rendered([md, csv], findings, markdown=to_markdown(df, ("malignant",)), verdicts=found)


F4_ROWS = {"shared": "the Shared ResNet", "modality_dropout": "Modality Dropout"}


def _f4(s: RecipeSettings, name: str, folder: str, rows) -> list[Verdict]:
    """F4 for every row of this table that the paper says beats the Joint ResNet."""
    settings = [r for r, _ in rows]
    if "joint" not in settings:
        return []
    records, runs = [], {}
    for row in ["joint", *[r for r in F4_ROWS if r in settings]]:
        for store in plans.row_stores(s, folder, row):
            run = open_run(store)
            seed = run.config["experiment"]["seed"]
            auc = run.attrs.get("results", {}).get("test_auc", math.nan)
            records.append({"setting": row, "seed": seed, "test_auc": auc})
            runs[(row, seed)] = run
    table = pd.DataFrame(records)
    return [
        verdicts.f4(
            table,
            row,
            label,
            f"{name.replace('table', 'Table ')}, {s.testbed}",
            _paired_test_error(runs, row),
        )
        for row, label in F4_ROWS.items()
        if row in settings
    ]


def _paired_test_error(runs: dict, row: str) -> float:
    """The test set's 95% half-width of the mean over seeds of ``row`` minus the Joint ResNet,
    from DeLong's covariance of all those models' AUCs on the same test breasts (paired DeLong:
    weights ``+1/n`` for the row's seeds, ``-1/n`` for the Joint ResNet's)."""
    seeds = sorted({sd for r, sd in runs if r == row} & {sd for r, sd in runs if r == "joint"})
    if not seeds:
        return 0.0
    members = [runs[(row, sd)] for sd in seeds] + [runs[("joint", sd)] for sd in seeds]
    n = len(seeds)
    try:
        cov = auc_covariance(members)
    except StatisticError as exc:
        if "at least 2 positives" not in str(exc):
            raise  # runs without predictions: an error, not a zero
        return math.inf  # a test set too small for a variance: nothing is decided
    return cov.half_width([1 / n] * n + [-1 / n] * n)


def _ranking_caveat(df: pd.DataFrame) -> list[str]:
    """Whether the best row's lead over the runner-up is decided by their 95% intervals.

    Each row's interval is the verdict rule's (t over the seeds plus the test set's DeLong
    error of the mean, ``malignant_auc_margin``). The lead ranks the two rows only when the
    intervals do not overlap: a conservative reading (the rows share the test set, so a paired
    comparison, as F4 makes, can be narrower), but one that never ranks on noise.
    """
    if len(df) < 2 or "malignant_auc_margin" not in df:
        return []
    top = df.sort_values("malignant_auc_mean", ascending=False).iloc[:2]
    a, b = top.iloc[0], top.iloc[1]
    ma, mb = a["malignant_auc_margin"], b["malignant_auc_margin"]
    if not (math.isfinite(ma) and math.isfinite(mb)):
        return []
    gap = a["malignant_auc_mean"] - b["malignant_auc_mean"]
    verdict = (
        "the two 95% intervals overlap: these seeds and this test set do not rank the two"
        if gap <= ma + mb
        else "the two 95% intervals do not overlap"
    )
    return [
        f"runner-up: {b['name']} ({b['malignant_auc_mean']:.3f}); the lead of {gap:.3f} "
        f"against half-widths {ma:.3f} and {mb:.3f}: {verdict}."
    ]

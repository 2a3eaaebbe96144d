"""Figures and the page of the mfeat study, drawn from its run stores.

Four figures in ``FIGURES/mfeat/``: (a) each view's test accuracy alone, with the six-view model
as a reference; (b) each view's LCA share in the six-view model (the head apart); (c) the
conditional learning speed of each view over steps and its log-ratio against the view best
alone; (d) the input-ablation contributions per view at the end of training, with the unimodal
numbers. ``README.md`` beside them quotes only numbers computed from the same stores
(:mod:`.mfeat_stats`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from lca_toolkit.analysis import learning_speed
from lca_toolkit.datasets.multiple_features import VIEWS
from lca_toolkit.plots import group_colors, save_figure
from lca_toolkit.plots._style import new_figure
from lca_toolkit.stats import Interval

from . import mfeat_stats as st
from .mfeat import ALL, LCA_EVERY
from .settings import RecipeSettings

VIEW_NAMES = list(VIEWS)
FILES = {
    "alone": "mfeat_a_test_acc_alone.png",
    "share": "mfeat_b_lca_share.png",
    "speed": "mfeat_c_learning_speed.png",
    "ablation": "mfeat_d_ablation.png",
}


def _bars(ax: Axes, values: dict[str, Interval], colors: dict[str, str], names: list[str]) -> None:
    """Bars of the means with 95% intervals (no whisker with one seed)."""
    means = [values[v].mean for v in names]
    err = [values[v].margin if values[v].n > 1 else 0.0 for v in names]
    ax.bar(names, means, yerr=err, capsize=4, color=[colors.get(v, "tab:gray") for v in names])
    ax.grid(axis="y", alpha=0.3)


def fig_alone(study: st.Study, n: int, path: Path) -> Path:
    fig = new_figure((7.0, 4.2))
    ax = fig.axes[0]
    _bars(ax, study.alone, group_colors(VIEW_NAMES), VIEW_NAMES)
    six = study.six_view
    ax.axhline(six.mean, color="black", lw=1.2, label=f"six-view model {six.mean:.3f}")
    if six.n > 1:
        ax.axhspan(six.low, six.high, color="black", alpha=0.12, lw=0)
    low = min(study.alone[v].mean for v in VIEW_NAMES)
    ax.set_ylim(max(0.0, low - 0.15), 1.0)
    ax.set_ylabel("test accuracy")
    ax.set_xlabel("view (uni-view model)")
    ax.set_title(f"(a) Test accuracy of each view alone (mean, 95% interval over {n} seeds)")
    ax.legend(loc="lower left")
    return save_figure(fig, path)


def fig_share(study: st.Study, n: int, path: Path) -> Path:
    fig = new_figure((9.0, 4.2), 1, 2, gridspec_kw={"width_ratios": [6, 1.3]})
    ax, head_ax = fig.axes
    colors = group_colors([*VIEW_NAMES, st.HEAD])
    _bars(ax, study.shares, colors, VIEW_NAMES)
    _bars(head_ax, study.shares, colors, [st.HEAD])
    ax.set_ylabel("share of the summed LCA")
    ax.set_xlabel("view (tower of the six-view model)")
    ax.set_title(f"(b) LCA share per view in the six-view model ({n} seeds, 95% interval)")
    head_ax.set_title("head")
    top = max(i.high if i.n > 1 else i.mean for i in study.shares.values())
    for a in (ax, head_ax):
        a.set_ylim(0, top * 1.1)
    return save_figure(fig, path)


def fig_speed(speeds: list[pd.DataFrame], best: str, path: Path) -> Path:
    """Mean over seeds of each view's cumulative speed, and of log(view / best alone)."""
    fig = new_figure((11.0, 4.2), 1, 2)
    left, right = fig.axes
    colors = group_colors(VIEW_NAMES)
    steps = speeds[0].index.to_numpy()
    for v in VIEW_NAMES:
        curves = np.stack([df[v].to_numpy() for df in speeds])
        left.plot(steps, curves.mean(0), color=colors[v], label=v)
        if v == best:
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.stack([np.log(df[v].to_numpy() / df[best].to_numpy()) for df in speeds])
        right.plot(steps, ratio.mean(0), color=colors[v], label=f"log({v}/{best})")
    right.axhline(0.0, color="black", lw=0.8)
    left.set_yscale("log")
    left.set_xlabel("optimizer step")
    right.set_xlabel("optimizer step")
    left.set_ylabel("cumulative Σ ||g||² / ||θ||²")
    right.set_ylabel(f"log(speed of view / speed of {best})")
    left.set_title("(c) Conditional learning speed per view (mean over seeds)")
    right.set_title(f"against {best}, the view best alone (positive: faster than {best})")
    left.legend(ncol=2, fontsize=8)
    right.legend(ncol=2, fontsize=8)
    return save_figure(fig, path)


def fig_ablation(study: st.Study, n: int, path: Path) -> Path:
    fig = new_figure((15.0, 4.6), 1, 3)
    loss_ax, acc_ax, only_ax = fig.axes
    colors = group_colors(VIEW_NAMES)
    _bars(loss_ax, study.loss_contribution, colors, VIEW_NAMES)
    _bars(acc_ax, study.acc_contribution, colors, VIEW_NAMES)
    loss_ax.set_ylabel("test loss with the view muted − with all")
    acc_ax.set_ylabel("test accuracy with all − with the view muted")
    loss_ax.set_title("(d) Ablation: loss contribution (leave-one-out)")
    acc_ax.set_title("accuracy contribution (leave-one-out)")
    x = np.arange(len(VIEW_NAMES))
    for dx, values, label, color in (
        (-0.2, study.only_acc, "six-view model, the others muted", "tab:gray"),
        (0.2, study.alone, "uni-view model", "black"),
    ):
        err = [values[v].margin if values[v].n > 1 else 0.0 for v in VIEW_NAMES]
        only_ax.bar(
            x + dx, [values[v].mean for v in VIEW_NAMES], 0.4, yerr=err, capsize=3,
            color=color, alpha=0.8, label=label,
        )  # fmt: skip
    only_ax.set_xticks(x, VIEW_NAMES)
    only_ax.set_ylim(0, 1)
    only_ax.set_ylabel("test accuracy")
    only_ax.set_title("unimodal: one view present")
    only_ax.legend(loc="upper center", fontsize=8, ncol=2, bbox_to_anchor=(0.5, -0.1))
    for a in fig.axes:
        a.axhline(0.0, color="black", lw=0.8)
    fig.suptitle(f"Mean and 95% interval over {n} seeds, on the test rows, after training")
    return save_figure(fig, path)


def draw(s: RecipeSettings, out: Path) -> list[Path]:
    """The four figures, from the stores."""
    study = st.study(s)
    n = len(s.seeds)
    best = max(study.alone, key=lambda v: study.alone[v].mean)
    speeds = [learning_speed(r, VIEW_NAMES) for r in st.runs_of(s, ALL)]
    return [
        fig_alone(study, n, out / FILES["alone"]),
        fig_share(study, n, out / FILES["share"]),
        fig_speed(speeds, best, out / FILES["speed"]),
        fig_ablation(study, n, out / FILES["ablation"]),
    ]


def _table(study: st.Study) -> list[str]:
    f = st.interval_text
    lines = [
        "| view | uni-view model: test accuracy | LCA share (six-view) | ablation: loss "
        "contribution | ablation: accuracy contribution | six-view model, only this view present "
        "(others muted): accuracy |",
        "|---|---|---|---|---|---|",
    ]
    for v in VIEW_NAMES:
        lines.append(
            f"| {v} | {f(study.alone[v])} | {f(study.shares[v])} | "
            f"{f(study.loss_contribution[v], 4)} | {f(study.acc_contribution[v])} | "
            f"{f(study.only_acc[v])} |"
        )
    lines.append(f"| head | | {f(study.shares[st.HEAD])} | | | |")
    lines.append(f"| all six | {f(study.six_view)} | | | | |")
    return lines


def write_readme(
    s: RecipeSettings, out: Path, statuses: dict[str, str], seconds: float, command: str
) -> Path:
    """``FIGURES/mfeat/README.md``: what was run, the numbers, the verdicts, the figures."""
    study = st.study(s)
    job = st.runs_of(s, ALL)[0].config["job"]
    trained = sum(v == "trained" for v in statuses.values())
    per_seed = ", ".join(f"{x:+.2f}" for x in study.agreement_per_seed)
    lines = [
        "# Which view does the learning? UCI Multiple Features",
        "",
        "Written by",
        "",
        f"    {command}",
        "",
        f"in {seconds / 60:.1f} minutes ({trained} runs trained, "
        f"{len(statuses) - trained} reused). Every number on this page is computed from the run stores.",
        "",
        "Data: UCI Multiple Features (2,000 handwritten digits, 10 classes, six views of the same "
        "images: fac, fou, kar, mor, pix, zer), split once per seed, stratified (70% train and "
        "validation, 30% test). Models: `examples/multiple_features.py:make_job`, one MLP tower "
        f"per view (width {job['width']}) and a linear head over the concatenated "
        f"embeddings; Adam, learning rate {job['lr']:g}, batch {job['batch_size']}, "
        f"{job['epochs']} epochs, seeds {', '.join(map(str, s.seeds))}. Uni-view models "
        "(`views=<view>`) record gradient norms only: with one tower and the head, their LCA "
        "would only split the loss change between the view and the head. The six-view model "
        f"records LCA every {LCA_EVERY} steps (adaptive quadrature) on a fixed sample of "
        f"{job['eval_size']} training rows; after training its final model is measured by input ablation on the "
        "test rows (six views: leave-one-out; a muted view is replaced by its mean over the "
        "test rows; the metric is per-sample accuracy), stored as the table `ablation` of its "
        "store.",
        "",
        "Intervals: mean and 95% interval over the seeds (Student's t; the LCA shares add the "
        "quadrature error estimate).",
        "",
        *_table(study),
        "",
        "## Verdicts",
        "",
        "By SPEC section 10's rule: `compare_groups` over the seeds (95% t interval of the "
        "difference of two views' summed LCA, with both error estimates added). A claim "
        "**holds** when every comparison it needs is decided its way, **does not hold** when "
        "one is decided the other way, and is **inconclusive** otherwise.",
        "",
        *[f"- {c.line()}" for c in study.claims],
        "",
        "Agreement of the ablation ranking with the LCA ranking (no verdict): Spearman rank "
        "correlation over the six views between the ablation loss contribution and the view's "
        f"loss reduction by LCA (−LCA), mean over seeds **{study.agreement:+.2f}** "
        f"(per seed: {per_seed}).",
        "",
        "What each tells: LCA is how much each tower's parameter movement lowered the training "
        "loss over the whole run; ablation is how much the final model uses each input on the "
        "test rows (views are redundant, so removing one view costs little when the others "
        "carry the same information); learning speed is each tower's motion relative to its "
        "size, not a loss change.",
        "",
    ]
    titles = {
        "alone": "(a) Test accuracy of each view alone",
        "share": "(b) LCA share per view in the six-view model",
        "speed": "(c) Conditional learning speed per view",
        "ablation": "(d) Input ablation per view",
    }
    for key, title in titles.items():
        lines += [f"## {title}", "", f"![{title}]({FILES[key]})", ""]
    path = out / "README.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path

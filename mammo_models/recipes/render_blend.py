"""Tables 4 and 5 of appendix C from the Gradient Blending run stores.

Table 4 shows appendix C's four weight sets (validation loss or AUC, averaged over the
estimation's epoch pairs [0, N] or [0.9 N, N]) as the mean over seeds of what each seed's
estimation gave, with their spread; under ``--search paper`` each set was also trained and the
table adds its validation and test AUC and marks the selected one (Table 2's row). Table 5 is
the ablation: equal weights, and the loss and AUC weights estimated on a tenth of the validation
set, each also with the CC and MLO weights swapped; the whole-validation loss set of Table 2 is
shown beside them. Every number is read from the stores.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from lca_toolkit import open_runs
from lca_toolkit.plots import auc_table
from lca_toolkit.plots.tables import INTERVAL_NOTE, interval_text

from ..training.selection import mean_se_text
from . import blend, plans, search
from .render import Rendered
from .settings import RecipeSettings

WEIGHT_COLUMNS = ("w_joint", "w_cc", "w_mlo")


def _weights(ws: blend.WeightSet, estimations: list[dict]) -> np.ndarray:
    """(seeds, 3) weights of one set, one row per seed's estimation."""
    return np.array([ws.weights(d) for d in estimations], dtype=float)


def _triple(values: np.ndarray) -> str:
    return ", ".join(f"{v:.3f}" for v in values)


def _estimations(s: RecipeSettings, seeds: tuple[int, ...] | None = None) -> list[dict]:
    return [
        blend.estimation(Path(cfg.out))
        for _, cfg in plans.blend_sources(s)
        if seeds is None or cfg.seed in seeds
    ]


def table4(s: RecipeSettings) -> Rendered:
    """Appendix C's Table 4: the estimated weights of the four sets (and, under
    ``--search paper``, each set's validation and test AUC and the selection)."""
    estimations = _estimations(s)
    n = len(estimations)
    selection = None
    if s.search == "paper":
        selection = search.row_search(s, "heatmaps", "gradient_blending").select(s)
    records = []
    for ws in blend.TABLE4_SETS:
        if ws.metric not in s.blend_metrics:
            continue
        w = _weights(ws, estimations)
        rec = {"set": ws.name, "metric": ws.metric, "window": ws.window, "seeds": n}
        rec.update(dict(zip(WEIGHT_COLUMNS, w.mean(axis=0), strict=True)))
        rec["weight_sd_max"] = float(w.std(axis=0, ddof=1).max()) if n > 1 else math.nan
        if selection is not None:
            row = selection.table.set_index("setting").loc[f"{ws.name}/seeds"]
            rec.update(
                val_auc_mean=row.val_auc_mean,
                val_auc_se=row.val_auc_se,
                test_auc_mean=row.test_auc_mean,
                test_auc_std=row.test_auc_std,
                selected=bool(row.selected),
            )
        records.append(rec)
    df = pd.DataFrame(records)
    md, csv = _write(df, s.figures_dir / "table4_blend_weights", _table4_markdown(df, n))
    widest = df.loc[df["weight_sd_max"].idxmax()] if n > 1 else None
    findings = [
        f"weights estimated per seed from {n} estimation(s) of three short runs each; "
        + "; ".join(
            f"{r.metric} [{r.window}]: {_triple(r[list(WEIGHT_COLUMNS)].to_numpy())}"
            for _, r in df.iterrows()
        )
        + " (mean over seeds; joint, cc, mlo)."
    ]
    if widest is not None:
        findings.append(
            f"spread over seeds: the largest standard deviation of one weight is "
            f"{widest.weight_sd_max:.3f} ({widest.metric}, {widest.window}); appendix C also "
            "found the estimated weights volatile."
        )
    if selection is not None:
        found = df[df["selected"]]
        if len(found):
            r = found.iloc[0]
            counted = int(selection.table.set_index("setting").loc[f"{r['set']}/seeds"].counted)
            findings.append(
                f"selected by mean validation AUC: {r.metric} [{r.window}] "
                f"({mean_se_text(r.val_auc_mean, r.val_auc_se, counted, 3)}; test AUC "
                f"{r.test_auc_mean:.3f} ± {r.test_auc_std:.3f}), Table 2's Gradient Blending row."
            )
    else:
        findings.append(
            "the four sets are trained and selected by validation AUC under `--search paper`; "
            "Table 2's row uses the loss [0, N] set."
        )
    return Rendered([md, csv], findings, markdown=_table4_markdown(df, n))


def _table4_markdown(df: pd.DataFrame, n: int) -> str:
    header = ["metric", "window of epochs", "ŵ_joint, ŵ_cc, ŵ_mlo", "largest sd over seeds"]
    paper = "val_auc_mean" in df
    if paper:
        header += ["val AUC (mean ± s.e.)", "test AUC (mean ± std)", "selected"]
    lines = _head(f"Table 4: estimated Gradient Blending weights (mean over {n} seeds)", header)
    for _, r in df.iterrows():
        window = "[0, N]" if r.window == "all" else "[0.9 N, N]"
        cells = [
            "loss" if r.metric == "loss" else "AUC",
            window,
            _triple(r[list(WEIGHT_COLUMNS)].to_numpy()),
            _fmt(r.weight_sd_max),
        ]
        if paper:
            cells += [
                f"{_fmt(r.val_auc_mean)} ± {_fmt(r.val_auc_se)}",
                f"{_fmt(r.test_auc_mean)} ± {_fmt(r.test_auc_std)}",
                "yes" if r.selected else "",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def table5(s: RecipeSettings) -> Rendered:
    """Appendix C's Table 5: test AUC of blended models with the ablation's weight sets."""
    seeds = plans.table5_seeds(s)
    sources = {cfg.seed: cfg for _, cfg in plans.blend_sources(s) if cfg.seed in seeds}
    rows = [
        ("loss_full", "loss (whole val), Table 2's set", [Path(c.out) for c in sources.values()])
    ]
    rows += [
        (
            ws.name,
            ws.label,
            [s.root / f"{plans.table5_run_name(ws.name, seed)}.zarr" for seed in sources],
        )
        for ws in blend.TABLE5_SETS
    ]
    records = []
    for name, label, stores in rows:
        runs = open_runs(stores)
        df = auc_table(runs, group_by=None, tasks=("malignant",))
        weights = np.array(
            [run.config["experiment"]["regularizers"]["blend_weights"] for run in runs], float
        )
        rec = df.iloc[0].to_dict()
        rec.update(setting=name, name=label)
        rec.update(dict(zip(WEIGHT_COLUMNS, weights.mean(axis=0), strict=True)))
        records.append(rec)
    df = pd.DataFrame(records)
    markdown = _table5_markdown(df, len(sources))
    md, csv = _write(df, s.figures_dir / "table5_blend_ablation", markdown)
    best = df.loc[df["malignant_auc_mean"].idxmax()]
    spread = df["malignant_auc_mean"].max() - df["malignant_auc_mean"].min()
    noise = float(np.nanmax(df["malignant_auc_std"])) if len(sources) > 1 else math.nan
    findings = [
        f"highest mean test AUC: {best['name']} ({best['malignant_auc_mean']:.3f}); the rows "
        f"span {spread:.3f} of test AUC over {len(sources)} seed(s)"
        + (
            f", against a seed-to-seed standard deviation of up to {noise:.3f}."
            if math.isfinite(noise)
            else " (one seed: no seed-to-seed spread to compare with; `--search paper` trains "
            "every seed)."
        ),
        "the tenth of the validation set is stratified by label and fixed per seed; its weights "
        "are averaged over all estimation epochs, as in appendix C.",
    ]
    return Rendered([md, csv], findings, markdown=markdown)


def _table5_markdown(df: pd.DataFrame, n: int) -> str:
    header = ["weights", "ŵ_joint, ŵ_cc, ŵ_mlo", "runs", "AUC (malignant)", "ensemble"]
    lines = _head(f"Table 5: Gradient Blending with other weights (test AUC, {n} seed(s))", header)
    for _, r in df.iterrows():
        std, mean = r["malignant_auc_std"], r["malignant_auc_mean"]
        auc = _fmt(mean) + (f" ± {std:.3f}" if math.isfinite(std) else "")
        ens = r["malignant_ensemble_auc"]
        cells = [
            str(r["name"]),
            _triple(r[list(WEIGHT_COLUMNS)].to_numpy()),
            str(int(r["runs"])),
            auc + interval_text(mean, r.get("malignant_auc_margin", math.nan)),
            _fmt(ens) + interval_text(ens, r.get("malignant_ensemble_margin", math.nan)),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines + ["", INTERVAL_NOTE]) + "\n"


def _head(title: str, header: list[str]) -> list[str]:
    """A bold title and a Markdown table's header rows."""
    return [
        f"**{title}**",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] * len(header)) + "|",
    ]


def _fmt(x: float) -> str:
    return f"{x:.3f}" if isinstance(x, (int, float)) and math.isfinite(x) else "n/a"


def _write(df: pd.DataFrame, path: Path, markdown: str) -> tuple[Path, Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    md, csv = path.with_suffix(".md"), path.with_suffix(".csv")
    md.write_text(markdown, encoding="utf-8")
    df.to_csv(csv, index=False)
    return md, csv

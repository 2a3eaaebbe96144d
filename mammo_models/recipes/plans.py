"""The runs behind each figure and table, as :class:`RunSpec` lists (nothing is trained here).

Run names (store paths under ``settings.root``):

* ``fig3/uni_cc/lrNN_seed0``, ``fig3/uni_mlo/lrNN_seed0``: the uni-view learning-rate sweeps
  (image + heatmap inputs);
* ``lca/<testbed>/joint_lr<lr>_seed<s>``: Joint ResNet runs with LCA (Figures 4-7), on the
  main testbed and, for Figure 4, on the control testbeds;
* ``fig8/split_lrNN_seed0``: the Split Learning Rates sweep (Figure 8);
* ``tables/heatmaps/<row>_seed<s>``: Tables 1 and 2 (image + heatmap inputs, as in the paper);
* ``tables/images/<row>_seed<s>``: Table 3 (image only);
* ``tables/heatmaps/blend_ablation/<set>_seed<s>``: Table 5's Gradient Blending weight sets,
  each trained with the weights estimated by Table 2's Gradient Blending run of its seed
  (:mod:`.blend`); Table 4 reads those estimations.

Table 2's Joint ResNet row is Table 1's; its Pretraining runs start from Table 1's uni-view runs
of the same seed; its Split Learning Rates row repeats the best setting (validation AUC) of the
Figure 8 sweep over the seeds, as the paper did.

With ``search="paper"`` every table row is instead the selected setting of its search
(:mod:`.search`, runs under ``search/``), and Figure 8 shows the Split Learning Rates search.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

from lca_toolkit import open_run

from ..training import TRAIN_PRESETS, ExperimentConfig, RecordConfig, RegularizerConfig
from ..training.config import run_dir
from ..training.data_setup import full_epoch_size
from ..training.sweep import SweepSpec, plan_sweep
from . import blend, search
from .settings import APPENDIX_A_FRACTION, COST, RecipeSettings, RunSpec

TABLE1_ROWS: tuple[tuple[str, str], ...] = (
    ("uni_mlo", "uni-view MLO"),
    ("uni_cc", "uni-view CC"),
    ("split", "Split ResNet"),
    ("joint", "Joint ResNet"),
    ("shared", "Shared ResNet"),
)
TABLE2_ROWS: tuple[tuple[str, str], ...] = (
    ("joint", "Joint ResNet"),
    ("pretraining", "+ Pretraining"),
    ("split_lr", "+ Split Learning Rates"),
    ("gradient_blending", "+ Gradient Blending"),
    ("modality_dropout", "+ Modality Dropout"),
)
TABLE3_ROWS: tuple[tuple[str, str], ...] = (
    ("joint", "Joint ResNet"),
    ("modality_dropout", "+ Modality Dropout"),
    ("shared", "Shared ResNet"),
)
VARIANT_ROWS = frozenset({"uni_cc", "uni_mlo", "joint", "shared", "split"})


def _fixed(config: ExperimentConfig):
    return lambda: config


def _name(s: RecipeSettings, config: ExperimentConfig) -> str:
    return Path(config.out).relative_to(s.root).as_posix().removesuffix(".zarr")


def _sweep(s: RecipeSettings, base: ExperimentConfig, spec: SweepSpec, folder: str, cost: float):
    planned = plan_sweep(base, spec, s.root / folder)
    return [RunSpec(_name(s, cfg), _fixed(cfg), cost=cost) for _, cfg, _ in planned]


# ---------------------------------------------------------------------------------------- figures
def fig3_runs(s: RecipeSettings) -> list[RunSpec]:
    """Uni-view CC and MLO models at ``n_lr`` log-uniform rates in [1e-5, 3e-3] (appendix B),
    with heatmap inputs as the paper's Figure 3 (its best models are Table 1's rows)."""
    runs = []
    for variant in ("uni_cc", "uni_mlo"):
        base = s.config(f"fig3/{variant}/base", variant=variant, data=_heatmaps(s, True))
        spec = SweepSpec("lr", n=s.n_lr, seeds=(0,), lr_range=(1e-5, 3e-3), sweep_seed=3)
        runs += _sweep(s, base, spec, f"fig3/{variant}", COST[variant])
    return runs


def lca_run_name(lr: float, seed: int, testbed: str) -> str:
    return f"lca/{testbed}/joint_lr{lr:.0e}_seed{seed}"


def lca_runs(s: RecipeSettings, lr: float, testbed: str | None = None) -> list[RunSpec]:
    """Joint ResNet runs with LCA recorded, one per seed (the preset's k and subset, train-mode
    BN), on ``testbed`` (default: the main one).

    Below the ``paper`` preset they train for the :attr:`~RecipeSettings.lca_record_epochs`
    and record LCA throughout on :attr:`~RecipeSettings.lca_eval_set`. At ``paper`` they follow
    appendix A: epochs of :data:`APPENDIX_A_FRACTION` of the breasts (or ``epoch_breasts``),
    E = each epoch's breasts, the whole schedule trained and LCA recorded for the first
    ``lca_record_epochs`` only.
    """
    testbed = testbed or s.testbed
    data = s.data if testbed == "manifest" else replace(s.data, testbed=testbed)
    k = TRAIN_PRESETS[s.preset].lca_every  # input ablation at LCA's pace: 4 passes over E
    record = RecordConfig(lca=True, lca_set=s.lca_eval_set, ablation_every=k)
    epochs: int | None = s.lca_record_epochs
    if s.appendix_a:
        record = replace(record, lca_epochs=s.lca_record_epochs)
        epochs = s.epochs
    runs = []
    for seed in s.lca_seeds:
        name = lca_run_name(lr, seed, testbed)
        cfg = s.config(
            name, variant="joint", lr=lr, seed=seed, epochs=epochs, data=data, record=record
        )
        runs.append(RunSpec(name, _appendix_a_epochs(s, cfg), cost=COST["lca"]))
    return runs


def _appendix_a_epochs(s: RecipeSettings, config: ExperimentConfig):
    """The run's config, with appendix A's shrunk epochs at the ``paper`` preset (their size
    needs the data, so it is settled when the run is about to train)."""
    if s.epoch_breasts is not None:
        return _fixed(replace(config, epoch_breasts=s.epoch_breasts))
    if not s.appendix_a:
        return _fixed(config)

    def build() -> ExperimentConfig:
        n = max(2, round(APPENDIX_A_FRACTION * full_epoch_size(config)))
        return replace(config, epoch_breasts=n)

    return build


def fig4_runs(s: RecipeSettings) -> list[RunSpec]:
    """Figure 4's LCA runs on the main testbed and on each control."""
    runs = lca_runs(s, s.lca_lrs[0])
    for control in s.control_testbeds:
        runs += lca_runs(s, s.lca_lrs[0], control)
    return runs


def fig8_runs(s: RecipeSettings) -> list[RunSpec]:
    """Split Learning Rates settings: alpha ~ U[-1, 1] per component around ``table_lr``
    (``search="paper"``: the Split Learning Rates search of Table 2, around each base rate)."""
    if s.search == "paper":
        return search.search_runs(s, "heatmaps", "split_lr")
    base = s.config("fig8/base", variant="joint", lr=s.table_lr, data=_heatmaps(s, True))
    spec = SweepSpec("split_lr", n=s.n_split_lr, seeds=(0,), sweep_seed=8)
    return _sweep(s, base, spec, "fig8", COST["split_lr"])


# ---------------------------------------------------------------------------------------- tables
def _heatmaps(s: RecipeSettings, on: bool):
    return replace(s.data, heatmaps=on)


def table_run_name(folder: str, row: str, seed: int) -> str:
    return f"tables/{folder}/{row}_seed{seed}"


def _row_run(s: RecipeSettings, folder: str, row: str, seed: int) -> RunSpec:
    """One seed of one table row (a variant, or a regulariser on the Joint ResNet)."""
    name = table_run_name(folder, row, seed)
    data = _heatmaps(s, folder == "heatmaps")
    fields: dict[str, object] = {"seed": seed, "lr": s.table_lr, "data": data}
    if row in VARIANT_ROWS:
        return RunSpec(name, _fixed(s.config(name, variant=row, **fields)), cost=COST[row])
    if row == "modality_dropout":
        regs = RegularizerConfig(modality_dropout=s.dropout)
        cfg = s.config(name, regularizer=row, regularizers=regs, **fields)
        return RunSpec(name, _fixed(cfg), cost=COST[row])
    if row == "gradient_blending":
        cfg = s.config(name, regularizer=row, **fields)
        return RunSpec(name, _fixed(cfg), cost=COST[row])
    if row == "pretraining":
        cc, mlo = (table_run_name(folder, v, seed) for v in ("uni_cc", "uni_mlo"))
        regs = RegularizerConfig(
            pretrained_cc=run_dir(s.root / f"{cc}.zarr").best,
            pretrained_mlo=run_dir(s.root / f"{mlo}.zarr").best,
        )
        cfg = s.config(name, regularizer=row, regularizers=regs, **fields)
        return RunSpec(name, _fixed(cfg), needs=(cc, mlo), cost=COST[row])
    if row == "split_lr":
        sweep = [r.name for r in fig8_runs(s)]

        def build() -> ExperimentConfig:
            alphas = best_split_lr_alphas([s.root / f"{n}.zarr" for n in sweep])
            regs = RegularizerConfig(split_lr_alphas=alphas)
            return s.config(name, regularizer=row, regularizers=regs, **fields)

        return RunSpec(name, build, needs=tuple(sweep), cost=COST[row])
    raise ValueError(f"unknown table row {row!r}")


def best_split_lr_alphas(stores: list[Path]) -> dict[str, float]:
    """The alphas of the sweep run with the best validation AUC (the paper's selection)."""
    best, best_auc = None, -math.inf
    for store in stores:
        run = open_run(store)
        auc = run.attrs.get("results", {}).get("best_val_auc", math.nan)
        if auc is not None and math.isfinite(auc) and auc > best_auc:
            best, best_auc = run.config["experiment"]["alphas"], auc
    if best is None:
        raise ValueError(
            f"no Split Learning Rates sweep run under {stores[0].parent} has a validation AUC"
        )
    return {k: float(v) for k, v in best.items()}


def table_runs(s: RecipeSettings, folder: str, rows: tuple[tuple[str, str], ...]) -> list[RunSpec]:
    """The runs of a table's rows: one run per seed, or each row's search (``search="paper"``)."""
    if s.search == "paper":
        return [r for row, _ in rows for r in search.search_runs(s, folder, row)]
    runs = []
    for row, _ in rows:
        for seed in s.seeds:
            if row == "pretraining":  # its uni-view starting points are Table 1's runs
                runs += [_row_run(s, folder, v, seed) for v in ("uni_cc", "uni_mlo")]
            if row == "split_lr":
                runs += fig8_runs(s)
            runs.append(_row_run(s, folder, row, seed))
    return runs


# ------------------------------------------------------------------ Tables 4 and 5 (appendix C)
def blend_sources(s: RecipeSettings) -> list[tuple[RunSpec, ExperimentConfig]]:
    """The Gradient Blending runs that estimate the weights, one per seed, with their configs:
    Table 2's row (``search="fixed"``) or the validation-loss runs of its search."""
    if s.search == "paper":
        runs = search.row_search(s, "heatmaps", "gradient_blending").runs
        sources = [r for r in runs if not r.needs]
    else:
        sources = [_row_run(s, "heatmaps", "gradient_blending", seed) for seed in s.seeds]
    return [(r, r.build()) for r in sources]


def table4_runs(s: RecipeSettings) -> list[RunSpec]:
    """Table 4's weights come from the estimating runs; under ``search="paper"`` the four
    weight sets are trained and selected (Table 2's Gradient Blending search)."""
    if s.search == "paper":
        return search.search_runs(s, "heatmaps", "gradient_blending")
    return [spec for spec, _ in blend_sources(s)]


def table5_seeds(s: RecipeSettings) -> tuple[int, ...]:
    """Seeds of Table 5's ablation: all under ``search="paper"``, the first one in fast mode
    (five blended models per seed would not fit in ``make figures``' time)."""
    return s.seeds if s.search == "paper" else s.seeds[:1]


def table5_run_name(name: str, seed: int) -> str:
    return f"tables/heatmaps/blend_ablation/{name}_seed{seed}"


def table5_runs(s: RecipeSettings) -> list[RunSpec]:
    """Appendix C's ablation: each of :data:`.blend.TABLE5_SETS` for every seed of
    :func:`table5_seeds`, derived from that seed's estimation (trained once)."""
    seeds = table5_seeds(s)
    runs = []
    for spec, cfg in blend_sources(s):
        if cfg.seed not in seeds:
            continue
        runs.append(spec)
        for ws in blend.TABLE5_SETS:
            out = s.root / f"{table5_run_name(ws.name, cfg.seed)}.zarr"
            runs.append(blend.derived_run(s, cfg, out, ws))
    return runs


def row_stores(s: RecipeSettings, folder: str, row: str) -> list[Path]:
    """The stores a table row reports, one per seed: its runs, or under ``search="paper"`` the
    runs of the setting its search selected (the stores must have finished)."""
    if s.search == "paper":
        return search.selected_stores(s, folder, row)
    return [s.root / f"{table_run_name(folder, row, seed)}.zarr" for seed in s.seeds]


def selection_lines(s: RecipeSettings, folder: str, rows: tuple[tuple[str, str], ...]) -> list[str]:
    """Under ``search="paper"``, which setting each row's search selected; else nothing."""
    if s.search != "paper":
        return []
    return [search.selection_line(s, folder, row) for row, _ in rows]

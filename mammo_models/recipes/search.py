"""The paper's searches behind each table row (``--search paper``), as recipe runs, and selection.

Section 6 and appendix B: every row of Tables 1-3 is the best of a search, each setting trained
with ``seeds`` repetitions and selected by the mean best validation AUC over them
(:func:`mammo_models.training.selection.select_best`); the table reports the selected setting's
runs themselves, so a row's search *is* its runs.

=====================  ==========================================================================
row                    search (settings x seeds)
=====================  ==========================================================================
uni-view, variants     ``n_lr`` learning rates log-uniform in [1e-5, 3e-3] (uni-view) or
                       [1e-5, 1e-3] (Joint, Shared, Split ResNet)
Modality Dropout       ``n_dropout`` pairs of rates U[0, 1) per view at each of ``search_lrs``
Split Learning Rates   ``n_split_lr`` alpha sets U[-1, 1] per component at each of ``search_lrs``
Pretraining            ``n_lr`` learning rates in [1e-5, 1e-3], seed s starting from seed s of the
                       *selected* uni-view CC and MLO settings (so it waits for both searches)
Gradient Blending      weights estimated with each metric of ``blend_metrics`` and averaged over
                       the windows [0, E] and [0.9 E, E] of the estimation epochs (appendix C's
                       four weight sets, :mod:`.blend`: one estimation per seed), trained at
                       lr 1e-4, best by validation AUC
=====================  ==========================================================================

Run names: ``search/<folder>/<row>/<setting>_seed<s>`` (Modality Dropout and Split Learning Rates:
``search/<folder>/<row>/lr<base>/<setting>_seed<s>``; Gradient Blending:
``search/<folder>/gradient_blending/<metric>[_late]/seed<s>``). The sampled settings come from a seed
derived from the search's name, and setting ``k`` is the same whatever ``n`` is, so names and
settings are stable: finished runs are reused, a killed search resumes where it stopped, and a
larger ``n_lr`` only adds runs.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..training import ExperimentConfig, RegularizerConfig
from ..training.config import run_dir
from ..training.selection import Selection, mean_se_text, select_best
from ..training.sweep import SweepSpec, default_lr_range, plan_sweep, sweep_groups
from . import blend
from .settings import COST, RecipeSettings, RunSpec

BLEND_LR = 1e-4
"""Appendix C trains every Gradient Blending model at a fixed learning rate of 1e-4."""

LR_ROWS = frozenset({"uni_cc", "uni_mlo", "joint", "shared", "split", "pretraining"})


@dataclass
class Search:
    """The runs of one table row's search, grouped by setting.

    Attributes:
        name: ``search/<folder>/<row>``.
        runs: its runs, settings in sampling order, seeds inner.
        groups: setting -> its run names (one per seed), the order ties are broken in.
        params: setting -> its parameters (``lr``, ``p_cc``, ``alpha_cc``, ``blend_metric``...).
    """

    name: str
    runs: list[RunSpec] = field(default_factory=list)
    groups: dict[str, list[str]] = field(default_factory=dict)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)

    def select(self, s: RecipeSettings) -> Selection:
        """Selection over the finished stores (reads them; trains nothing)."""
        stores = {k: [s.root / f"{n}.zarr" for n in v] for k, v in self.groups.items()}
        return select_best(stores, self.params)

    def add(
        self,
        s: RecipeSettings,
        planned: list[tuple[str, ExperimentConfig, dict[str, Any]]],
        cost: float,
        prefix: str = "",
    ) -> None:
        """Add a planned sweep's runs (``prefix`` keeps setting names unique across sweeps)."""
        groups, params = sweep_groups(planned)
        for key, stores in groups.items():
            self.groups[prefix + key] = [_name(s, p) for p in stores]
            self.params[prefix + key] = params[key]
        self.runs += [RunSpec(_name(s, cfg.out), _fixed(cfg), cost=cost) for _, cfg, _ in planned]


def _fixed(config: ExperimentConfig):
    return lambda: config


def _name(s: RecipeSettings, out: Path) -> str:
    return Path(out).relative_to(s.root).as_posix().removesuffix(".zarr")


def _sweep_seed(name: str) -> int:
    """A seed of the sampling that depends on the search's name only (stable across calls)."""
    return zlib.crc32(name.encode())


def _lr_tag(lr: float) -> str:
    return f"lr{lr:.0e}"


def row_search(s: RecipeSettings, folder: str, row: str) -> Search:
    """The search of one table row (module docstring); ``folder`` is ``heatmaps`` or ``images``."""

    name = f"search/{folder}/{row}"
    data = replace(s.data, heatmaps=folder == "heatmaps")
    search = Search(name)
    out = s.root / name
    if row in LR_ROWS:
        variant = "joint" if row == "pretraining" else row
        base = s.config(f"{name}/base", variant=variant, data=data)
        spec = SweepSpec(
            "lr",
            n=s.n_lr,
            seeds=s.seeds,
            lr_range=default_lr_range(variant),
            sweep_seed=_sweep_seed(name),
        )
        search.add(s, plan_sweep(base, spec, out), COST[row])
        if row == "pretraining":
            _start_from_selected_uni_views(s, folder, search)
    elif row in ("modality_dropout", "split_lr"):
        kind, n = (
            ("dropout", s.n_dropout) if row == "modality_dropout" else ("split_lr", s.n_split_lr)
        )
        for lr in s.search_lrs:
            tag = _lr_tag(lr)
            base = s.config(f"{name}/{tag}/base", variant="joint", lr=lr, data=data)
            spec = SweepSpec(kind, n=n, seeds=s.seeds, sweep_seed=_sweep_seed(f"{name}/{tag}"))
            search.add(s, plan_sweep(base, spec, out / tag), COST[row], prefix=f"{tag}/")
    elif row == "gradient_blending":
        _add_weight_sets(s, search, name, data)
    else:
        raise ValueError(f"unknown table row {row!r}")
    return search


def _add_weight_sets(s: RecipeSettings, search: Search, name: str, data: Any) -> None:
    """Appendix C's weight sets of the metrics in ``blend_metrics`` (Table 4), x seeds: the
    first metric's [0, N] runs estimate the weights; every other set of the same seed is
    derived from that estimation (:mod:`.blend`), so it is trained once per seed."""

    first = s.blend_metrics[0]
    regs = RegularizerConfig(blend_metric=first)
    base = s.config(
        f"{name}/{first}/base",
        regularizer="gradient_blending",
        regularizers=regs,
        lr=BLEND_LR,
        data=data,
    )
    out = s.root / name
    planned = plan_sweep(base, SweepSpec("seed", seeds=s.seeds), out / first)
    planned = [(n, c, {**p, "blend_metric": first, "window": "all"}) for n, c, p in planned]
    search.add(s, planned, COST["gradient_blending"], prefix=f"{first}/")
    for ws in blend.TABLE4_SETS:
        if ws.metric not in s.blend_metrics or ws.name == first:
            continue
        key = f"{ws.name}/seeds"
        search.groups[key] = []
        search.params[key] = {"lr": BLEND_LR, "blend_metric": ws.metric, "window": ws.window}
        for _, cfg, _ in planned:
            spec = blend.derived_run(s, cfg, out / ws.name / Path(cfg.out).name, ws)
            search.groups[key].append(spec.name)
            search.runs.append(spec)


def _start_from_selected_uni_views(s: RecipeSettings, folder: str, search: Search) -> None:
    """Turn the planned Joint ResNet runs into Pretraining runs that wait for the uni-view
    searches and start seed ``s`` from seed ``s`` of each selected uni-view setting."""
    views = [row_search(s, folder, v) for v in ("uni_cc", "uni_mlo")]
    needs = tuple(r.name for v in views for r in v.runs)
    planned = search.runs
    search.runs = []
    for spec in planned:
        config = spec.build()

        def build(config: ExperimentConfig = config) -> ExperimentConfig:
            i = s.seeds.index(config.seed)
            cc, mlo = (
                run_dir(v.select(s).winner_stores(f"{v.name} (for Pretraining)")[i]).best
                for v in views
            )
            regs = RegularizerConfig(pretrained_cc=cc, pretrained_mlo=mlo)
            return replace(config, regularizer="pretraining", regularizers=regs)

        search.runs.append(replace(spec, build=build, needs=needs, soft_needs=True))


def search_runs(s: RecipeSettings, folder: str, row: str) -> list[RunSpec]:
    """Every run a row needs under ``--search paper`` (Pretraining: with the uni-view searches)."""
    runs = row_search(s, folder, row).runs
    if row == "pretraining":
        runs = [r for v in ("uni_cc", "uni_mlo") for r in row_search(s, folder, v).runs] + runs
    return runs


def selected_stores(s: RecipeSettings, folder: str, row: str) -> list[Path]:
    """The run stores a row reports under ``--search paper``: the selected setting's seeds."""
    search = row_search(s, folder, row)
    return search.select(s).winner_stores(search.name)


def selection_line(s: RecipeSettings, folder: str, row: str) -> str:
    """One line saying which setting a row's search selected, and on what evidence."""
    search = row_search(s, folder, row)
    sel = search.select(s)
    table = sel.table.set_index("setting")
    winner = sel.require_winner(search.name)
    r = table.loc[winner]
    shown = ", ".join(f"{k} {_fmt(v)}" for k, v in search.params[winner].items())
    complete = int(table["complete"].sum())
    return (
        f"{row}: selected {winner} ({shown}) of {len(table)} settings ({complete} complete) by "
        f"mean best validation AUC {mean_se_text(r.val_auc_mean, r.val_auc_se, int(r.counted), 3)}."
    )


def _fmt(v: object) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)

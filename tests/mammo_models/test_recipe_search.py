"""``lca-run recipe --search paper``: the paper's searches as recipe runs, trained once, selected by
mean validation AUC, resumed without retraining; and the recipe options for a user's data.

Two learning rates and two seeds stand in for the paper's ten and three, on the ``tiny`` preset,
through the same code path.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from lca_toolkit_cli.run import main

from lca_toolkit import open_run
from mammo_models.recipes import RecipeSettings, make_recipes, plans, run_all
from mammo_models.recipes import runner as runner_module
from mammo_models.recipes.make import command, run_counts
from mammo_models.recipes.search import (
    row_search,
    search_runs,
    selected_stores,
)
from mammo_models.training import ConfigError, DataSource
from mammo_models.training.blending import window_weights
from mammo_models.training.config import run_dir
from mammo_models.training.data_setup import build_run_data, full_epoch_size
from tests.helpers.plot_stores import write_store


def _settings(root: Path, **over) -> RecipeSettings:
    base = dict(
        runs_dir=root / "runs",
        figures_dir=root / "figures",
        preset="tiny",
        data=DataSource(synthetic_root=root / "synthetic"),
        device="cpu",
        seeds=(0, 1),
        epochs=1,
        n_lr=2,
        n_dropout=1,
        n_split_lr=1,
        blend_metrics=("loss",),
        search="paper",
    )
    return RecipeSettings(**{**base, **over})


# ------------------------------------------------------------------------------ planning only
def test_run_counts_follow_the_papers_search():
    paper = RecipeSettings(search="paper")
    counts = {n: run_counts([n], paper)[n] for n in ("table1", "table2", "table3", "fig8")}
    # 10 learning rates x 3 seeds per row; Table 2: Joint 30, Pretraining 30 + its uni-view
    # searches 60, Split LR and Modality Dropout 2 bases x 10 x 3, Gradient Blending 2 metrics
    # x 2 windows x 3.
    assert counts == {
        "table1": 150,
        "table2": 30 + 90 + 60 + 12 + 60,
        "table3": 30 + 60 + 30,
        "fig8": 60,
    }
    assert run_counts(["table1", "table2"], paper)["total"] == 150 + 252 - 30 - 60
    fixed = RecipeSettings()
    assert run_counts(["table1", "table2", "table3"], fixed) == {
        "table1": 15,
        "table2": 31,
        "table3": 9,
        "total": 15 + 31 - 3 - 6 + 9,
    }


def test_searches_are_shared_stable_and_sample_the_papers_ranges(tmp_path):
    s = _settings(tmp_path)
    t1 = {r.name for r in plans.table_runs(s, "heatmaps", plans.TABLE1_ROWS)}
    t2 = {r.name for r in plans.table_runs(s, "heatmaps", plans.TABLE2_ROWS)}
    joint = {r.name for r in row_search(s, "heatmaps", "joint").runs}
    uni = {r.name for v in ("uni_cc", "uni_mlo") for r in row_search(s, "heatmaps", v).runs}
    assert joint | uni <= t1 & t2  # Table 2 reuses Table 1's Joint and uni-view searches
    assert {r.name for r in plans.fig8_runs(s)} == {
        r.name for r in search_runs(s, "heatmaps", "split_lr")
    }
    assert all(n.startswith("search/") for n in t1 | t2)
    # a larger search only adds runs: setting k keeps its name and value
    big = _settings(tmp_path, n_lr=10, n_dropout=10, seeds=(0, 1, 2))
    for row in ("joint", "modality_dropout", "split_lr"):
        small_cfg = {r.name: r.build() for r in row_search(s, "heatmaps", row).runs}
        big_cfg = {r.name: r.build() for r in row_search(big, "heatmaps", row).runs}
        assert all(big_cfg[n] == c for n, c in small_cfg.items())
    lrs = [r.build().lr for r in row_search(big, "heatmaps", "joint").runs]
    assert len(set(lrs)) == 10 and all(1e-5 <= x <= 1e-3 for x in lrs)
    uni_lrs = [r.build().lr for r in row_search(big, "heatmaps", "uni_cc").runs]
    assert max(uni_lrs) <= 3e-3 and len(set(uni_lrs)) == 10
    md = [r.build() for r in row_search(big, "images", "modality_dropout").runs]
    assert {c.lr for c in md} == {1e-5, 1e-4} and len(md) == 2 * 10 * 3
    assert all(0 <= p < 1 for c in md for p in c.regularizers.modality_dropout)
    assert len({c.regularizers.modality_dropout for c in md}) == 20  # each base samples its own
    split = [r.build() for r in row_search(big, "heatmaps", "split_lr").runs]
    assert {c.lr for c in split} == {1e-5, 1e-4}
    assert all(-1 <= a <= 1 for c in split for a in c.regularizers.split_lr_alphas.values())
    blend = row_search(s, "heatmaps", "gradient_blending").runs
    early = [r.build() for r in blend if not r.needs]
    assert {(c.lr, c.regularizers.blend_metric, c.regularizers.blend_weights) for c in early} == {
        (1e-4, "loss", None)  # estimated over [0, E] by the run itself
    }
    assert {r.name.split("/")[-2] for r in blend if r.needs} == {"loss_late"}
    both = _settings(tmp_path, blend_metrics=("loss", "auc"))
    blend = row_search(both, "heatmaps", "gradient_blending").runs
    derived = [r for r in blend if r.needs]  # the other three sets reuse that estimation
    assert {r.name.split("/")[-2] for r in derived} == {"loss_late", "auc", "auc_late"}
    assert len(blend) - len(derived) == len(both.seeds)  # one estimation per seed
    for r in derived:
        folder, seed = r.name.rsplit("/", 2)[-2:]
        assert r.needs == (r.name.replace(f"/{folder}/{seed}", f"/loss/{seed}"),)
    pre = row_search(s, "heatmaps", "pretraining").runs
    assert all(set(r.needs) == uni and r.soft_needs for r in pre)


def test_make_recipes_prints_the_run_count_before_training(tmp_path, monkeypatch):
    calls: list[int] = []
    monkeypatch.setattr(
        "mammo_models.recipes.make.run_all", lambda specs, **_: calls.append(1) or []
    )
    lines: list[str] = []
    make_recipes(["table1"], _settings(tmp_path), echo=lines.append)
    assert lines[0] == "table1 --search paper: 20 runs" and calls == [1]


# ------------------------------------------------------------------------------ trained runs
def test_the_late_window_averages_the_last_tenth_of_the_estimation(tmp_path):
    s = _settings(tmp_path)
    # ten epoch pairs: [0.9 E, E] keeps the last one; the stored weights are what it trains with
    history = [{"joint": 0.5, "cc": 0.25, "mlo": 0.25}] * 9 + [
        {"joint": 0.2, "cc": 0.2, "mlo": 0.6}
    ]
    assert window_weights(history, "late") == pytest.approx(history[-1])
    assert window_weights(history[:1], "late") == pytest.approx(history[0])
    late = next(r for r in row_search(s, "heatmaps", "gradient_blending").runs if r.needs)
    assert "/loss_late/" in late.name
    source = write_store(s.root / f"{late.needs[0]}.zarr", n_steps=2, lca_every=None, n_epochs=1)
    meta = source / "zarr.json"
    doc = json.loads(meta.read_text())
    doc["attributes"]["config"]["experiment"] = {"blend_estimation": {"per_epoch_pair": history}}
    meta.write_text(json.dumps(doc))
    cfg = late.build()
    assert cfg.regularizers.blend_weights == pytest.approx((0.2, 0.2, 0.6))
    assert cfg.out == s.root / f"{late.name}.zarr" and cfg.lr == 1e-4


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """The Pretraining search with the uni-view searches it starts from (2 rates x 2 seeds each),
    trained on one thread (tiny runs are fastest so on shared cores)."""
    root = tmp_path_factory.mktemp("search")
    s = _settings(root)
    specs = search_runs(s, "heatmaps", "pretraining")
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mp.setattr(runner_module.os, "cpu_count", lambda: 1)
        outcomes = run_all(specs, echo=lambda _: None)
    torch.set_num_threads(threads)
    return s, specs, outcomes


def _hand_winner(s: RecipeSettings, row: str) -> str:
    """Mean best validation AUC per setting read store by store; the first of a tie wins."""
    search = row_search(s, "heatmaps", row)
    best, best_mean = None, -math.inf
    for setting, names in search.groups.items():
        vals = [open_run(s.root / f"{n}.zarr").attrs["results"]["best_val_auc"] for n in names]
        mean = sum(vals) / len(vals)
        if best is None or mean > best_mean + 1e-9:
            best, best_mean = setting, mean
    return best


def test_each_search_run_is_trained_once(searched):
    s, specs, outcomes = searched
    assert len(specs) == 3 * 2 * 2
    assert [o.status for o in outcomes] == ["trained"] * 12, [(o.name, o.message) for o in outcomes]
    assert len({o.name for o in outcomes}) == 12


def test_selection_and_pretraining_follow_a_hand_computation(searched):
    s, _, _ = searched
    for view in ("uni_cc", "uni_mlo"):
        winner = _hand_winner(s, view)
        search = row_search(s, "heatmaps", view)
        assert search.select(s).winner == winner
        assert selected_stores(s, "heatmaps", view) == [
            s.root / f"{n}.zarr" for n in search.groups[winner]
        ]
    # Pretraining seed k starts from seed k of the selected uni-view CC and MLO settings
    cc, mlo = (selected_stores(s, "heatmaps", v) for v in ("uni_cc", "uni_mlo"))
    for run in row_search(s, "heatmaps", "pretraining").runs:
        stored = open_run(s.root / f"{run.name}.zarr").config["experiment"]
        i = s.seeds.index(stored["seed"])
        assert stored["regularizer"] == "pretraining"
        regs = stored["regularizers"]
        assert [Path(regs["pretrained_cc"]), Path(regs["pretrained_mlo"])] == [
            run_dir(cc[i]).best,
            run_dir(mlo[i]).best,
        ]
    line = plans.selection_lines(s, "heatmaps", (("uni_cc", "uni-view CC"),))[0]
    assert line.startswith(f"uni_cc: selected {_hand_winner(s, 'uni_cc')} (lr ")


def test_a_killed_search_resumes_without_retraining_finished_runs(searched):
    s, specs, _ = searched
    pre = [r.name for r in row_search(s, "heatmaps", "pretraining").runs]
    run_dir(s.root / f"{pre[0]}.zarr").remove()  # killed before it started
    meta = s.root / f"{pre[1]}.zarr" / "zarr.json"  # killed mid-run
    doc = json.loads(meta.read_text())
    doc["attributes"]["status"] = "interrupted"
    meta.write_text(json.dumps(doc))
    with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mp.setattr(runner_module.os, "cpu_count", lambda: 1)
        again = run_all(specs, echo=lambda _: None)
    redone = sorted(o.name for o in again if o.status != "reused")
    assert redone == sorted(pre[:2]), [(o.name, o.status) for o in again]
    assert all(o.status == "trained" for o in again if o.name in pre[:2])


# ------------------------------------------------------------------------------ options
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["table9"], "'table9' is not one of"),
        (["table1", "--search", "paper", "--lr", "1e-3"], "--lr fixes what --search paper"),
        (["table1", "--search", "paper", "--dropout", "0.1", "0.2"], "--dropout fixes what"),
        (["table1", "--search", "grid"], "'grid' is not one of 'fixed', 'paper'"),
        (["table1", "--epochs", "-1"], "'--epochs': -1 is not in the range x>=1"),
        (["table1", "--dropout", "0.2", "1.0"], "'--dropout': 1.0 is not in the range 0<=x<1"),
        (["table1", "--dropout", "-0.1", "0.5"], "'--dropout': -0.1 is not in the range"),
        (["table1", "--lr", "0"], "'--lr': 0.0 is not in the range x>0"),
        (["table1", "--seeds", "a,b"], "--seeds 'a,b': expected integers"),
    ],
)
def test_bad_recipe_options_are_one_line_naming_the_option(tmp_path, args, needle):
    res = CliRunner().invoke(main, ["recipe", *args, "--runs", str(tmp_path), "--dry-run"])
    assert res.exit_code != 0
    error = [x for x in res.output.splitlines() if x.startswith("Error:")]
    assert len(error) == 1 and needle in error[0], res.output


def test_recipe_options_reach_the_runs(tmp_path):
    res = CliRunner().invoke(
        main,
        [
            "recipe",
            "table2",
            "table3",
            "--search",
            "paper",
            "--seeds",
            "0-1",
            "--n-lr",
            "2",
            "--runs",
            str(tmp_path),
            "--dry-run",
        ],
    )
    assert res.exit_code == 0, res.output
    # Table 2: Joint 4, Pretraining 4 + uni-view 8, Split LR and Modality Dropout 2 x 10 x 2,
    # Gradient Blending 2 x 2 x 2; Table 3: Joint 4, Modality Dropout 40, Shared 4.
    assert "table2 --search paper: 104 runs" in res.output
    assert "table3 --search paper: 48 runs" in res.output
    s = RecipeSettings(table_lr=3e-4, dropout=(0.1, 0.6), seeds=(4,), epochs=3)
    cfgs = {r.name: r.build() for r in plans.table_runs(s, "images", plans.TABLE3_ROWS)}
    md = cfgs["tables/images/modality_dropout_seed4"]
    assert md.regularizers.modality_dropout == (0.1, 0.6) and md.lr == 3e-4 and md.epochs == 3
    with pytest.raises(ConfigError, match="--search 'grid'"):
        RecipeSettings(search="grid")
    with pytest.raises(ConfigError, match="--dropout"):
        RecipeSettings(dropout=(0.5, 1.0))
    with pytest.raises(ConfigError, match="--epochs"):
        RecipeSettings(epochs=0)


# ------------------------------------------------------------------------------ appendix A
def test_the_paper_presets_lca_runs_follow_appendix_a(tmp_path, monkeypatch):
    paper = RecipeSettings(runs_dir=tmp_path, preset="paper", epoch_breasts=97)
    (spec, *_) = plans.lca_runs(paper, 1e-5)
    cfg = spec.build()
    assert cfg.record.lca_set == "epoch" and cfg.record.lca_epochs == 6
    assert cfg.epochs is None and cfg.epoch_breasts == 97  # the whole schedule, shrunk epochs
    fast = _settings(tmp_path, search="fixed")
    cfg = plans.lca_runs(fast, 1e-5)[0].build()
    assert (cfg.record.lca_set, cfg.record.lca_epochs, cfg.epochs, cfg.epoch_breasts) == (
        "fixed-train",
        None,
        5,
        None,
    )
    # without --epoch-breasts, appendix A's 10% of a full epoch, read from the data
    monkeypatch.setattr(RecipeSettings, "appendix_a", property(lambda self: True))
    cfg = plans.lca_runs(fast, 1e-5)[0].build()
    full = full_epoch_size(cfg)
    assert cfg.epoch_breasts == max(2, round(0.1 * full))
    sampler = build_run_data(replace(cfg, epoch_breasts=None)).sampler
    assert full == sampler.epoch_size == sampler.n_positive + sampler.negatives_per_epoch


def test_recipe_lca_options_reach_the_runs_and_the_command(tmp_path):
    s = _settings(tmp_path, search="fixed", lca_epochs=2, lca_set="val", epoch_breasts=10)
    cfg = plans.lca_runs(s, 1e-4)[0].build()
    assert (cfg.record.lca_set, cfg.epochs, cfg.epoch_breasts) == ("val", 2, 10)
    assert "--lca-epochs 2 --epoch-breasts 10 --lca-set val" in command(["fig4"], s, 1)
    with pytest.raises(ConfigError, match="--lca-set 'nope' is unknown"):
        _settings(tmp_path, lca_set="nope")


# ------------------------------------------------------------------------------ end to end
def test_tables_1_to_5_with_the_papers_search_run_end_to_end(tmp_path):
    """Every table through --search paper's code path, one rate, one seed and one sampled set
    standing in for ten, ten and three; the run count is printed before anything trains."""
    s = _settings(
        tmp_path,
        seeds=(0,),
        n_lr=1,
        search_lrs=(1e-4,),
        blend_metrics=("loss", "auc"),
    )
    names = ["table1", "table2", "table3", "table4", "table5"]
    lines: list[str] = []
    threads = torch.get_num_threads()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = make_recipes(names, s, jobs=1, echo=lines.append)
    torch.set_num_threads(threads)
    assert lines[: len(names)] == [
        f"{n} --search paper: {c} runs" for n, c in run_counts(names, s).items() if n != "total"
    ]
    assert report.ok and set(report.rendered) == set(names), report.failed
    table4 = pd.read_csv(s.figures_dir / "table4_blend_weights.csv")
    assert list(table4["set"]) == ["loss", "loss_late", "auc", "auc_late"]
    assert table4["selected"].sum() == 1  # the four sets trained and one selected
    table5 = pd.read_csv(s.figures_dir / "table5_blend_ablation.csv")
    assert len(table5) == 6 and (table5["runs"] == 1).all()

"""Recipes: every figure and table made from runs trained once, reused, and described honestly."""

from __future__ import annotations

import math
import warnings
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from lca_toolkit_cli.run import main
from PIL import Image

from lca_toolkit import open_run, open_runs
from lca_toolkit.plots import auc_table
from mammo_models.recipes import RECIPES, RecipeSettings, RunSpec, make_recipes, plans, run_all
from mammo_models.recipes.runner import store_state
from mammo_models.training import DataSource


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Every recipe on the tiny preset: one seed, one epoch (LCA runs too), the smallest sweeps."""
    root = tmp_path_factory.mktemp("recipes")
    settings = RecipeSettings(
        runs_dir=root / "runs",
        figures_dir=root / "figures",
        preset="tiny",
        data=DataSource(synthetic_root=root / "synthetic"),
        device="cpu",
        seeds=(0,),
        lca_seeds=(0,),
        epochs=1,
        lca_epochs=1,  # the LCA runs train lca_epochs (5 below the paper preset), not epochs
        n_lr=1,
        n_split_lr=2,
        controls=("cue-cc", "balanced"),  # lesion-mlo's contrast is the same code path
    )
    lines: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tiny test sets often have one class: AUC NaN warnings
        report = make_recipes(["all"], settings, jobs=1, echo=lines.append)
    return settings, report, lines


def test_every_figure_and_table_is_made_with_its_readme_section(made):
    settings, report, _ = made
    assert report.ok, (report.failed, [o for o in report.outcomes if o.status != "trained"])
    assert set(report.rendered) == set(RECIPES)
    readme = (settings.figures_dir / "README.md").read_text()
    for recipe in RECIPES.values():
        assert f"## {recipe.title}" in readme
        assert f"`lca-run recipe {recipe.name} --preset tiny" in readme
        for f in report.rendered[recipe.name].files:
            assert f.parent == settings.figures_dir and f.stat().st_size > 0
            if f.suffix == ".png":
                with Image.open(f) as im:
                    im.verify()
                assert f"]({f.name})" in readme
    assert "not the paper's numbers" in readme


def test_each_run_is_trained_once_and_a_second_call_reuses_all(made):
    settings, report, _ = made
    names = [o.name for o in report.outcomes]
    assert len(names) == len(set(names))
    # fig4 and fig5 share their run; Table 2's Joint row and Pretraining reuse Table 1's runs.
    planned = {s.name for r in RECIPES.values() for s in r.runs(settings)}
    assert set(names) == planned
    lines: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = make_recipes(["fig4", "fig5", "table2"], settings, echo=lines.append)
    # Gradient Blending stores the weights it estimated; its run is still recognised as done.
    assert {o.status for o in again.outcomes} == {"reused"}, lines
    assert again.ok


def test_dependent_runs_use_what_they_depend_on(made):
    settings, _, _ = made
    root = settings.root
    sweep = [root / f"{r.name}.zarr" for r in plans.fig8_runs(settings)]
    for seed in settings.seeds:
        split = open_run(root / f"{plans.table_run_name('heatmaps', 'split_lr', seed)}.zarr")
        assert split.config["experiment"]["alphas"] == plans.best_split_lr_alphas(sweep)
        pre = open_run(root / f"{plans.table_run_name('heatmaps', 'pretraining', seed)}.zarr")
        regs = pre.config["experiment"]["regularizers"]
        cc, mlo = regs["pretrained_cc"], regs["pretrained_mlo"]
        assert Path(cc) == root / f"tables/heatmaps/uni_cc_seed{seed}.zarr.ckpt" / "best.pt"
        assert Path(mlo).is_file() and Path(cc).is_file()
    # Tables 1-2 feed the heatmap channels, Table 3 does not.
    assert open_run(root / "tables/heatmaps/joint_seed0.zarr").config["experiment"]["data"][
        "heatmaps"
    ]
    assert not open_run(root / "tables/images/joint_seed0.zarr").config["experiment"]["data"][
        "heatmaps"
    ]


def test_table_numbers_equal_a_direct_computation(made):
    settings, _, _ = made
    written = pd.read_csv(settings.figures_dir / "table1_test_auc.csv")
    for (row, label), got in zip(plans.TABLE1_ROWS, written.itertuples(), strict=True):
        stores = [
            settings.root / f"{plans.table_run_name('heatmaps', row, s)}.zarr"
            for s in settings.seeds
        ]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            direct = auc_table(open_runs(stores), group_by=None).iloc[0]
        assert got.name == label and got.runs == len(settings.seeds)
        for col in ("malignant_auc_mean", "malignant_ensemble_auc"):
            a, b = getattr(got, col), direct[col]
            assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=1e-12)


def test_a_changed_setting_makes_a_run_stale(made):
    settings, _, _ = made
    spec = plans.lca_runs(settings, settings.lca_lrs[0])[0]
    config = spec.build()
    assert store_state(config) == "finished"
    assert store_state(replace(config, lr=config.lr * 2)) == "stale"
    assert store_state(replace(config, out=config.out.with_name("other.zarr"))) == "missing"


def test_a_failed_run_blocks_only_its_dependants(tmp_path):
    def broken():
        raise ValueError("no such data")

    seen: list[str] = []
    outcomes = run_all([RunSpec("a", broken), RunSpec("b", broken, needs=("a",))], echo=seen.append)
    assert [(o.name, o.status) for o in outcomes] == [("a", "failed"), ("b", "blocked")]
    assert "no such data" in outcomes[0].message
    with pytest.raises(ValueError, match="no recipe plans"):
        run_all([RunSpec("b", broken, needs=("missing",))])


def test_cli_rejects_bad_recipe_names_and_options(tmp_path):
    result = CliRunner().invoke(main, ["recipe", "fig9"])
    assert result.exit_code != 0 and "fig9" in result.output
    result = CliRunner().invoke(
        main, ["recipe", "fig4", "--data-root", str(tmp_path), "--runs", str(tmp_path)]
    )
    assert result.exit_code == 2 and "--data-root needs --manifest" in result.output


def test_table_findings_say_whether_the_intervals_rank_the_top_two_rows():
    from mammo_models.recipes.render import _ranking_caveat

    def frame(means, margins):
        return pd.DataFrame(
            {
                "name": [f"row{i}" for i in range(len(means))],
                "runs": [3] * len(means),
                "malignant_auc_mean": means,
                "malignant_auc_margin": margins,
            }
        )

    close = _ranking_caveat(frame([0.87, 0.90, 0.85], [0.05, 0.05, 0.06]))
    assert len(close) == 1 and "runner-up: row0 (0.870)" in close[0]
    assert "do not rank" in close[0] and "half-widths 0.050 and 0.050" in close[0]
    clear = _ranking_caveat(frame([0.70, 0.90], [0.05, 0.05]))
    assert "do not overlap" in clear[0] and "runner-up: row0" in clear[0]
    assert _ranking_caveat(frame([0.9, 0.8], [math.nan, math.nan])) == []  # one seed: no interval
    assert _ranking_caveat(frame([0.9], [0.01])) == []


def test_tables_4_and_5_read_their_weights_and_aucs_from_the_stores(made):
    from mammo_models.recipes.blend import BY_NAME, TABLE4_SETS, TABLE5_SETS, estimation

    settings, _, _ = made
    ((_, source),) = plans.blend_sources(settings)
    details = estimation(Path(source.out))
    sides = [open_run(p) for p in sorted(Path(f"{source.out}.blend").glob("*.zarr"))]
    assert len(sides) == 3 and all("val_part_auc" in r.epochs() for r in sides)
    table4 = pd.read_csv(settings.figures_dir / "table4_blend_weights.csv")
    assert list(table4["set"]) == [w.name for w in TABLE4_SETS]
    for ws, row in zip(TABLE4_SETS, table4.itertuples(), strict=True):
        assert (row.w_joint, row.w_cc, row.w_mlo) == pytest.approx(ws.weights(details))
    table5 = pd.read_csv(settings.figures_dir / "table5_blend_ablation.csv")
    assert list(table5["setting"]) == ["loss_full", *[w.name for w in TABLE5_SETS]]
    for ws in TABLE5_SETS:
        store = settings.root / f"{plans.table5_run_name(ws.name, 0)}.zarr"
        run = open_run(store)
        stored = run.config["experiment"]["regularizers"]["blend_weights"]
        assert stored == pytest.approx(BY_NAME[ws.name].weights(details))
        row = table5.set_index("setting").loc[ws.name]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            direct = auc_table(open_runs([store]), group_by=None).iloc[0]
        a, b = row["malignant_auc_mean"], direct["malignant_auc_mean"]
        assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=1e-12)


def test_runs_keep_to_the_callers_thread_limit(monkeypatch):
    from mammo_models.recipes.runner import threads_per_run

    monkeypatch.setattr("mammo_models.recipes.runner.os.cpu_count", lambda: 8)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert [threads_per_run(j) for j in (1, 2, 3, 16)] == [8, 4, 2, 1]
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # a pytest-xdist worker, a shared batch node
    assert threads_per_run(1) == 1 and threads_per_run(2) == 1
    assert threads_per_run(1, "cuda") == 0

"""``lca-run recipe mfeat`` on a fixture of UCI Multiple Features (no network): its runs, the
ablation table in the six-view stores, the four figures, and the verdicts computed from the stores.

The fixture cache holds six CSVs in the real layout (each view a noisy shift of the label), with
the loader's expected hashes pinned to them; ``LCA_TOOLKIT_MFEAT_DIR`` points the recipe at it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math

import numpy as np
import pytest
from click.testing import CliRunner
from lca_toolkit_cli.run import main

from lca_toolkit import open_run
from lca_toolkit.analysis import GroupComparison
from lca_toolkit.datasets import multiple_features
from lca_toolkit.datasets.multiple_features import SOURCE, VIEWS
from lca_toolkit.stats import t_interval
from mammo_models.recipes import RecipeSettings, mfeat, mfeat_stats
from mammo_models.recipes.render_mfeat import FILES

PER_CLASS = 12  # 120 rows: 72 train, 3 steps of 32 per epoch


@pytest.fixture
def mfeat_cache(tmp_path, monkeypatch):
    """Six fixture CSVs in a cache folder; the loader's hashes pinned to them; LCA every 2 steps
    (the runs have 6 steps, fewer than the recipe's 20)."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), PER_CLASS)
    cache = tmp_path / "cache"
    cache.mkdir()
    members = {}
    for name, width in VIEWS.items():
        x = np.round(rng.normal(size=(len(labels), width)) + labels[:, None], 4)
        header = ",".join(str(i) for i in range(width)) + ",0"
        rows = [",".join(f"{v:g}" for v in row) + f",{y}" for row, y in zip(x, labels)]
        data = ("\n".join([header, *rows]) + "\n").encode()
        (cache / f"mfeat-{name}.csv").write_bytes(data)
        members[f"mfeat-{name}.csv"] = hashlib.sha256(data).hexdigest()
    monkeypatch.setattr(multiple_features, "SOURCE", dataclasses.replace(SOURCE, members=members))
    monkeypatch.setenv("LCA_TOOLKIT_MFEAT_DIR", str(cache))
    monkeypatch.setattr(mfeat, "LCA_EVERY", 2)
    return cache


def recipe(tmp_path, *extra: str):
    args = ["recipe", "mfeat", "--epochs", "2", "--seeds", "0,1", "--quiet", "--device", "cpu"]
    args += ["--runs", str(tmp_path / "runs"), "--figures", str(tmp_path / "figures"), *extra]
    return CliRunner().invoke(main, args)


def test_the_recipe_trains_measures_draws_and_judges_from_the_stores(mfeat_cache, tmp_path):
    result = recipe(tmp_path)
    assert result.exit_code == 0, result.output
    s = RecipeSettings(runs_dir=tmp_path / "runs", seeds=(0, 1), epochs=2)
    stores = sorted(p.name for p in (tmp_path / "runs" / "small" / "mfeat").glob("*.zarr"))
    assert stores == sorted(f"{v}_s{k}.zarr" for v in (*VIEWS, "all") for k in (0, 1))
    six = open_run(tmp_path / "runs" / "small" / "mfeat" / "all_s0.zarr")
    assert six.status == "finished" and len(six.lca()) == 3
    table = six.table(mfeat.ABLATION)
    assert len(table) == 1 and table["exact"].iloc[0] == 0  # six views: leave-one-out
    assert table["n_eval"].iloc[0] == six.config["job"]["n_test"]  # measured on the test rows
    for v in VIEWS:  # leave-one-out: loss with the view muted minus the loss with every view
        assert table[f"loss_contribution_{v}"].iloc[0] == pytest.approx(
            table[f"loss_without_{v}"].iloc[0] - table["loss_without_none"].iloc[0]
        )
    uni = open_run(tmp_path / "runs" / "small" / "mfeat" / "pix_s0.zarr")
    assert uni.groups == ["pix", "head"] and len(uni.lca()) == 0  # norms only
    out = tmp_path / "figures" / "mfeat"
    for name in FILES.values():
        assert (out / name).stat().st_size > 10_000
    readme = (out / "README.md").read_text()
    study = mfeat_stats.study(s)
    for claim in study.claims:  # the page says what the stores give
        assert f"**{claim.name} {claim.verdict}**" in readme
    assert f"**{study.agreement:+.2f}**" in readme
    best = max(study.alone, key=lambda v: study.alone[v].mean)
    assert f"the view best alone ({best}," in readme
    assert f"| pix | {mfeat_stats.interval_text(study.alone['pix'])} |" in readme
    shares = [study.shares[g].mean for g in (*VIEWS, "head")]
    assert math.isclose(sum(shares), 1.0)

    again = recipe(tmp_path)  # finished runs are reused: nothing trains
    assert again.exit_code == 0, again.output
    assert "trained" not in again.output.replace("0 runs trained", "")
    assert "(0 runs trained, 14 reused)" in (out / "README.md").read_text()


def _comparison(verdict: str) -> GroupComparison:
    i = t_interval([-1.0, -1.1])
    return GroupComparison("x", "y", i.mean, i.low, i.high, 2, verdict, i)


@pytest.mark.parametrize(
    ("verdicts", "expected"),
    [
        (["a", "a"], mfeat_stats.HOLDS),
        (["a", "undecided"], mfeat_stats.INCONCLUSIVE),
        (["a", "b"], mfeat_stats.DOES_NOT_HOLD),
        (["undecided", "b"], mfeat_stats.DOES_NOT_HOLD),
    ],
)
def test_a_claim_holds_only_when_every_comparison_is_decided_its_way(verdicts, expected):
    assert mfeat_stats._judge([_comparison(v) for v in verdicts], "a") == expected


def test_without_the_example_file_one_line_says_to_run_from_a_clone(
    mfeat_cache, tmp_path, monkeypatch
):
    monkeypatch.setattr(mfeat, "EXAMPLE", tmp_path / "absent" / "multiple_features.py")
    result = recipe(tmp_path)
    assert result.exit_code != 0
    assert "run it from a clone of the repository" in result.output
    assert "Traceback" not in result.output


def test_dry_run_counts_and_paper_only_options_are_refused(tmp_path):
    assert "mfeat: 21 runs" in recipe(tmp_path, "--dry-run", "--seeds", "0-2").output
    refused = recipe(tmp_path, "--testbed", "cue-cc")
    assert refused.exit_code == 2 and "--testbed" in refused.output

"""Selection by mean validation AUC over seeds: written stores for the rules, trained tiny stores for
the sweep command, both checked against a hand computation."""

from __future__ import annotations

import json
import math
import statistics
import warnings
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from lca_toolkit_cli.run import main

from lca_toolkit import open_run
from mammo_models.training.selection import SelectionError, score_run, select_best
from mammo_models.training.sweep import setting_name
from tests.helpers.plot_stores import write_store


def _store(path: Path, val: float, test: float = 0.5) -> Path:
    return write_store(
        path, n_steps=4, lca_every=None, n_epochs=1, results={"best_val_auc": val, "test_auc": test}
    )


def _set_status(path: Path, status: str) -> None:
    meta = path / "zarr.json"
    doc = json.loads(meta.read_text())
    doc["attributes"]["status"] = status
    meta.write_text(json.dumps(doc))


def test_the_best_mean_over_seeds_wins_not_the_best_single_run(tmp_path):
    # lr00 has the best single run (0.90) but the lower mean; lr01 wins on the mean.
    vals = {"lr00": (0.90, 0.60, 0.63), "lr01": (0.80, 0.79, 0.78)}
    tests = {"lr00": (0.7, 0.6, 0.5), "lr01": (0.71, 0.72, 0.76)}
    groups = {
        k: [_store(tmp_path / f"{k}_seed{i}.zarr", v, t) for i, (v, t) in enumerate(zip(vs, ts))]
        for (k, vs), ts in zip(vals.items(), tests.values())
    }
    sel = select_best(groups, params={"lr00": {"lr": 1e-5}, "lr01": {"lr": 1e-4}})
    assert sel.winner == "lr01"
    table = sel.table.set_index("setting")
    for k, vs in vals.items():  # hand computation: mean and s.e. = stdev / sqrt(n)
        assert table.loc[k, "val_auc_mean"] == pytest.approx(statistics.mean(vs))
        assert table.loc[k, "val_auc_se"] == pytest.approx(statistics.stdev(vs) / math.sqrt(3))
        assert table.loc[k, "test_auc_mean"] == pytest.approx(statistics.mean(tests[k]))
        assert table.loc[k, "test_auc_std"] == pytest.approx(statistics.stdev(tests[k]))
    assert list(table["lr"]) == [1e-5, 1e-4] and list(table["selected"]) == [False, True]
    assert sel.winner_stores() == groups["lr01"]
    assert "selected: lr01" in sel.lines()[-1] and sel.lines()[-1].count("0.79") == 1


def test_incomplete_settings_do_not_compete_and_ties_keep_the_first(tmp_path):
    g = {
        "a": [_store(tmp_path / "a0.zarr", 0.7), _store(tmp_path / "a1.zarr", 0.7)],
        # would win on its finite runs but one seed diverged (NaN validation AUC)
        "nan": [_store(tmp_path / "n0.zarr", 0.99), _store(tmp_path / "n1.zarr", math.nan)],
        # one seed never ran
        "missing": [_store(tmp_path / "m0.zarr", 0.95), tmp_path / "absent.zarr"],
        # one seed stopped mid-run
        "unfinished": [_store(tmp_path / "u0.zarr", 0.9), _store(tmp_path / "u1.zarr", 0.9)],
        # equal to "a" but for float rounding
        "tie": [_store(tmp_path / f"t{i}.zarr", 0.7000000000000001) for i in (0, 1)],
    }
    _set_status(tmp_path / "u1.zarr", "interrupted")
    assert score_run(tmp_path / "u1.zarr").status == "unfinished"
    assert score_run(tmp_path / "absent.zarr").status == "missing"
    sel = select_best(g)
    table = sel.table.set_index("setting")
    assert table.loc["tie", "val_auc_mean"] > table.loc["a", "val_auc_mean"]  # by 1e-16
    assert sel.winner == "a"  # ties with "tie", listed first
    assert list(table["counted"]) == [2, 1, 1, 1, 2]
    assert list(table["complete"]) == [True, False, False, False, True]
    assert table.loc["nan", "val_auc_mean"] == pytest.approx(0.99)  # shown, not selected
    assert math.isnan(table.loc["nan", "val_auc_se"])
    # the order decides an exact tie, and the selection says so
    assert select_best({k: g[k] for k in ("tie", "a")}).winner == "tie"
    assert sel.tied == ["tie"]
    assert sel.lines()[-1].endswith(
        "; tied with tie (means within 1e-09): the setting listed first in the sweep's order "
        "is picked"
    )


def test_one_seed_prints_no_standard_error(tmp_path):
    sel = select_best(
        {"lr00": [_store(tmp_path / "a.zarr", 0.6)], "lr01": [_store(tmp_path / "b.zarr", 0.8)]}
    )
    assert sel.winner == "lr01" and sel.tied == []
    lines = sel.lines()
    assert lines[-1] == (
        "selected: lr01 (mean best val AUC 0.8000 from 1 seed, so no s.e.; test AUC 0.5000)"
    )
    assert not any("nan" in line for line in lines), lines
    assert "n/a" in lines[1]  # the table's s.e. column


def test_no_complete_setting_is_one_clear_error(tmp_path):
    sel = select_best({"lr00": [tmp_path / "x.zarr"], "lr01": [_store(tmp_path / "y.zarr", 0.5)]})
    assert sel.winner == "lr01"
    sel = select_best({"lr00": [tmp_path / "x.zarr"]})
    assert sel.winner is None and "selected: none" in sel.lines()[-1]
    with pytest.raises(SelectionError, match=r"table2 joint search: .*lr00 \(0/1\)"):
        sel.require_winner("table2 joint search")
    with pytest.raises(SelectionError):
        select_best({})


def test_setting_names_drop_the_seed():
    assert setting_name("lr03_seed12") == "lr03"
    assert setting_name("dropout00_seed0") == "dropout00"
    assert setting_name("seed2") == "seeds"


@pytest.fixture()
def one_thread():
    """Tiny runs are fastest on one thread when the cores are shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_sweep_select_on_tiny_stores_equals_a_hand_computation(tmp_path, one_thread):
    out = tmp_path / "sweep"
    args = ["sweep", "--kind", "lr", "--model", "uni_cc", "--preset", "tiny", "--epochs", "1"]
    args += ["--n", "2", "--seeds", "0,1", "--no-lca", "--device", "cpu", "--quiet"]
    args += ["--synthetic-root", str(tmp_path / "syn"), "--out", str(out), "--select"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    # hand computation from the stores
    means = {}
    for setting in ("lr00", "lr01"):
        vals = [
            open_run(out / f"{setting}_seed{s}.zarr").attrs["results"]["best_val_auc"]
            for s in (0, 1)
        ]
        means[setting] = sum(vals) / 2
    # a tie (within float rounding) keeps the first
    expected = "lr00" if means["lr00"] >= means["lr01"] - 1e-9 else "lr01"
    assert f"selected: {expected} (mean best val AUC {means[expected]:.4f}" in res.output
    # again on the folder alone: the same table, nothing trained
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*.zarr/zarr.json")}
    again = CliRunner().invoke(main, ["sweep", "--select", "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert again.output.strip().splitlines()[-1] == res.output.strip().splitlines()[-1]
    assert "seed" not in again.output.splitlines()[0] and "lr" in again.output.splitlines()[0]
    assert {p: p.stat().st_mtime_ns for p in out.glob("*.zarr/zarr.json")} == stamps


def test_sweep_select_errors_name_the_option(tmp_path):
    res = CliRunner().invoke(main, ["sweep", "--out", str(tmp_path)])
    assert res.exit_code != 0 and "--kind" in res.output
    res = CliRunner().invoke(main, ["sweep", "--select", "--out", str(tmp_path)])
    assert res.exit_code != 0 and "no index.csv" in res.output
    assert len(res.output.strip().splitlines()) == 1

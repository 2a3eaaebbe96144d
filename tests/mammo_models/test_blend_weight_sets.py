"""Appendix C's weight sets: the tenth of the validation set, windows, swaps, derived runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mammo_models.recipes import RecipeSettings, plans
from mammo_models.recipes.blend import BY_NAME, TABLE5_SETS, derived_run
from mammo_models.training import DataSource
from mammo_models.training.blending import heldout_part, weight_set
from tests.helpers.plot_stores import write_store

FIRST = {"joint": 0.5, "cc": 0.3, "mlo": 0.2}
LAST = {"joint": 0.1, "cc": 0.1, "mlo": 0.8}
PART = {"joint": 0.2, "cc": 0.7, "mlo": 0.1}


def _details() -> dict:
    """Ten epoch pairs: the late window [0.9 N, N] keeps only the last."""
    loss = [FIRST] * 9 + [LAST]
    return {
        "metric": "loss",
        "per_epoch_pair": loss,
        "histories": {
            "loss": loss,
            "auc": [LAST] * 10,
            "loss@val_part": [PART] * 10,
            "auc@val_part": [FIRST] * 10,
        },
    }


def test_the_tenth_of_the_validation_set_is_stratified_fixed_and_keeps_every_class():
    strata = np.array([3] * 4 + [2] * 20 + [1] * 16 + [0] * 60)  # malignant x benign classes
    part = heldout_part(strata, seed=0)
    assert np.array_equal(part, heldout_part(strata, seed=0))  # the same breasts every epoch
    assert not np.array_equal(part, heldout_part(strata, seed=1))
    counts = {k: int((strata[part] == k).sum()) for k in (0, 1, 2, 3)}
    assert counts == {0: 6, 1: 2, 2: 2, 3: 1}  # 10% of each class, at least one
    assert np.all(np.diff(part) > 0)


def test_weight_sets_read_their_metric_window_side_and_swap():
    d = _details()
    assert weight_set(d, "loss", "all") == pytest.approx(
        tuple(np.mean([[r["joint"], r["cc"], r["mlo"]] for r in d["per_epoch_pair"]], axis=0))
    )
    assert weight_set(d, "loss", "late") == pytest.approx((0.1, 0.1, 0.8))
    assert weight_set(d, "auc", "all") == pytest.approx((0.1, 0.1, 0.8))
    assert weight_set(d, "loss", heldout="val_part") == pytest.approx((0.2, 0.7, 0.1))
    assert weight_set(d, "loss", heldout="val_part", swap=True) == pytest.approx((0.2, 0.1, 0.7))
    assert BY_NAME["equal"].weights(d) == pytest.approx((1 / 3, 1 / 3, 1 / 3))
    assert weight_set(d, "auc", heldout="val_part", swap=True) == pytest.approx((0.5, 0.2, 0.3))
    del d["histories"]["auc@val_part"]
    with pytest.raises(ValueError, match="no 'auc@val_part' weights"):
        weight_set(d, "auc", heldout="val_part")
    old = {"metric": "loss", "per_epoch_pair": [LAST]}  # stored before the histories existed
    assert weight_set(old, "loss") == pytest.approx((0.1, 0.1, 0.8))


def test_table5_runs_derive_their_weights_from_their_seeds_estimation(tmp_path):
    s = RecipeSettings(
        runs_dir=tmp_path / "runs",
        figures_dir=tmp_path / "figures",
        preset="tiny",
        data=DataSource(synthetic_root=tmp_path / "synthetic"),
        device="cpu",
        seeds=(0, 1),
    )
    runs = plans.table5_runs(s)
    assert plans.table5_seeds(s) == (0,)  # fast mode trains the ablation for the first seed
    source = plans.table_run_name("heatmaps", "gradient_blending", 0)
    derived = [r for r in runs if r.needs]
    assert [r.name for r in runs if not r.needs] == [source]
    assert [r.name for r in derived] == [
        plans.table5_run_name(w.name, 0) for w in TABLE5_SETS
    ] and all(r.needs == (source,) for r in derived)
    store = write_store(s.root / f"{source}.zarr", n_steps=2, lca_every=None, n_epochs=1)
    meta = Path(store) / "zarr.json"
    doc = json.loads(meta.read_text())
    doc["attributes"]["config"]["experiment"] = {"blend_estimation": _details()}
    meta.write_text(json.dumps(doc))
    built = {r.name.split("/")[-1]: r.build() for r in derived}
    swap = built["loss_part_swap_seed0"].regularizers.blend_weights
    assert built["loss_part_seed0"].regularizers.blend_weights == pytest.approx((0.2, 0.7, 0.1))
    assert swap == pytest.approx((0.2, 0.1, 0.7))
    assert built["equal_seed0"].regularizers.blend_weights == pytest.approx((1 / 3,) * 3)
    for name, cfg in built.items():
        assert cfg.seed == 0 and cfg.regularizer == "gradient_blending"
        assert cfg.out == s.root / f"tables/heatmaps/blend_ablation/{name}.zarr"


def test_a_derived_run_of_a_run_that_was_given_its_weights_is_a_clear_error(tmp_path):
    s = RecipeSettings(runs_dir=tmp_path / "runs", preset="tiny", device="cpu")
    source = plans.blend_sources(s)[0][1]
    write_store(Path(source.out), n_steps=2, lca_every=None, n_epochs=1)
    spec = derived_run(s, source, s.root / "x.zarr", BY_NAME["auc"])
    with pytest.raises(ValueError, match="estimated no Gradient Blending weights"):
        spec.build()

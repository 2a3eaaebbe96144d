"""The calibrated testbed: each setting plants one cause, and its calibration is measured."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from mammo_models.data import (
    TESTBEDS,
    SyntheticDataError,
    get_preset,
    load_synthetic,
    read_heatmap,
    with_testbed,
)
from mammo_models.training import ConfigError, DataSource, ExperimentConfig


def _calibration(root: Path) -> dict:
    return json.loads((root / "synthetic.json").read_text())["calibration"]


@pytest.fixture(scope="module")
def small_cue_mlo(tmp_path_factory) -> tuple[Path, object]:
    """The `small` preset's data as make figures trains on it, with heatmaps."""
    config = with_testbed(get_preset("small").synthetic, "cue-mlo")
    config = dataclasses.replace(config, heatmaps=True)
    root = tmp_path_factory.mktemp("cue_mlo")
    return root, load_synthetic(config, root)


def test_cue_mlo_plants_a_salient_learnable_shortcut(small_cue_mlo):
    root, _ = small_cue_mlo
    cal = _calibration(root)
    signal = cal["signal"]
    # lesions equally visible in both views; the cue carries >= 3x a lesion's signal
    assert signal["lesion"]["CC"] == pytest.approx(signal["lesion"]["MLO"], rel=0.1)
    assert signal["cue_to_lesion"] >= 3.0
    assert signal["cue_to_lesion"] == pytest.approx(signal["cue"] / signal["lesion"]["MLO"], 1e-3)
    assert cal["probe"]["train_auc"] > 0.9 and cal["probe"]["heldout_auc"] > 0.9


def test_cue_tied_to_any_finding_in_training_only(small_cue_mlo):
    root, _ = small_cue_mlo
    m = pd.read_csv(root / "manifest.csv")
    mlo = m[m["view"] == "MLO"]
    finding = (mlo["malignant"] == 1) | (mlo["benign"] == 1)
    train = mlo["split"] == "train"
    assert mlo[train & finding]["cue"].mean() > 0.8
    assert mlo[train & ~finding]["cue"].mean() < 0.12
    held = ~train  # one rate whatever the label: no held-out information
    assert abs(mlo[held & finding]["cue"].mean() - mlo[held & ~finding]["cue"].mean()) < 0.15
    assert (m[m["view"] == "CC"]["cue"] == 0).all()


def test_heatmaps_alone_rank_breasts_like_a_patch_classifier(small_cue_mlo):
    root, manifest = small_cue_mlo
    recorded = _calibration(root)["heatmaps"]["malignant_auc"]
    assert 0.7 <= recorded <= 0.9  # informative, far from a perfect lesion mask
    b = manifest.breasts
    scores = [
        max(read_heatmap(root / p).max() for p in (row.cc_heatmap_malignant_path,
                                                  row.mlo_heatmap_malignant_path))
        for row in b.itertuples()
    ]
    # recomputed from the written (8-bit) files: the recorded number is what the files hold
    assert roc_auc_score(b["malignant"], scores) == pytest.approx(recorded, abs=0.01)


def test_each_testbed_plants_its_own_cause(tmp_path):
    base = get_preset("tiny").synthetic
    cal = {}
    for name in ("cue-cc", "balanced", "mlo-blind", "lesion-mlo"):
        load_synthetic(with_testbed(base, name), tmp_path / name)
        cal[name] = _calibration(tmp_path / name)
    assert cal["cue-cc"]["signal"]["cue"] > 0 and "CC" in cal["cue-cc"]["probe"]["what"]
    assert cal["balanced"]["signal"]["cue"] is None
    assert cal["mlo-blind"]["signal"]["cue"] is None
    assert cal["mlo-blind"]["signal"]["lesion"]["MLO"] == 0.0
    assert cal["mlo-blind"]["signal"]["lesion"]["CC"] > 0
    lesion = cal["lesion-mlo"]["signal"]["lesion"]
    assert cal["lesion-mlo"]["signal"]["cue"] is None
    assert lesion["MLO"] == pytest.approx(2 * lesion["CC"], rel=0.25)  # half contrast in CC
    meta = json.loads((tmp_path / "mlo-blind" / "synthetic.json").read_text())
    assert meta["config"]["testbed"] == "mlo-blind"


def test_unknown_testbed_is_one_line_naming_the_option(tmp_path):
    with pytest.raises(SyntheticDataError, match=r"--testbed 'x' is unknown; expected one of "):
        with_testbed(get_preset("tiny").synthetic, "x")
    with pytest.raises(ConfigError, match="--testbed 'x' is unknown; expected one of cue-mlo"):
        ExperimentConfig(out=tmp_path / "r.zarr", data=DataSource(testbed="x"))
    assert list(TESTBEDS) == ["cue-mlo", "cue-cc", "balanced", "mlo-blind", "lesion-mlo"]

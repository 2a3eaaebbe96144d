"""Test AUC tables: mean, std and ensemble AUC against a direct scikit-learn computation."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import plot_stores as stores
import pytest
from sklearn.metrics import roc_auc_score

from lca_toolkit.plots import (
    AucUndefinedWarning,
    MissingPredictionsWarning,
    PlotError,
    auc_table,
    to_markdown,
    write_auc_table,
)

N = 40


def predictions(seed: int, *, order_seed: int | None = None, labels_seed: int = 7) -> dict:
    """Predictions for breasts 0..N-1 (same labels for every seed), rows in a shuffled order."""
    labels = np.random.default_rng(labels_seed)
    mal = (labels.random(N) < 0.3).astype(np.int64)
    ben = (labels.random(N) < 0.5).astype(np.int64)
    rng = np.random.default_rng(seed)
    cols = {
        "index": np.arange(N, dtype=np.int64),
        "malignant_label": mal,
        "benign_label": ben,
        "malignant_prob": np.clip(0.35 * mal + rng.random(N) * 0.7, 0, 1),
        "benign_prob": np.clip(0.2 * ben + rng.random(N) * 0.8, 0, 1),
    }
    perm = np.random.default_rng(order_seed if order_seed is not None else seed + 100).permutation(
        N
    )
    return {k: v[perm] for k, v in cols.items()}


def write(tmp_path: Path, name: str, variant: str, preds: dict | None, **kw) -> Path:
    return stores.write_store(
        tmp_path / f"{name}.zarr",
        n_steps=2,
        lca_every=None,
        n_epochs=0,
        config={
            "experiment": {"variant": variant, "regularizer": "none", "seed": kw.pop("seed", 0)}
        },
        tables=None if preds is None else {"test_predictions": preds},
        **kw,
    )


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("seeds")
    paths, preds = {}, {}
    for variant in ("joint", "shared"):
        for s in range(3):
            seed = s + (10 if variant == "shared" else 0)
            preds[(variant, s)] = predictions(seed)
            paths[(variant, s)] = write(tmp, f"{variant}{s}", variant, preds[(variant, s)], seed=s)
    return paths, preds


def expected_row(preds: list[dict], task: str) -> tuple[float, float, float]:
    aucs = [roc_auc_score(p[f"{task}_label"], p[f"{task}_prob"]) for p in preds]
    frames = [pd.DataFrame(p).set_index("index").sort_index() for p in preds]
    mean_prob = sum(f[f"{task}_prob"] for f in frames) / len(frames)
    ensemble = roc_auc_score(frames[0][f"{task}_label"], mean_prob)
    return float(np.mean(aucs)), float(np.std(aucs, ddof=1)), float(ensemble)


def test_mean_std_and_ensemble_equal_sklearn(seeds):
    paths, preds = seeds
    df = auc_table(list(paths.values()), group_by="experiment.variant")
    assert list(df["setting"]) == ["joint", "shared"]
    assert list(df["name"]) == ["Joint ResNet", "Shared ResNet"]
    assert list(df["runs"]) == [3, 3]
    for _, row in df.iterrows():
        for task in ("malignant", "benign"):
            mean, std, ens = expected_row([preds[(row["setting"], s)] for s in range(3)], task)
            assert row[f"{task}_auc_mean"] == pytest.approx(mean, abs=1e-12)
            assert row[f"{task}_auc_std"] == pytest.approx(std, abs=1e-12)
            assert row[f"{task}_ensemble_auc"] == pytest.approx(ens, abs=1e-12)
    # the ensemble is not the mean of the AUCs
    assert df["malignant_ensemble_auc"].iloc[0] != pytest.approx(df["malignant_auc_mean"].iloc[0])


def test_intervals_add_delong_to_the_seeds_t_interval(seeds):
    """The mean's half-width is t s / sqrt(n) plus 1.96 x DeLong's SE of the mean AUC; the
    ensemble's is 1.96 x its DeLong SE (checked against the pairwise definition)."""
    paths, preds = seeds
    df = auc_table(list(paths.values()), group_by="experiment.variant", tasks=["malignant"])
    row = df.iloc[0]
    frames = [pd.DataFrame(preds[("joint", s)]).set_index("index").sort_index() for s in range(3)]
    labels = frames[0]["malignant_label"].to_numpy()
    scores = np.stack([f["malignant_prob"].to_numpy() for f in frames])
    pos, neg = scores[:, labels == 1], scores[:, labels == 0]
    psi = (pos[:, :, None] > neg[:, None, :]) + 0.5 * (pos[:, :, None] == neg[:, None, :])
    v10, v01 = psi.mean(axis=2), psi.mean(axis=1)
    cov = np.cov(v10) / pos.shape[1] + np.cov(v01) / neg.shape[1]
    w = np.full(3, 1 / 3)
    seeds_part = 4.302653 * row["malignant_auc_std"] / np.sqrt(3)
    assert row["malignant_auc_margin"] == pytest.approx(
        seeds_part + 1.959964 * np.sqrt(w @ cov @ w), rel=1e-5
    )
    ens = scores.mean(axis=0)
    psi = (ens[labels == 1][:, None] > ens[labels == 0][None]) + 0.5 * (
        ens[labels == 1][:, None] == ens[labels == 0][None]
    )
    var = psi.mean(1).var(ddof=1) / psi.shape[0] + psi.mean(0).var(ddof=1) / psi.shape[1]
    assert row["malignant_ensemble_margin"] == pytest.approx(1.959964 * np.sqrt(var), rel=1e-5)
    assert row["malignant_ensemble_margin"] > 0


def test_no_grouping_puts_every_run_in_one_setting(seeds):
    paths, preds = seeds
    df = auc_table(list(paths.values()), group_by=None, tasks=["malignant"])
    assert list(df["runs"]) == [6] and "benign_auc_mean" not in df
    mean, std, ens = expected_row(list(preds.values()), "malignant")
    assert df["malignant_ensemble_auc"].iloc[0] == pytest.approx(ens)


def test_markdown_and_csv(seeds, tmp_path):
    paths, _ = seeds
    df = auc_table(list(paths.values()))
    md_path, csv_path = write_auc_table(df, tmp_path / "out" / "table.md", title="Table 1")
    assert (md_path.name, csv_path.name) == ("table.md", "table.csv")
    back = pd.read_csv(csv_path)
    pd.testing.assert_frame_equal(back, df, check_dtype=False)
    md = md_path.read_text()
    assert "| setting | runs | AUC (malignant) | 3x ensemble (malignant) |" in md
    row = df.iloc[0]
    mean, m = row["malignant_auc_mean"], row["malignant_auc_margin"]
    ens, e = row["malignant_ensemble_auc"], row["malignant_ensemble_margin"]
    expected = (
        f"| Joint ResNet | 3 | {mean:.3f} ± {row['malignant_auc_std']:.3f} "
        f"[{mean - m:.3f}, {mean + m:.3f}] | {ens:.3f} [{ens - e:.3f}, {ens + e:.3f}] |"
    )
    assert expected in md
    assert md.startswith("**Table 1**")


def test_single_class_labels_give_nan_and_a_warning(tmp_path):
    preds = predictions(1)
    preds["benign_label"] = np.zeros(N, dtype=np.int64)
    path = write(tmp_path, "oneclass", "joint", preds)
    with pytest.warns(AucUndefinedWarning) as caught:
        df = auc_table([path])
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2
    assert "oneclass.zarr' benign: labels hold only class [0]" in messages[0]
    assert messages[1].startswith("ensemble of setting 'joint' benign")
    assert math.isnan(df["benign_auc_mean"].iloc[0])
    assert math.isnan(df["benign_ensemble_auc"].iloc[0])
    assert df["malignant_auc_mean"].iloc[0] == pytest.approx(
        roc_auc_score(preds["malignant_label"], preds["malignant_prob"])
    )
    assert math.isnan(df["malignant_auc_std"].iloc[0])  # one run: no std
    assert "–" in to_markdown(df)


def test_runs_without_predictions_fall_back_to_stored_results(tmp_path):
    a = write(tmp_path, "a", "joint", None, results={"test_auc": 0.8, "test_auc_benign": 0.6})
    b = write(tmp_path, "b", "joint", predictions(2))
    with pytest.warns(MissingPredictionsWarning, match=r"a\.zarr"):
        df = auc_table([a, b])
    p = predictions(2)
    expected = [0.8, roc_auc_score(p["malignant_label"], p["malignant_prob"])]
    assert df["malignant_auc_mean"].iloc[0] == pytest.approx(np.mean(expected))
    assert df["malignant_auc_std"].iloc[0] == pytest.approx(np.std(expected, ddof=1))
    assert math.isnan(df["malignant_ensemble_auc"].iloc[0])


def test_errors_name_the_run(tmp_path):
    bare = write(tmp_path, "bare", "joint", None)
    with pytest.raises(PlotError, match=r"bare\.zarr.*test_predictions.*test_auc"):
        auc_table([bare])
    short = predictions(3)
    short = {k: v[:-1] for k, v in short.items()}
    a = write(tmp_path, "full", "joint", predictions(4))
    b = write(tmp_path, "short", "joint", short)
    with pytest.raises(PlotError, match=r"short\.zarr.*full\.zarr.*different index"):
        auc_table([a, b])
    flipped = predictions(5)
    flipped["malignant_label"] = 1 - flipped["malignant_label"]
    c = write(tmp_path, "flipped", "joint", flipped)
    with pytest.raises(PlotError, match=r"flipped\.zarr.*malignant_label differs"):
        auc_table([a, c])
    missing = {k: v for k, v in predictions(6).items() if k != "benign_prob"}
    d = write(tmp_path, "nocol", "joint", missing)
    with pytest.raises(PlotError, match=r"nocol\.zarr.*\['benign_prob'\]"):
        auc_table([d])
    with pytest.raises(PlotError, match=r"full\.zarr.*experiment\.seeds"):
        auc_table([a], group_by="experiment.seeds")


def test_no_warning_when_everything_is_defined(seeds):
    paths, _ = seeds
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        auc_table(list(paths.values()))

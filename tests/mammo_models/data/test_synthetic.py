"""The synthetic two-view generator: determinism, labels and views, the cue, caching."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mammo_models.data import (
    SyntheticConfig,
    SyntheticDataError,
    chest_wall_on_left,
    generate_synthetic,
    load_synthetic,
    read_heatmap,
    read_image,
)
from mammo_models.data.synthetic import draw_breasts

SMALL = SyntheticConfig(
    n_patients=6, image_size_cc=(40, 30), image_size_mlo=(44, 28), pixel_scale=0.015, seed=5
)


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _manifest(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / "manifest.csv")


def test_same_seed_same_bytes_other_seed_other_images(tmp_path):
    generate_synthetic(SMALL, tmp_path / "a")
    generate_synthetic(SMALL, tmp_path / "b")
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert len(a) == 6 * 2 * 2 + 2  # images + manifest + synthetic.json
    assert a == b
    generate_synthetic(dataclasses.replace(SMALL, seed=6), tmp_path / "c")
    c = _files(tmp_path / "c")
    assert a.keys() == c.keys()
    assert sum(a[k] != c[k] for k in a if k.endswith(".png")) == 24


def test_labels_views_and_orientation_are_consistent(tmp_path):
    manifest = load_synthetic(SMALL, tmp_path)
    images = _manifest(tmp_path)
    assert len(images) == 24 and len(manifest.breasts) == 12
    per_breast = images.groupby(["patient_id", "laterality"])
    assert (per_breast["view"].apply(sorted) == pd.Series([["CC", "MLO"]] * 12).values).all()
    assert (per_breast[["malignant", "benign"]].nunique() == 1).all().all()
    assert (images.groupby("patient_id")["split"].nunique() == 1).all()
    for split, part in manifest.breasts.groupby("split"):  # malignant AUC defined everywhere
        assert part["malignant"].any(), split
        assert ((part["malignant"] == 0) & (part["benign"] == 0)).any(), split
    for row in images.itertuples():
        img = read_image(tmp_path / row.image_path)
        assert img.shape == (SMALL.image_size_cc if row.view == "CC" else SMALL.image_size_mlo)
        assert img.dtype == np.float32 and img.max() > 255  # 16-bit PNG
        # stored as acquired: left breasts chest wall left, right breasts chest wall right
        assert chest_wall_on_left(img) == (row.laterality == "L")
    assert set(images["pixel_scale"]) == {0.015}


def test_cue_exists_only_where_configured(tmp_path):
    always = dataclasses.replace(SMALL, cue_rate_train=(1.0, 0.0), cue_rate_eval=(0.0, 0.0))
    generate_synthetic(always, tmp_path / "cue")
    generate_synthetic(dataclasses.replace(always, cue_view=None), tmp_path / "none")
    generate_synthetic(dataclasses.replace(always, cue_view="CC"), tmp_path / "cc")
    m = _manifest(tmp_path / "cue")
    finding = (m["malignant"] == 1) | (m["benign"] == 1)  # tied to any finding, not malignancy
    expected = (m["view"] == "MLO") & (m["split"] == "train") & finding
    assert expected.any() and (m["cue"] == expected.astype(int)).all()
    assert (_manifest(tmp_path / "none")["cue"] == 0).all()
    assert (
        _manifest(tmp_path / "cc")["cue"]
        == ((m["view"] == "CC") & expected.shift(-1, fill_value=False)).astype(int)
    ).all()
    for row in m.itertuples():
        with_cue = read_image(tmp_path / "cue" / row.image_path)
        without = read_image(tmp_path / "none" / row.image_path)
        diff = with_cue - without
        if row.cue:
            # one bright square, whole (inside the image, not cut at an edge), and nothing else
            ys, xs = np.nonzero(np.abs(diff) > 0)
            side = always.cue_size * with_cue.shape[1]
            assert 0 < len(ys) <= (side + 2) ** 2 and diff.max() > 0.2 * 65535
            assert ys.min() > 0 and xs.min() > 0
            assert ys.max() < with_cue.shape[0] - 1 and xs.max() < with_cue.shape[1] - 1
        else:
            np.testing.assert_array_equal(with_cue, without)


def test_conspicuity_zero_hides_lesions_in_that_view(tmp_path):
    hidden = dataclasses.replace(SMALL, conspicuity_mlo=0.0, cue_view=None)
    generate_synthetic(hidden, tmp_path / "with")
    generate_synthetic(
        dataclasses.replace(hidden, prevalence_malignant=0.0, prevalence_benign=0.0),
        tmp_path / "without",
    )
    m, none = _manifest(tmp_path / "with"), _manifest(tmp_path / "without")
    # (every split keeps one malignant breast even at prevalence 0: compare the others)
    has = (m["malignant"] == 1) | (m["benign"] == 1)
    lesion_rows = m[has & (none["malignant"] == 0) & (none["benign"] == 0)]
    assert len(lesion_rows) > 0
    for row in lesion_rows.itertuples():
        a = read_image(tmp_path / "with" / row.image_path)
        b = read_image(tmp_path / "without" / row.image_path)
        if row.view == "MLO":
            np.testing.assert_array_equal(a, b)
        else:
            assert (a - b).max() > 0.05 * 65535  # the lesion brightens the CC view


def test_heatmaps_are_in_unit_range_and_imperfect(tmp_path):
    always = dataclasses.replace(SMALL, heatmaps=True, heatmap_false_positives=0.0)
    manifest = load_synthetic(always, tmp_path / "a")
    b = manifest.breasts
    peaks = {
        (row.malignant, row.benign): read_heatmap(tmp_path / "a" / row.cc_heatmap_malignant_path)
        for row in b.itertuples()
    }
    for heat in peaks.values():
        assert 0.0 <= heat.min() and heat.max() <= 1.0
    clean = [h.max() for (m, bn), h in peaks.items() if not m and not bn]
    assert clean and max(clean) < 0.2  # no finding, no false positives asked for: quiet
    # a patch classifier that never misses and never errs would be the truth: ours does both
    blind = dataclasses.replace(always, heatmap_detect=0.0)
    manifest = load_synthetic(blind, tmp_path / "b")
    b = manifest.breasts
    for row in b[(b["malignant"] == 1) & (b["benign"] == 0)].itertuples():
        assert read_heatmap(tmp_path / "b" / row.cc_heatmap_malignant_path).max() < 0.6


def test_cached_until_the_config_changes(tmp_path):
    root = tmp_path / "syn"
    manifest = generate_synthetic(SMALL, root)
    stamp = (root / "synthetic.json").stat().st_mtime_ns
    marker = root / "images" / "S00000_L_CC.png"
    marker.write_bytes(b"touched")  # a regenerated set would overwrite this
    assert generate_synthetic(SMALL, root) == manifest
    assert marker.read_bytes() == b"touched"
    assert (root / "synthetic.json").stat().st_mtime_ns == stamp
    meta = json.loads((root / "synthetic.json").read_text())
    assert meta["hash"] == SMALL.hash() and meta["config"]["seed"] == 5
    changed = dataclasses.replace(SMALL, cue_strength=0.3)
    generate_synthetic(changed, root)
    assert marker.read_bytes() != b"touched"
    assert json.loads((root / "synthetic.json").read_text())["hash"] == changed.hash()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dirs left


def test_refuses_a_foreign_directory_and_bad_configs(tmp_path):
    (tmp_path / "mine.txt").write_text("user data")
    with pytest.raises(SyntheticDataError, match="not a synthetic data directory"):
        generate_synthetic(SMALL, tmp_path)
    assert (tmp_path / "mine.txt").read_text() == "user data"
    with pytest.raises(SyntheticDataError, match="cue_view"):
        SyntheticConfig(cue_view="LMO")
    with pytest.raises(SyntheticDataError, match="prevalence_benign"):
        SyntheticConfig(prevalence_benign=1.5)


def test_the_files_hold_exactly_what_is_drawn(tmp_path):
    """Drawing is pure (arrays from the seed); the writer only quantises and mirrors right breasts."""
    config = dataclasses.replace(SMALL, n_patients=2, heatmaps=True)
    drawn = list(draw_breasts(config))
    again = list(draw_breasts(config))
    assert len(drawn) == 4 and not any(tmp_path.iterdir())
    generate_synthetic(config, tmp_path)
    rows = _manifest(tmp_path).set_index(["patient_id", "laterality", "view"])
    for breast, twin in zip(drawn, again, strict=True):
        for view, image in breast.views.items():
            np.testing.assert_array_equal(image.image, twin.views[view].image)
            row = rows.loc[(breast.patient_id, breast.laterality, view)]
            assert (row.malignant, row.benign, row.cue) == (
                breast.malignant,
                breast.benign,
                image.cue,
            )
            flip = breast.laterality == "R"
            stored = read_image(tmp_path / row.image_path)
            expected = np.round(image.image * 65535)
            np.testing.assert_array_equal(stored, expected[:, ::-1] if flip else expected)
            heat = read_heatmap(tmp_path / row.heatmap_malignant_path)
            quantised = np.round(image.heatmaps["malignant"] * 255) / 255
            np.testing.assert_allclose(heat, quantised[:, ::-1] if flip else quantised, atol=1e-6)

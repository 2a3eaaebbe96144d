"""Manifest reading, validation (one message per bad row), splits, pairing and the summary."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mammo_models.data import (
    REQUIRED_COLUMNS,
    DataConfigError,
    ManifestError,
    assign_splits,
    load_manifest,
    pair_breasts,
    read_manifest,
    validate_manifest,
)
from mammo_models.data.manifest import split_counts


def _problem(err: ManifestError, row: int) -> str:
    found = [p.reason for p in err.problems if p.row == row]
    assert found, f"no problem reported on row {row}: {err}"
    return " | ".join(found)


def test_missing_required_columns_are_named(files):
    df = files.frame([files.manifest_row()]).drop(columns=["benign", "label_source"])
    with pytest.raises(
        ManifestError, match="missing required columns benign, label_source"
    ) as info:
        validate_manifest(df)
    assert info.value.problems[0].row is None


@pytest.mark.parametrize(
    ("overrides", "column", "message"),
    [
        ({"view": "XCC"}, "view", "unknown view 'XCC'"),
        ({"laterality": "B"}, "laterality", "unknown laterality 'B'"),
        ({"malignant": 2}, "malignant", "malignant must be 0 or 1, got 2"),
        ({"benign": "yes"}, "benign", "benign must be 0 or 1, got 'yes'"),
        ({"label_source": "biopsy"}, "label_source", "unknown label_source 'biopsy'"),
        ({"patient_id": ""}, "patient_id", "empty patient_id"),
        ({"image_path": None}, "image_path", "empty image_path"),
        ({"split": "dev"}, "split", "unknown split 'dev'"),
        ({"pixel_scale": -1}, "pixel_scale", "pixel_scale must be a positive number"),
    ],
)
def test_each_bad_value_is_reported_on_its_row(files, overrides, column, message):
    rows = [
        files.manifest_row(image_path="ok1.png", split="train", pixel_scale=1.0),
        files.manifest_row(image_path="ok2.png", view="MLO", split="train", pixel_scale=1.0),
        files.manifest_row(image_path="bad.png", patient_id="P2", split="train", pixel_scale=1.0),
    ]
    rows[2].update(overrides)
    with pytest.raises(ManifestError) as info:
        validate_manifest(files.frame(rows))
    err = info.value
    assert err.rows == [3]
    assert message in _problem(err, 3)
    assert err.problems[0].column == column
    assert "row 3: " in str(err)


def test_problems_are_collected_and_the_listing_is_capped(files):
    rows = [files.manifest_row(image_path=f"{i}.png", view="bad") for i in range(30)]
    rows[5]["laterality"] = "X"
    with pytest.raises(ManifestError) as info:
        validate_manifest(files.frame(rows), max_listed=4)
    err = info.value
    assert len(err.problems) == 31 and err.rows == list(range(1, 31))
    text = str(err)
    assert "31 problems" in text and "... and 27 more" in text
    assert text.count("\n  row ") == 4


def test_duplicate_image_path(files):
    rows = [files.manifest_row(), files.manifest_row(view="MLO")]  # same a.png twice
    with pytest.raises(ManifestError) as info:
        validate_manifest(files.frame(rows))
    assert "already listed on row 1" in _problem(info.value, 2)


def test_conflicting_labels_within_a_breast(files):
    rows = [
        files.manifest_row(image_path="cc.png", malignant=1, benign=0),
        files.manifest_row(image_path="mlo.png", view="MLO", malignant=0, benign=1),
        files.manifest_row(image_path="other.png", laterality="R", malignant=0),  # other breast
    ]
    with pytest.raises(ManifestError) as info:
        validate_manifest(files.frame(rows))
    msg = _problem(info.value, 2)
    assert "malignant=0 conflicts with row 1 (malignant=1)" in msg
    assert "benign=1 conflicts with row 1 (benign=0)" in msg
    assert "patient 'P1', exam 'E1', laterality L" in msg
    assert info.value.rows == [2]


def test_patient_in_two_splits_and_partial_split_column(files):
    rows = [
        files.manifest_row(image_path="1.png", split="train"),
        files.manifest_row(image_path="2.png", view="MLO", split="train"),
        files.manifest_row(image_path="3.png", exam_id="E2", split="test"),
        files.manifest_row(image_path="4.png", patient_id="P9", split=""),
    ]
    with pytest.raises(ManifestError) as info:
        validate_manifest(files.frame(rows))
    assert "patient 'P1' is in split 'test' here but in 'train' on row 1" in _problem(info.value, 3)
    assert "empty split while other rows have one" in _problem(info.value, 4)


def test_missing_and_unreadable_files(tmp_path, files):
    files.write_png(tmp_path / "good.png", files.breast_image())
    (tmp_path / "broken.png").write_bytes(b"garbage")
    rows = [
        files.manifest_row(image_path="good.png"),
        files.manifest_row(image_path="gone.png", view="MLO"),
        files.manifest_row(image_path="broken.png", laterality="R"),
        files.manifest_row(
            image_path="good2.png", laterality="R", view="MLO", heatmap_benign_path="h.png"
        ),
    ]
    files.write_png(tmp_path / "good2.png", files.breast_image())
    with pytest.raises(ManifestError) as info:
        validate_manifest(files.frame(rows), tmp_path, check_images=True)
    err = info.value
    assert f"file not found: {tmp_path / 'gone.png'}" in _problem(err, 2)
    assert "unreadable image" in _problem(err, 3) and "broken.png" in _problem(err, 3)
    assert "heatmap_benign_path: file not found" in _problem(err, 4)
    assert err.rows == [2, 3, 4]
    # without check_images the corrupt file passes (only existence is checked)
    with pytest.raises(ManifestError) as info:
        validate_manifest(files.frame(rows), tmp_path)
    assert info.value.rows == [2, 4]


def test_csv_row_number_is_file_line_minus_one(tmp_path, files):
    rows = [files.manifest_row(image_path=f"{i}.png", patient_id=f"P{i}") for i in range(5)]
    rows[3]["view"] = "SIDEWAYS"
    path = tmp_path / "m.csv"
    files.frame(rows).to_csv(path, index=False)
    with pytest.raises(ManifestError) as info:
        validate_manifest(read_manifest(path), source=path)
    (row,) = info.value.rows
    line = path.read_text().splitlines()[row]  # 0-based list index == row -> file line row + 1
    assert "SIDEWAYS" in line
    assert str(path) in str(info.value)


def test_parquet_and_csv_read_the_same(tmp_path, files, two_view_rows):
    df = files.frame(two_view_rows(2))
    df.to_parquet(tmp_path / "m.parquet")
    df.to_csv(tmp_path / "m.csv", index=False)
    a = validate_manifest(read_manifest(tmp_path / "m.parquet"))
    b = validate_manifest(read_manifest(tmp_path / "m.csv"))
    pd.testing.assert_frame_equal(a[list(REQUIRED_COLUMNS)], b[list(REQUIRED_COLUMNS)])
    assert a.index.name == "row" and list(a.index) == list(range(1, len(df) + 1))
    with pytest.raises(ManifestError, match="does not exist"):
        read_manifest(tmp_path / "none.csv")


def test_normalisation_of_case_and_metadata_kept(files):
    df = files.frame(
        [files.manifest_row(laterality="l", view="mlo", label_source="Pathology", age=51)]
    )
    out = validate_manifest(df)
    assert out.loc[1, "laterality"] == "L" and out.loc[1, "view"] == "MLO"
    assert out.loc[1, "label_source"] == "pathology" and out.loc[1, "age"] == 51
    assert out["malignant"].dtype == np.int64


def test_laterality_and_view_filled_from_dicom_tags(tmp_path, files):
    files.write_dicom(tmp_path / "x.dcm", files.breast_image(), laterality="R", view="CC")
    files.write_dicom(tmp_path / "y.dcm", files.breast_image())  # no tags
    files.write_png(tmp_path / "z.png", files.breast_image())
    rows = [
        files.manifest_row(image_path="x.dcm", laterality="", view=""),
        files.manifest_row(image_path="y.dcm", laterality="", patient_id="P2"),
        files.manifest_row(image_path="z.png", view="", patient_id="P3"),
    ]
    with pytest.raises(ManifestError) as info:
        validate_manifest(files.frame(rows), tmp_path)
    err = info.value
    assert err.rows == [2, 3]
    assert "no ImageLaterality/Laterality" in _problem(err, 2)
    assert "only DICOM images can supply it" in _problem(err, 3)
    out = validate_manifest(files.frame(rows[:1]), tmp_path)
    assert (out.loc[1, "laterality"], out.loc[1, "view"]) == ("R", "CC")
    with pytest.raises(ManifestError, match="give data_root"):
        validate_manifest(files.frame(rows[:1]))


def test_valid_manifest_with_mixed_formats_loads(tmp_path, files):
    img = files.breast_image()
    files.write_png(tmp_path / "cc8.png", (img >> 8).astype(np.uint8))
    files.write_png(tmp_path / "mlo16.png", img)
    files.write_dicom(tmp_path / "cc.dcm", files.breast_image(laterality="R"), rle=True)
    files.write_dicom(
        tmp_path / "mlo.dcm", files.breast_image(laterality="R"), photometric="MONOCHROME1"
    )
    np.save(tmp_path / "cc2.npy", img.astype(np.float32))
    files.write_dicom(tmp_path / "mlo2.dcm", img, laterality="L", view="MLO")
    rows = [
        files.manifest_row(image_path="cc8.png"),
        files.manifest_row(image_path="mlo16.png", view="MLO"),
        files.manifest_row(image_path="cc.dcm", laterality="R", malignant=1),
        files.manifest_row(image_path="mlo.dcm", laterality="R", view="MLO", malignant=1),
        files.manifest_row(image_path="cc2.npy", patient_id="P2", benign=1),
        files.manifest_row(
            image_path="mlo2.dcm", patient_id="P2", laterality="", view="", benign=1
        ),
    ]
    path = tmp_path / "manifest.csv"
    files.frame(rows).to_csv(path, index=False)
    manifest = load_manifest(path, check_images=True)
    assert len(manifest.breasts) == 3
    assert manifest.summary.n_images_used == 6 and not manifest.summary.images_dropped
    assert manifest.breasts["malignant"].tolist() == [0, 1, 0]
    assert manifest.breasts["benign"].tolist() == [0, 0, 1]


def test_breast_without_a_view_is_dropped_and_counted_or_an_error_when_strict(files, two_view_rows):
    rows = two_view_rows(3)
    del rows[5]  # P1 L MLO (rows are P0 L CC, P0 L MLO, P0 R CC, P0 R MLO, P1 L CC, P1 L MLO...)
    rows.append(files.manifest_row(image_path="extra.png", patient_id="P2", view="other"))
    rows.append(
        files.manifest_row(image_path="dup.png", patient_id="P2", laterality="R", view="CC")
    )
    manifest = load_manifest(files.frame(rows))
    s = manifest.summary
    assert len(manifest.breasts) == 5 and "P1|E1|L" not in set(manifest.breasts["breast_id"])
    assert s.breasts_dropped == {"no MLO image": 1}
    assert s.images_dropped == {"unused_view": 1, "duplicate_view": 1, "incomplete_breast": 1}
    assert s.n_rows == 13 and s.n_images_used == 10
    assert s.n_rows == s.n_images_used + sum(s.images_dropped.values())
    text = str(s)
    assert "breasts dropped: 1 with no MLO image" in text and "13 rows -> 10 images used" in text
    # the first image of a duplicated view is the one used
    p2r = manifest.breasts.set_index("breast_id").loc["P2|E1|R"]
    assert p2r["cc_image_path"] == "P2_R_CC.png" and p2r["cc_row"] == 10
    with pytest.raises(ManifestError) as info:
        load_manifest(files.frame(rows), strict=True)
    assert info.value.rows == [5]
    assert "has no MLO image" in str(info.value) and "strict=False" in str(info.value)
    # a uni-view CC model keeps the breast
    uni = load_manifest(files.frame(rows), views=("CC",))
    assert len(uni.breasts) == 6 and "mlo_image_path" not in uni.breasts.columns


def test_breast_table_labels_and_prefixed_image_columns(files, two_view_rows):
    rows = two_view_rows(2, malignant_patients=(1,))
    for r in rows:
        r["density"] = 0.5 if r["view"] == "CC" else 0.7
    breasts = pair_breasts(validate_manifest(files.frame(rows))).breasts
    assert list(breasts["breast_id"]) == ["P0|E1|L", "P0|E1|R", "P1|E1|L", "P1|E1|R"]
    assert list(breasts["malignant"]) == [0, 0, 1, 0]
    assert set(breasts["cc_density"]) == {0.5} and set(breasts["mlo_density"]) == {0.7}
    assert list(breasts["cc_row"]) == [1, 3, 5, 7] and list(breasts["mlo_row"]) == [2, 4, 6, 8]
    assert (breasts["cc_pixel_scale"] == 1.0).all()
    with pytest.raises(DataConfigError, match="views must be"):
        pair_breasts(validate_manifest(files.frame(rows)), views=("CC", "other"))


def test_assigned_splits_are_patient_level_and_seeded(files, two_view_rows):
    images = validate_manifest(files.frame(two_view_rows(20)))
    a = assign_splits(images, seed=3)
    assert (a.groupby("patient_id")["split"].nunique() == 1).all()
    patients = a.groupby("split")["patient_id"].nunique()
    assert patients.to_dict() == {"train": 14, "val": 3, "test": 3}
    pd.testing.assert_series_equal(a["split"], assign_splits(images, seed=3)["split"])
    assert not a["split"].equals(assign_splits(images, seed=4)["split"])
    # row order does not matter, only the patient set and the seed
    shuffled = assign_splits(images.iloc[::-1], seed=3)
    assert shuffled.sort_index()["split"].equals(a["split"])
    m = load_manifest(
        files.frame(two_view_rows(20)), split_fractions=(0.5, 0.25, 0.25), split_seed=1
    )
    assert "seed 1" in m.summary.split_origin
    assert {k: v["patients"] for k, v in m.summary.per_split.items()} == {
        "train": 10,
        "val": 5,
        "test": 5,
    }


def test_split_counts_give_every_nonzero_split_a_patient():
    assert split_counts(3, (0.7, 0.15, 0.15)) == (1, 1, 1)
    assert split_counts(10, (1.0, 0.0, 0.0)) == (10, 0, 0)
    assert sum(split_counts(101, (0.7, 0.15, 0.15))) == 101
    with pytest.raises(DataConfigError, match="split_fractions"):
        split_counts(10, (0.5, 0.5, 0.5))


def test_no_usable_breast_and_reserved_column(files):
    rows = [files.manifest_row(), files.manifest_row(image_path="b.png", patient_id="P2")]
    with pytest.raises(ManifestError, match=r"no usable breast for views CC \+ MLO.*2 with no MLO"):
        load_manifest(files.frame(rows))
    with pytest.raises(ManifestError, match="column 'row' is reserved"):
        validate_manifest(files.frame([files.manifest_row(row=1)]))

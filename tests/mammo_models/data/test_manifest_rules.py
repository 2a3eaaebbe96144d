"""The manifest's validation rules one at a time, and validate_manifest as their pipeline.

A rule returns its problems in the order it finds them; ManifestError then sorts them by row,
stably, so within a row the pipeline's order of rules is the order of the message.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from mammo_models.data import ManifestError, validate_manifest
from mammo_models.data.manifest import (
    Cells,
    check_breast_labels,
    check_duplicate_paths,
    check_files,
    check_identifiers,
    check_label_sources,
    check_labels,
    check_lateralities_and_views,
    check_patient_splits,
    check_pixel_scales,
    check_required_columns,
    check_reserved_columns,
    check_splits,
)


def _cells(files, *overrides: dict) -> Cells:
    """Cells of one valid row per ``overrides`` (image paths r1.png, r2.png... unless given)."""
    rows = [
        files.manifest_row(**{"image_path": f"r{i}.png", **o}) for i, o in enumerate(overrides, 1)
    ]
    return Cells.of(files.frame(rows))


def _found(problems) -> list[tuple[int | None, str, str | None]]:
    return [(p.row, p.reason, p.column) for p in problems]


def test_required_columns_reports_every_missing_one_in_one_problem(files):
    frame = files.frame([files.manifest_row()])
    assert check_required_columns(frame.columns) == []
    (problem,) = check_required_columns(frame.drop(columns=["view", "benign"]).columns)
    assert problem.row is None
    assert problem.reason.startswith("missing required columns view, benign; a manifest needs ")
    assert "(found: dataset, image_path," in problem.reason
    (empty,) = check_required_columns(pd.DataFrame().columns)
    assert empty.reason.endswith("(found: no columns)")


def test_reserved_row_column(files):
    frame = files.frame([files.manifest_row()])
    assert check_reserved_columns(frame.columns) == []
    (problem,) = check_reserved_columns(frame.assign(row=1).columns)
    assert (problem.row, problem.column) == (None, "row")
    assert "column 'row' is reserved" in problem.reason


def test_identifiers_are_reported_column_by_column_then_row_by_row(files):
    cells = _cells(files, {"patient_id": ""}, {"dataset": " ", "patient_id": None}, {})
    assert _found(check_identifiers(cells)) == [
        (2, "empty dataset", "dataset"),
        (1, "empty patient_id", "patient_id"),
        (2, "empty patient_id", "patient_id"),
    ]


def test_labels_are_parsed_into_the_cells(files):
    cells = _cells(files, {"malignant": "1.0", "benign": True}, {"malignant": 2, "benign": "no"})
    assert _found(check_labels(cells)) == [
        (2, "malignant must be 0 or 1, got 2", "malignant"),
        (2, "benign must be 0 or 1, got 'no'", "benign"),
    ]
    assert cells.labels == {"malignant": [1, None], "benign": [1, None]}


def test_label_sources_are_lower_cased(files):
    cells = _cells(files, {"label_source": "BIRADS_Proxy"}, {"label_source": "biopsy"})
    (problem,) = check_label_sources(cells)
    assert problem.row == 2
    assert problem.reason.startswith("unknown label_source 'biopsy'; expected one of pathology")
    assert cells.text["label_source"] == ["birads_proxy", "biopsy"]


def test_laterality_and_view_are_normalised_and_checked_row_by_row(files):
    cells = _cells(
        files,
        {"laterality": "r", "view": "mlo"},
        {"laterality": "B", "view": "ML"},
        {"laterality": "", "view": "Other"},
    )
    assert _found(check_lateralities_and_views(cells, None)) == [
        (2, "unknown laterality 'B'; expected L or R", "laterality"),
        (
            2,
            "unknown view 'ML'; expected CC, MLO or other "
            "(map other mammographic views such as ML or XCCL to 'other')",
            "view",
        ),
        (
            3,
            "empty laterality (fill the column, or give data_root so a DICOM header can supply it)",
            None,
        ),
    ]
    assert cells.text["laterality"] == ["R", "B", ""]
    assert cells.text["view"] == ["MLO", "ML", "other"]


def test_empty_laterality_and_view_come_from_the_dicom_header(tmp_path, files):
    files.write_dicom(tmp_path / "x.dcm", files.breast_image(), laterality="R", view="CC")
    files.write_dicom(tmp_path / "y.dcm", files.breast_image(), view="MLO")
    cells = _cells(
        files,
        {"image_path": "x.dcm", "laterality": "", "view": ""},
        {"image_path": "y.dcm", "laterality": "", "view": ""},
    )
    problems = check_lateralities_and_views(cells, tmp_path)
    assert [(p.row, p.column) for p in problems] == [(2, "laterality")]
    assert problems[0].reason.startswith("empty laterality, and the DICOM header has no ")
    assert cells.text["laterality"] == ["R", ""]
    assert cells.text["view"] == ["CC", "MLO"]


def test_pixel_scales_default_to_one_and_must_be_positive(files):
    cells = _cells(files, {"pixel_scale": ""}, {"pixel_scale": "0.5"}, {"pixel_scale": "x"})
    assert _found(check_pixel_scales(cells)) == [
        (3, "pixel_scale must be a positive number, got 'x'", "pixel_scale")
    ]
    assert cells.scales[:2] == [1.0, 0.5] and math.isnan(cells.scales[2])
    assert check_pixel_scales(_cells(files, {})) == [] and _cells(files, {}).scales is None


def test_splits_filled_on_some_rows_only_or_unknown(files):
    cells = _cells(files, {"split": "Train"}, {"split": ""}, {"split": "dev"})
    assert _found(check_splits(cells)) == [
        (
            2,
            "empty split while other rows have one; fill it or leave the whole column empty",
            "split",
        ),
        (3, "unknown split 'dev'; expected train, val or test", "split"),
    ]
    assert cells.text["split"] == ["train", "", "dev"]
    assert check_splits(_cells(files, {"split": ""}, {"split": ""})) == []
    assert check_splits(_cells(files, {})) == []


def test_duplicate_paths_name_the_first_row(files):
    cells = _cells(files, {"image_path": "a.png"}, {"image_path": ""}, {"image_path": "a.png"})
    assert _found(check_duplicate_paths(cells)) == [
        (3, "image_path 'a.png' is already listed on row 1; one row per image", "image_path")
    ]


def test_breast_labels_conflict_only_between_valid_rows(files):
    cells = _cells(files, {"malignant": 1}, {"malignant": 2}, {"malignant": 0, "benign": 1})
    check_labels(cells)
    assert _found(check_breast_labels(cells)) == [
        (
            3,
            "malignant=0 conflicts with row 1 (malignant=1) of the same breast "
            "(patient 'P1', exam 'E1', laterality L); labels are per breast",
            "malignant",
        ),
        (
            3,
            "benign=1 conflicts with row 1 (benign=0) of the same breast "
            "(patient 'P1', exam 'E1', laterality L); labels are per breast",
            "benign",
        ),
    ]


def test_a_patient_in_two_splits(files):
    cells = _cells(files, {"split": "train"}, {"split": "dev"}, {"split": "TEST"})
    check_splits(cells)
    assert _found(check_patient_splits(cells)) == [
        (
            3,
            "patient 'P1' is in split 'test' here but in 'train' on row 1; "
            "a patient must be in one split",
            "split",
        )
    ]


def test_missing_files_are_reported_by_column_then_row(tmp_path, files):
    files.write_png(tmp_path / "r1.png", files.breast_image())
    cells = _cells(files, {"heatmap_benign_path": "h.npy"}, {"heatmap_benign_path": ""})
    assert _found(check_files(cells, tmp_path, check_images=False)) == [
        (2, f"image_path: file not found: {tmp_path / 'r2.png'}", "image_path"),
        (1, f"heatmap_benign_path: file not found: {tmp_path / 'h.npy'}", "heatmap_benign_path"),
    ]


@pytest.mark.parametrize("data_root", [None, "tmp"])
def test_validate_manifest_reports_the_rules_problems_in_pipeline_order(tmp_path, files, data_root):
    root = tmp_path if data_root else None
    rows = [
        files.manifest_row(image_path="a.png", split="train", malignant=1, pixel_scale=1),
        files.manifest_row(image_path="a.png", split="val", label_source="x", pixel_scale=0),
        files.manifest_row(image_path="", dataset="", laterality="", view="ML", split="dev"),
        files.manifest_row(image_path="c.png", benign="2", split="", pixel_scale=""),
    ]
    frame = files.frame(rows).assign(row=0)
    with pytest.raises(ManifestError) as info:
        validate_manifest(frame, root)
    cells = Cells.of(frame)
    expected = check_reserved_columns(frame.columns)
    for rule in (check_identifiers, check_labels, check_label_sources):
        expected += rule(cells)
    expected += check_lateralities_and_views(cells, root)
    for rule in (check_pixel_scales, check_splits, check_duplicate_paths):
        expected += rule(cells)
    if root is not None:
        expected += check_files(cells, root, check_images=False)
    expected += check_breast_labels(cells) + check_patient_splits(cells)
    assert info.value.problems == ManifestError(expected).problems  # sorted by row, stably
    assert {p.column for p in expected} >= {
        "row", "dataset", "benign", "label_source", "view", "pixel_scale", "split", "image_path",
        "malignant",
    }  # fmt: skip

"""CDD-CESM adapter on a small annotation workbook in the published layout."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mammo_models.data.adapters import REQUIRED_COLUMNS, AdapterError
from mammo_models.data.adapters.cdd_cesm import convert
from mammo_models.data.manifest import validate_manifest

LABEL = "Pathology Classification/ Follow up"
COLUMNS = [
    "Image_name", "Patient_ID", "Side", "Type", "Age", "Breast density (ACR)", "BIRADS",
    "Findings", "View", "Tags", "Machine", LABEL,
]  # fmt: skip
ROWS = [
    # P1 left: benign mass in CC; MLO has two findings, one malignant.
    ["P1_L_DM_CC", 1, "L", "DM", 51, "C", "3", "oval mass", "CC", "", "GE", "Benign"],
    ["P1_L_CM_CC", 1, "L", "CESM", 51, "_", "3", "enhancing mass", "CC", "", "GE", "Benign"],
    ["P1_L_DM_MLO", 1, "L", "DM", 51, "C", "3", "oval mass", "MLO", "", "GE", "Benign"],
    ["P1_L_DM_MLO", 1, "L", "DM", 51, "C", "5", "spiculated mass", "MLO", "", "GE", "Malignant"],
    ["P1_L_CM_MLO", 1, "L", "CESM", 51, "_", "5", "enhancing mass", "MLO", "", "GE", "Malignant"],
    # P2 right: normal, confirmed by follow-up; stray spaces as in the published sheet.
    ["P2_R_DM_CC ", 2, "R", "DM", 46, "B", "1", "", "CC", "", "Hologic", "Normal "],
    ["P2_R_DM_MLO", 2, "R ", "DM", 46, "B", "1", "", "MLO", "", "Hologic", "Normal"],
    ["P2_R_CM_MLO", 2, "R", "CESM", 46, "_", "1", "", "MLO", "", "Hologic", "Normal"],
]


def _write(path: Path, rows: list[list[object]]) -> None:
    with pd.ExcelWriter(path) as writer:
        # The workbook has several sheets; the adapter reads "all" even when it is not first.
        pd.DataFrame({"Image_name": ["P1_L_DM_CC"], "Mass shape": ["oval"]}).to_excel(
            writer, sheet_name="mass_description", index=False
        )
        pd.DataFrame(rows, columns=COLUMNS).to_excel(writer, sheet_name="all", index=False)


@pytest.fixture
def cdd(tmp_path: Path) -> Path:
    _write(tmp_path / "Radiology-manual-annotations.xlsx", ROWS)
    return tmp_path


def test_low_energy_images_with_breast_labels(cdd: Path) -> None:
    df = convert(cdd)
    validate_manifest(df)  # the manifest module accepts the rows as they are

    assert list(df.columns[: len(REQUIRED_COLUMNS)]) == list(REQUIRED_COLUMNS)
    got = df[
        [
            "image_path",
            "patient_id",
            "exam_id",
            "laterality",
            "view",
            "malignant",
            "benign",
            "label_source",
        ]
    ]
    assert got.to_dict("records") == [
        {"image_path": "Low energy images of CDD-CESM/P1_L_DM_CC.jpg", "patient_id": "1", "exam_id": "1", "laterality": "L", "view": "CC", "malignant": 1, "benign": 1, "label_source": "pathology"},
        {"image_path": "Low energy images of CDD-CESM/P1_L_DM_MLO.jpg", "patient_id": "1", "exam_id": "1", "laterality": "L", "view": "MLO", "malignant": 1, "benign": 1, "label_source": "pathology"},
        {"image_path": "Low energy images of CDD-CESM/P2_R_DM_CC.jpg", "patient_id": "2", "exam_id": "2", "laterality": "R", "view": "CC", "malignant": 0, "benign": 0, "label_source": "follow_up"},
        {"image_path": "Low energy images of CDD-CESM/P2_R_DM_MLO.jpg", "patient_id": "2", "exam_id": "2", "laterality": "R", "view": "MLO", "malignant": 0, "benign": 0, "label_source": "follow_up"},
    ]  # fmt: skip
    assert df.loc[1, "findings"] == "oval mass | spiculated mass"
    assert df.loc[1, "birads"] == "3 | 5"
    assert df["density"].tolist() == ["C", "C", "B", "B"]
    assert df["age"].tolist() == [51.0, 51.0, 46.0, 46.0]
    assert any("3 subtracted-image (CESM) row(s) dropped" in n for n in df.attrs["notes"])


def test_csv_version_and_template(cdd: Path) -> None:
    csv = cdd / "Radiology-manual-annotations.csv"
    pd.DataFrame(ROWS, columns=COLUMNS).to_csv(csv, index=False)

    df = convert(csv, image_path_template="dm/{patient_id}/{image_name}.png")

    assert df["image_path"].tolist()[:2] == ["dm/1/P1_L_DM_CC.png", "dm/1/P1_L_DM_MLO.png"]


def test_unknown_type_names_file_row_and_column(cdd: Path) -> None:
    rows = [list(r) for r in ROWS]
    rows[4][3] = "SUB"
    path = cdd / "Radiology-manual-annotations.xlsx"
    _write(path, rows)

    with pytest.raises(AdapterError) as info:
        convert(cdd)
    assert str(info.value).startswith(f"{path}, row 5, column 'Type': expected one of 'DM', 'CESM'")


def test_rows_of_one_image_must_agree(cdd: Path) -> None:
    rows = [list(r) for r in ROWS]
    rows[3][2] = "R"  # second finding of P1_L_DM_MLO claims the right breast
    _write(cdd / "Radiology-manual-annotations.xlsx", rows)

    with pytest.raises(
        AdapterError, match=r"row 4, column 'Side': image 'P1_L_DM_MLO' is 'L' in row 3"
    ):
        convert(cdd)

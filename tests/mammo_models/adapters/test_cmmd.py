"""CMMD adapter on a small clinical workbook and tiny header-only DICOMs written with pydicom."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from mammo_models.data.adapters import REQUIRED_COLUMNS, AdapterError
from mammo_models.data.adapters.cmmd import convert
from mammo_models.data.manifest import validate_manifest

MAMMOGRAPHY_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.1.2"  # Digital Mammography X-Ray, presentation
CLINICAL = pd.DataFrame(
    {
        "ID1": ["D1-0001", "D1-0002", "D2-0001", "D2-0001"],
        "LeftRight": ["R", "L", "L", "R"],
        "Age": [44, 40, 39, 39],
        "number": [2, 2, 2, 2],
        "abnormality": ["calcification", "mass", "both", "mass"],
        "classification": ["Benign", "Malignant", "Malignant", "Benign"],
        "subtype": [None, None, "Luminal B", None],
    }
)


def _write_dicom(
    path: Path,
    patient: str,
    side: str | None,
    *,
    view_position: str = "",
    code: tuple[str, str] | None = None,
) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MAMMOGRAPHY_SOP_CLASS
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = MAMMOGRAPHY_SOP_CLASS
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientID = patient
    if side is not None:
        ds.ImageLaterality = side
    ds.ViewPosition = view_position
    if code is not None:
        item = Dataset()
        item.CodeValue, item.CodeMeaning = code
        item.CodingSchemeDesignator = "SRT"
        ds.ViewCodeSequence = [item]
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


CC = ("R-10242", "cranio-caudal")
MLO = ("R-10226", "medio-lateral oblique")


@pytest.fixture
def cmmd(tmp_path: Path) -> Path:
    CLINICAL.to_excel(tmp_path / "CMMD_clinicaldata_revision.xlsx", index=False)
    series = "07-18-2010-NA-NA-79377/1.000000-NA-70244"
    base = tmp_path / "CMMD"
    _write_dicom(base / "D1-0001" / series / "1-1.dcm", "D1-0001", "R", code=CC)
    # Only the code meaning, no code value: the meaning decides.
    _write_dicom(
        base / "D1-0001" / series / "1-2.dcm", "D1-0001", "R", code=("", "medio-lateral oblique")
    )
    _write_dicom(base / "D1-0002" / series / "1-1.dcm", "D1-0002", "L", view_position="CC")
    _write_dicom(base / "D1-0002" / series / "1-2.dcm", "D1-0002", "L", code=MLO)
    _write_dicom(base / "D2-0001" / series / "1-1.dcm", "D2-0001", "L", code=CC)
    _write_dicom(base / "D2-0001" / series / "1-2.dcm", "D2-0001", "L", code=MLO)
    _write_dicom(base / "D2-0001" / series / "1-3.dcm", "D2-0001", "R", code=CC)
    _write_dicom(base / "D2-0001" / series / "1-4.dcm", "D2-0001", "R", code=MLO)
    return tmp_path


def test_views_from_dicom_tags_and_labels_from_the_sheet(cmmd: Path) -> None:
    df = convert(cmmd)
    validate_manifest(df)  # the manifest module accepts the rows as they are

    assert list(df.columns[: len(REQUIRED_COLUMNS)]) == list(REQUIRED_COLUMNS)
    series = "07-18-2010-NA-NA-79377/1.000000-NA-70244"
    got = df[["image_path", "patient_id", "exam_id", "laterality", "view", "malignant", "benign"]]
    assert got.to_dict("records") == [
        {"image_path": f"CMMD/D1-0001/{series}/1-1.dcm", "patient_id": "D1-0001", "exam_id": "D1-0001", "laterality": "R", "view": "CC", "malignant": 0, "benign": 1},
        {"image_path": f"CMMD/D1-0001/{series}/1-2.dcm", "patient_id": "D1-0001", "exam_id": "D1-0001", "laterality": "R", "view": "MLO", "malignant": 0, "benign": 1},
        {"image_path": f"CMMD/D1-0002/{series}/1-1.dcm", "patient_id": "D1-0002", "exam_id": "D1-0002", "laterality": "L", "view": "CC", "malignant": 1, "benign": 0},
        {"image_path": f"CMMD/D1-0002/{series}/1-2.dcm", "patient_id": "D1-0002", "exam_id": "D1-0002", "laterality": "L", "view": "MLO", "malignant": 1, "benign": 0},
        {"image_path": f"CMMD/D2-0001/{series}/1-1.dcm", "patient_id": "D2-0001", "exam_id": "D2-0001", "laterality": "L", "view": "CC", "malignant": 1, "benign": 0},
        {"image_path": f"CMMD/D2-0001/{series}/1-2.dcm", "patient_id": "D2-0001", "exam_id": "D2-0001", "laterality": "L", "view": "MLO", "malignant": 1, "benign": 0},
        {"image_path": f"CMMD/D2-0001/{series}/1-3.dcm", "patient_id": "D2-0001", "exam_id": "D2-0001", "laterality": "R", "view": "CC", "malignant": 0, "benign": 1},
        {"image_path": f"CMMD/D2-0001/{series}/1-4.dcm", "patient_id": "D2-0001", "exam_id": "D2-0001", "laterality": "R", "view": "MLO", "malignant": 0, "benign": 1},
    ]  # fmt: skip
    assert set(df["label_source"]) == {"pathology"}
    assert df["age"].tolist() == [44.0, 44.0, 40.0, 40.0, 39.0, 39.0, 39.0, 39.0]
    assert df["subtype"].tolist() == ["", "", "", "", "Luminal B", "Luminal B", "", ""]


def test_image_of_a_breast_without_a_sheet_row_is_left_out_with_a_warning(cmmd: Path) -> None:
    extra = cmmd / "CMMD" / "D1-0002" / "x" / "y" / "1-3.dcm"
    _write_dicom(extra, "D1-0002", "R", code=CC)

    with pytest.warns(UserWarning, match=r"1 DICOM\(s\) belong to a breast with no row"):
        df = convert(cmmd / "CMMD_clinicaldata_revision.xlsx", image_root=cmmd)

    assert len(df) == 8
    assert "CMMD/D1-0002/x/y/1-3.dcm" not in set(df["image_path"])


def test_csv_sheet_is_accepted(cmmd: Path) -> None:
    (cmmd / "CMMD_clinicaldata_revision.xlsx").unlink()
    CLINICAL.to_csv(cmmd / "CMMD_clinicaldata_revision.csv", index=False)

    df = convert(cmmd)

    assert df["malignant"].tolist() == [0, 0, 1, 1, 1, 1, 0, 0]


def test_missing_laterality_tag_names_the_file(cmmd: Path) -> None:
    bad = cmmd / "CMMD" / "D1-0002" / "z" / "1-9.dcm"
    _write_dicom(bad, "D1-0002", None, code=CC)

    with pytest.raises(AdapterError) as info:
        convert(cmmd)
    assert info.value.file == str(bad)
    assert info.value.column == "ImageLaterality"


def test_unknown_classification_names_file_row_and_column(cmmd: Path) -> None:
    sheet = CLINICAL.copy()
    sheet.loc[2, "classification"] = "Suspicious"
    sheet.to_excel(cmmd / "CMMD_clinicaldata_revision.xlsx", index=False)

    with pytest.raises(AdapterError) as info:
        convert(cmmd)
    message = str(info.value)
    assert "CMMD_clinicaldata_revision.xlsx, row 3, column 'classification'" in message
    assert "'Suspicious'" in message

"""INbreast adapter on a small semicolon-separated INbreast.csv and DICOM file names."""

from __future__ import annotations

from pathlib import Path

import pytest

from mammo_models.data.adapters import REQUIRED_COLUMNS, AdapterError
from mammo_models.data.adapters.inbreast import convert
from mammo_models.data.manifest import validate_manifest

HEADER = "Patient ID;Patient age;Laterality;View;Acquisition date;File Name;ACR;Bi-Rads"
# (file name, patient hash, laterality, view, date, ACR, Bi-Rads); DICOM names use ML for MLO.
CASES = (
    ("22678622", "61b13c59bcba149e", "R", "CC", "201001", "2", "1"),
    ("22678646", "61b13c59bcba149e", "R", "MLO", "201001", "2", "1"),
    ("22678694", "61b13c59bcba149e", "L", "CC", "201001", "2", "3"),
    ("22678720", "61b13c59bcba149e", "L", "MLO", "201001", "2", "4a"),
    ("20586908", "6c613a14b80a8591", "L", "CC", "200812", "", "2"),
    ("20586934", "6c613a14b80a8591", "L", "MLO", "200812", "", "3"),
    ("20586986", "6c613a14b80a8591", "L", "CC", "201003", "3", "6"),
)


def _dicom_name(file_name: str, patient: str, side: str, view: str) -> str:
    return f"{file_name}_{patient}_MG_{side}_{'ML' if view == 'MLO' else view}_ANON.dcm"


@pytest.fixture
def inbreast(tmp_path: Path) -> Path:
    root = tmp_path / "INbreast Release 1.0"
    (root / "AllDICOMs").mkdir(parents=True)
    lines = [HEADER]
    for file_name, patient, side, view, date, acr, birads in CASES:
        # The release pads blank ACR cells with spaces.
        lines.append(f"removed;removed;{side};{view};{date};{file_name};{acr or '   '};{birads}")
        (root / "AllDICOMs" / _dicom_name(file_name, patient, side, view)).write_bytes(b"")
    (root / "INbreast.csv").write_text("\n".join(lines) + "\n")
    return root


def test_patients_from_dicom_names_and_proxy_labels_per_breast(inbreast: Path) -> None:
    df = convert(inbreast)
    validate_manifest(df)  # the manifest module accepts the rows as they are

    assert list(df.columns[: len(REQUIRED_COLUMNS)]) == list(REQUIRED_COLUMNS)
    assert "split" not in df.columns
    got = df[["file_name", "patient_id", "exam_id", "laterality", "view", "malignant", "benign"]]
    p1, p2 = "61b13c59bcba149e", "6c613a14b80a8591"
    assert got.to_dict("records") == [
        # CC is BI-RADS 3 and MLO 4a: the breast follows 4a, so both images are malignant.
        {"file_name": "22678694", "patient_id": p1, "exam_id": f"{p1}_201001", "laterality": "L", "view": "CC", "malignant": 1, "benign": 0},
        {"file_name": "22678720", "patient_id": p1, "exam_id": f"{p1}_201001", "laterality": "L", "view": "MLO", "malignant": 1, "benign": 0},
        {"file_name": "22678622", "patient_id": p1, "exam_id": f"{p1}_201001", "laterality": "R", "view": "CC", "malignant": 0, "benign": 0},
        {"file_name": "22678646", "patient_id": p1, "exam_id": f"{p1}_201001", "laterality": "R", "view": "MLO", "malignant": 0, "benign": 0},
        {"file_name": "20586908", "patient_id": p2, "exam_id": f"{p2}_200812", "laterality": "L", "view": "CC", "malignant": 0, "benign": 1},
        {"file_name": "20586934", "patient_id": p2, "exam_id": f"{p2}_200812", "laterality": "L", "view": "MLO", "malignant": 0, "benign": 1},
        {"file_name": "20586986", "patient_id": p2, "exam_id": f"{p2}_201003", "laterality": "L", "view": "CC", "malignant": 1, "benign": 0},
    ]  # fmt: skip
    assert set(df["label_source"]) == {"birads_proxy"}
    assert df.loc[0, "image_path"] == "AllDICOMs/22678694_61b13c59bcba149e_MG_L_CC_ANON.dcm"
    assert df["birads"].tolist() == ["3", "4a", "1", "1", "2", "3", "6"]
    assert df["density"].tolist() == ["2", "2", "2", "2", "", "", "3"]
    assert any("different BI-RADS" in note for note in df.attrs["notes"])


def test_listing_file_replaces_the_image_folder(inbreast: Path, tmp_path: Path) -> None:
    listing = tmp_path / "dicoms.txt"
    listing.write_text("\n".join(p.name for p in sorted((inbreast / "AllDICOMs").iterdir())))
    for dicom in (inbreast / "AllDICOMs").iterdir():
        dicom.unlink()

    df = convert(inbreast / "INbreast.csv", dicom_names=listing)

    assert len(df) == len(CASES)
    assert df["patient_id"].nunique() == 2


def test_without_dicom_names_the_error_says_what_to_pass(inbreast: Path) -> None:
    for dicom in (inbreast / "AllDICOMs").iterdir():
        dicom.unlink()

    with pytest.raises(AdapterError, match=r"image_root=.*dicom_names="):
        convert(inbreast)


def test_unknown_birads_and_missing_dicom_name_file_row_and_column(inbreast: Path) -> None:
    csv = inbreast / "INbreast.csv"
    text = csv.read_text()
    csv.write_text(text.replace(";20586934;   ;3", ";20586934;   ;7"))
    with pytest.raises(AdapterError) as info:
        convert(inbreast)
    assert str(info.value).startswith(f"{csv}, row 6, column 'Bi-Rads'")

    csv.write_text(text.replace(";20586986;", ";20586999;"))
    with pytest.raises(AdapterError, match=r"row 7, column 'File Name'.*found no DICOM"):
        convert(inbreast)

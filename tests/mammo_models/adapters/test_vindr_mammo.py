"""VinDr-Mammo adapter on a small breast-level_annotations.csv in the published layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from mammo_models.data.adapters import REQUIRED_COLUMNS, AdapterError, BiradsProxy
from mammo_models.data.adapters.vindr_mammo import convert
from mammo_models.data.manifest import validate_manifest

HEADER = (
    "study_id,series_id,image_id,laterality,view_position,height,width,breast_birads,"
    "breast_density,split"
)
A = "4e3a578fe535ea4f5258d3f7f4419db8"
B = "dac39351b0f3a8c670b7f8dc88029364"
C = "c1b6a2e1d9a04c5f8e7d6c5b4a392817"


def _row(study: str, image: str, side: str, view: str, birads: int, split: str) -> str:
    return (
        f"{study},s{study[:6]},{image},{side},{view},3518,2800,BI-RADS {birads},DENSITY C,{split}"
    )


@pytest.fixture
def vindr(tmp_path: Path) -> Path:
    rows = [
        HEADER,
        _row(A, "a1", "L", "CC", 4, "training"),
        _row(A, "a2", "L", "MLO", 4, "training"),
        _row(A, "a3", "R", "CC", 1, "training"),
        _row(A, "a4", "R", "MLO", 1, "training"),
        _row(B, "b1", "L", "CC", 3, "training"),
        _row(B, "b2", "L", "MLO", 3, "training"),
        _row(B, "b3", "R", "CC", 2, "training"),
        _row(C, "c1", "R", "MLO", 5, "test"),
    ]
    (tmp_path / "breast-level_annotations.csv").write_text("\n".join(rows) + "\n")
    return tmp_path


def test_birads_proxy_labels_are_flagged(vindr: Path) -> None:
    df = convert(vindr)
    validate_manifest(df)  # the manifest module accepts the rows as they are

    assert list(df.columns[: len(REQUIRED_COLUMNS)]) == list(REQUIRED_COLUMNS)
    got = df[["image_path", "patient_id", "exam_id", "laterality", "view", "malignant", "benign"]]
    assert got.to_dict("records") == [
        {"image_path": f"images/{A}/a1.dicom", "patient_id": A, "exam_id": A, "laterality": "L", "view": "CC", "malignant": 1, "benign": 0},
        {"image_path": f"images/{A}/a2.dicom", "patient_id": A, "exam_id": A, "laterality": "L", "view": "MLO", "malignant": 1, "benign": 0},
        {"image_path": f"images/{A}/a3.dicom", "patient_id": A, "exam_id": A, "laterality": "R", "view": "CC", "malignant": 0, "benign": 0},
        {"image_path": f"images/{A}/a4.dicom", "patient_id": A, "exam_id": A, "laterality": "R", "view": "MLO", "malignant": 0, "benign": 0},
        {"image_path": f"images/{C}/c1.dicom", "patient_id": C, "exam_id": C, "laterality": "R", "view": "MLO", "malignant": 1, "benign": 0},
        {"image_path": f"images/{B}/b1.dicom", "patient_id": B, "exam_id": B, "laterality": "L", "view": "CC", "malignant": 0, "benign": 1},
        {"image_path": f"images/{B}/b2.dicom", "patient_id": B, "exam_id": B, "laterality": "L", "view": "MLO", "malignant": 0, "benign": 1},
        {"image_path": f"images/{B}/b3.dicom", "patient_id": B, "exam_id": B, "laterality": "R", "view": "CC", "malignant": 0, "benign": 0},
    ]  # fmt: skip
    assert set(df["label_source"]) == {"birads_proxy"}
    assert df["split"].tolist() == ["train"] * 4 + ["test"] + ["train"] * 3
    assert df["birads"].tolist() == ["4", "4", "1", "1", "5", "3", "3", "2"]
    assert set(df["density"]) == {"C"}
    assert df["height"].tolist() == [3518] * 8


def test_proxy_and_image_template_are_configurable(vindr: Path) -> None:
    proxy = BiradsProxy(malignant=frozenset({"5"}), benign=frozenset({"2", "3", "4"}))

    df = convert(
        vindr / "breast-level_annotations.csv",
        proxy=proxy,
        image_path_template="png/{image_id}.png",
    )

    by_image = df.set_index("image_id")
    assert by_image.loc["a1", ["malignant", "benign"]].tolist() == [0, 1]
    assert by_image.loc["b3", ["malignant", "benign"]].tolist() == [0, 1]
    assert by_image.loc["c1", ["malignant", "benign"]].tolist() == [1, 0]
    assert by_image.loc["a3", ["malignant", "benign"]].tolist() == [0, 0]
    assert by_image.loc["a1", "image_path"] == "png/a1.png"


def test_breast_takes_its_most_suspicious_category(vindr: Path) -> None:
    path = vindr / "breast-level_annotations.csv"
    path.write_text(
        path.read_text().replace(
            f"{B},s{B[:6]},b2,L,MLO,3518,2800,BI-RADS 3",
            f"{B},s{B[:6]},b2,L,MLO,3518,2800,BI-RADS 4",
        )
    )

    df = convert(vindr).set_index("image_id")

    assert df.loc["b1", ["malignant", "benign", "birads"]].tolist() == [1, 0, "3"]


def test_unknown_view_names_file_row_and_column(vindr: Path) -> None:
    path = vindr / "breast-level_annotations.csv"
    path.write_text(path.read_text().replace(",b3,R,CC,", ",b3,R,XX,"))

    with pytest.raises(AdapterError) as info:
        convert(path)
    assert str(info.value).startswith(f"{path}, row 7, column 'view_position': expected one of")
    assert "got 'XX'" in str(info.value)


def test_bad_birads_and_template_are_errors(vindr: Path) -> None:
    with pytest.raises(AdapterError, match=r"unknown field \{patient\}"):
        convert(vindr, image_path_template="images/{patient}/{image_id}.dicom")
    path = vindr / "breast-level_annotations.csv"
    path.write_text(path.read_text().replace("BI-RADS 5", "BIRADS five"))
    with pytest.raises(AdapterError, match=r"row 8, column 'breast_birads'"):
        convert(path)

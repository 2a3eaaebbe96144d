"""RSNA 2023 adapter on a small train.csv in the competition's column layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from mammo_models.data.adapters import REQUIRED_COLUMNS, AdapterError
from mammo_models.data.adapters.rsna_2023 import convert
from mammo_models.data.manifest import validate_manifest

TRAIN_CSV = """\
site_id,patient_id,image_id,laterality,view,age,cancer,biopsy,invasive,BIRADS,implant,density,machine_id,difficult_negative_case
2,10006,462822612,L,CC,61.0,0,0,0,,0,,29,False
2,10006,1459541791,L,MLO,61.0,0,0,0,,0,,29,False
2,10006,1864590858,R,MLO,61.0,0,0,0,,0,,29,False
2,10006,1874946579,R,CC,61.0,0,0,0,,0,,29,False
1,10130,388811999,L,MLO,71.0,1,1,1,0,0,B,49,False
1,10130,613462606,L,CC,71.0,1,1,1,0,0,B,49,False
1,10130,1360338805,R,CC,71.0,0,0,0,1,0,B,49,False
1,10226,461614796,R,CC,53.0,0,1,0,0,0,C,49,True
1,10226,530620473,R,MLO,53.0,0,1,0,0,0,C,49,True
1,10226,1031443799,R,AT,53.0,0,1,0,0,0,C,49,True
"""


@pytest.fixture
def rsna(tmp_path: Path) -> Path:
    (tmp_path / "train.csv").write_text(TRAIN_CSV)
    return tmp_path


def test_cancer_and_biopsy_become_breast_labels(rsna: Path) -> None:
    df = convert(rsna)
    validate_manifest(df)  # the manifest module accepts the rows as they are

    assert list(df.columns[: len(REQUIRED_COLUMNS)]) == list(REQUIRED_COLUMNS)
    assert "split" not in df.columns
    got = df[
        [
            "image_id",
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
        {"image_id": "462822612", "patient_id": "10006", "exam_id": "10006", "laterality": "L", "view": "CC", "malignant": 0, "benign": 0, "label_source": "unknown"},
        {"image_id": "1459541791", "patient_id": "10006", "exam_id": "10006", "laterality": "L", "view": "MLO", "malignant": 0, "benign": 0, "label_source": "unknown"},
        {"image_id": "1874946579", "patient_id": "10006", "exam_id": "10006", "laterality": "R", "view": "CC", "malignant": 0, "benign": 0, "label_source": "unknown"},
        {"image_id": "1864590858", "patient_id": "10006", "exam_id": "10006", "laterality": "R", "view": "MLO", "malignant": 0, "benign": 0, "label_source": "unknown"},
        {"image_id": "613462606", "patient_id": "10130", "exam_id": "10130", "laterality": "L", "view": "CC", "malignant": 1, "benign": 0, "label_source": "pathology"},
        {"image_id": "388811999", "patient_id": "10130", "exam_id": "10130", "laterality": "L", "view": "MLO", "malignant": 1, "benign": 0, "label_source": "pathology"},
        {"image_id": "1360338805", "patient_id": "10130", "exam_id": "10130", "laterality": "R", "view": "CC", "malignant": 0, "benign": 0, "label_source": "unknown"},
        {"image_id": "461614796", "patient_id": "10226", "exam_id": "10226", "laterality": "R", "view": "CC", "malignant": 0, "benign": 1, "label_source": "pathology"},
        {"image_id": "530620473", "patient_id": "10226", "exam_id": "10226", "laterality": "R", "view": "MLO", "malignant": 0, "benign": 1, "label_source": "pathology"},
        {"image_id": "1031443799", "patient_id": "10226", "exam_id": "10226", "laterality": "R", "view": "other", "malignant": 0, "benign": 1, "label_source": "pathology"},
    ]  # fmt: skip
    assert df.loc[0, "image_path"] == "train_images/10006/462822612.dcm"
    assert df["age"].tolist()[:1] == [61.0]
    assert df["difficult_negative_case"].tolist()[-1] == 1
    assert df["birads_rsna"].isna().tolist()[:4] == [True] * 4
    assert df["birads_rsna"].tolist()[4:7] == [0.0, 0.0, 1.0]


def test_negatives_can_be_declared_follow_up(rsna: Path) -> None:
    df = convert(rsna / "train.csv", negative_label_source="follow_up")

    assert df.groupby("label_source").size().to_dict() == {"follow_up": 5, "pathology": 5}
    with pytest.raises(AdapterError, match=r"negative_label_source"):
        convert(rsna, negative_label_source="normal")


def test_png_template(rsna: Path) -> None:
    df = convert(rsna, image_path_template="png/{site_id}/{patient_id}_{image_id}.png")

    assert df.loc[0, "image_path"] == "png/2/10006_462822612.png"


def test_unknown_laterality_names_file_row_and_column(rsna: Path) -> None:
    path = rsna / "train.csv"
    path.write_text(TRAIN_CSV.replace("2,10006,1864590858,R,", "2,10006,1864590858,B,"))

    with pytest.raises(AdapterError) as info:
        convert(path)
    assert str(info.value) == (
        f"{path}, row 3, column 'laterality': expected one of 'L', 'R'; got 'B'"
    )


def test_test_csv_without_labels_is_rejected(rsna: Path) -> None:
    path = rsna / "test.csv"
    path.write_text(
        "site_id,patient_id,image_id,laterality,view,age,implant,machine_id,prediction_id\n"
        "2,10008,736471439,L,MLO,81,0,21,10008_L\n"
    )

    with pytest.raises(AdapterError, match=r"column 'cancer': missing column"):
        convert(path)

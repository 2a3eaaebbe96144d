"""CBIS-DDSM adapter on small description CSVs in the published column layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from mammo_models.data.adapters import REQUIRED_COLUMNS, AdapterError, kaggle_jpeg_path_map
from mammo_models.data.adapters.cbis_ddsm import convert
from mammo_models.data.manifest import validate_manifest

MASS_HEADER = (
    "patient_id,breast_density,left or right breast,image view,abnormality id,abnormality type,"
    "mass shape,mass margins,assessment,pathology,subtlety,image file path,"
    "cropped image file path,ROI mask file path"
)
CALC_HEADER = (
    "patient_id,breast density,left or right breast,image view,abnormality id,abnormality type,"
    "calc type,calc distribution,assessment,pathology,subtlety,image file path,"
    "cropped image file path,ROI mask file path"
)


def _path(folder: str, study: str, series: str) -> str:
    return f"{folder}/1.3.6.1.4.1.9590.100.1.2.{study}/1.3.6.1.4.1.9590.100.1.2.{series}/000000.dcm"


def _mass(patient, side, view, abn, pathology, split="Training", assessment=4, density=3):
    folder = f"Mass-{split}_{patient}_{side}_{view}"
    image = _path(folder, f"{patient[-2:]}1", f"{patient[-2:]}{side[0]}{view}")
    crop = _path(f"{folder}_{abn}", "9", "9").replace("000000", "000001")
    # The published files end some ROI mask paths with a newline inside the quotes.
    return (
        f"{patient},{density},{side},{view},{abn},mass,OVAL,CIRCUMSCRIBED,{assessment},"
        f'{pathology},3,{image},{crop},"{crop}\n"'
    )


def _calc(patient, side, view, abn, pathology, split="Training", assessment=3, density=2):
    folder = f"Calc-{split}_{patient}_{side}_{view}"
    image = _path(folder, f"{patient[-2:]}2", f"{patient[-2:]}{side[0]}{view}c")
    crop = _path(f"{folder}_{abn}", "8", "8").replace("000000", "000001")
    return (
        f"{patient},{density},{side},{view},{abn},calcification,PLEOMORPHIC,CLUSTERED,"
        f"{assessment},{pathology},2,{image},{crop},{crop}"
    )


@pytest.fixture
def cbis(tmp_path: Path) -> Path:
    root = tmp_path / "CBIS-DDSM"
    root.mkdir()
    mass_train = [
        MASS_HEADER,
        # P_00001 left: one malignant and one benign mass, both seen in CC and MLO.
        _mass("P_00001", "LEFT", "CC", 1, "MALIGNANT", assessment=5),
        _mass("P_00001", "LEFT", "MLO", 1, "MALIGNANT", assessment=5),
        _mass("P_00001", "LEFT", "CC", 2, "BENIGN", assessment=3),
        _mass("P_00001", "LEFT", "MLO", 2, "BENIGN", assessment=3),
        # P_00004 right: a benign finding that needed no callback.
        _mass("P_00004", "RIGHT", "CC", 1, "BENIGN_WITHOUT_CALLBACK", assessment=2),
        _mass("P_00004", "RIGHT", "MLO", 1, "BENIGN_WITHOUT_CALLBACK", assessment=2),
        # P_00005 right CC: a benign mass; the same film also has a malignant calcification.
        _mass("P_00005", "RIGHT", "CC", 1, "BENIGN", assessment=4),
        # P_00008 right CC: training mass of a patient whose calcification is in the test file.
        _mass("P_00008", "RIGHT", "CC", 1, "MALIGNANT", assessment=5),
    ]
    calc_train = [CALC_HEADER, _calc("P_00005", "RIGHT", "CC", 1, "MALIGNANT")]
    calc_test = [
        CALC_HEADER,
        _calc("P_00008", "LEFT", "MLO", 1, "BENIGN", split="Test"),
        _calc("P_00038", "LEFT", "CC", 1, "BENIGN", split="Test", assessment=4),
    ]
    (root / "mass_case_description_train_set.csv").write_text("\n".join(mass_train) + "\n")
    (root / "calc_case_description_train_set.csv").write_text("\n".join(calc_train) + "\n")
    (root / "calc_case_description_test_set.csv").write_text("\n".join(calc_test) + "\n")
    return root


def test_labels_are_aggregated_per_breast_and_split_by_patient(cbis: Path) -> None:
    df = convert(cbis)
    validate_manifest(df)  # the manifest module accepts the rows as they are

    assert list(df.columns[: len(REQUIRED_COLUMNS)]) == list(REQUIRED_COLUMNS)
    got = df[["patient_id", "laterality", "view", "malignant", "benign", "split"]]
    assert got.to_dict("records") == [
        {"patient_id": "P_00001", "laterality": "L", "view": "CC", "malignant": 1, "benign": 1, "split": "train"},
        {"patient_id": "P_00001", "laterality": "L", "view": "MLO", "malignant": 1, "benign": 1, "split": "train"},
        {"patient_id": "P_00004", "laterality": "R", "view": "CC", "malignant": 0, "benign": 1, "split": "train"},
        {"patient_id": "P_00004", "laterality": "R", "view": "MLO", "malignant": 0, "benign": 1, "split": "train"},
        {"patient_id": "P_00005", "laterality": "R", "view": "CC", "malignant": 1, "benign": 1, "split": "train"},
        {"patient_id": "P_00008", "laterality": "L", "view": "MLO", "malignant": 0, "benign": 1, "split": "test"},
        {"patient_id": "P_00008", "laterality": "R", "view": "CC", "malignant": 1, "benign": 0, "split": "test"},
        {"patient_id": "P_00038", "laterality": "L", "view": "CC", "malignant": 0, "benign": 1, "split": "test"},
    ]  # fmt: skip
    assert set(df["dataset"]) == {"cbis-ddsm"}
    assert set(df["label_source"]) == {"pathology"}
    assert (df["exam_id"] == df["patient_id"]).all()
    assert df.loc[0, "image_path"] == _path("Mass-Training_P_00001_LEFT_CC", "011", "01LCC")
    assert df["birads"].tolist() == [5, 5, 2, 2, 4, 3, 5, 4]
    assert df["benign_without_callback"].tolist() == [0, 0, 1, 1, 0, 0, 0, 0]


def test_film_in_both_collections_is_one_row_preferring_the_mass_series(cbis: Path) -> None:
    df = convert(cbis)
    row = df[(df["patient_id"] == "P_00005")].iloc[0]

    assert row["image_path"].startswith("Mass-Training_P_00005_RIGHT_CC/")
    assert row["other_image_paths"] == _path("Calc-Training_P_00005_RIGHT_CC", "052", "05RCCc")
    assert row["abnormality_types"] == "calcification+mass"
    assert any("no normal breasts" in note for note in df.attrs["notes"])
    assert any("both a training and a test file" in note for note in df.attrs["notes"])


def test_benign_without_callback_can_count_as_negative(cbis: Path) -> None:
    df = convert(cbis, benign_without_callback="negative")
    validate_manifest(df)  # the manifest module accepts the rows as they are
    p4 = df[df["patient_id"] == "P_00004"]

    assert p4["malignant"].tolist() == [0, 0]
    assert p4["benign"].tolist() == [0, 0]
    assert p4["benign_without_callback"].tolist() == [1, 1]


def test_single_file_and_explicit_path_map(cbis: Path) -> None:
    source = cbis / "calc_case_description_test_set.csv"
    p8 = _path("Calc-Test_P_00008_LEFT_MLO", "082", "08LMLOc")
    p38 = _path("Calc-Test_P_00038_LEFT_CC", "382", "38LCCc")
    mapping = {p8: "png/P_00008_L_MLO.png", p38: "png/P_00038_L_CC.png", "unused": "x"}

    df = convert([source], image_path_map=mapping)

    assert df["image_path"].tolist() == ["png/P_00008_L_MLO.png", "png/P_00038_L_CC.png"]
    assert df["split"].tolist() == ["test", "test"]
    table = cbis / "paths.csv"
    table.write_text(f"image file path,image_path\n{p8},a.png\n{p38},b.png\n")
    assert convert(source, image_path_map=table)["image_path"].tolist() == ["a.png", "b.png"]
    with pytest.raises(AdapterError, match=r"image_path_map has no entry") as info:
        convert([source], image_path_map={p8: "png/P_00008_L_MLO.png"})
    assert info.value.file == str(source)
    assert info.value.row == 2
    assert info.value.column == "image file path"


def test_kaggle_jpeg_path_map_uses_the_full_mammogram_series(cbis: Path, tmp_path: Path) -> None:
    info = tmp_path / "dicom_info.csv"
    series = "1.3.6.1.4.1.9590.100.1.2.38LCCc"
    other = "1.3.6.1.4.1.9590.100.1.2.08LMLOc"
    info.write_text(
        "file_path,image_path,PatientID,SeriesDescription,SeriesInstanceUID\n"
        f"CBIS-DDSM/dicom/a.dcm,CBIS-DDSM/jpeg/{series}/1-249.jpg,Calc-Test_P_00038_LEFT_CC,"
        f"full mammogram images,{series}\n"
        f"CBIS-DDSM/dicom/c.dcm,CBIS-DDSM/jpeg/{other}/1-3.jpg,Calc-Test_P_00008_LEFT_MLO,"
        f"full mammogram images,{other}\n"
        "CBIS-DDSM/dicom/b.dcm,CBIS-DDSM/jpeg/1.3.6.1.4.1.9590.100.1.2.8/2-1.jpg,"
        "Calc-Test_P_00038_LEFT_CC_1,cropped images,1.3.6.1.4.1.9590.100.1.2.8\n"
    )
    mapper = kaggle_jpeg_path_map(info)

    df = convert(cbis / "calc_case_description_test_set.csv", image_path_map=mapper)

    assert df["image_path"].tolist() == [f"jpeg/{other}/1-3.jpg", f"jpeg/{series}/1-249.jpg"]
    with pytest.raises(KeyError):
        mapper(_path("Calc-Test_P_00038_LEFT_CC_1", "8", "8"))


def test_unknown_pathology_names_file_row_and_column(cbis: Path) -> None:
    path = cbis / "mass_case_description_train_set.csv"
    lines = path.read_text().split("\n")
    lines[3] = lines[3].replace("MALIGNANT", "MALIGNANT?")
    path.write_text("\n".join(lines))

    with pytest.raises(AdapterError) as info:
        convert(cbis)
    message = str(info.value)
    assert message.startswith(f"{path}, row 2, column 'pathology'")
    assert "'MALIGNANT?'" in message and "BENIGN_WITHOUT_CALLBACK" in message


def test_missing_column_and_bad_option_are_errors(cbis: Path) -> None:
    path = cbis / "calc_case_description_train_set.csv"
    path.write_text(path.read_text().replace("image view", "view", 1))
    with pytest.raises(AdapterError, match=r"column 'image view': missing column"):
        convert(path)
    with pytest.raises(AdapterError, match=r"benign_without_callback"):
        convert(cbis, benign_without_callback="maybe")

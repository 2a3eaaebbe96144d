"""The adapter registry: dispatch by name, validation split, manifest files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mammo_models.data.adapters import (
    ADAPTERS,
    REQUIRED_COLUMNS,
    AdapterError,
    BiradsProxy,
    MetadataNotFoundError,
    convert,
    write_manifest,
)
from mammo_models.data.errors import DataConfigError, MammoDataError
from mammo_models.data.manifest import validate_manifest

VINDR_HEADER = (
    "study_id,series_id,image_id,laterality,view_position,height,width,breast_birads,"
    "breast_density,split"
)


@pytest.fixture
def vindr(tmp_path: Path) -> Path:
    rows = [VINDR_HEADER]
    for s in range(20):
        split = "test" if s >= 16 else "training"
        for side in "LR":
            for view in ("CC", "MLO"):
                birads = 4 if (s % 5 == 0 and side == "L") else 1
                rows.append(
                    f"study{s:02d},ser{s},img{s}{side}{view},{side},{view},10,8,"
                    f"BI-RADS {birads},DENSITY B,{split}"
                )
    (tmp_path / "breast-level_annotations.csv").write_text("\n".join(rows) + "\n")
    return tmp_path


def test_registry_names() -> None:
    assert sorted(ADAPTERS) == [
        "cbis-ddsm",
        "cdd-cesm",
        "cmmd",
        "inbreast",
        "rsna-2023",
        "vindr-mammo",
    ]


def test_convert_dispatches_and_passes_options(vindr: Path) -> None:
    df = convert("vindr-mammo", vindr, proxy=BiradsProxy(malignant=frozenset({"5"})))

    assert len(df) == 80
    assert set(df["dataset"]) == {"vindr-mammo"}
    assert int(df["malignant"].sum()) == 0  # no BI-RADS 5 under this proxy


def test_val_fraction_moves_whole_training_patients(vindr: Path) -> None:
    df = convert("vindr-mammo", vindr, val_fraction=0.25, seed=3)
    validate_manifest(df)  # the manifest module accepts the rows as they are
    again = convert("vindr-mammo", vindr, val_fraction=0.25, seed=3)

    per_patient = df.groupby("patient_id")["split"].nunique()
    assert (per_patient == 1).all()
    assert df.groupby("split")["patient_id"].nunique().to_dict() == {
        "test": 4,
        "train": 12,
        "val": 4,
    }
    assert set(df.loc[df["split"] == "test", "patient_id"]) == {f"study{s}" for s in range(16, 20)}
    pd.testing.assert_frame_equal(df, again)
    assert "moved to 'val' (seed 3)" in df.attrs["notes"][-1]


def test_val_fraction_needs_an_official_split(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text(
        "site_id,patient_id,image_id,laterality,view,age,cancer,biopsy,invasive,BIRADS,implant,"
        "density,machine_id,difficult_negative_case\n"
        "2,10006,462822612,L,CC,61.0,0,0,0,,0,,29,False\n"
    )
    with pytest.raises(DataConfigError, match=r"publishes none"):
        convert("rsna-2023", tmp_path, val_fraction=0.2)
    with pytest.raises(DataConfigError, match=r"val_fraction must be in \[0, 1\)"):
        convert("rsna-2023", tmp_path, val_fraction=1.5)


def test_unknown_name_option_and_missing_source(vindr: Path, tmp_path: Path) -> None:
    with pytest.raises(AdapterError, match=r"unknown dataset 'ddsm'; expected one of") as info:
        convert("ddsm", vindr)
    assert isinstance(info.value, MammoDataError)
    with pytest.raises(AdapterError, match=r"unexpected keyword argument 'image_path_map'"):
        convert("vindr-mammo", vindr, image_path_map={})
    with pytest.raises(MetadataNotFoundError, match=r"x: metadata file not found"):
        convert("vindr-mammo", tmp_path / "x")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"expected one of \['train.csv'\]"):
        convert("rsna-2023", tmp_path / "empty")


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_write_manifest_round_trip(vindr: Path, tmp_path: Path, suffix: str) -> None:
    df = convert("vindr-mammo", vindr)
    path = tmp_path / "out" / f"manifest{suffix}"

    assert write_manifest(df, path) == path
    back = pd.read_csv(path, dtype=str) if suffix == ".csv" else pd.read_parquet(path)

    assert list(back.columns) == list(df.columns)
    assert list(back.columns[: len(REQUIRED_COLUMNS)]) == list(REQUIRED_COLUMNS)
    assert back["image_path"].tolist() == df["image_path"].tolist()
    assert back["malignant"].astype(int).tolist() == df["malignant"].tolist()
    with pytest.raises(FileExistsError, match=r"overwrite=True"):
        write_manifest(df, path)
    write_manifest(df.head(3), path, overwrite=True)
    assert len(pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)) == 3


def test_write_manifest_rejects_unknown_suffix(vindr: Path, tmp_path: Path) -> None:
    with pytest.raises(
        DataConfigError, match=r"expected a suffix in \['.csv', '.parquet', '.pq'\]"
    ):
        write_manifest(convert("vindr-mammo", vindr), tmp_path / "manifest.xlsx")


def test_birads_proxy_rejects_overlapping_or_unknown_categories() -> None:
    with pytest.raises(ValueError, match=r"\['3'\] are both malignant and benign"):
        BiradsProxy(malignant=frozenset({"3", "4"}), benign=frozenset({"3"}))
    with pytest.raises(ValueError, match=r"BiradsProxy.benign: unknown categories \['7'\]"):
        BiradsProxy(benign=frozenset({"7"}))

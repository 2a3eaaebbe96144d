"""CBIS-DDSM: the four case-description CSVs -> one manifest row per mammogram.

Source layout (TCIA collection CBIS-DDSM, Lee et al. 2017, *Sci. Data* 4:170177; the same files
are under ``csv/`` in the Kaggle JPEG re-export ``awsaf49/cbis-ddsm-breast-cancer-image-dataset``):
``mass_case_description_{train,test}_set.csv`` and ``calc_case_description_{train,test}_set.csv``,
one row per *abnormality*, with columns::

    patient_id, breast_density (mass) | breast density (calc), left or right breast, image view,
    abnormality id, abnormality type, <mass shape, mass margins | calc type, calc distribution>,
    assessment, pathology, subtlety, image file path, cropped image file path,
    ROI mask file path

``patient_id`` is ``P_00001``; ``left or right breast`` is ``LEFT``/``RIGHT``; ``image view`` is
``CC``/``MLO``; ``pathology`` is ``MALIGNANT``, ``BENIGN`` or ``BENIGN_WITHOUT_CALLBACK``;
``image file path`` is ``Mass-Training_P_00001_LEFT_CC/<StudyInstanceUID>/<SeriesInstanceUID>/
000000.dcm`` (``Mass-Test_...``, ``Calc-Training_...``, ``Calc-Test_...``).

What the adapter does:

* **Labels per breast.** Pathology is given per abnormality; a breast (patient, laterality) is
  ``malignant`` if any of its abnormalities (mass or calcification, either view) is
  ``MALIGNANT`` and ``benign`` if any is ``BENIGN``. ``BENIGN_WITHOUT_CALLBACK`` marks a finding
  read as benign that did not need a recall, so it was not biopsied; by default it counts as
  benign (the dataset lists it under pathology and the lesion is benign), and with
  ``benign_without_callback="negative"`` it counts as neither. The flag column
  ``benign_without_callback`` records which breasts had one. All rows get
  ``label_source="pathology"``.
* **No normal breasts.** CBIS-DDSM only contains breasts with at least one annotated abnormality;
  there is no image of a breast without a finding. Unless ``BENIGN_WITHOUT_CALLBACK`` is mapped to
  ``"negative"``, every breast has a positive label, and the paper's sampling of "breasts without
  a finding" must come from elsewhere. ``df.attrs["notes"]`` says so.
* **One row per image.** A mammogram with both a mass and a calcification appears in both the
  Mass and the Calc collection (two DICOM series of the same film). We keep one row per
  (patient, laterality, view), preferring the Mass series, and list the other paths in
  ``other_image_paths``.
* **Split by patient.** The case folder (``Mass-Training_...``/``Mass-Test_...``) embeds the
  official split. The mass and calc splits were drawn separately, so a few patients occur in a
  training file and a test file; such a patient goes wholly to ``test`` so that the official
  test abnormalities all stay in ``test`` and no patient is in two splits.
* **One exam per patient.** A DDSM case is one screening exam, so ``exam_id = patient_id``.

Image paths: by default ``image_path`` is ``image file path`` as given (relative to the folder
that holds the ``Mass-Training_...`` case folders). Other layouts are reached with
``image_path_map``: a function of the given path, a mapping ``{given path: new path}``, or a CSV
with columns ``image file path`` and ``image_path``. :func:`kaggle_jpeg_path_map` builds the map
for the Kaggle JPEG re-export from its ``csv/dicom_info.csv`` (images under ``jpeg/<UID>/``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from ._common import (
    VIEW_CODES,
    AdapterError,
    MetadataTable,
    as_path,
    finalize,
    find_file,
    read_table,
)

DATASET = "cbis-ddsm"
FILE_NAMES: tuple[str, ...] = (
    "mass_case_description_train_set.csv",
    "mass_case_description_test_set.csv",
    "calc_case_description_train_set.csv",
    "calc_case_description_test_set.csv",
)
PATHOLOGIES: dict[str, str] = {
    "MALIGNANT": "MALIGNANT",
    "BENIGN": "BENIGN",
    "BENIGN_WITHOUT_CALLBACK": "BENIGN_WITHOUT_CALLBACK",
}
ABNORMALITY_TYPES: dict[str, str] = {"mass": "mass", "calcification": "calcification"}
LATERALITY: dict[str, str] = {"LEFT": "L", "RIGHT": "R"}
BENIGN_WITHOUT_CALLBACK_POLICIES: tuple[str, ...] = ("benign", "negative")

PathMap = Callable[[str], str] | Mapping[str, str] | str | os.PathLike[str]

_CASE_FOLDER = re.compile(r"^(Mass|Calc)-(Training|Test)_(P_\d+)_(LEFT|RIGHT)_(CC|MLO)$")
_IMAGE_FILE_PATH = "image file path"


def _source_files(source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Path]:
    if isinstance(source, (str, os.PathLike)):
        path = as_path(source)
        if path.is_file():
            return [path]
        found = []
        for name in FILE_NAMES:
            for candidate in (path / name, path / "csv" / name):
                if candidate.is_file():
                    found.append(candidate)
                    break
        if not found:
            find_file(path, FILE_NAMES, what="CBIS-DDSM case description CSV")  # raises
        return found
    files = [as_path(s) for s in source]
    if not files:
        raise AdapterError("no CBIS-DDSM case description files given", column="source")
    return files


def _split_of(table: MetadataTable, index: int, given_path: str) -> tuple[str, str | None]:
    """(split, abnormality set) from the case folder, else from the file name."""
    folder = given_path.split("/", 1)[0]
    match = _CASE_FOLDER.match(folder)
    if match is not None:
        return ("train" if match.group(2) == "Training" else "test"), match.group(1)
    name = table.path.name.lower()
    if "train" in name:
        return "train", None
    if "test" in name:
        return "test", None
    raise table.error(
        index,
        _IMAGE_FILE_PATH,
        f"cannot tell the official split: the path {given_path!r} does not start with a case "
        "folder such as 'Mass-Training_P_00001_LEFT_CC' and the file name contains neither "
        "'train' nor 'test'",
    )


def _read_abnormalities(path: Path, order: int) -> pd.DataFrame:
    """One row per abnormality of one description CSV, parsed and checked."""
    table = read_table(path)
    table.require(
        [
            "patient_id",
            "left or right breast",
            "image view",
            "abnormality id",
            "abnormality type",
            "assessment",
            "pathology",
            _IMAGE_FILE_PATH,
        ]
    )
    density_column = table.pick("breast_density", "breast density")
    frame = table.frame
    for column in ("patient_id", _IMAGE_FILE_PATH):
        table.require_nonempty(column)
    laterality = table.map_values("left or right breast", LATERALITY)
    view = table.map_values("image view", VIEW_CODES)
    pathology = table.map_values("pathology", PATHOLOGIES)
    kind = table.map_values("abnormality type", ABNORMALITY_TYPES)
    assessment = pd.to_numeric(frame["assessment"], errors="coerce")
    bad = assessment.isna() | ~assessment.isin(range(0, 6))
    if bool(bad.any()):
        index = int(bad.to_numpy().nonzero()[0][0])
        raise table.error(
            index,
            "assessment",
            f"expected a BI-RADS assessment 0-5; got {frame.at[index, 'assessment']!r}",
        )
    density = pd.to_numeric(frame[density_column], errors="coerce")
    rows = []
    for i in range(len(frame)):
        given = frame.at[i, _IMAGE_FILE_PATH].replace("\\", "/")
        split, collection = _split_of(table, i, given)
        folder = _CASE_FOLDER.match(given.split("/", 1)[0])
        if folder is not None:
            checks = {
                "patient_id": (folder.group(3), frame.at[i, "patient_id"]),
                "left or right breast": (LATERALITY[folder.group(4)], laterality.iat[i]),
                "image view": (folder.group(5), view.iat[i]),
            }
            for column, (in_path, in_column) in checks.items():
                if in_path != in_column:
                    raise table.error(
                        i,
                        column,
                        f"disagrees with the image path {given!r} ({in_column!r} vs "
                        f"{in_path!r}); the row is inconsistent",
                    )
        rows.append(
            {
                "patient_id": frame.at[i, "patient_id"],
                "laterality": laterality.iat[i],
                "view": view.iat[i],
                "pathology": pathology.iat[i],
                "abnormality_type": kind.iat[i],
                "assessment": int(assessment.iat[i]),
                "density": density.iat[i],
                "given_path": given,
                "split": split,
                # Mass series first: it is the row kept when a film is in both collections.
                "preference": (0 if (collection or kind.iat[i]) in ("Mass", "mass") else 1, order),
                "file": str(path),
                "row": table.row_number(i),
            }
        )
    return pd.DataFrame(rows)


def _load_path_map(image_path_map: PathMap | None) -> Callable[[str], str] | None:
    if image_path_map is None or callable(image_path_map):
        return image_path_map
    if isinstance(image_path_map, Mapping):
        mapping = {str(k).strip(): str(v) for k, v in image_path_map.items()}
        return mapping.__getitem__
    table = read_table(image_path_map)
    table.require([_IMAGE_FILE_PATH, "image_path"])
    mapping = dict(zip(table.frame[_IMAGE_FILE_PATH], table.frame["image_path"], strict=True))
    return mapping.__getitem__


def kaggle_jpeg_path_map(
    dicom_info_csv: str | os.PathLike[str], *, strip_prefix: str = "CBIS-DDSM/"
) -> Callable[[str], str]:
    """Map CBIS DICOM paths to the Kaggle JPEG re-export through its ``csv/dicom_info.csv``.

    The re-export stores each DICOM series as ``CBIS-DDSM/jpeg/<UID>/<n>.jpg`` and lists them in
    ``dicom_info.csv`` (columns ``image_path``, ``SeriesDescription``, ...). The UID folder is one
    of the two UIDs in the CBIS path (``<case>/<study UID>/<series UID>/000000.dcm``); only rows
    with ``SeriesDescription == "full mammogram images"`` are used, so crops and masks of the same
    case are never picked.

    Args:
        dicom_info_csv: the re-export's ``csv/dicom_info.csv``.
        strip_prefix: removed from the front of ``image_path`` so that paths are relative to the
            re-export's root folder (the one holding ``csv/`` and ``jpeg/``).

    Returns:
        A function for ``convert(..., image_path_map=...)``; it raises ``KeyError`` for a path
        whose UIDs are not listed.
    """
    table = read_table(dicom_info_csv)
    table.require(["image_path", "SeriesDescription"])
    frame = table.frame
    full = frame[frame["SeriesDescription"].str.casefold() == "full mammogram images"]
    by_uid: dict[str, str] = {}
    for image_path in full["image_path"]:
        image_path = image_path.replace("\\", "/")
        parts = image_path.split("/")
        if len(parts) < 2:
            continue
        relative = (
            image_path[len(strip_prefix) :] if image_path.startswith(strip_prefix) else image_path
        )
        by_uid[parts[-2]] = relative

    def mapper(given_path: str) -> str:
        for uid in reversed(given_path.split("/")[1:-1]):
            if uid in by_uid:
                return by_uid[uid]
        raise KeyError(given_path)

    return mapper


def convert(
    source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    image_path_map: PathMap | None = None,
    benign_without_callback: str = "benign",
) -> pd.DataFrame:
    """Turn CBIS-DDSM case descriptions into manifest rows (see the module docstring).

    Args:
        source: a directory holding the description CSVs (directly or under ``csv/``), one CSV,
            or a list of them. Any subset of the four files may be given.
        image_path_map: how to turn ``image file path`` into ``image_path``: a function, a
            mapping, or a two-column CSV (``image file path``, ``image_path``). ``None`` keeps
            the DICOM path as given.
        benign_without_callback: ``"benign"`` (default) counts ``BENIGN_WITHOUT_CALLBACK`` as
            benign; ``"negative"`` counts it as neither malignant nor benign.

    Returns:
        Manifest rows with ``split`` (``train``/``test``) and metadata columns ``birads`` (the
        breast's highest assessment), ``density``, ``abnormality_types``,
        ``benign_without_callback`` and ``other_image_paths``.

    Raises:
        AdapterError: a missing column, an unknown value, an inconsistent row, or an image path
            the map does not know; the message names the file, row and column.
    """
    if benign_without_callback not in BENIGN_WITHOUT_CALLBACK_POLICIES:
        raise AdapterError(
            f"expected one of {list(BENIGN_WITHOUT_CALLBACK_POLICIES)}; got "
            f"{benign_without_callback!r}",
            column="benign_without_callback",
        )
    files = _source_files(source)
    rows = pd.concat(
        [_read_abnormalities(path, order) for order, path in enumerate(files)], ignore_index=True
    )
    if rows.empty:
        raise AdapterError("the description files hold no rows", file=files[0])
    benign_set = {"BENIGN"} | (
        {"BENIGN_WITHOUT_CALLBACK"} if benign_without_callback == "benign" else set()
    )
    rows["is_malignant"] = (rows["pathology"] == "MALIGNANT").astype("int64")
    rows["is_benign"] = rows["pathology"].isin(benign_set).astype("int64")
    rows["is_bwc"] = (rows["pathology"] == "BENIGN_WITHOUT_CALLBACK").astype("int64")

    breast = rows.groupby(["patient_id", "laterality"]).agg(
        malignant=("is_malignant", "max"),
        benign=("is_benign", "max"),
        benign_without_callback=("is_bwc", "max"),
        birads=("assessment", "max"),
        abnormality_types=("abnormality_type", lambda s: "+".join(sorted(set(s)))),
    )
    test_patients = set(rows.loc[rows["split"] == "test", "patient_id"])
    moved = sorted(set(rows.loc[rows["split"] == "train", "patient_id"]) & test_patients)

    mapper = _load_path_map(image_path_map)
    images = []
    for (patient, laterality, view), group in rows.groupby(
        ["patient_id", "laterality", "view"], sort=True
    ):
        group = group.sort_values("preference", kind="stable")
        paths = list(dict.fromkeys(group["given_path"]))
        first = group.iloc[0]
        image_path = paths[0]
        if mapper is not None:
            try:
                image_path = mapper(paths[0])
            except KeyError as exc:
                raise AdapterError(
                    f"image_path_map has no entry for {paths[0]!r}",
                    file=first["file"],
                    row=int(first["row"]),
                    column=_IMAGE_FILE_PATH,
                ) from exc
        labels = breast.loc[(patient, laterality)]
        images.append(
            {
                "image_path": str(image_path),
                "patient_id": patient,
                "exam_id": patient,
                "laterality": laterality,
                "view": view,
                "malignant": int(labels["malignant"]),
                "benign": int(labels["benign"]),
                "label_source": "pathology",
                "split": "test" if patient in test_patients else "train",
                "birads": int(labels["birads"]),
                "density": group["density"].max(),
                "abnormality_types": labels["abnormality_types"],
                "benign_without_callback": int(labels["benign_without_callback"]),
                "other_image_paths": ";".join(paths[1:]),
            }
        )
    frame = pd.DataFrame(images)
    frame["density"] = frame["density"].astype("float64")
    no_finding = int(((frame["malignant"] == 0) & (frame["benign"] == 0)).sum())
    notes = [
        "CBIS-DDSM has no normal breasts: every breast carries at least one annotated "
        "abnormality, so breasts without a finding cannot come from this dataset"
        + (
            f" (here {no_finding} images count as without a finding only because "
            "BENIGN_WITHOUT_CALLBACK is mapped to 'negative')."
            if no_finding
            else "."
        ),
        f"Labels aggregated per breast from {len(rows)} abnormality rows in "
        f"{len(files)} file(s); BENIGN_WITHOUT_CALLBACK counted as '{benign_without_callback}'.",
    ]
    if moved:
        notes.append(
            f"{len(moved)} patient(s) appear in both a training and a test file and were put in "
            f"'test' (first: {moved[0]})."
        )
    duplicated = int((frame["other_image_paths"] != "").sum())
    if duplicated:
        notes.append(
            f"{duplicated} image(s) are listed in both the Mass and the Calc collection; one row "
            "was kept per (patient, laterality, view), the other paths are in other_image_paths."
        )
    return finalize(
        frame,
        dataset=DATASET,
        metadata=(
            "birads",
            "density",
            "abnormality_types",
            "benign_without_callback",
            "other_image_paths",
        ),
        notes=notes,
    )

"""CMMD: clinical sheet + DICOM tags -> manifest rows with biopsy labels.

Source layout (TCIA collection CMMD, "The Chinese Mammography Database", Cui et al. 2021;
``CMMD_clinicaldata_revision.xlsx``, often converted to CSV): one row per breast,

    ID1, LeftRight, Age, number, abnormality, classification, subtype

with ``ID1`` the patient (``D1-0001``, ``D2-0001``), ``LeftRight`` ``L``/``R``,
``abnormality`` ``calcification``/``mass``/``both``, ``classification`` ``Benign``/``Malignant``
(biopsy-confirmed, hence ``label_source="pathology"``) and ``subtype`` the molecular subtype of
the D2 malignant cases (``Luminal A``, ``Luminal B``, ``HER2-enriched``, ``triple negative``).

The sheet says nothing about images: the TCIA download holds ``CMMD/<ID1>/<study>/<series>/
1-1.dcm``, ``1-2.dcm``..., and which file is which view is only in the DICOM header. The adapter
reads each header (``pydicom.dcmread(..., stop_before_pixels=True)``): the patient is
``PatientID`` (else the ``D1-0001``-style folder in the path), the side ``ImageLaterality``
(else ``Laterality``), and the view ``ViewPosition`` when filled, else the code meaning of
``ViewCodeSequence`` (``cranio-caudal``, ``medio-lateral oblique``; CMMD headers use the
latter). ``image_path`` is the DICOM path relative to ``image_root``.

Each image gets the labels of its (patient, side) row of the sheet. CMMD has one exam per
patient, so ``exam_id = patient_id``. An image whose breast has no row in the sheet has no known
label and is left out, with a warning and a note in ``df.attrs["notes"]``.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import pandas as pd
import pydicom
from pydicom.errors import InvalidDicomError

from ._common import (
    VIEW_CODES,
    AdapterError,
    MetadataNotFoundError,
    as_path,
    finalize,
    find_file,
    parse_age,
    read_table,
)

DATASET = "cmmd"
FILE_NAMES: tuple[str, ...] = (
    "CMMD_clinicaldata_revision.xlsx",
    "CMMD_clinicaldata_revision.csv",
)
COLUMNS: tuple[str, ...] = ("ID1", "LeftRight", "Age", "abnormality", "classification", "subtype")
LATERALITY: dict[str, str] = {"L": "L", "R": "R"}
CLASSIFICATION: dict[str, tuple[int, int]] = {"Malignant": (1, 0), "Benign": (0, 1)}
_DICOM_TAGS = ("PatientID", "ImageLaterality", "Laterality", "ViewPosition", "ViewCodeSequence")
_PATIENT_FOLDER = re.compile(r"^D\d-\d{4}$")
# ViewCodeSequence code values (SNOMED-RT and SNOMED CT) of the two standard views.
_VIEW_CODE_VALUES = {
    "R-10242": "CC",
    "399162004": "CC",
    "R-10226": "MLO",
    "399368009": "MLO",
}
_VIEW_MEANINGS = {"craniocaudal": "CC", "mediolateraloblique": "MLO"}


def _view_of(ds: pydicom.Dataset, path: Path) -> str:
    position = str(ds.get("ViewPosition", "") or "").strip().upper()
    if position:
        if position not in VIEW_CODES:
            raise AdapterError(
                f"unknown ViewPosition {position!r}; expected CC, MLO or another ACR view code",
                file=path,
                column="ViewPosition",
            )
        return VIEW_CODES[position]
    sequence = ds.get("ViewCodeSequence")
    if sequence:
        item = sequence[0]
        value = str(item.get("CodeValue", "") or "").strip()
        if value in _VIEW_CODE_VALUES:
            return _VIEW_CODE_VALUES[value]
        meaning = re.sub(r"[^a-z]", "", str(item.get("CodeMeaning", "") or "").lower())
        if meaning:
            return _VIEW_MEANINGS.get(meaning, "other")
    raise AdapterError(
        "no view in the header: ViewPosition is empty and ViewCodeSequence is missing",
        file=path,
        column="ViewPosition",
    )


def read_dicom_tags(path: Path, root: Path) -> dict[str, str]:
    """Patient, side and view of one DICOM from its header (pixels are not read).

    Raises:
        AdapterError: the file is not DICOM, or a tag is missing or unknown; names the file
            and tag.
    """
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=list(_DICOM_TAGS))
    except (InvalidDicomError, OSError, ValueError) as exc:
        raise AdapterError(f"cannot read the DICOM header: {exc}", file=path) from exc
    patient = str(ds.get("PatientID", "") or "").strip()
    if not patient:
        folders = [p for p in path.relative_to(root).parts[:-1] if _PATIENT_FOLDER.match(p)]
        if not folders:
            raise AdapterError(
                "no PatientID in the header and no D1-0001-style folder in the path",
                file=path,
                column="PatientID",
            )
        patient = folders[-1]
    side = str(ds.get("ImageLaterality", "") or ds.get("Laterality", "") or "").strip().upper()
    if side not in LATERALITY:
        raise AdapterError(
            f"expected ImageLaterality (or Laterality) 'L' or 'R'; got {side!r}",
            file=path,
            column="ImageLaterality",
        )
    return {
        "image_path": path.relative_to(root).as_posix(),
        "patient_id": patient,
        "laterality": side,
        "view": _view_of(ds, path),
    }


def convert(
    source: str | os.PathLike[str],
    *,
    image_root: str | os.PathLike[str] | None = None,
    sep: str = ",",
    sheet: str | int | None = None,
) -> pd.DataFrame:
    """Turn the CMMD clinical sheet and DICOM headers into manifest rows.

    Args:
        source: a folder holding ``CMMD_clinicaldata_revision.xlsx`` (or ``.csv``) and the
            DICOMs below it, or the sheet itself.
        image_root: the folder searched recursively for ``*.dcm``; ``image_path`` is relative
            to it. Default: the sheet's folder.
        sep: field separator when the sheet is a CSV (some conversions use ``;``).
        sheet: Excel sheet name or index; default the first sheet.

    Returns:
        Manifest rows (no ``split``: CMMD has no official one) with metadata columns ``age``,
        ``abnormality``, ``subtype``.

    Raises:
        AdapterError: a missing column, an unknown value, a breast listed twice, no DICOMs, or
            an unreadable header.
    """
    path = as_path(source)
    if path.is_dir():
        path = find_file(path, FILE_NAMES, what="CMMD clinical sheet")
    root = path.parent if image_root is None else as_path(image_root)
    if not root.is_dir():
        raise MetadataNotFoundError("image_root is not a directory", file=root)
    table = read_table(path, sep=sep, sheet=sheet)
    table.require(COLUMNS)
    table.require_nonempty("ID1")
    frame = table.frame
    laterality = table.map_values("LeftRight", LATERALITY)
    labels = table.map_values("classification", CLASSIFICATION)
    age = parse_age(frame["Age"])
    breasts: dict[tuple[str, str], dict[str, object]] = {}
    for i in range(len(frame)):
        key = (frame.at[i, "ID1"], laterality.iat[i])
        if key in breasts:
            raise table.error(
                i,
                "LeftRight",
                f"breast {key[0]} {key[1]} is listed twice (first in row {breasts[key]['row']})",
            )
        malignant, benign = labels.iat[i]
        breasts[key] = {
            "row": table.row_number(i),
            "malignant": malignant,
            "benign": benign,
            "age": age.iat[i],
            "abnormality": frame.at[i, "abnormality"],
            "subtype": frame.at[i, "subtype"],
        }

    dicoms = sorted(root.rglob("*.dcm"))
    if not dicoms:
        raise AdapterError(
            f"no .dcm file under {root}; CMMD views and sides are only in the DICOM headers, "
            "so the images must be present (pass image_root=<download folder>)",
            column="image_root",
        )
    rows, unlabelled = [], []
    for dicom in dicoms:
        tags = read_dicom_tags(dicom, root)
        breast = breasts.get((tags["patient_id"], tags["laterality"]))
        if breast is None:
            unlabelled.append(tags["image_path"])
            continue
        rows.append(
            {
                **tags,
                "exam_id": tags["patient_id"],
                "malignant": breast["malignant"],
                "benign": breast["benign"],
                "label_source": "pathology",
                "age": breast["age"],
                "abnormality": breast["abnormality"],
                "subtype": breast["subtype"],
            }
        )
    if not rows:
        raise AdapterError(
            f"none of the {len(dicoms)} DICOMs under {root} matches a (ID1, LeftRight) row",
            file=path,
        )
    out = pd.DataFrame(rows)
    imaged = set(zip(out["patient_id"], out["laterality"], strict=True))
    notes = [
        "Labels are biopsy results (classification column); exam_id = patient_id.",
        f"{len(out)} images of {len(imaged)} breasts.",
    ]
    if unlabelled:
        message = (
            f"{len(unlabelled)} DICOM(s) belong to a breast with no row in {path.name} and were "
            f"left out (first: {unlabelled[0]})"
        )
        warnings.warn(message, stacklevel=2)
        notes.append(message + ".")
    missing = sorted(set(breasts) - imaged)
    if missing:
        notes.append(
            f"{len(missing)} breast(s) in the sheet have no DICOM (first: {' '.join(missing[0])})."
        )
    out["age"] = out["age"].astype("float64")
    return finalize(out, dataset=DATASET, metadata=("age", "abnormality", "subtype"), notes=notes)

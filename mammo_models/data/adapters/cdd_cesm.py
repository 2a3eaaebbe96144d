"""CDD-CESM: ``Radiology-manual-annotations.xlsx`` -> manifest rows of the low-energy images.

Source layout (TCIA collection CDD-CESM, Khaled et al. 2022, *Sci. Data* 9:122): the workbook's
``all`` sheet (also distributed as ``Radiology-manual-annotations.csv``) has one row per image
and finding,

    Image_name, Patient_ID, Side, Type, Age, Breast density (ACR), BIRADS, Findings, View, Tags,
    Machine, Pathology Classification/ Follow up

with ``Image_name`` like ``P1_L_DM_MLO`` (low energy) or ``P1_L_CM_MLO`` (subtracted), ``Type``
``DM``/``CESM``, ``Side`` ``L``/``R``, ``View`` ``CC``/``MLO`` and the label ``Normal``,
``Benign`` or ``Malignant``. Some cells carry stray spaces, and an image with several findings
has several rows. Low-energy images are ``Low energy images of CDD-CESM/<Image_name>.jpg``
under the collection folder (``image_path_template`` changes that).

What the adapter does:

* **Low-energy images only** (``Type == "DM"``): they are the contrast-free mammograms the
  models are built for; the subtracted CESM images are dropped.
* **Labels per breast**: malignant if any finding of the breast (either view) is
  ``Malignant``, benign if any is ``Benign``. The dataset confirmed benign and malignant
  findings by biopsy and normal breasts by follow-up, hence ``label_source`` ``"pathology"``
  for breasts with a finding and ``"follow_up"`` for normal ones.
* ``exam_id = patient_id`` (one contrast exam per patient).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ._common import (
    VIEW_CODES,
    AdapterError,
    as_path,
    breast_max,
    finalize,
    find_file,
    parse_age,
    read_table,
    template_fields,
)

DATASET = "cdd-cesm"
FILE_NAMES: tuple[str, ...] = (
    "Radiology-manual-annotations.xlsx",
    "Radiology-manual-annotations.csv",
    "Radiology manual annotations.xlsx",
)
DEFAULT_SHEET = "all"
DEFAULT_TEMPLATE = "Low energy images of CDD-CESM/{image_name}.jpg"
TEMPLATE_FIELDS: tuple[str, ...] = ("image_name", "patient_id")
LABEL_COLUMN = "Pathology Classification/ Follow up"
TYPE: dict[str, str] = {"DM": "DM", "CESM": "CESM"}
LATERALITY: dict[str, str] = {"L": "L", "R": "R"}
PATHOLOGY: dict[str, tuple[int, int]] = {"Normal": (0, 0), "Benign": (0, 1), "Malignant": (1, 0)}
REQUIRED: tuple[str, ...] = ("Image_name", "Patient_ID", "Side", "Type", "View", LABEL_COLUMN)
METADATA_SOURCES: dict[str, str] = {
    "age": "Age",
    "density": "Breast density (ACR)",
    "birads": "BIRADS",
    "findings": "Findings",
}


@dataclass
class _Image:
    """The sheet rows of one image, merged: an image has one row per finding."""

    identity: dict[str, str]  # Patient_ID, Side, View: must agree across the image's rows
    row: int  # first row, for error messages
    malignant: int = 0
    benign: int = 0
    extra: dict[str, list[str]] = field(default_factory=dict)


def _default_sheet(path: os.PathLike[str]) -> str | int | None:
    if str(path).lower().endswith((".xlsx", ".xlsm")):
        with pd.ExcelFile(path) as book:
            names = book.sheet_names
        return DEFAULT_SHEET if DEFAULT_SHEET in names else 0
    return None


def convert(
    source: str | os.PathLike[str],
    *,
    sheet: str | int | None = None,
    image_path_template: str = DEFAULT_TEMPLATE,
) -> pd.DataFrame:
    """Turn the CDD-CESM annotation sheet into manifest rows (see the module docstring).

    Args:
        source: the collection folder (holding the workbook or its CSV) or the file itself.
        sheet: Excel sheet; default ``"all"`` when present, else the first sheet.
        image_path_template: ``image_path`` pattern with fields ``{image_name}`` and
            ``{patient_id}``.

    Returns:
        Manifest rows of the low-energy (``DM``) images, no ``split`` (none is published),
        with metadata columns ``image_name``, ``age``, ``density``, ``birads``, ``findings``
        (multiple findings of one image joined with ``" | "``).

    Raises:
        AdapterError: a missing column, an unknown value, or rows of one image that disagree on
            patient, side or view; the message names the file, row and column.
    """
    template_fields(image_path_template, TEMPLATE_FIELDS, option="image_path_template")
    path = as_path(source)
    if path.is_dir():
        path = find_file(path, FILE_NAMES, what="CDD-CESM annotation sheet")
    table = read_table(path, sheet=_default_sheet(path) if sheet is None else sheet)
    table.require(REQUIRED)
    for column in ("Image_name", "Patient_ID"):
        table.require_nonempty(column)
    frame = table.frame
    kind = table.map_values("Type", TYPE)
    laterality = table.map_values("Side", LATERALITY)
    view = table.map_values("View", VIEW_CODES)
    labels = table.map_values(LABEL_COLUMN, PATHOLOGY)
    keep = np.flatnonzero((kind == "DM").to_numpy())
    if len(keep) == 0:
        raise AdapterError("no low-energy (Type 'DM') row in the sheet", file=path, column="Type")

    images: dict[str, _Image] = {}
    for i in keep:
        name = frame.at[i, "Image_name"]
        identity = {
            "Patient_ID": frame.at[i, "Patient_ID"],
            "Side": laterality.iat[i],
            "View": view.iat[i],
        }
        image = images.setdefault(name, _Image(identity=identity, row=table.row_number(i)))
        for column, value in identity.items():
            if image.identity[column] != value:
                raise table.error(
                    i,
                    column,
                    f"image {name!r} is {image.identity[column]!r} in row {image.row} but "
                    f"{value!r} here; rows of one image must agree",
                )
        malignant, benign = labels.iat[i]
        image.malignant = max(image.malignant, malignant)
        image.benign = max(image.benign, benign)
        for key, column in METADATA_SOURCES.items():
            image.extra.setdefault(key, []).append(frame.at[i, column] if column in frame else "")

    rows = []
    for name, image in images.items():
        patient = image.identity["Patient_ID"]
        rows.append(
            {
                "image_path": image_path_template.format(image_name=name, patient_id=patient),
                "patient_id": patient,
                "exam_id": patient,
                "laterality": image.identity["Side"],
                "view": image.identity["View"],
                "malignant": image.malignant,
                "benign": image.benign,
                "image_name": name,
                "age": image.extra["age"][0],
                # Density is filled on the DM rows only; CESM rows read "_".
                "density": next((d for d in image.extra["density"] if d not in ("", "_")), ""),
                "birads": " | ".join(dict.fromkeys(b for b in image.extra["birads"] if b)),
                "findings": " | ".join(dict.fromkeys(f for f in image.extra["findings"] if f)),
            }
        )
    out = pd.DataFrame(rows)
    out["malignant"] = breast_max(out, "malignant")
    out["benign"] = breast_max(out, "benign")
    out["label_source"] = np.where(
        (out["malignant"] == 1) | (out["benign"] == 1), "pathology", "follow_up"
    )
    out["age"] = parse_age(out["age"])
    dropped = len(frame) - len(keep)
    notes = [
        f"Low-energy (Type 'DM') images only: {dropped} subtracted-image (CESM) row(s) dropped.",
        "Labels per breast; label_source 'pathology' for breasts with a benign or malignant "
        "finding, 'follow_up' for normal breasts; exam_id = patient_id.",
    ]
    return finalize(
        out,
        dataset=DATASET,
        metadata=("image_name", "age", "density", "birads", "findings"),
        notes=notes,
    )

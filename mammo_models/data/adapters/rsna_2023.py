"""RSNA Screening Mammography Breast Cancer Detection (2023): ``train.csv`` -> manifest rows.

Source layout (Kaggle competition ``rsna-breast-cancer-detection``; RSNA/AI-Challenge-Data wiki):
one row per image,

    site_id, patient_id, image_id, laterality, view, age, cancer, biopsy, invasive, BIRADS,
    implant, density, machine_id, difficult_negative_case

with ``laterality`` ``L``/``R``; ``view`` ``CC``, ``MLO`` or the extra views ``AT``, ``LM``,
``ML``, ``LMO``; ``age`` like ``61.0``; ``cancer``, ``biopsy``, ``invasive``, ``implant`` 0/1;
``BIRADS`` 0/1/2 or blank; ``density`` ``A``-``D`` or blank; ``difficult_negative_case``
``True``/``False``. Images are ``train_images/<patient_id>/<image_id>.dcm``. (``test.csv`` has no
labels and is not accepted.)

Labels, decided per breast (patient, laterality):

* ``malignant = cancer`` ("the breast was positive for malignant cancer");
* ``benign = 1`` when the breast was biopsied (``biopsy = 1``) and is not malignant: the biopsy
  found no cancer, the closest this dataset comes to the paper's biopsy-proven benign finding;
* ``label_source = "pathology"`` for biopsied (or malignant) breasts. For the others the data
  description gives no follow-up period, so by default they are ``"unknown"``; pass
  ``negative_label_source="follow_up"`` if you know the negatives were confirmed by follow-up.

Views other than CC and MLO become ``"other"``. The dataset has no exam identifier and
normally holds one screening exam per patient, so ``exam_id = patient_id``. The ``BIRADS``
column is kept as ``birads_rsna`` -- it is *not* a BI-RADS category: 0 means the breast needed
follow-up, 1 negative for cancer, 2 normal.
"""

from __future__ import annotations

import os

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

DATASET = "rsna-2023"
FILE_NAME = "train.csv"
DEFAULT_TEMPLATE = "train_images/{patient_id}/{image_id}.dcm"
TEMPLATE_FIELDS: tuple[str, ...] = ("site_id", "patient_id", "image_id")
NEGATIVE_LABEL_SOURCES: tuple[str, ...] = ("unknown", "follow_up")
REQUIRED: tuple[str, ...] = (
    "site_id",
    "patient_id",
    "image_id",
    "laterality",
    "view",
    "age",
    "cancer",
    "biopsy",
    "invasive",
    "BIRADS",
    "implant",
    "density",
    "machine_id",
    "difficult_negative_case",
)
LATERALITY: dict[str, str] = {"L": "L", "R": "R"}
BIRADS_RSNA: dict[str, float] = {"": np.nan, "0": 0, "1": 1, "2": 2, "0.0": 0, "1.0": 1, "2.0": 2}
DENSITY: dict[str, str] = {"": "", "A": "A", "B": "B", "C": "C", "D": "D"}


def convert(
    source: str | os.PathLike[str],
    *,
    negative_label_source: str = "unknown",
    image_path_template: str = DEFAULT_TEMPLATE,
) -> pd.DataFrame:
    """Turn the competition's ``train.csv`` into manifest rows (see the module docstring).

    Args:
        source: the competition folder (holding ``train.csv``) or the CSV itself.
        negative_label_source: ``label_source`` of breasts that were not biopsied:
            ``"unknown"`` (default) or ``"follow_up"``.
        image_path_template: ``image_path`` pattern with fields ``{site_id}``,
            ``{patient_id}``, ``{image_id}``; change it for PNG re-exports.

    Returns:
        Manifest rows (no ``split``: the labelled data is all training data) with metadata
        columns ``site_id``, ``image_id``, ``age``, ``biopsy``, ``invasive``, ``birads_rsna``,
        ``implant``, ``density``, ``machine_id``, ``difficult_negative_case``.

    Raises:
        AdapterError: a missing column or unknown value, naming the file, row and column.
    """
    if negative_label_source not in NEGATIVE_LABEL_SOURCES:
        raise AdapterError(
            f"expected one of {list(NEGATIVE_LABEL_SOURCES)}; got {negative_label_source!r}",
            column="negative_label_source",
        )
    template_fields(image_path_template, TEMPLATE_FIELDS, option="image_path_template")
    path = as_path(source)
    if path.is_dir():
        path = find_file(path, (FILE_NAME,), what="RSNA 2023 train.csv")
    table = read_table(path)
    table.require(REQUIRED)
    for column in ("patient_id", "image_id"):
        table.require_nonempty(column)
    frame = table.frame
    out = pd.DataFrame(
        {
            "image_path": [
                image_path_template.format(site_id=s, patient_id=p, image_id=i)
                for s, p, i in zip(
                    frame["site_id"], frame["patient_id"], frame["image_id"], strict=True
                )
            ],
            "patient_id": frame["patient_id"],
            "exam_id": frame["patient_id"],
            "laterality": table.map_values("laterality", LATERALITY),
            "view": table.map_values("view", VIEW_CODES),
            "cancer": table.parse_flags("cancer"),
            "biopsy": table.parse_flags("biopsy"),
            "site_id": frame["site_id"],
            "image_id": frame["image_id"],
            "age": parse_age(frame["age"]),
            "invasive": table.parse_flags("invasive"),
            "birads_rsna": table.map_values("BIRADS", BIRADS_RSNA).astype("float64"),
            "implant": table.parse_flags("implant"),
            "density": table.map_values("density", DENSITY),
            "machine_id": frame["machine_id"],
            "difficult_negative_case": table.parse_flags("difficult_negative_case"),
        }
    )
    out["malignant"] = breast_max(out, "cancer")
    biopsied = breast_max(out, "biopsy")
    out["benign"] = ((biopsied == 1) & (out["malignant"] == 0)).astype("int64")
    out["label_source"] = np.where(
        (biopsied == 1) | (out["malignant"] == 1), "pathology", negative_label_source
    )
    mixed = int((out.groupby(["patient_id", "laterality"])["cancer"].nunique() > 1).sum())
    notes = [
        "malignant = cancer; benign = biopsied and not cancer; label_source 'pathology' for "
        f"biopsied breasts, '{negative_label_source}' for the rest; exam_id = patient_id.",
        f"{int(out['view'].eq('other').sum())} image(s) in views other than CC/MLO "
        "(AT, LM, ML, LMO) have view 'other'.",
    ]
    if mixed:
        notes.append(
            f"{mixed} breast(s) had images with different 'cancer' values; the breast label is "
            "their maximum."
        )
    return finalize(
        out,
        dataset=DATASET,
        metadata=(
            "site_id",
            "image_id",
            "age",
            "biopsy",
            "invasive",
            "birads_rsna",
            "implant",
            "density",
            "machine_id",
            "difficult_negative_case",
        ),
        notes=notes,
    )

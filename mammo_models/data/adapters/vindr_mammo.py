"""VinDr-Mammo: ``breast-level_annotations.csv`` -> manifest rows with BI-RADS proxy labels.

Source layout (PhysioNet ``vindr-mammo`` 1.0.0, Nguyen et al. 2023, *Sci. Data* 10:277; read the
same way by the dataset's own GitHub code ``vinbigdata-medical/vindr-mammo``): one row per image,

    study_id, series_id, image_id, laterality, view_position, height, width, breast_birads,
    breast_density, split

with ``laterality`` ``L``/``R``, ``view_position`` ``CC``/``MLO``, ``breast_birads``
``"BI-RADS 1"`` .. ``"BI-RADS 5"`` (assessed per breast), ``breast_density`` ``"DENSITY A"`` ..
``"DENSITY D"`` and ``split`` ``"training"``/``"test"``. Images are
``images/<study_id>/<image_id>.dicom`` under the dataset root.

What the adapter does:

* **Labels are BI-RADS proxies**, flagged ``label_source="birads_proxy"``: VinDr-Mammo publishes
  no pathology. By default BI-RADS 4-5 -> malignant, 3 -> benign, 1-2 -> neither (see
  :class:`~mammo_models.data.adapters._common.BiradsProxy` for the reasoning; pass another
  ``proxy`` to change it). The rule is applied to the breast's most suspicious category.
* **Patients are studies.** The public files carry no patient identifier; each study is one
  exam of one woman, so ``patient_id = exam_id = study_id``. If a woman had two studies they
  would count as two patients; the dataset gives no way to tell.
* **Split** ``training`` -> ``train``, ``test`` -> ``test`` (the official split is by study).
"""

from __future__ import annotations

import os

import pandas as pd

from ._common import (
    VIEW_CODES,
    BiradsProxy,
    as_path,
    finalize,
    find_file,
    normalize_birads,
    read_table,
    template_fields,
)

DATASET = "vindr-mammo"
FILE_NAME = "breast-level_annotations.csv"
DEFAULT_TEMPLATE = "images/{study_id}/{image_id}.dicom"
TEMPLATE_FIELDS: tuple[str, ...] = ("study_id", "series_id", "image_id")
LATERALITY: dict[str, str] = {"L": "L", "R": "R"}
SPLIT: dict[str, str] = {"training": "train", "test": "test"}
BIRADS: dict[str, str] = {f"BI-RADS {c}": c for c in ("0", "1", "2", "3", "4", "5", "6")}
DENSITY: dict[str, str] = {"": "", **{f"DENSITY {d}": d for d in "ABCD"}}


def convert(
    source: str | os.PathLike[str],
    *,
    proxy: BiradsProxy | None = None,
    image_path_template: str = DEFAULT_TEMPLATE,
) -> pd.DataFrame:
    """Turn ``breast-level_annotations.csv`` into manifest rows (see the module docstring).

    Args:
        source: the dataset root (holding the CSV, directly or one level below) or the CSV.
        proxy: the BI-RADS -> label rule; default :class:`BiradsProxy()`.
        image_path_template: ``image_path`` pattern with fields ``{study_id}``, ``{series_id}``,
            ``{image_id}``; change it for PNG re-exports, e.g. ``"png/{image_id}.png"``.

    Returns:
        Manifest rows with ``split`` and metadata columns ``birads`` (the image's category,
        ``"1"``..``"5"``), ``density`` (``A``..``D``), ``image_id``, ``height``, ``width``.

    Raises:
        AdapterError: missing column or unknown value, naming the file, row and column.
    """
    proxy = BiradsProxy() if proxy is None else proxy
    template_fields(image_path_template, TEMPLATE_FIELDS, option="image_path_template")
    path = as_path(source)
    if path.is_dir():
        path = find_file(path, (FILE_NAME,), what="VinDr-Mammo breast-level annotations")
    table = read_table(path)
    table.require(
        [
            "study_id",
            "series_id",
            "image_id",
            "laterality",
            "view_position",
            "height",
            "width",
            "breast_birads",
            "breast_density",
            "split",
        ]
    )
    for column in ("study_id", "image_id"):
        table.require_nonempty(column)
    frame = table.frame
    birads = table.map_values("breast_birads", BIRADS).map(normalize_birads)
    out = pd.DataFrame(
        {
            "image_path": [
                image_path_template.format(study_id=s, series_id=r, image_id=i)
                for s, r, i in zip(
                    frame["study_id"], frame["series_id"], frame["image_id"], strict=True
                )
            ],
            "patient_id": frame["study_id"],
            "exam_id": frame["study_id"],
            "laterality": table.map_values("laterality", LATERALITY),
            "view": table.map_values("view_position", VIEW_CODES),
            "split": table.map_values("split", SPLIT),
            "birads": birads,
            "density": table.map_values("breast_density", DENSITY),
            "image_id": frame["image_id"],
            "height": pd.to_numeric(frame["height"], errors="coerce").astype("Int64"),
            "width": pd.to_numeric(frame["width"], errors="coerce").astype("Int64"),
        }
    )
    out = proxy.apply(out, "birads")
    counts = out.groupby(["malignant", "benign"]).size().to_dict()
    notes = [
        "Labels are BI-RADS proxies (label_source='birads_proxy'), not pathology: malignant = "
        f"BI-RADS {sorted(proxy.malignant)}, benign = BI-RADS {sorted(proxy.benign)}, applied to "
        "each breast's most suspicious category.",
        "VinDr-Mammo publishes no patient identifier: patient_id = exam_id = study_id.",
        f"Images by (malignant, benign): {counts}.",
    ]
    return finalize(
        out,
        dataset=DATASET,
        metadata=("birads", "density", "image_id", "height", "width"),
        notes=notes,
    )

"""Validation rules across rows: one row per image, labels per breast, one split per patient.

These rules compare rows with the first row of their image, breast or patient and name that row
in the message. They read the values the single-cell rules normalised (laterality upper-case,
labels as 0/1, splits lower-case), so they run after them, and they skip rows whose own cells
were already reported invalid rather than report the same fault twice.
"""

from __future__ import annotations

from ..errors import ManifestProblem
from .cells import Cells, _breast_name
from .schema import LATERALITIES, SPLITS


def check_duplicate_paths(cells: Cells) -> list[ManifestProblem]:
    """An image path may be listed once; later rows naming it are reported."""
    problems = []
    first_row: dict[str, int] = {}
    for r, path in zip(cells.rows, cells.text["image_path"], strict=True):
        if path in first_row:
            problems.append(
                ManifestProblem(
                    r,
                    f"image_path {path!r} is already listed on row {first_row[path]}; one row per image",
                    "image_path",
                )
            )
        elif path:
            first_row[path] = r
    return problems


def check_breast_labels(cells: Cells) -> list[ManifestProblem]:
    """Every image of a (patient, exam, laterality) must carry the breast's labels of its first row.

    Needs ``cells.labels`` (from :func:`.rules.check_labels`).
    """
    problems = []
    text, labels = cells.text, cells.labels
    label_first: dict[tuple[str, str, str], tuple[int, int, int]] = {}
    for i, r in enumerate(cells.rows):
        key = (text["patient_id"][i], text["exam_id"][i], text["laterality"][i])
        m, b = labels["malignant"][i], labels["benign"][i]
        if not all(key) or key[2] not in LATERALITIES or m is None or b is None:
            continue
        if key not in label_first:
            label_first[key] = (r, m, b)
            continue
        r0, m0, b0 = label_first[key]
        for name, v, v0 in (("malignant", m, m0), ("benign", b, b0)):
            if v != v0:
                problems.append(
                    ManifestProblem(
                        r,
                        f"{name}={v} conflicts with row {r0} ({name}={v0}) of the same breast "
                        f"({_breast_name(*key)}); labels are per breast",
                        name,
                    )
                )
    return problems


def check_patient_splits(cells: Cells) -> list[ManifestProblem]:
    """A patient's rows must all be in one split (when the manifest has splits)."""
    if "split" not in cells.text or not any(cells.text["split"]):
        return []
    problems = []
    split_first: dict[str, tuple[int, str]] = {}
    for r, patient, s in zip(
        cells.rows, cells.text["patient_id"], cells.text["split"], strict=True
    ):
        if not patient or s not in SPLITS:
            continue
        if patient not in split_first:
            split_first[patient] = (r, s)
        elif split_first[patient][1] != s:
            r0, s0 = split_first[patient]
            problems.append(
                ManifestProblem(
                    r,
                    f"patient {patient!r} is in split {s!r} here but in {s0!r} on row {r0}; "
                    "a patient must be in one split",
                    "split",
                )
            )
    return problems

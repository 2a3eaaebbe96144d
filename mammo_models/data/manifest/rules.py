"""Validation rules on the columns and on single cells: one function per rule.

Every rule takes the :class:`~.cells.Cells` under validation and returns its problems in row
order; a rule that owns a column also writes that column's normalised values back into the cells
(labels as 0/1, ``label_source`` and ``split`` lower-case, ``pixel_scale`` as floats), because
the rules after it and the validated table need those values. :func:`.validate.validate_manifest`
runs them in a fixed order, which is the order of the problems in the error.
"""

from __future__ import annotations

import math

import pandas as pd

from ..errors import ManifestProblem
from .cells import Cells, _binary, _text
from .schema import LABEL_SOURCES, REQUIRED_COLUMNS, SPLITS


def check_required_columns(columns: pd.Index) -> list[ManifestProblem]:
    """One problem naming every missing required column (rows cannot be checked without them)."""
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if not missing:
        return []
    return [
        ManifestProblem(
            None,
            f"missing required column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)}; a manifest needs {', '.join(REQUIRED_COLUMNS)} "
            f"(found: {', '.join(map(str, columns)) or 'no columns'})",
        )
    ]


def check_reserved_columns(columns: pd.Index) -> list[ManifestProblem]:
    """A column named ``row`` would clash with the validated table's data-row index."""
    if "row" not in columns:
        return []
    return [
        ManifestProblem(
            None,
            "column 'row' is reserved (it becomes the data-row index of the validated "
            "table); rename it",
            "row",
        )
    ]


def check_identifiers(cells: Cells) -> list[ManifestProblem]:
    """Dataset, image path, patient and exam must be non-empty (column by column, then by row)."""
    return [
        ManifestProblem(r, f"empty {c}", c)
        for c in ("dataset", "image_path", "patient_id", "exam_id")
        for r, v in zip(cells.rows, cells.text[c], strict=True)
        if not v
    ]


def check_labels(cells: Cells) -> list[ManifestProblem]:
    """``malignant`` and ``benign`` must be 0 or 1; sets ``cells.labels`` (None where not)."""
    problems = []
    for c in ("malignant", "benign"):
        raw = cells.frame[c].tolist()
        cells.labels[c] = [_binary(v) for v in raw]
        for r, value, parsed in zip(cells.rows, raw, cells.labels[c], strict=True):
            if parsed is None:
                problems.append(ManifestProblem(r, f"{c} must be 0 or 1, got {value!r}", c))
    return problems


def check_label_sources(cells: Cells) -> list[ManifestProblem]:
    """``label_source`` must be one of :data:`LABEL_SOURCES` (any case); stored lower-case."""
    problems = []
    sources = [s.lower() for s in cells.text["label_source"]]
    for r, raw, s in zip(cells.rows, cells.text["label_source"], sources, strict=True):
        if s not in LABEL_SOURCES:
            problems.append(
                ManifestProblem(
                    r,
                    f"unknown label_source {raw!r}; expected one of {', '.join(LABEL_SOURCES)}",
                    "label_source",
                )
            )
    cells.text["label_source"] = sources
    return problems


def check_pixel_scales(cells: Cells) -> list[ManifestProblem]:
    """``pixel_scale``, when the column exists, must be positive and finite (empty means 1.0)."""
    if "pixel_scale" not in cells.frame.columns:
        return []
    problems = []
    scales = []
    for r, raw in zip(cells.rows, cells.frame["pixel_scale"].tolist(), strict=True):
        text = _text([raw])[0]
        try:
            value = float(text) if text else 1.0
        except ValueError:
            value = float("nan")
        if not (math.isfinite(value) and value > 0):
            problems.append(
                ManifestProblem(
                    r, f"pixel_scale must be a positive number, got {raw!r}", "pixel_scale"
                )
            )
        scales.append(value)
    cells.scales = scales
    return problems


def check_splits(cells: Cells) -> list[ManifestProblem]:
    """``split``, when filled anywhere, must be train/val/test on every row; stored lower-case."""
    if "split" not in cells.text:
        return []
    problems = []
    splits = [s.lower() for s in cells.text["split"]]
    if any(splits):
        for r, raw, s in zip(cells.rows, cells.text["split"], splits, strict=True):
            if not s:
                problems.append(
                    ManifestProblem(
                        r,
                        "empty split while other rows have one; fill it or leave the whole column empty",
                        "split",
                    )
                )
            elif s not in SPLITS:
                problems.append(
                    ManifestProblem(
                        r, f"unknown split {raw!r}; expected train, val or test", "split"
                    )
                )
    cells.text["split"] = splits
    return problems

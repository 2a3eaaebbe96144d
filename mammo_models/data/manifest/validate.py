"""Validation of a whole manifest: every rule in turn, then every problem raised at once.

Reporting all problems together (rather than stopping at the first) lets a user fix a manifest
in one pass; the rules run in a fixed order so that the same manifest always gives the same
message.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import DEFAULT_MAX_LISTED, ManifestError, ManifestProblem
from .cells import Cells
from .consistency import check_breast_labels, check_duplicate_paths, check_patient_splits
from .files import check_files as check_files_exist
from .laterality_view import check_lateralities_and_views
from .rules import (
    check_identifiers,
    check_label_sources,
    check_labels,
    check_pixel_scales,
    check_required_columns,
    check_reserved_columns,
    check_splits,
)
from .schema import OPTIONAL_COLUMNS, REQUIRED_COLUMNS, PathLike


def validate_manifest(
    df: pd.DataFrame,
    data_root: PathLike | None = None,
    *,
    source: str | PathLike | None = None,
    check_files: bool = True,
    check_images: bool = False,
    max_listed: int = DEFAULT_MAX_LISTED,
) -> pd.DataFrame:
    """Check a manifest and return a normalised copy, or raise every problem at once.

    Args:
        df: one row per image (from :func:`read_manifest` or an adapter). Row numbers in messages
            are positions + 1, whatever the frame's index.
        data_root: directory the paths are relative to. ``None`` skips every file check (and
            DICOM header look-ups).
        source: the manifest's name for messages (the file path when read from disk).
        check_files: check that every image and heatmap file exists (needs ``data_root``).
        check_images: also decode every image and heatmap (slow: reads all pixel data).
        max_listed: problems listed in the error message; all are in ``error.problems``.

    Returns:
        A new DataFrame indexed by the 1-based data row (index name ``row``) with the required
        columns as stripped strings (``laterality`` upper-case, ``view`` one of :data:`VIEWS`,
        ``label_source`` and ``split`` lower-case), ``malignant``/``benign`` as int64,
        ``pixel_scale`` as float64 when present, heatmap paths as strings (``""`` when absent),
        and every other column unchanged.

    Raises:
        ManifestError: listing every problem found, by row.
    """
    missing = check_required_columns(df.columns)
    if missing:  # reported alone: the rows cannot be checked without the column
        raise ManifestError(missing, source, max_listed=max_listed)
    problems: list[ManifestProblem] = check_reserved_columns(df.columns)
    cells = Cells.of(df)
    problems += check_identifiers(cells)
    problems += check_labels(cells)
    problems += check_label_sources(cells)
    problems += check_lateralities_and_views(cells, data_root)
    problems += check_pixel_scales(cells)
    problems += check_splits(cells)
    problems += check_duplicate_paths(cells)
    if data_root is not None and check_files:
        problems += check_files_exist(cells, data_root, check_images=check_images)
    problems += check_breast_labels(cells)
    problems += check_patient_splits(cells)
    if problems:
        raise ManifestError(problems, source, max_listed=max_listed)
    return _validated_table(cells)


def _validated_table(cells: Cells) -> pd.DataFrame:
    """The normalised columns in manifest order (required, optional, then the others as given)."""
    out = pd.DataFrame(index=pd.Index(cells.rows, name="row"))
    for c in REQUIRED_COLUMNS:
        if c in ("malignant", "benign"):
            out[c] = np.asarray(cells.labels[c], dtype=np.int64)
        else:
            out[c] = cells.text[c]
    for c in OPTIONAL_COLUMNS:
        if c == "pixel_scale":
            if cells.scales is not None:
                out[c] = np.asarray(cells.scales, dtype=np.float64)
        elif c in cells.text:
            out[c] = cells.text[c]
    for c in cells.frame.columns:
        if c not in out.columns:
            out[c] = cells.frame[c].to_numpy()
    return out

"""The files a manifest names: where they are, the rule that they exist, which cannot be decoded.

Missing files are validation errors (they usually mean a wrong data root); files that exist but
cannot be decoded are errors too with ``check_images``, or are left out and counted with
``skip_bad_images`` (:func:`find_unreadable_images`), so that one corrupt file among thousands
does not stop a run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ManifestProblem
from ..images import read_heatmap, read_image
from .cells import Cells
from .schema import _PATH_COLUMNS, TWO_VIEWS, PathLike

_WHAT = {
    "image_path": "image",
    "heatmap_benign_path": "benign heatmap",
    "heatmap_malignant_path": "malignant heatmap",
}


def resolve(data_root: PathLike | None, relative: str) -> Path:
    """The file a manifest path names: ``data_root / relative`` (absolute paths stay as given)."""
    p = Path(relative)
    return p if p.is_absolute() or data_root is None else Path(data_root) / p


def _decoder(column: str) -> Callable[[Path], np.ndarray]:
    """The reader that decodes the files of a path column (an image or a heatmap)."""
    return read_image if column == "image_path" else read_heatmap


def check_files(cells: Cells, data_root: PathLike, *, check_images: bool) -> list[ManifestProblem]:
    """Every image and heatmap path must name an existing file, decodable with ``check_images``.

    Problems come column by column (image, benign heatmap, malignant heatmap), then by row.
    """
    problems = []
    for c in _PATH_COLUMNS:
        if c not in cells.text:
            continue
        reader = _decoder(c)
        for r, rel in zip(cells.rows, cells.text[c], strict=True):
            if not rel:
                continue
            full = resolve(data_root, rel)
            if not full.is_file():
                problems.append(ManifestProblem(r, f"{c}: file not found: {full}", c))
            elif check_images:
                try:
                    reader(full)
                except Exception as exc:  # any decoder failure is a problem of this row
                    reason = f"{c}: unreadable image {full}: {getattr(exc, 'reason', exc)}"
                    problems.append(ManifestProblem(r, reason, c))
    return problems


def find_unreadable_images(
    images: pd.DataFrame,
    data_root: PathLike,
    views: Sequence[str] = TWO_VIEWS,
    *,
    heatmaps: bool = False,
) -> list[ManifestProblem]:
    """Decode every image of ``views`` once; one problem (row, reason) per row whose file fails.

    Args:
        images: validated image rows (index = data row), from :func:`validate_manifest`.
        data_root: directory the paths are relative to.
        views: only images of these views are read (others are never used).
        heatmaps: also decode the row's two heatmaps (the first failure names the row).

    Returns:
        Problems in row order, each naming the file and why it cannot be read.
    """
    from concurrent.futures import ThreadPoolExecutor

    columns = _PATH_COLUMNS if heatmaps else _PATH_COLUMNS[:1]
    rows = [r for r, v in zip(images.index, images["view"], strict=True) if v in views]

    def problem(row: int) -> tuple[str, str] | None:
        for column in columns:
            value = str(images.at[row, column] or "") if column in images.columns else ""
            if not value:
                continue  # a missing heatmap path is the manifest check's business
            path = resolve(data_root, value)
            try:
                _decoder(column)(path)
            except Exception as exc:  # noqa: BLE001 - any decoder failure makes the file unusable
                return column, f"{path}: {getattr(exc, 'reason', exc)}"
        return None

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        found = list(pool.map(problem, rows))
    problems = []
    for row, hit in zip(rows, found, strict=True):
        if hit is not None:
            column, reason = hit
            problems.append(
                ManifestProblem(int(row), f"unreadable {_WHAT[column]} skipped: {reason}", column)
            )
    return problems

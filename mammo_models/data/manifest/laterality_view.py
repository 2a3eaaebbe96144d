"""The laterality and view rule, with empty cells filled from a DICOM image's header.

Many public datasets leave laterality or view out of their metadata because every DICOM file
carries them (ImageLaterality/Laterality, ViewPosition). An empty cell is therefore not an error
by itself: it is one only when no DICOM header can supply the value.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import ManifestProblem
from ..images import dicom_laterality_view, is_dicom
from .cells import Cells
from .files import resolve
from .schema import LATERALITIES, VIEWS, PathLike

_VIEW_SPELLINGS = {"CC": "CC", "MLO": "MLO", "OTHER": "other"}


def check_lateralities_and_views(cells: Cells, data_root: PathLike | None) -> list[ManifestProblem]:
    """Laterality must be L/R and view CC/MLO/other, after filling empty cells from DICOM.

    Problems come row by row: why a header could not fill the row, then its laterality, then its
    view. Sets ``cells.text["laterality"]`` (upper-case) and ``cells.text["view"]`` (one of
    :data:`VIEWS` where valid).
    """
    problems: list[ManifestProblem] = []

    def bad(row: int, reason: str, column: str | None = None) -> None:
        problems.append(ManifestProblem(row, reason, column))

    raw_lateralities, raw_views = cells.text["laterality"], cells.text["view"]
    lateralities = [v.upper() for v in raw_lateralities]
    views = [_VIEW_SPELLINGS.get(v.upper(), v) for v in raw_views]
    for i, r in enumerate(cells.rows):
        needs = _needs(lateralities[i], views[i])
        if needs:
            filled = _fill_from_dicom(r, needs, cells.text["image_path"][i], data_root, bad)
            if filled is not None:
                lat, view = filled
                lateralities[i] = lateralities[i] or lat or ""
                views[i] = views[i] or view or ""
        if lateralities[i] and lateralities[i] not in LATERALITIES:
            bad(r, f"unknown laterality {raw_lateralities[i]!r}; expected L or R", "laterality")
        if views[i] and views[i] not in VIEWS:
            bad(
                r,
                f"unknown view {raw_views[i]!r}; expected CC, MLO or other "
                "(map other mammographic views such as ML or XCCL to 'other')",
                "view",
            )
    cells.text["laterality"], cells.text["view"] = lateralities, views
    return problems


def _needs(laterality: str, view: str) -> str:
    """Which of a row's two cells are empty, in the words of the messages (``""``: neither)."""
    if not laterality and not view:
        return "laterality and view"
    if not laterality:
        return "laterality"
    if not view:
        return "view"
    return ""


def _fill_from_dicom(
    row: int,
    needs: str,
    rel: str,
    data_root: PathLike | None,
    bad: Callable[..., None],
) -> tuple[str | None, str | None] | None:
    """Laterality/view from the DICOM header of a row's image, reporting why when impossible."""
    if data_root is None:
        bad(
            row,
            f"empty {needs} (fill the column, or give data_root so a DICOM header can supply it)",
        )
        return None
    full = resolve(data_root, rel)
    if not full.is_file():
        bad(row, f"empty {needs}, and the image to read it from is missing: {full}")
        return None
    if not is_dicom(full):
        bad(row, f"empty {needs}; only DICOM images can supply it from their header ({full})")
        return None
    try:
        lat, view = dicom_laterality_view(full)
    except Exception as exc:
        bad(row, f"empty {needs}, and the DICOM header cannot be read: {exc}")
        return None
    if "laterality" in needs and lat is None:
        bad(
            row,
            f"empty laterality, and the DICOM header has no ImageLaterality/Laterality L or R ({full})",
            "laterality",
        )
    if "view" in needs and view is None:
        bad(
            row,
            f"empty view, and the DICOM header has no ViewPosition or ViewCodeSequence ({full})",
            "view",
        )
    return lat, view

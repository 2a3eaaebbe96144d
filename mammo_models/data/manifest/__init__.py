"""The manifest: one row per image, read from CSV or Parquet, validated, paired into breasts.

Columns (SPEC section 7). Required: :data:`REQUIRED_COLUMNS`. Optional: :data:`OPTIONAL_COLUMNS`.
Every other column is metadata and is kept (in the breast table, prefixed with the view, see
:func:`pair_breasts`).

Row numbers in every message are **1-based data rows** (the first row under the header is row 1;
in a CSV with a one-line header, blank lines and quoted line breaks aside, row N is line N + 1).
The validated image table keeps them as its index (named ``row``).

What :func:`validate_manifest` rejects (all problems are collected, then raised together as one
:class:`~mammo_models.data.errors.ManifestError` that lists the first ``max_listed``):

* a missing required column (reported alone: the rows cannot be checked without it);
* an empty identifier or path, an unknown laterality (``L``/``R``), view (``CC``/``MLO``/``other``),
  label (0/1), label source or split, a non-positive ``pixel_scale``;
* an image path listed twice;
* a missing image or heatmap file, and with ``check_images=True`` an unreadable one
  (only when ``data_root`` is given);
* conflicting labels within a breast (labels are per breast: every image of a
  (patient, exam, laterality) must carry the same malignant and benign values);
* a patient in two splits, or a split column filled on some rows only.

Empty ``laterality`` / ``view`` cells of DICOM images are filled from the DICOM header
(ImageLaterality/Laterality, ViewPosition) when ``data_root`` is given.

Pairing (:func:`pair_breasts`): a breast is (patient_id, exam_id, laterality). A two-view model
needs one CC and one MLO image per breast; breasts lacking one are **dropped and counted** in the
summary by default, or raise a :class:`ManifestError` naming their rows with ``strict=True``. When a
breast has several images of one view, the first in manifest order is used and the others are
counted as dropped. ``other`` views are never used.

Splits: when the manifest has no ``split`` column (or it is empty everywhere), patients are
assigned to train/val/test with a seeded permutation, fractions 0.7/0.15/0.15 by default
(:func:`assign_splits`); whole patients move, so no patient is in two splits.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DEFAULT_MAX_LISTED, DataConfigError, ManifestError, ManifestProblem
from ..images import dicom_laterality_view, is_dicom, read_heatmap, read_image

PathLike = str | os.PathLike[str]

REQUIRED_COLUMNS: tuple[str, ...] = (
    "dataset",
    "image_path",
    "patient_id",
    "exam_id",
    "laterality",
    "view",
    "malignant",
    "benign",
    "label_source",
)
"""Columns every manifest must have (SPEC section 7)."""

OPTIONAL_COLUMNS: tuple[str, ...] = (
    "split",
    "heatmap_benign_path",
    "heatmap_malignant_path",
    "pixel_scale",
)
"""Columns with a meaning when present. ``split``: train/val/test. Heatmap paths: relative to the
data root like ``image_path``, same orientation and field of view as the image. ``pixel_scale``:
the image's resolution relative to the paper's full-resolution images (1.0 when absent), so that
an image stored already shrunk (the synthetic data) is resized by ``scale / pixel_scale``."""

VIEWS: tuple[str, ...] = ("CC", "MLO", "other")
TWO_VIEWS: tuple[str, ...] = ("CC", "MLO")
LATERALITIES: tuple[str, ...] = ("L", "R")
LABEL_SOURCES: tuple[str, ...] = ("pathology", "birads_proxy", "follow_up", "unknown")
SPLITS: tuple[str, ...] = ("train", "val", "test")
BREAST_KEY: tuple[str, ...] = ("patient_id", "exam_id", "laterality")
DEFAULT_SPLIT_FRACTIONS: tuple[float, float, float] = (0.7, 0.15, 0.15)
"""Train/val/test fractions of patients when the manifest has no split."""

_TEXT_COLUMNS = (
    "dataset",
    "image_path",
    "patient_id",
    "exam_id",
    "laterality",
    "view",
    "label_source",
)
_PATH_COLUMNS = ("image_path", "heatmap_benign_path", "heatmap_malignant_path")
_IMAGE_LEVEL_DEFAULTS: dict[str, Any] = {
    "image_path": "",
    "heatmap_benign_path": "",
    "heatmap_malignant_path": "",
    "pixel_scale": 1.0,
}

IMAGE_DROP_REASONS: dict[str, str] = {
    "unused_view": "view not used by the model",
    "duplicate_view": "a second image of the same view of a breast (the first in manifest order is used)",
    "incomplete_breast": "its breast lacks a view the model needs",
    "unreadable": "the image file (or, with heatmaps, a heatmap) cannot be decoded (skipped: skip_bad_images)",
}
"""Why an image of a valid manifest is not used (keys of ``ManifestSummary.images_dropped``)."""


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def read_manifest(path: PathLike) -> pd.DataFrame:
    """Read a manifest file as it is (no validation).

    CSV (``.csv``, ``.csv.gz`` and other pandas compressions, ``.tsv`` tab-separated) is read
    with every cell as a string and empty cells as ``""``; Parquet (``.parquet``, ``.pq``) keeps
    its column types. The index is reset so that position + 1 is the data row number.

    Raises:
        ManifestError: the file does not exist, has an unknown suffix or cannot be parsed.
    """
    p = Path(path)
    if not p.is_file():
        raise ManifestError([ManifestProblem(None, "manifest file does not exist")], p)
    name = p.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            df = pd.read_parquet(p)
        elif any(name.endswith(s) for s in (".csv", ".csv.gz", ".csv.bz2", ".csv.zip", ".csv.xz")):
            df = pd.read_csv(p, dtype=str, keep_default_na=False, na_values=[])
        elif name.endswith((".tsv", ".tsv.gz")):
            df = pd.read_csv(p, sep="\t", dtype=str, keep_default_na=False, na_values=[])
        else:
            raise ManifestError(
                [ManifestProblem(None, "unknown manifest format; expected .csv, .tsv or .parquet")],
                p,
            )
    except ManifestError:
        raise
    except Exception as exc:  # pandas/pyarrow raise many types for malformed files
        raise ManifestError([ManifestProblem(None, f"cannot parse the file: {exc}")], p) from exc
    return df.reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def _text(values: Iterable[Any]) -> list[str]:
    """Cells as stripped strings; missing cells (None, NaN, NA) as ``""``; 12.0 as ``"12"``."""
    out = []
    for v in values:
        if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
            out.append("")
        elif isinstance(v, float) and v.is_integer():
            out.append(str(int(v)))
        else:
            out.append(str(v).strip())
    return out


def _binary(value: Any) -> int | None:
    """0/1 from 0, 1, 0.0, 1.0, True, False, "0", "1", "0.0", "1.0"; else None."""
    if isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, int | np.integer):
        return int(value) if value in (0, 1) else None
    if isinstance(value, float | np.floating):
        return int(value) if value in (0.0, 1.0) else None
    text = str(value).strip().lower()
    return {"0": 0, "1": 1, "0.0": 0, "1.0": 1, "true": 1, "false": 0}.get(text)


def _breast_name(patient: str, exam: str, laterality: str) -> str:
    return f"patient {patient!r}, exam {exam!r}, laterality {laterality}"


def resolve(data_root: PathLike | None, relative: str) -> Path:
    """The file a manifest path names: ``data_root / relative`` (absolute paths stay as given)."""
    p = Path(relative)
    return p if p.is_absolute() or data_root is None else Path(data_root) / p


def validate_manifest(
    df: pd.DataFrame,
    data_root: PathLike | None = None,
    *,
    source: str | PathLike[str] | None = None,
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
    problems: list[ManifestProblem] = []
    n = len(df)
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ManifestError(
            [
                ManifestProblem(
                    None,
                    f"missing required column{'s' if len(missing) > 1 else ''} "
                    f"{', '.join(missing)}; a manifest needs {', '.join(REQUIRED_COLUMNS)} "
                    f"(found: {', '.join(map(str, df.columns)) or 'no columns'})",
                )
            ],
            source,
            max_listed=max_listed,
        )
    if "row" in df.columns:
        problems.append(
            ManifestProblem(
                None,
                "column 'row' is reserved (it becomes the data-row index of the validated "
                "table); rename it",
                "row",
            )
        )
    rows = list(range(1, n + 1))
    cols: dict[str, list[Any]] = {c: _text(df[c].tolist()) for c in _TEXT_COLUMNS}
    for c in ("heatmap_benign_path", "heatmap_malignant_path", "split"):
        if c in df.columns:
            cols[c] = _text(df[c].tolist())

    def bad(row: int, reason: str, column: str | None = None) -> None:
        problems.append(ManifestProblem(row, reason, column))

    # -- identifiers, labels, vocabularies ---------------------------------------------------
    for c in ("dataset", "image_path", "patient_id", "exam_id"):
        for r, v in zip(rows, cols[c], strict=True):
            if not v:
                bad(r, f"empty {c}", c)
    labels: dict[str, list[int | None]] = {}
    for c in ("malignant", "benign"):
        labels[c] = [_binary(v) for v in df[c].tolist()]
        for r, raw, v in zip(rows, df[c].tolist(), labels[c], strict=True):
            if v is None:
                bad(r, f"{c} must be 0 or 1, got {raw!r}", c)
    sources = [s.lower() for s in cols["label_source"]]
    for r, raw, s in zip(rows, cols["label_source"], sources, strict=True):
        if s not in LABEL_SOURCES:
            bad(
                r,
                f"unknown label_source {raw!r}; expected one of {', '.join(LABEL_SOURCES)}",
                "label_source",
            )
    cols["label_source"] = sources

    lateralities = [v.upper() for v in cols["laterality"]]
    views = [{"CC": "CC", "MLO": "MLO", "OTHER": "other"}.get(v.upper(), v) for v in cols["view"]]
    for i, r in enumerate(rows):
        if not lateralities[i] and not views[i]:
            needs = "laterality and view"
        elif not lateralities[i]:
            needs = "laterality"
        elif not views[i]:
            needs = "view"
        else:
            needs = ""
        if needs:
            filled = _fill_from_dicom(r, needs, cols["image_path"][i], data_root, bad)
            if filled is not None:
                lat, view = filled
                lateralities[i] = lateralities[i] or lat or ""
                views[i] = views[i] or view or ""
        if lateralities[i] and lateralities[i] not in LATERALITIES:
            bad(r, f"unknown laterality {cols['laterality'][i]!r}; expected L or R", "laterality")
        if views[i] and views[i] not in VIEWS:
            bad(
                r,
                f"unknown view {cols['view'][i]!r}; expected CC, MLO or other "
                "(map other mammographic views such as ML or XCCL to 'other')",
                "view",
            )
    cols["laterality"], cols["view"] = lateralities, views

    scales: list[float] | None = None
    if "pixel_scale" in df.columns:
        scales = []
        for r, raw in zip(rows, df["pixel_scale"].tolist(), strict=True):
            text = _text([raw])[0]
            try:
                value = float(text) if text else 1.0
            except ValueError:
                value = float("nan")
            if not (math.isfinite(value) and value > 0):
                bad(r, f"pixel_scale must be a positive number, got {raw!r}", "pixel_scale")
            scales.append(value)

    if "split" in cols:
        splits = [s.lower() for s in cols["split"]]
        if any(splits):
            for r, raw, s in zip(rows, cols["split"], splits, strict=True):
                if not s:
                    bad(
                        r,
                        "empty split while other rows have one; fill it or leave the whole column empty",
                        "split",
                    )
                elif s not in SPLITS:
                    bad(r, f"unknown split {raw!r}; expected train, val or test", "split")
        cols["split"] = splits

    # -- duplicates ----------------------------------------------------------------------------
    first_row: dict[str, int] = {}
    for r, path in zip(rows, cols["image_path"], strict=True):
        if path in first_row:
            bad(
                r,
                f"image_path {path!r} is already listed on row {first_row[path]}; one row per image",
                "image_path",
            )
        elif path:
            first_row[path] = r

    # -- files ---------------------------------------------------------------------------------
    if data_root is not None and check_files:
        for c in _PATH_COLUMNS:
            if c not in cols:
                continue
            reader = _decoder(c)
            for r, rel in zip(rows, cols[c], strict=True):
                if not rel:
                    continue
                full = resolve(data_root, rel)
                if not full.is_file():
                    bad(r, f"{c}: file not found: {full}", c)
                elif check_images:
                    try:
                        reader(full)
                    except Exception as exc:  # any decoder failure is a problem of this row
                        bad(r, f"{c}: unreadable image {full}: {getattr(exc, 'reason', exc)}", c)

    # -- per-breast labels and per-patient splits ----------------------------------------------
    label_first: dict[tuple[str, str, str], tuple[int, int, int]] = {}
    for i, r in enumerate(rows):
        key = (cols["patient_id"][i], cols["exam_id"][i], lateralities[i])
        m, b = labels["malignant"][i], labels["benign"][i]
        if not all(key) or key[2] not in LATERALITIES or m is None or b is None:
            continue
        if key not in label_first:
            label_first[key] = (r, m, b)
            continue
        r0, m0, b0 = label_first[key]
        for name, v, v0 in (("malignant", m, m0), ("benign", b, b0)):
            if v != v0:
                bad(
                    r,
                    f"{name}={v} conflicts with row {r0} ({name}={v0}) of the same breast "
                    f"({_breast_name(*key)}); labels are per breast",
                    name,
                )
    if "split" in cols and any(cols["split"]):
        split_first: dict[str, tuple[int, str]] = {}
        for r, patient, s in zip(rows, cols["patient_id"], cols["split"], strict=True):
            if not patient or s not in SPLITS:
                continue
            if patient not in split_first:
                split_first[patient] = (r, s)
            elif split_first[patient][1] != s:
                r0, s0 = split_first[patient]
                bad(
                    r,
                    f"patient {patient!r} is in split {s!r} here but in {s0!r} on row {r0}; "
                    "a patient must be in one split",
                    "split",
                )

    if problems:
        raise ManifestError(problems, source, max_listed=max_listed)

    out = pd.DataFrame(index=pd.Index(rows, name="row"))
    for c in REQUIRED_COLUMNS:
        if c in ("malignant", "benign"):
            out[c] = np.asarray(labels[c], dtype=np.int64)
        else:
            out[c] = cols[c]
    for c in OPTIONAL_COLUMNS:
        if c == "pixel_scale":
            if scales is not None:
                out[c] = np.asarray(scales, dtype=np.float64)
        elif c in cols:
            out[c] = cols[c]
    for c in df.columns:
        if c not in out.columns:
            out[c] = df[c].to_numpy()
    return out


def _fill_from_dicom(
    row: int, needs: str, rel: str, data_root: PathLike | None, bad: Any
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


# --------------------------------------------------------------------------------------------
# Splits
# --------------------------------------------------------------------------------------------


def split_counts(n: int, fractions: Sequence[float]) -> tuple[int, ...]:
    """How many of ``n`` patients go to each split: largest remainders, every non-zero fraction
    getting at least one patient when ``n`` allows it.

    Raises:
        DataConfigError: fractions negative, not three, or not summing to 1.
    """
    fr = tuple(float(f) for f in fractions)
    if len(fr) != len(SPLITS) or any(not (f >= 0) for f in fr) or abs(sum(fr) - 1.0) > 1e-6:
        raise DataConfigError(
            f"split_fractions must be {len(SPLITS)} non-negative numbers (train, val, test) "
            f"summing to 1; got {fractions!r}"
        )
    exact = [n * f for f in fr]
    counts = [math.floor(x) for x in exact]
    order = sorted(range(len(fr)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    for i, f in enumerate(fr):
        if f > 0 and counts[i] == 0:
            donor = max(range(len(fr)), key=lambda j: counts[j])
            if counts[donor] > 1:
                counts[donor] -= 1
                counts[i] += 1
    return tuple(counts)


def assign_splits(
    images: pd.DataFrame,
    fractions: Sequence[float] = DEFAULT_SPLIT_FRACTIONS,
    seed: int = 0,
) -> pd.DataFrame:
    """Give every row a patient-level ``split``: train/val/test by a seeded permutation.

    Patients are sorted by id, permuted with ``numpy.random.default_rng(seed)`` and cut at the
    :func:`split_counts`, so the assignment depends only on the set of patient ids, the fractions
    and the seed (not on row order).

    Returns:
        A copy of ``images`` with the ``split`` column (over)written.
    """
    patients = np.array(sorted(set(images["patient_id"].tolist())), dtype=object)
    counts = split_counts(len(patients), fractions)
    perm = np.random.default_rng(seed).permutation(len(patients))
    assignment: dict[str, str] = {}
    start = 0
    for name, count in zip(SPLITS, counts, strict=True):
        for p in patients[perm[start : start + count]]:
            assignment[p] = name
        start += count
    out = images.copy()
    out["split"] = [assignment[p] for p in out["patient_id"].tolist()]
    return out


# --------------------------------------------------------------------------------------------
# Pairing
# --------------------------------------------------------------------------------------------


@dataclass
class Pairing:
    """Result of :func:`pair_breasts`.

    Attributes:
        breasts: one row per usable breast (see :func:`pair_breasts` for the columns).
        images_dropped: images not used, by reason (keys of :data:`IMAGE_DROP_REASONS`).
        breasts_dropped: breasts not used, by reason (``"no CC image"``, ``"no MLO image"``...).
    """

    breasts: pd.DataFrame
    images_dropped: dict[str, int] = field(default_factory=dict)
    breasts_dropped: dict[str, int] = field(default_factory=dict)


def pair_breasts(
    images: pd.DataFrame,
    views: Sequence[str] = TWO_VIEWS,
    *,
    strict: bool = False,
    source: str | PathLike[str] | None = None,
    max_listed: int = DEFAULT_MAX_LISTED,
) -> Pairing:
    """Group validated images into breasts and keep those that have every needed view.

    Args:
        images: the output of :func:`validate_manifest` (index = data row).
        views: the views the model reads: ``("CC", "MLO")`` for two-view models, ``("CC",)`` or
            ``("MLO",)`` for uni-view ones.
        strict: raise instead of dropping breasts that lack a needed view.
        source: manifest name for messages.
        max_listed: problems listed in the error message.

    Returns:
        A :class:`Pairing`. Its breast table, in order of each breast's first row, has the
        breast-level columns ``breast_id`` (``"patient|exam|laterality"``), ``dataset``,
        ``patient_id``, ``exam_id``, ``laterality``, ``malignant``, ``benign``,
        ``label_source`` (``"mixed"`` when the breast's images disagree), ``split`` (when known);
        and for each needed view ``v`` (lower case) the image-level columns prefixed ``v_``:
        ``v_row`` (data row), ``v_image_path``, ``v_heatmap_benign_path``,
        ``v_heatmap_malignant_path``, ``v_pixel_scale`` and every metadata column.

    Raises:
        ManifestError: with ``strict=True``, one problem per incomplete breast, at its first row.
        DataConfigError: ``views`` empty or not made of CC/MLO.
    """
    views = tuple(views)
    if not views or any(v not in TWO_VIEWS for v in views) or len(set(views)) != len(views):
        raise DataConfigError(f"views must be ('CC', 'MLO'), ('CC',) or ('MLO',); got {views!r}")
    if images.index.name != "row":
        raise DataConfigError(
            "pair_breasts needs the output of validate_manifest (indexed by data row 'row'); "
            f"got a frame indexed by {images.index.name!r}"
        )
    key = list(BREAST_KEY)
    known = set(REQUIRED_COLUMNS) | set(OPTIONAL_COLUMNS)
    metadata = [c for c in images.columns if c not in known]
    frame = images.reset_index()  # the data row becomes column "row"
    for c, default in _IMAGE_LEVEL_DEFAULTS.items():
        if c not in frame.columns:
            frame[c] = default
    image_level = ["row", *_IMAGE_LEVEL_DEFAULTS, *metadata]

    in_use = frame["view"].isin(views)
    used = frame[in_use]
    firsts = used.drop_duplicates([*key, "view"], keep="first")

    breast_cols = [*key, "dataset", "malignant", "benign"] + (
        ["split"] if "split" in frame.columns else []
    )
    breasts = frame.drop_duplicates(key, keep="first")[breast_cols].reset_index(drop=True)
    label_source = firsts.groupby(key, sort=False)["label_source"].agg(
        lambda s: s.iloc[0] if s.nunique() == 1 else "mixed"
    )
    breast_index = pd.MultiIndex.from_frame(breasts[key])
    has = {
        v: breast_index.isin(pd.MultiIndex.from_frame(firsts.loc[firsts["view"] == v, key]))
        for v in views
    }
    complete = np.logical_and.reduce([has[v] for v in views])
    breasts_dropped: dict[str, int] = {}
    problems: list[ManifestProblem] = []
    incomplete = breasts.loc[~complete, key]
    lacking_per = [[v for v in views if not has[v][i]] for i in np.flatnonzero(~complete)]
    for lacking in lacking_per:
        reason = f"no {' and no '.join(lacking)} image"
        breasts_dropped[reason] = breasts_dropped.get(reason, 0) + 1

    # every image is used, or dropped for exactly one reason
    used_incomplete = len(used.merge(incomplete, on=key)) if len(incomplete) else 0
    firsts_incomplete = len(firsts.merge(incomplete, on=key)) if len(incomplete) else 0
    images_dropped: dict[str, int] = {}
    for reason, count in (
        ("unused_view", int((~in_use).sum())),
        ("duplicate_view", (len(used) - len(firsts)) - (used_incomplete - firsts_incomplete)),
        ("incomplete_breast", used_incomplete),
    ):
        if count:
            images_dropped[reason] = count

    if strict and len(incomplete):
        by_breast = frame.merge(incomplete, on=key).groupby(key, sort=False)
        for (patient, exam, laterality), lacking in zip(
            incomplete.itertuples(index=False), lacking_per, strict=True
        ):
            group = by_breast.get_group((patient, exam, laterality))
            rows = ", ".join(str(r) for r in group["row"].tolist())
            found = ", ".join(group["view"].tolist())
            problems.append(
                ManifestProblem(
                    int(group["row"].min()),
                    f"breast ({_breast_name(patient, exam, laterality)}) has no "
                    f"{' and no '.join(lacking)} image (its rows: {rows}; their views: {found}); "
                    f"the model needs {' and '.join(views)}. Add the image, or load with "
                    "strict=False to drop such breasts",
                    "view",
                )
            )
        raise ManifestError(problems, source, max_listed=max_listed)

    breasts = breasts[complete].reset_index(drop=True)
    breasts = breasts.merge(label_source.reset_index(), on=key, how="left")
    for v in views:  # inner merges keep the breasts' order and every column's dtype
        of_view = firsts[firsts["view"] == v][[*key, *image_level]]
        of_view = of_view.rename(columns={c: f"{v.lower()}_{c}" for c in image_level})
        breasts = breasts.merge(of_view, on=key, how="inner")
    breasts.insert(
        0,
        "breast_id",
        [f"{p}|{e}|{lat}" for p, e, lat in breasts[key].itertuples(index=False)],
    )
    for c in ("malignant", "benign"):
        breasts[c] = breasts[c].astype(np.int64)
    return Pairing(breasts, images_dropped, breasts_dropped)


# --------------------------------------------------------------------------------------------
# Summary and the one-call loader
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ManifestSummary:
    """What a manifest held and what of it is used, for the run log.

    Attributes:
        source: the manifest's name.
        n_rows: data rows read.
        n_images_used: images that feed the model.
        images_dropped: unused images by reason (keys of :data:`IMAGE_DROP_REASONS`).
        breasts_dropped: unused breasts by reason.
        views: the views the model reads.
        split_origin: ``"manifest"`` or how splits were assigned.
        per_split: per split name: breasts, patients, malignant, benign, positive, negative.
    """

    source: str
    n_rows: int
    n_images_used: int
    images_dropped: dict[str, int]
    breasts_dropped: dict[str, int]
    views: tuple[str, ...]
    split_origin: str
    per_split: dict[str, dict[str, int]]

    @property
    def n_breasts(self) -> int:
        return sum(s["breasts"] for s in self.per_split.values())

    def __str__(self) -> str:
        lines = [
            f"{self.source}: {self.n_rows} rows -> {self.n_images_used} images used, "
            f"{self.n_breasts} breasts ({' + '.join(self.views)})"
        ]
        if self.images_dropped:
            parts = [f"{n} {IMAGE_DROP_REASONS.get(k, k)}" for k, n in self.images_dropped.items()]
            lines.append("  images not used: " + "; ".join(parts))
        if self.breasts_dropped:
            parts = [f"{n} with {k}" for k, n in self.breasts_dropped.items()]
            lines.append("  breasts dropped: " + "; ".join(parts))
        lines.append(f"  splits: {self.split_origin}")
        header = ("breasts", "patients", "malignant", "benign", "positive", "negative")
        lines.append("  " + f"{'split':<6}" + "".join(f"{h:>10}" for h in header))
        for name, counts in self.per_split.items():
            lines.append("  " + f"{name:<6}" + "".join(f"{counts[h]:>10}" for h in header))
        return "\n".join(lines)


def summarize(
    breasts: pd.DataFrame,
    *,
    source: str,
    n_rows: int,
    pairing: Pairing,
    views: Sequence[str],
    split_origin: str,
) -> ManifestSummary:
    """Counts per split of the breast table, plus what pairing dropped."""
    per_split: dict[str, dict[str, int]] = {}
    names = [s for s in SPLITS if "split" in breasts.columns and (breasts["split"] == s).any()]
    groups = [(s, breasts[breasts["split"] == s]) for s in names] or [("all", breasts)]
    for name, part in groups:
        positive = (part["malignant"] == 1) | (part["benign"] == 1)
        per_split[name] = {
            "breasts": len(part),
            "patients": int(part["patient_id"].nunique()) if len(part) else 0,
            "malignant": int((part["malignant"] == 1).sum()),
            "benign": int((part["benign"] == 1).sum()),
            "positive": int(positive.sum()),
            "negative": int((~positive).sum()),
        }
    return ManifestSummary(
        source=source,
        n_rows=n_rows,
        n_images_used=len(breasts) * len(tuple(views)),
        images_dropped=dict(pairing.images_dropped),
        breasts_dropped=dict(pairing.breasts_dropped),
        views=tuple(views),
        split_origin=split_origin,
        per_split=per_split,
    )


@dataclass
class Manifest:
    """A validated manifest: its images, its usable breasts and a summary.

    Attributes:
        images: validated image rows (index = 1-based data row), with a ``split`` column.
        breasts: one row per usable breast (see :func:`pair_breasts`).
        summary: counts for the run log (``print(manifest.summary)``).
        views: the views the breasts were paired for.
        data_root: directory the paths are relative to.
        skipped_images: with ``skip_bad_images``, one problem per image that could not be
            decoded (its row and the reader's reason); those rows are not used.
    """

    images: pd.DataFrame
    breasts: pd.DataFrame
    summary: ManifestSummary
    views: tuple[str, ...]
    data_root: Path | None
    skipped_images: list[ManifestProblem] = field(default_factory=list)

    def split(self, name: str) -> pd.DataFrame:
        """Breasts of one split (``train``, ``val``, ``test``), re-indexed from 0."""
        if name not in SPLITS:
            raise DataConfigError(f"unknown split {name!r}; expected one of {', '.join(SPLITS)}")
        return self.breasts[self.breasts["split"] == name].reset_index(drop=True)


def load_manifest(
    manifest: PathLike | pd.DataFrame,
    data_root: PathLike | None = None,
    *,
    views: Sequence[str] = TWO_VIEWS,
    strict: bool = False,
    split_fractions: Sequence[float] = DEFAULT_SPLIT_FRACTIONS,
    split_seed: int = 0,
    check_files: bool = True,
    check_images: bool = False,
    max_listed: int = DEFAULT_MAX_LISTED,
    skip_bad_images: bool = False,
    heatmaps: bool = False,
) -> Manifest:
    """Read, validate, split and pair a manifest in one call.

    Args:
        manifest: a CSV/Parquet file, or a DataFrame (e.g. from an adapter).
        data_root: directory the manifest's paths are relative to. Defaults to the manifest
            file's directory; ``None`` with a DataFrame skips file checks.
        views: views the model reads (see :func:`pair_breasts`).
        strict: raise on breasts that lack a needed view instead of dropping them.
        split_fractions: train/val/test patient fractions when the manifest has no split.
        split_seed: seed of that assignment.
        check_files: check that images and heatmaps exist.
        check_images: decode every image once (slow; catches corrupt files up front).
        max_listed: problems listed in an error message.
        skip_bad_images: decode every image of a needed view once and leave out those that
            cannot be decoded (their breasts then lack a view and are dropped), counted in the
            summary and listed in ``Manifest.skipped_images``, instead of failing mid-run.
            Missing files stay errors: they usually mean a wrong data root.
        heatmaps: the run reads heatmaps, so ``skip_bad_images`` decodes them too and leaves
            out the image rows whose heatmap cannot be read.

    Raises:
        ManifestError: every problem of the manifest, by row.
    """
    if isinstance(manifest, pd.DataFrame):
        df, source = manifest.reset_index(drop=True), "manifest (DataFrame)"
    else:
        df, source = read_manifest(manifest), str(manifest)
        if data_root is None:
            data_root = Path(manifest).parent
    images = validate_manifest(
        df,
        data_root,
        source=source,
        check_files=check_files,
        check_images=check_images,
        max_listed=max_listed,
    )
    skipped: list[ManifestProblem] = []
    if skip_bad_images and data_root is not None:
        skipped = find_unreadable_images(images, data_root, views, heatmaps=heatmaps)
        images = images.drop(index=[p.row for p in skipped])
    if "split" in images.columns and (images["split"] != "").all():
        split_origin = "from the manifest"
    else:
        counts = ", ".join(f"{f:.2f}" for f in split_fractions)
        split_origin = f"assigned by patient (seed {split_seed}; train/val/test fractions {counts})"
        images = assign_splits(images, split_fractions, split_seed)
    pairing = pair_breasts(images, views, strict=strict, source=source, max_listed=max_listed)
    if skipped:
        pairing.images_dropped["unreadable"] = len(skipped)
    if pairing.breasts.empty:
        dropped = "; ".join(f"{n} with {k}" for k, n in pairing.breasts_dropped.items())
        raise ManifestError(
            [
                ManifestProblem(
                    None,
                    f"no usable breast for views {' + '.join(views)} among {len(df)} rows"
                    + (f" (dropped: {dropped})" if dropped else ""),
                )
            ],
            source,
        )
    summary = summarize(
        pairing.breasts,
        source=source,
        n_rows=len(df),
        pairing=pairing,
        views=views,
        split_origin=split_origin,
    )
    return Manifest(
        images=images,
        breasts=pairing.breasts,
        summary=summary,
        views=tuple(views),
        data_root=None if data_root is None else Path(data_root),
        skipped_images=skipped,
    )


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


def _decoder(column: str) -> Callable[[Path], np.ndarray]:
    """The reader that decodes the files of a path column (an image or a heatmap)."""
    return read_image if column == "image_path" else read_heatmap


_WHAT = {
    "image_path": "image",
    "heatmap_benign_path": "benign heatmap",
    "heatmap_malignant_path": "malignant heatmap",
}

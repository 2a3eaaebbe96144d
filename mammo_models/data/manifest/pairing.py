"""Pairing validated images into breasts: one CC and one MLO image (or one view) per breast.

A breast is (patient_id, exam_id, laterality). Breasts lacking a needed view are dropped and
counted, or reported with ``strict=True``; every image not used is counted under exactly one
reason of :data:`IMAGE_DROP_REASONS`, so the run log accounts for every row of the manifest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import DEFAULT_MAX_LISTED, DataConfigError, ManifestError, ManifestProblem
from .cells import _breast_name
from .schema import (
    _IMAGE_LEVEL_DEFAULTS,
    BREAST_KEY,
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    TWO_VIEWS,
    PathLike,
)


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
    source: str | PathLike | None = None,
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

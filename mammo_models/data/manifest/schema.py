"""The manifest's vocabulary: its columns, their allowed values and the drop reasons.

Adapters import these names too (through :mod:`mammo_models.data.manifest`), so the manifest and
every dataset adapter share one definition of what a valid row holds.
"""

from __future__ import annotations

import os
from typing import Any

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

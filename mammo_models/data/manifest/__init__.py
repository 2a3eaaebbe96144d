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

Modules, one job each (every name is importable from this package):

* :mod:`.schema`: the columns, their allowed values and the reasons an image is not used;
* :mod:`.reading`: :func:`read_manifest`;
* :mod:`.cells`: cell parsers and :class:`Cells`, the table the validation rules share;
* :mod:`.rules`, :mod:`.laterality_view`, :mod:`.consistency` and :func:`.files.check_files`:
  one function per validation rule, each returning its problems in row order;
* :mod:`.validate`: :func:`validate_manifest`, which runs the rules in a fixed order;
* :mod:`.files`: path resolution and the decoding of images and heatmaps;
* :mod:`.splits`, :mod:`.pairing`, :mod:`.summary` and :mod:`.loading`: the rest of
  :func:`load_manifest`.
"""

from __future__ import annotations

from .cells import Cells, _binary, _breast_name, _text
from .consistency import check_breast_labels, check_duplicate_paths, check_patient_splits
from .files import _WHAT, _decoder, check_files, find_unreadable_images, resolve
from .laterality_view import _fill_from_dicom, check_lateralities_and_views
from .loading import Manifest, load_manifest
from .pairing import Pairing, pair_breasts
from .reading import read_manifest
from .rules import (
    check_identifiers,
    check_label_sources,
    check_labels,
    check_pixel_scales,
    check_required_columns,
    check_reserved_columns,
    check_splits,
)
from .schema import (
    _IMAGE_LEVEL_DEFAULTS,
    _PATH_COLUMNS,
    _TEXT_COLUMNS,
    BREAST_KEY,
    DEFAULT_SPLIT_FRACTIONS,
    IMAGE_DROP_REASONS,
    LABEL_SOURCES,
    LATERALITIES,
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    SPLITS,
    TWO_VIEWS,
    VIEWS,
    PathLike,
)
from .splits import assign_splits, split_counts
from .summary import ManifestSummary, summarize
from .validate import validate_manifest

__all__ = [
    "BREAST_KEY",
    "DEFAULT_SPLIT_FRACTIONS",
    "IMAGE_DROP_REASONS",
    "LABEL_SOURCES",
    "LATERALITIES",
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "SPLITS",
    "TWO_VIEWS",
    "VIEWS",
    "Cells",
    "Manifest",
    "ManifestSummary",
    "Pairing",
    "PathLike",
    "_IMAGE_LEVEL_DEFAULTS",
    "_PATH_COLUMNS",
    "_TEXT_COLUMNS",
    "_WHAT",
    "_binary",
    "_breast_name",
    "_decoder",
    "_fill_from_dicom",
    "_text",
    "assign_splits",
    "check_breast_labels",
    "check_duplicate_paths",
    "check_files",
    "check_identifiers",
    "check_label_sources",
    "check_labels",
    "check_lateralities_and_views",
    "check_patient_splits",
    "check_pixel_scales",
    "check_required_columns",
    "check_reserved_columns",
    "check_splits",
    "find_unreadable_images",
    "load_manifest",
    "pair_breasts",
    "read_manifest",
    "resolve",
    "split_counts",
    "summarize",
    "validate_manifest",
]

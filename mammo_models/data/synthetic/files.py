"""Write, cache and swap the synthetic data set on disk.

``generate_synthetic(config, root)`` writes ``root/images/*.png`` (16-bit greyscale; optional
8-bit heatmaps in ``root/heatmaps``), ``root/manifest.csv`` and ``root/synthetic.json`` (the config
and its hash, and the calibration measured while drawing). It does nothing when
``synthetic.json`` already matches the config, so the data are regenerated only when the config
(or the generator version) changes. The same config writes the same bytes. Images are stored at
the resolution of the preset they were made for; the manifest's ``pixel_scale`` column records
it, so the loader resizes them correctly under any preset. Right breasts are stored mirrored,
chest wall on the right, as a DICOM archive would hold them.

A data set is drawn into a temporary sibling directory and swapped into place whole, so readers
never see half of one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from ..calibration import CalibrationSamples, summarize
from ..errors import SyntheticDataError
from ..manifest import TWO_VIEWS, Manifest, load_manifest
from .config import GENERATOR_VERSION, SyntheticConfig
from .draw import DrawnBreast, draw_breasts

PathLike = str | os.PathLike[str]

MANIFEST_NAME = "manifest.csv"
META_NAME = "synthetic.json"
HEATMAP_KINDS = ("benign", "malignant")


def _write_png(path: Path, array: np.ndarray, bits: int) -> None:
    from PIL import Image

    scale = 65535 if bits == 16 else 255
    dtype = np.uint16 if bits == 16 else np.uint8
    Image.fromarray(np.round(array * scale).astype(dtype)).save(
        path, format="PNG", compress_level=1
    )


def _write_breast(config: SyntheticConfig, root: Path, breast: DrawnBreast) -> list[dict]:
    """Write one breast's images (and heatmaps) under ``root``; return its manifest rows."""
    rows = []
    flip = breast.laterality == "R"  # stored as acquired: right breasts chest wall right
    for view in TWO_VIEWS:
        drawn = breast.views[view]
        stem = f"{breast.patient_id}_{breast.laterality}_{view}"
        row = {
            "dataset": "synthetic",
            "image_path": f"images/{stem}.png",
            "patient_id": breast.patient_id,
            "exam_id": "E0",
            "laterality": breast.laterality,
            "view": view,
            "malignant": int(breast.malignant),
            "benign": int(breast.benign),
            "label_source": "pathology",
            "split": breast.split,
        }
        _write_png(root / row["image_path"], drawn.image[:, ::-1] if flip else drawn.image, 16)
        if config.heatmaps:
            for kind in HEATMAP_KINDS:
                rel = f"heatmaps/{stem}_{kind}.png"
                heat = drawn.heatmaps[kind]
                _write_png(root / rel, heat[:, ::-1] if flip else heat, 8)
                row[f"heatmap_{kind}_path"] = rel
        row["pixel_scale"] = config.pixel_scale
        row["cue"] = int(drawn.cue)
        row["density"] = round(breast.density, 4)
        rows.append(row)
    return rows


def _write_all(config: SyntheticConfig, root: Path) -> None:
    """Draw every breast and write images, heatmaps, the manifest and ``synthetic.json``."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    if config.heatmaps:
        (root / "heatmaps").mkdir(exist_ok=True)
    rows = []
    samples = CalibrationSamples()
    for breast in draw_breasts(config, samples):
        rows.extend(_write_breast(config, root, breast))
    pd.DataFrame(rows).to_csv(root / MANIFEST_NAME, index=False)
    meta = {
        "generator_version": GENERATOR_VERSION,
        "hash": config.hash(),
        "config": config.to_dict(),
        "calibration": summarize(samples, config.cue_view if config.cue_strength > 0 else None),
    }
    (root / META_NAME).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def _is_current(root: Path, config: SyntheticConfig) -> bool:
    try:
        meta = json.loads((root / META_NAME).read_text())
    except (OSError, ValueError):
        return False
    return meta.get("hash") == config.hash() and (root / MANIFEST_NAME).is_file()


def generate_synthetic(config: SyntheticConfig, root: PathLike) -> Path:
    """Write the data set for ``config`` into ``root`` unless it is already there.

    The data are drawn into a temporary sibling directory and moved into place at the end, so an
    interrupted run leaves no half-written data set and concurrent runs with the same config
    (a sweep) end with one copy.

    Args:
        config: the data set's parameters.
        root: its directory; created if missing. An existing non-empty directory is replaced only
            if it holds an earlier synthetic data set (``synthetic.json``).

    Returns:
        Path of the manifest (``root/manifest.csv``); paths in it are relative to ``root``.

    Raises:
        SyntheticDataError: ``root`` holds other files, or cannot be written.
    """
    root = Path(root)
    if _is_current(root, config):
        return root / MANIFEST_NAME
    if root.exists() and (
        not root.is_dir() or (any(root.iterdir()) and not (root / META_NAME).exists())
    ):
        raise SyntheticDataError(
            f"{root} exists and is not a synthetic data directory (no {META_NAME}); refusing to "
            "overwrite it. Choose an empty or new directory for the synthetic data"
        )
    root.parent.mkdir(parents=True, exist_ok=True)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    except OSError as exc:
        raise SyntheticDataError(f"cannot create a directory next to {root}: {exc}") from exc
    try:
        _write_all(config, tmp)
        if _is_current(root, config):  # another process finished first
            return root / MANIFEST_NAME
        if root.exists():
            old = root.with_name(f".{root.name}.old-{uuid.uuid4().hex[:8]}")
            os.rename(root, old)
            os.rename(tmp, root)
            shutil.rmtree(old, ignore_errors=True)
        else:
            try:
                os.rename(tmp, root)
            except OSError:
                if not _is_current(root, config):
                    raise
    except OSError as exc:
        raise SyntheticDataError(f"cannot write the synthetic data set to {root}: {exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root / MANIFEST_NAME


def load_synthetic(
    config: SyntheticConfig, root: PathLike, *, views: tuple[str, ...] = TWO_VIEWS
) -> Manifest:
    """Generate (if needed) and load the synthetic data set as a :class:`~.manifest.Manifest`."""
    manifest_path = generate_synthetic(config, root)
    return load_manifest(manifest_path, Path(root), views=views, strict=True)

"""Writers of tiny image files (PNG, DICOM, npy) and manifests for the data tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from dicom_files import mammo_dataset
from PIL import Image


def write_png(path: Path, array: np.ndarray) -> Path:
    """uint8 -> 8-bit PNG, uint16 -> 16-bit PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="PNG")
    return path


def write_dicom(
    path: Path,
    array: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    rle: bool = False,
    bits_stored: int = 16,
    laterality: str | None = None,
    laterality_tag: str = "ImageLaterality",
    view: str | None = None,
) -> Path:
    """A minimal single-frame mammography DICOM (uncompressed or RLE Lossless), 16-bit unsigned."""
    from pydicom.uid import RLELossless

    path.parent.mkdir(parents=True, exist_ok=True)
    ds = mammo_dataset(*array.shape, photometric=photometric, bits_stored=bits_stored)
    if laterality is not None:
        setattr(ds, laterality_tag, laterality)
    if view is not None:
        ds.ViewPosition = view
    arr = np.ascontiguousarray(array.astype(np.uint16))
    if rle:
        ds.compress(RLELossless, arr)
    else:
        ds.PixelData = arr.astype("<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def breast_image(h: int = 40, w: int = 30, *, laterality: str = "L", seed: int = 0) -> np.ndarray:
    """A uint16 image with a bright half-disc against the chest wall (left for L, right for R)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    inside = ((y - h / 2) / (0.4 * h)) ** 2 + (x / (0.7 * w)) ** 2 < 1
    img = np.where(inside, 30000 + rng.integers(0, 5000, (h, w)), rng.integers(0, 300, (h, w)))
    img = img.astype(np.uint16)
    return img[:, ::-1].copy() if laterality == "R" else img


def manifest_row(**overrides: Any) -> dict[str, Any]:
    """A valid manifest row; keyword arguments replace columns."""
    row = {
        "dataset": "test",
        "image_path": "a.png",
        "patient_id": "P1",
        "exam_id": "E1",
        "laterality": "L",
        "view": "CC",
        "malignant": 0,
        "benign": 0,
        "label_source": "pathology",
    }
    row.update(overrides)
    return row


@pytest.fixture
def two_view_rows() -> Callable[..., list[dict[str, Any]]]:
    """Rows of ``n`` patients x 2 breasts x (CC, MLO), paths ``P{i}_{lat}_{view}.png``."""

    def make(n: int = 4, malignant_patients: tuple[int, ...] = (0,)) -> list[dict[str, Any]]:
        rows = []
        for i in range(n):
            for lat in ("L", "R"):
                for view in ("CC", "MLO"):
                    rows.append(
                        manifest_row(
                            image_path=f"P{i}_{lat}_{view}.png",
                            patient_id=f"P{i}",
                            laterality=lat,
                            view=view,
                            malignant=int(i in malignant_patients and lat == "L"),
                        )
                    )
        return rows

    return make


@pytest.fixture
def png_root(tmp_path: Path) -> Callable[[list[dict[str, Any]]], Path]:
    """Write a breast-like 16-bit PNG for every row's image_path under tmp_path; return the root."""

    def make(rows: list[dict[str, Any]]) -> Path:
        for k, row in enumerate(rows):
            write_png(
                tmp_path / row["image_path"], breast_image(laterality=row["laterality"], seed=k)
            )
        return tmp_path

    return make


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows)


class Files:
    """The writers above, handed to tests as one fixture (test modules cannot import conftest)."""

    write_png = staticmethod(write_png)
    write_dicom = staticmethod(write_dicom)
    breast_image = staticmethod(breast_image)
    manifest_row = staticmethod(manifest_row)
    frame = staticmethod(frame)


@pytest.fixture
def files() -> type[Files]:
    return Files

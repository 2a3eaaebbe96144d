"""Writers of valid and broken image files for the bad-input tests (tests only)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from dicom_files import mammo_dataset
from PIL import Image


def png_bytes(array: np.ndarray) -> bytes:
    """uint8 -> 8-bit PNG, uint16 -> 16-bit PNG."""
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def dicom_bytes(
    array: np.ndarray | None,
    *,
    bits_allocated: int = 16,
    pixel_bytes: bytes | None = None,
) -> bytes:
    """A single-frame MONOCHROME2 mammography DICOM.

    Args:
        array: the pixels (rows x columns); ``None`` writes no Pixel Data element at all.
        bits_allocated: declared bits per pixel; with ``pixel_bytes`` of another depth the header
            and the data disagree (a wrong bit depth).
        pixel_bytes: raw Pixel Data to store instead of ``array``'s bytes.
    """
    shape = (8, 8) if array is None else array.shape
    ds = mammo_dataset(*shape, bits_allocated=bits_allocated, bits_stored=bits_allocated)
    if array is not None or pixel_bytes is not None:
        ds.PixelData = pixel_bytes if pixel_bytes is not None else array.tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def breast_image(seed: int, shape: tuple[int, int] = (40, 32)) -> np.ndarray:
    """A bright blob on the left on a dark background, uint8."""
    rng = np.random.default_rng(seed)
    h, w = shape
    y, x = np.mgrid[0:h, 0:w]
    blob = np.exp(-(((y - h / 2) / (h / 3)) ** 2) - ((x / (w / 2)) ** 2))
    return np.clip(200 * blob + rng.normal(0, 5, shape), 0, 255).astype(np.uint8)


BROKEN_KINDS = (
    "truncated_png",
    "garbage",
    "empty_file",
    "dicom_without_pixels",
    "dicom_wrong_bit_depth",
    "zero_size_npy",
    "colour_png",
    "nan_npy",
)


def write_broken(path_stem: Path, kind: str, cut: float = 0.5) -> Path:
    """One broken file of ``kind`` (see :data:`BROKEN_KINDS`); returns its path."""
    good = breast_image(0)
    if kind == "truncated_png":
        data = png_bytes(good)
        path, payload = path_stem.with_suffix(".png"), data[: max(1, int(len(data) * cut))]
    elif kind == "garbage":
        path, payload = path_stem.with_suffix(".png"), bytes(range(256)) * 3
    elif kind == "empty_file":
        path, payload = path_stem.with_suffix(".dcm"), b""
    elif kind == "dicom_without_pixels":
        path, payload = path_stem.with_suffix(".dcm"), dicom_bytes(None)
    elif kind == "dicom_wrong_bit_depth":  # header says 16 bits, data holds 8-bit pixels
        raw = good.astype(np.uint8).tobytes()
        path, payload = path_stem.with_suffix(".dcm"), dicom_bytes(good, pixel_bytes=raw)
    elif kind == "zero_size_npy":
        buf = io.BytesIO()
        np.save(buf, np.zeros((0, 32), dtype=np.float32))
        path, payload = path_stem.with_suffix(".npy"), buf.getvalue()
    elif kind == "colour_png":
        rgb = np.stack([good, good // 2, good // 3], axis=-1)
        path, payload = path_stem.with_suffix(".png"), png_bytes(rgb)
    elif kind == "nan_npy":
        buf = io.BytesIO()
        arr = good.astype(np.float32)
        arr[3, 3] = np.nan
        np.save(buf, arr)
        path, payload = path_stem.with_suffix(".npy"), buf.getvalue()
    else:
        raise ValueError(f"unknown broken kind {kind!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)
    return path

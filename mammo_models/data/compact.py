"""Compact items: what DataLoader workers hand over when the training device does the resizing.

At the paper's resolution a worker spends most of an item on three float32 passes over ~6 million
pixels per view (the resize of the stored image to the preset's scale, the resize of the jittered
window to the fixed window, the standardisation; ``benchmarks/input_pipeline.py``), then ships
20 MiB of float32 per view through shared memory. With ``compact`` items a worker does only what
needs the file or the CPU: decode (keeping the file's uint8/uint16), turn chest-wall-left, place
the breast box and draw the window, and ships an integer image plus its geometry;
:func:`~.prepare.prepare_batch` does the rest on the training device, batched.

One view of a compact item::

    {"pixels": (h, w) uint8 | uint16 | int16 | float32,
     "geometry": (7,) int64 = (rescale_h, rescale_w, flip, top, left, height, width),
     "fill": () float32 (NaN: the minimum of the rescaled pixels)}

read as: resize ``pixels`` to ``(rescale_h, rescale_w)`` (anti-aliased bilinear, as
:func:`~.images.resize`), mirror left-right when ``flip``, cut ``(top, left, height, width)``
padding with ``fill``, resize to the view's window and standardise. Per image scale factor
``f = config.scale / pixel_scale``:

* ``f == 1`` (full-resolution files at ``paper``): the worker mirrors and keeps only the part of
  the image inside the window (integer, ~10 MiB instead of 20 MiB of float32 per view);
* ``f > 1`` (the synthetic set, stored 16x smaller, at ``paper``): the worker ships the stored
  image (~50 KiB); the device upsamples it. The breast box needs the upsampled image on a coarse
  grid only (:func:`~.crops.bbox_from_grid`), which the worker interpolates at those grid points.
  These agree with the full resize to a few float32 roundings, so the box, and with it the window,
  is the worker path's unless a grid pixel lies within that rounding of the box threshold;
* ``f < 1``: the worker shrinks the image as the worker path does (the output is smaller than the
  file) and ships the float32 part inside the window.

Heatmap channels are not supported here (:class:`CompactDataset` refuses them); those runs keep
the worker path. Labels and ``"index"`` are as in :class:`~.dataset.MammoDataset`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from .crops import Box, bbox_from_grid, box_search_step
from .dataset import DataConfig, MammoDataset
from .errors import DataConfigError
from .images import chest_wall_on_left, read_pixels, rescale

GEOMETRY_FIELDS: tuple[str, ...] = (
    "rescale_h",
    "rescale_w",
    "flip",
    "top",
    "left",
    "height",
    "width",
)
"""The meaning of a compact view's ``"geometry"`` entries, in order."""


def _bilinear_taps(
    n_in: int, n_out: int, index: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Source taps and weights of torch's bilinear resize (``align_corners=False``, enlarging)."""
    scale = np.float32(n_in) / np.float32(n_out)
    src = np.maximum(scale * (index.astype(np.float32) + np.float32(0.5)) - np.float32(0.5), 0)
    i0 = src.astype(np.int64)
    i1 = np.minimum(i0 + 1, n_in - 1)
    w1 = (src - i0).astype(np.float32)
    return i0, i1, np.float32(1) - w1, w1


def upsampled_grid(image: np.ndarray, size: tuple[int, int], k: int) -> np.ndarray:
    """``resize(image, size)[::k, ::k]`` without computing the other pixels.

    Only for enlarging (no axis shrinks), where the resize is plain bilinear. Agrees with the
    full resize to a few float32 roundings of the image's range (the summation order differs).

    Args:
        image: (H, W) float32.
        size: (out_H, out_W), each at least the input's.
        k: grid step.

    Returns:
        (ceil(out_H / k), ceil(out_W / k)) float32.
    """
    H, W = image.shape
    out_h, out_w = size
    y0, y1, a0, a1 = _bilinear_taps(H, out_h, np.arange(0, out_h, k))
    x0, x1, b0, b1 = _bilinear_taps(W, out_w, np.arange(0, out_w, k))
    rows = (image[:, x0] * b0 + image[:, x1] * b1).astype(np.float32)  # (H, grid W)
    return (rows[y0] * a0[:, None] + rows[y1] * a1[:, None]).astype(np.float32)


class CompactDataset(Dataset[dict[str, Any]]):
    """The breasts of a :class:`~.dataset.MammoDataset` as compact items (see the module doc).

    Windows are drawn exactly as the wrapped dataset draws them (same seeds, same epoch, same
    train/eval mode), so :func:`~.prepare.prepare_batch` of a batch of these gives the wrapped
    dataset's batch to within the tolerance stated there.

    An index may be an int (the wrapped dataset's current epoch) or ``(index, epoch)`` as
    :class:`EpochTaggedSampler` yields it, which keeps training windows right with persistent
    workers (their copy of the dataset never sees :meth:`set_epoch`).

    Args:
        dataset: the worker-path dataset whose breasts, config and mode are used.

    Raises:
        DataConfigError: the dataset has heatmap channels.
    """

    def __init__(self, dataset: MammoDataset) -> None:
        if dataset.config.heatmaps:
            raise DataConfigError(
                "compact items (--feed device) carry the image channel only; use --feed workers "
                "for runs with heatmaps"
            )
        self.dataset = dataset

    @property
    def config(self) -> DataConfig:
        return self.dataset.config

    @property
    def views(self) -> tuple[str, ...]:
        return self.dataset.views

    @property
    def epoch(self) -> int:
        return self.dataset.epoch

    @property
    def positives(self) -> np.ndarray:
        return self.dataset.positives

    def set_epoch(self, epoch: int) -> None:
        """Forwarded to the wrapped dataset (the main process's copy)."""
        self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        i, epoch = (int(key[0]), int(key[1])) if isinstance(key, tuple | list) else (int(key), None)
        if not 0 <= i < len(self):
            raise IndexError(f"breast index {i} out of range for a dataset of {len(self)}")
        item: dict[str, Any] = {v.lower(): self.view(i, v, epoch=epoch) for v in self.views}
        item.update(self.dataset._labels(i))
        return item

    def view(
        self, i: int, view: str, *, epoch: int | None = None, tta: tuple[int, int] | None = None
    ) -> dict[str, torch.Tensor]:
        """One compact view of breast ``i`` (``epoch``/``tta`` as in ``MammoDataset.window_at``)."""
        ds, config = self.dataset, self.dataset.config
        row = ds.breasts.iloc[i]
        v = view.lower()
        path = ds._path(row[f"{v}_image_path"])
        pixel_scale = float(row.get(f"{v}_pixel_scale", 1.0) or 1.0)
        factor = config.scale / pixel_scale
        laterality = str(row["laterality"])
        pixels = read_pixels(path)
        if factor < 1.0:  # shrinking: the worker path's resize, then as at full resolution
            pixels, factor = rescale(pixels.astype(np.float32), factor), 1.0
        H, W = pixels.shape
        if factor == 1.0:
            shape = (H, W)
        else:
            shape = (max(1, round(H * factor)), max(1, round(W * factor)))
        flip = _flip(pixels, laterality, config.mirror)
        k = box_search_step(shape)
        if factor == 1.0:
            oriented = pixels[:, ::-1] if flip else pixels
            grid = oriented[::k, ::k].astype(np.float32)
        else:
            # resize then mirror (the worker path) equals mirror then resize up to rounding
            source = pixels[:, ::-1] if flip else pixels
            grid = upsampled_grid(source.astype(np.float32), shape, k)
        box: Box = bbox_from_grid(grid, k, shape, config.crop.threshold)
        window = ds.window_at(i, view, shape, box, epoch=epoch, tta=tta)
        if factor == 1.0:
            fill = float(pixels.min())
            t0, l0 = max(window.top, 0), max(window.left, 0)
            t1, l1 = min(window.bottom, H), min(window.right, W)
            t1, l1 = max(t1, t0), max(l1, l0)
            part = np.ascontiguousarray(oriented[t0:t1, l0:l1])
            geometry = (t1 - t0, l1 - l0, 0, window.top - t0, window.left - l0)
        else:
            fill, part = math.nan, pixels
            geometry = (*shape, int(flip), window.top, window.left)
        if not part.flags.writeable:  # Pillow's arrays are read-only; torch wants its own
            part = part.copy()
        return {
            "pixels": torch.from_numpy(part),
            "geometry": torch.tensor((*geometry, window.height, window.width), dtype=torch.int64),
            "fill": torch.tensor(fill, dtype=torch.float32),
        }


def _flip(image: np.ndarray, laterality: str, mode: str) -> bool:
    """Whether the worker path's :func:`~.images.orient` mirrors this image.

    Exact for ``laterality`` and ``none``; ``auto`` decides on the image as stored, which for an
    enlarged image is the unresized one (the same answer unless the breast is centred).
    """
    if mode == "laterality":
        if laterality not in ("L", "R"):
            raise ValueError(f"laterality must be 'L' or 'R', got {laterality!r}")
        return laterality == "R"
    if mode == "auto":
        return not chest_wall_on_left(image.astype(np.float32))
    return False


def collate_compact(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Batch compact items: per view, ``pixels`` as a list (sizes differ), the rest stacked.

    Returns:
        ``{"cc": {"pixels": [B x (h, w)], "geometry": (B, 7), "fill": (B,)}, ...,
        "malignant": (B,), "benign": (B,), "index": (B,)}``
    """
    out: dict[str, Any] = {}
    for key, first in items[0].items():
        if isinstance(first, dict):
            out[key] = {
                "pixels": [it[key]["pixels"] for it in items],
                "geometry": torch.stack([it[key]["geometry"] for it in items]),
                "fill": torch.stack([it[key]["fill"] for it in items]),
            }
        else:
            out[key] = torch.stack([it[key] for it in items])
    return out


class EpochTaggedSampler(Sampler[tuple[int, int]]):
    """Yields ``(index, epoch)``: the wrapped sampler's indices tagged with the dataset's epoch.

    The epoch is read in the main process when an epoch's iteration starts, so workers that
    persist across epochs draw the windows of the right epoch.
    """

    def __init__(self, sampler: Sampler[int], dataset: CompactDataset | MammoDataset) -> None:
        self.sampler = sampler
        self.dataset = dataset

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = int(self.dataset.epoch)
        return ((int(i), epoch) for i in self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)  # type: ignore[arg-type]

    def set_epoch(self, epoch: int, **kwargs: Any) -> None:
        """Forwarded to the wrapped sampler."""
        self.sampler.set_epoch(epoch, **kwargs)  # type: ignore[attr-defined]

"""The device half of the compact input path: compact batches -> model batches, on the device.

:func:`prepare_batch` takes a batch of :mod:`.compact` items (integer images and their geometry,
as the DataLoader workers made them), moves the images to the training device and there, per
view of every breast: converts to float32, resizes to the preset's scale, mirrors, cuts the window
(padding with the fill value), resizes it to the fixed window and standardises it. The result is
the model contract of :class:`~.dataset.MammoDataset`::

    {"cc": (B, 1, H, W) float32, "mlo": ..., "malignant": (B,), "benign": (B,), "index": (B,)}

Each image is a few tensor ops; windows differ in size per breast, so the loop runs over the
batch, which costs a few kernel launches per image on a GPU against ~0.3 s of CPU per image in
a worker.

Agreement with the worker path. The operations are the worker path's, in its order, through the
same ``torch.nn.functional.interpolate`` calls; on the CPU the windows are therefore identical up
to the standardisation, which here sums in float64 over the whole window instead of in float32
blocks (differences of about 1e-6 of a standard deviation), and the breast box, which a worker
places from a grid interpolated on its own (:func:`~.compact.upsampled_grid`). On a GPU the
interpolation kernels round differently (about 1e-6 relative). The test
``tests/mammo_models/data/test_compact.py`` holds the two paths to 1e-4 on a small synthetic set.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from .dataset import DataConfig

_LABEL_KEYS: tuple[str, ...] = ("malignant", "benign", "index")


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """:func:`~.images.resize` of one (H, W) tensor, on its device."""
    H, W = x.shape
    if (H, W) == tuple(size):
        return x
    shrink = size[0] < H or size[1] < W
    return F.interpolate(
        x[None, None], size=size, mode="bilinear", antialias=shrink, align_corners=False
    )[0, 0]


def standardize(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Zero mean, unit standard deviation over the whole tensor (float64 sums, float32 out).

    A constant window becomes zeros, as in :func:`~.images.standardize`.
    """
    n = x.numel()
    mean = x.sum(dtype=torch.float64) / n
    centred = x - mean.to(x.dtype)
    var = centred.double().square().sum() / n
    scale = 1.0 / var.sqrt().clamp_min(eps)
    return centred * scale.to(x.dtype)


def prepare_view(
    pixels: torch.Tensor, geometry: list[int], fill: float, out_size: tuple[int, int]
) -> torch.Tensor:
    """One view of one breast: compact pixels -> (H, W) standardised window, on pixels' device.

    Args:
        pixels: (h, w) integer or float image.
        geometry: the 7 ints of :data:`~.compact.GEOMETRY_FIELDS`.
        fill: padding value; NaN = the minimum of the rescaled pixels.
        out_size: the view's window (H, W).
    """
    rescale_h, rescale_w, flip, top, left, height, width = (int(g) for g in geometry)
    x = pixels.to(torch.float32)
    if x.numel():
        x = _resize(x, (rescale_h, rescale_w))
    pad: torch.Tensor | float = x.min() if math.isnan(fill) else fill
    if flip:
        x = x.flip(-1)
    H, W = x.shape
    t0, l0 = max(top, 0), max(left, 0)
    t1, l1 = min(top + height, H), min(left + width, W)
    if (t0, l0, t1, l1) == (top, left, top + height, left + width):
        crop = x[t0:t1, l0:l1]
    else:
        crop = torch.empty((height, width), dtype=torch.float32, device=x.device)
        crop.copy_(torch.as_tensor(pad, dtype=torch.float32, device=x.device).expand_as(crop))
        if t1 > t0 and l1 > l0:
            crop[t0 - top : t1 - top, l0 - left : l1 - left] = x[t0:t1, l0:l1]
    return standardize(_resize(crop, out_size))


def prepare_batch(
    batch: dict[str, Any], config: DataConfig, device: torch.device | str
) -> dict[str, torch.Tensor]:
    """A compact batch (:func:`~.compact.collate_compact`) as the model's batch on ``device``.

    Images go to the device with ``non_blocking=True`` (effective from pinned memory); the
    geometry stays on the host, so no step waits for the device to read it.

    Returns:
        ``{"cc": (B, 1, H, W) float32, ..., "malignant": (B,), "benign": (B,), "index": (B,)}``
        on ``device``, views as in the batch.
    """
    device = torch.device(device)
    out: dict[str, torch.Tensor] = {}
    for key, value in batch.items():
        if key in _LABEL_KEYS:
            out[key] = value.to(device, non_blocking=True)
            continue
        out_size = config.window(key.upper())
        geometry = value["geometry"].tolist()
        fills = value["fill"].tolist()
        views = [
            prepare_view(p.to(device, non_blocking=True), g, f, out_size)
            for p, g, f in zip(value["pixels"], geometry, fills, strict=True)
        ]
        out[key] = torch.stack(views)[:, None]  # (B, 1, H, W)
    return out

"""Crop-window geometry: where the fixed-size window of each view goes in a (scaled) image.

The paper feeds windows of a fixed size per view: CC 2677 x 1942 and MLO 2974 x 1748 pixels
(H x W) at full resolution. A preset's scale factor shrinks the image first and the window with
it (:func:`window_size`), so the same geometry holds at every resolution.

Placement, in the coordinates of an image already turned chest-wall-left:

* **Breast box.** Threshold the image at ``threshold`` of its robust range (minimum to 99.5th
  percentile) and keep the largest connected component, so lead markers and labels in the
  background do not stretch the box (:func:`breast_bbox`).
* **Centred (evaluation).** Vertically the window is centred on the breast box; horizontally its
  left edge sits at the box's left edge (the chest wall), so tissue next to the chest wall is never
  cut and a breast deeper than the window loses its nipple side. Then the window is clamped into the
  image (:func:`centered_window`).
* **Random (training and test-time augmentation).** Starting from the centred window, the size is
  jittered (height and width each by a uniform integer in ``[-n, n]``, with ``n`` = the scaled
  ``CropConfig.size_px`` along the window's longer side and proportionally less along the shorter
  one), then the location (each axis by a uniform integer in ``[-s, s]``, ``s`` = scaled
  ``CropConfig.shift_px``), then clamped into the image. The window of jittered size is cut and
  resized (anti-aliased bilinear) to the fixed window size. Defaults of 100 full-resolution pixels
  for both follow the public NYU code (nyukat/breast_cancer_classifier).
* **Small images.** Along an axis where the image is smaller than the window, the window covers the
  whole image and the rest is padded: with the image's minimum value (the background) for the
  image channel and 0 for heatmaps (:func:`cut_window`). Horizontally the image stays at the left
  (chest wall) edge; vertically it is centred on the breast, within the jitter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import DataConfigError
from .images import resize

FULL_WINDOWS: dict[str, tuple[int, int]] = {"CC": (2677, 1942), "MLO": (2974, 1748)}
"""Window size (H, W) per view at full resolution (paper, section 3)."""


def window_size(view: str, scale: float) -> tuple[int, int]:
    """Window (H, W) of a view after scaling the image by ``scale`` (rounded, at least 1 pixel).

    Raises:
        DataConfigError: unknown view or non-positive scale.
    """
    if view not in FULL_WINDOWS:
        raise DataConfigError(
            f"window size: unknown view {view!r}; expected one of {tuple(FULL_WINDOWS)}"
        )
    if not scale > 0:
        raise DataConfigError(f"window size: scale must be > 0, got {scale!r}")
    H, W = FULL_WINDOWS[view]
    return (max(1, round(H * scale)), max(1, round(W * scale)))


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixel coordinates; ``bottom`` and ``right`` are exclusive."""

    top: int
    left: int
    bottom: int
    right: int

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def center_y(self) -> float:
        return (self.top + self.bottom) / 2


@dataclass(frozen=True)
class Window:
    """A crop window: top-left corner (may be negative: padding) and size in image pixels."""

    top: int
    left: int
    height: int
    width: int

    @property
    def bottom(self) -> int:
        return self.top + self.height

    @property
    def right(self) -> int:
        return self.left + self.width


@dataclass(frozen=True)
class CropConfig:
    """Jitter of the crop window, in full-resolution pixels (scaled with the image).

    Attributes:
        shift_px: largest shift of the window's location, each axis, both directions.
        size_px: largest change of the window's longer side, both directions; the shorter side
            changes proportionally to the window's aspect ratio.
        threshold: breast-box threshold as a fraction of the image's robust intensity range.
    """

    shift_px: float = 100.0
    size_px: float = 100.0
    threshold: float = 0.1

    def __post_init__(self) -> None:
        if not self.shift_px >= 0:
            raise DataConfigError(f"CropConfig.shift_px must be >= 0, got {self.shift_px!r}")
        if not self.size_px >= 0:
            raise DataConfigError(f"CropConfig.size_px must be >= 0, got {self.size_px!r}")
        if not 0 < self.threshold < 1:
            raise DataConfigError(f"CropConfig.threshold must be in (0, 1), got {self.threshold!r}")

    def jitter_px(self, scale: float) -> tuple[int, int]:
        """(shift, size) jitter in pixels of an image scaled by ``scale``."""
        return round(self.shift_px * scale), round(self.size_px * scale)


BOX_SEARCH_SIDE = 256
"""The breast box is searched on every k-th pixel, k = (shorter image side) // this (at least 1)."""


def breast_bbox(image: np.ndarray, threshold: float = 0.1) -> Box:
    """Bounding box of the breast: the largest bright connected component.

    A full-size mammogram is searched on a strided grid (every 8th pixel of a 3000 x 2200
    image, see :data:`BOX_SEARCH_SIDE`), which puts the box edges within that many pixels, far
    inside the window's 100-pixel jitter, at a hundredth of the cost. Images whose shorter side
    is under twice ``BOX_SEARCH_SIDE`` (every scaled preset below full resolution) are searched
    pixel by pixel.

    Args:
        image: (H, W), bright = tissue, background dark (as returned by ``read_image``).
        threshold: fraction of the robust range (min to 99.5th percentile) above the minimum.

    Returns:
        The component's box; the whole image when nothing stands out (a constant image).
    """
    H, W = image.shape
    k = box_search_step((H, W))
    return bbox_from_grid(image[::k, ::k], k, (H, W), threshold)


def box_search_step(image_shape: Sequence[int]) -> int:
    """The grid step :func:`breast_bbox` searches an image of this (H, W) with."""
    return max(1, min(int(image_shape[-2]), int(image_shape[-1])) // BOX_SEARCH_SIDE)


def bbox_from_grid(
    grid: np.ndarray, k: int, image_shape: Sequence[int], threshold: float = 0.1
) -> Box:
    """:func:`breast_bbox` from the search grid alone: ``grid = image[::k, ::k]`` as float32.

    Lets a caller that never materialises the full image (a worker that leaves the resize to the
    training device) place the box from the few grid pixels it computes.
    """
    from scipy import ndimage

    H, W = int(image_shape[-2]), int(image_shape[-1])
    lo = float(grid.min())
    hi = float(np.percentile(grid, 99.5))
    if hi <= lo:
        return Box(0, 0, H, W)
    mask = grid > lo + threshold * (hi - lo)
    labels, n = ndimage.label(mask)
    if n == 0:
        return Box(0, 0, H, W)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    largest = labels == int(sizes.argmax())
    rows = np.flatnonzero(largest.any(axis=1))
    cols = np.flatnonzero(largest.any(axis=0))
    # grid index i stands for image rows [i k, (i + 1) k)
    return Box(
        int(rows[0]) * k,
        int(cols[0]) * k,
        min(H, (int(rows[-1]) + 1) * k),
        min(W, (int(cols[-1]) + 1) * k),
    )


def _clamp(start: int, image_len: int, win_len: int) -> int:
    """Keep a window inside the image, or, when the image is smaller, the image inside it."""
    lo, hi = (0, image_len - win_len) if image_len >= win_len else (image_len - win_len, 0)
    return int(min(max(start, lo), hi))


def centered_window(image_shape: Sequence[int], box: Box, size: tuple[int, int]) -> Window:
    """The evaluation window: centred on the breast vertically, at the chest wall horizontally.

    Args:
        image_shape: (H, W) of the (scaled, chest-wall-left) image.
        box: the breast box from :func:`breast_bbox`.
        size: window (height, width).
    """
    H, W = int(image_shape[-2]), int(image_shape[-1])
    h, w = int(size[0]), int(size[1])
    top = _clamp(round(box.center_y - h / 2), H, h)
    left = _clamp(box.left, W, w)
    return Window(top, left, h, w)


def random_window(
    image_shape: Sequence[int],
    box: Box,
    size: tuple[int, int],
    rng: np.random.Generator,
    *,
    shift: int,
    size_noise: int,
) -> Window:
    """A jittered window around the centred one (training and test-time augmentation).

    Args:
        image_shape: (H, W) of the scaled image.
        box: the breast box.
        size: the fixed output window (height, width).
        rng: the only source of randomness, so a seeded generator gives a repeatable window.
        shift: largest location jitter in pixels, each axis.
        size_noise: largest size jitter of the longer window side in pixels.

    Returns:
        A window of jittered size; cut it with :func:`cut_window` to get ``size`` back.
    """
    H, W = int(image_shape[-2]), int(image_shape[-1])
    h, w = int(size[0]), int(size[1])
    base = centered_window((H, W), box, (h, w))
    long_side = max(h, w)
    noise_h = round(size_noise * h / long_side)
    noise_w = round(size_noise * w / long_side)
    dh, dw, dy, dx = rng.uniform(-1.0, 1.0, size=4)
    new_h = max(1, h + round(dh * noise_h))
    new_w = max(1, w + round(dw * noise_w))
    # keep the centre of the base window, then shift it
    top = base.top + (h - new_h) // 2 + round(dy * shift)
    left = base.left + (w - new_w) // 2 + round(dx * shift)
    return Window(_clamp(top, H, new_h), _clamp(left, W, new_w), new_h, new_w)


def cut_window(
    channels: np.ndarray, window: Window, out_size: tuple[int, int], fill: Sequence[float]
) -> np.ndarray:
    """Cut a window from stacked channels, padding outside the image, and resize to ``out_size``.

    Args:
        channels: (C, H, W) float32; every channel is cut with the same window.
        window: where to cut, possibly reaching outside the image.
        out_size: (height, width) of the result.
        fill: one padding value per channel (image minimum for the image, 0 for heatmaps).

    Returns:
        (C, out_H, out_W) float32.
    """
    C, H, W = channels.shape
    if len(fill) != C:
        raise ValueError(f"cut_window: need one fill value per channel ({C}), got {len(fill)}")
    t0, l0 = max(window.top, 0), max(window.left, 0)
    t1, l1 = min(window.bottom, H), min(window.right, W)
    if (t0, l0, t1, l1) == (window.top, window.left, window.bottom, window.right):
        crop = channels[:, t0:t1, l0:l1]
    else:
        crop = np.empty((C, window.height, window.width), dtype=np.float32)
        crop[:] = np.asarray(fill, dtype=np.float32)[:, None, None]
        if t1 > t0 and l1 > l0:
            crop[:, t0 - window.top : t1 - window.top, l0 - window.left : l1 - window.left] = (
                channels[:, t0:t1, l0:l1]
            )
    return resize(crop, out_size)

"""Torch datasets of breasts (paired CC + MLO views, or one view) and a deterministic loader.

One item is one breast::

    {"cc": (C, H_cc, W_cc) float32, "mlo": (C, H_mlo, W_mlo) float32,
     "malignant": () float32, "benign": () float32, "index": () int64}

so torch's default collate gives the batch of the model contract (``"cc"``: (B, C, H, W), labels
and ``"index"``: (B,)). A uni-view dataset (``views=("CC",)``) has only its view's key.
``C`` is 1 (the image) or 3 (image, benign heatmap, malignant heatmap) with ``heatmaps=True``.

Per view, an item is made by: read the file (:mod:`.images`); resize by
``config.scale / pixel_scale`` (anti-aliased; ``pixel_scale`` is the manifest column, 1.0 for
full-resolution images); turn chest-wall-left (right breasts mirrored); find the breast box; cut
the window (:mod:`.crops`: centred in eval mode, jittered in train mode); standardise the image
channel over the window (zero mean, unit std); heatmap channels stay in [0, 1].

Randomness. Nothing here reads a global RNG. A training window is drawn from a generator seeded
by ``(config.seed, epoch, index, view)``, a test-time augmentation window by
``(tta_seed, index, view, k)``. Items are therefore pure functions of those numbers, identical
with any number of DataLoader workers and after a resume (call :meth:`MammoDataset.set_epoch`, or
:func:`set_epoch` on the loader, before each epoch).
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .crops import CropConfig, Window, breast_bbox, centered_window, cut_window, random_window
from .crops import window_size as _window_size
from .errors import DataConfigError
from .images import MIRROR_MODES, ImageCache, orient, read_heatmap, read_image, rescale, resize
from .images import standardize as _standardize
from .manifest import TWO_VIEWS, Manifest, resolve

PathLike = str | os.PathLike[str]

_VIEW_ID = {"CC": 0, "MLO": 1}
_TRAIN_STREAM, _TTA_STREAM = 1, 2
DEFAULT_TTA = 10
"""Test-time augmentations per breast (paper, section 6.2)."""


@dataclass(frozen=True)
class DataConfig:
    """How images become model inputs.

    Attributes:
        scale: resolution relative to the paper's full-resolution images (1.0 = paper, 1/16 =
            demo); every image is resized by ``scale / pixel_scale`` before its window is cut.
        windows: window (H, W) per view; ``None`` = the paper's windows times ``scale``.
        heatmaps: add the benign and malignant heatmap channels (C = 3).
        crop: window jitter and breast-box threshold (see :mod:`.crops`).
        mirror: one of :data:`~.images.MIRROR_MODES` (``"laterality"`` mirrors right breasts).
        cache_mb: keep decoded, scaled images in memory up to this size (0 = off). Per process:
            every DataLoader worker has its own cache.
        seed: seed of the training-window jitter.
    """

    scale: float = 1.0
    windows: dict[str, tuple[int, int]] | None = None
    heatmaps: bool = False
    crop: CropConfig = field(default_factory=CropConfig)
    mirror: str = "laterality"
    cache_mb: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not (isinstance(self.scale, int | float) and self.scale > 0):
            raise DataConfigError(f"DataConfig.scale must be > 0, got {self.scale!r}")
        if self.mirror not in MIRROR_MODES:
            raise DataConfigError(
                f"DataConfig.mirror must be one of {MIRROR_MODES}, got {self.mirror!r}"
            )
        if not self.cache_mb >= 0:
            raise DataConfigError(f"DataConfig.cache_mb must be >= 0, got {self.cache_mb!r}")
        for view, size in (self.windows or {}).items():
            if view not in _VIEW_ID:
                raise DataConfigError(
                    f"DataConfig.windows: unknown view {view!r}; expected CC or MLO"
                )
            if len(size) != 2 or min(int(size[0]), int(size[1])) < 1:
                raise DataConfigError(
                    f"DataConfig.windows[{view!r}] must be (height, width) >= 1, got {size!r}"
                )

    @property
    def channels(self) -> int:
        """Input channels of the model: 3 with heatmaps, else 1."""
        return 3 if self.heatmaps else 1

    def window(self, view: str) -> tuple[int, int]:
        """Output window (H, W) of a view."""
        if self.windows and view in self.windows:
            h, w = self.windows[view]
            return (int(h), int(w))
        return _window_size(view, self.scale)


@dataclass(frozen=True)
class _Prepared:
    """One view of one breast, scaled and chest-wall-left, before windowing."""

    channels: np.ndarray  # (C, H, W) float32: image (raw scale), then heatmaps in [0, 1]
    fill: tuple[float, ...]  # padding value per channel
    box: Any  # crops.Box of the breast


class MammoDataset(Dataset[dict[str, torch.Tensor]]):
    """Breasts of a manifest as model inputs, paired or single view.

    Args:
        breasts: breast table from :func:`~.manifest.pair_breasts` (or ``Manifest.split``); the
            item ``"index"`` is the row position in this table.
        data_root: directory the paths are relative to.
        config: image scale, windows, heatmaps, jitter.
        views: ``("CC", "MLO")`` or one view.
        train: start in train mode (random windows) instead of eval mode (centred windows).

    Raises:
        DataConfigError: a needed column is missing, or heatmaps are asked for and a breast has
            no heatmap path (the message names the breast and its manifest row).
    """

    def __init__(
        self,
        breasts: pd.DataFrame,
        data_root: PathLike | None,
        config: DataConfig | None = None,
        *,
        views: Sequence[str] = TWO_VIEWS,
        train: bool = False,
    ) -> None:
        self.config = config or DataConfig()
        self.views = tuple(views)
        if not self.views or any(v not in _VIEW_ID for v in self.views):
            raise DataConfigError(f"views must be a subset of ('CC', 'MLO'); got {views!r}")
        self.breasts = breasts.reset_index(drop=True)
        self.data_root = None if data_root is None else Path(data_root)
        self.training = bool(train)
        self.epoch = 0
        self._check_columns()
        self._cache = (
            ImageCache(int(self.config.cache_mb * 2**20)) if self.config.cache_mb > 0 else None
        )

    @classmethod
    def from_manifest(
        cls,
        manifest: Manifest,
        split: str | None = None,
        config: DataConfig | None = None,
        *,
        views: Sequence[str] | None = None,
        train: bool | None = None,
    ) -> MammoDataset:
        """Dataset of one split (all breasts when ``split`` is None); train mode for ``"train"``."""
        breasts = manifest.breasts if split is None else manifest.split(split)
        return cls(
            breasts,
            manifest.data_root,
            config,
            views=manifest.views if views is None else views,
            train=(split == "train") if train is None else train,
        )

    def _check_columns(self) -> None:
        needed = ["laterality", "malignant", "benign"]
        for v in self.views:
            needed.append(f"{v.lower()}_image_path")
            if self.config.heatmaps:
                needed += [
                    f"{v.lower()}_heatmap_benign_path",
                    f"{v.lower()}_heatmap_malignant_path",
                ]
        missing = [c for c in needed if c not in self.breasts.columns]
        if missing:
            raise DataConfigError(
                f"breast table lacks column(s) {', '.join(missing)} needed for views "
                f"{self.views}; build it with pair_breasts(images, views={self.views})"
            )
        if self.config.heatmaps:
            for v in self.views:
                for kind in ("benign", "malignant"):
                    col = f"{v.lower()}_heatmap_{kind}_path"
                    empty = self.breasts[col].fillna("").astype(str).str.strip() == ""
                    if empty.any():
                        i = int(np.flatnonzero(empty.to_numpy())[0])
                        row = self.breasts.get(
                            f"{v.lower()}_row", pd.Series([None] * len(self.breasts))
                        )[i]
                        raise DataConfigError(
                            f"heatmaps=True but {int(empty.sum())} breast(s) have no {kind} "
                            f"heatmap for {v}, first: breast {self.breasts.get('breast_id', self.breasts.index)[i]!r} "
                            f"(manifest row {row}); fill heatmap_{kind}_path or use heatmaps=False"
                        )

    # -- modes ---------------------------------------------------------------------------------

    def train(self, mode: bool = True) -> MammoDataset:
        """Random windows (``mode=True``) or centred windows; returns self, like ``nn.Module``."""
        self.training = bool(mode)
        return self

    def eval(self) -> MammoDataset:
        """Centred windows, no augmentation."""
        return self.train(False)

    def set_epoch(self, epoch: int) -> None:
        """Select the training jitter of an epoch (windows are a pure function of it)."""
        if epoch < 0:
            raise DataConfigError(f"epoch must be >= 0, got {epoch!r}")
        self.epoch = int(epoch)

    @property
    def positives(self) -> np.ndarray:
        """(N,) bool: breast has a biopsy-confirmed finding (malignant or benign)."""
        return ((self.breasts["malignant"] == 1) | (self.breasts["benign"] == 1)).to_numpy()

    def __len__(self) -> int:
        return len(self.breasts)

    # -- loading -------------------------------------------------------------------------------

    def _path(self, value: Any) -> Path:
        return resolve(self.data_root, str(value))

    def _prepare(self, i: int, view: str) -> _Prepared:
        row = self.breasts.iloc[i]
        v = view.lower()
        path = self._path(row[f"{v}_image_path"])
        pixel_scale = float(row.get(f"{v}_pixel_scale", 1.0) or 1.0)
        factor = self.config.scale / pixel_scale
        laterality = str(row["laterality"])
        heatmaps = (
            tuple(self._path(row[f"{v}_heatmap_{kind}_path"]) for kind in ("benign", "malignant"))
            if self.config.heatmaps
            else ()
        )
        key = ("view", str(path), factor, self.config.mirror, laterality, tuple(map(str, heatmaps)))
        cached = self._cache.get(key) if self._cache is not None else None
        if cached is None:
            cached = self._load(path, factor, laterality, heatmaps)
            if self._cache is not None:
                self._cache.put(key, cached)
        return _Prepared(*cached)

    def _load(
        self, path: Path, factor: float, laterality: str, heatmaps: tuple[Path, ...]
    ) -> tuple[np.ndarray, tuple[float, ...], Any]:
        """Read, scale and orient one view (and its heatmaps): ``(channels, fill, box)``.

        The image and heatmaps are stacked once here (a view, without heatmaps), so every later
        window is cut from the cached stack without copying the whole image again.
        """
        image, flipped = orient(rescale(read_image(path), factor), laterality, self.config.mirror)
        box = breast_bbox(image, self.config.crop.threshold)
        fill = (float(image.min()),) + (0.0,) * len(heatmaps)
        if not heatmaps:
            return image[None], fill, box
        channels = np.empty((1 + len(heatmaps), *image.shape), dtype=np.float32)
        channels[0] = image
        for c, hpath in enumerate(heatmaps, start=1):
            heat = resize(read_heatmap(hpath), image.shape)
            channels[c] = heat[:, ::-1] if flipped else heat
        return channels, fill, box

    def _render(self, prepared: _Prepared, view: str, window: Window) -> torch.Tensor:
        crop = cut_window(prepared.channels, window, self.config.window(view), prepared.fill)
        if np.may_share_memory(crop, prepared.channels):  # never hand out a view of the cache
            out = np.empty(crop.shape, dtype=np.float32)
            out[1:] = crop[1:]
        else:
            out = crop
        _standardize(crop[0], out=out[0])
        return torch.from_numpy(out)

    def window(self, i: int, view: str, *, tta: tuple[int, int] | None = None) -> Window:
        """The window item ``i`` uses for ``view`` now (or for TTA ``(seed, k)``), for inspection."""
        prepared = self._prepare(i, view)
        return self._window(i, view, prepared, tta)

    def _window(
        self, i: int, view: str, prepared: _Prepared, tta: tuple[int, int] | None
    ) -> Window:
        return self.window_at(i, view, prepared.channels.shape[-2:], prepared.box, tta=tta)

    def window_at(
        self,
        i: int,
        view: str,
        image_shape: Sequence[int],
        box: Any,
        *,
        tta: tuple[int, int] | None = None,
        epoch: int | None = None,
    ) -> Window:
        """The window of item ``i``'s ``view`` in a scaled image of ``image_shape`` with ``box``.

        The same draw as ``__getitem__`` makes, for callers that place the box themselves
        (:mod:`.compact`); ``epoch`` overrides :attr:`epoch` (persistent workers do not see
        :meth:`set_epoch`, so the epoch travels with the index there).
        """
        if tta is not None:
            seed, k = tta
            rng = np.random.default_rng([int(seed), _TTA_STREAM, i, _VIEW_ID[view], int(k)])
        elif self.training:
            epoch = self.epoch if epoch is None else int(epoch)
            rng = np.random.default_rng(
                [int(self.config.seed), _TRAIN_STREAM, epoch, i, _VIEW_ID[view]]
            )
        else:
            return centered_window(image_shape, box, self.config.window(view))
        shift, size_noise = self.config.crop.jitter_px(self.config.scale)
        return random_window(
            image_shape, box, self.config.window(view), rng, shift=shift, size_noise=size_noise
        )

    def _labels(self, i: int) -> dict[str, torch.Tensor]:
        row = self.breasts.iloc[i]
        return {
            "malignant": torch.tensor(float(row["malignant"]), dtype=torch.float32),
            "benign": torch.tensor(float(row["benign"]), dtype=torch.float32),
            "index": torch.tensor(i, dtype=torch.int64),
        }

    def _item(self, i: int, tta: tuple[int, int] | None) -> dict[str, torch.Tensor]:
        if not 0 <= i < len(self):
            raise IndexError(f"breast index {i} out of range for a dataset of {len(self)}")
        item: dict[str, torch.Tensor] = {}
        for view in self.views:
            prepared = self._prepare(i, view)
            item[view.lower()] = self._render(prepared, view, self._window(i, view, prepared, tta))
        item.update(self._labels(i))
        return item

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self._item(int(i), None)

    def tta_item(self, i: int, k: int, seed: int = 0) -> dict[str, torch.Tensor]:
        """The ``k``-th test-time augmentation of breast ``i`` (random window, any mode)."""
        return self._item(int(i), (seed, k))

    def tta_views(self, i: int, n: int = DEFAULT_TTA, seed: int = 0) -> dict[str, torch.Tensor]:
        """``n`` test-time augmentations of breast ``i`` as one batch.

        Augmentation ``k`` depends only on ``(seed, i, view, k)``, so predictions repeat and the
        first ``m`` of ``n`` augmentations equal those of ``n = m``.

        Returns:
            ``{"cc": (n, C, H, W), "mlo": (n, C, H, W), "malignant": (n,), "benign": (n,),
            "index": (n,)}`` (views as configured).
        """
        if n < 1:
            raise DataConfigError(f"n (test-time augmentations) must be >= 1, got {n!r}")
        items = [self.tta_item(i, k, seed) for k in range(n)]
        return {key: torch.stack([it[key] for it in items]) for key in items[0]}


class TTADataset(Dataset[dict[str, torch.Tensor]]):
    """Every breast ``n`` times with random windows: item ``j`` is augmentation ``j % n`` of
    breast ``j // n``.

    Average the predictions of items with the same ``"index"`` to get the paper's 10x TTA
    prediction; batching and workers do not change any item.
    """

    def __init__(self, dataset: MammoDataset, n: int = DEFAULT_TTA, seed: int = 0) -> None:
        if n < 1:
            raise DataConfigError(f"n (test-time augmentations) must be >= 1, got {n!r}")
        self.dataset, self.n, self.seed = dataset, int(n), int(seed)

    def __len__(self) -> int:
        return len(self.dataset) * self.n

    def __getitem__(self, j: int) -> dict[str, torch.Tensor]:
        i, k = divmod(int(j), self.n)
        return self.dataset.tta_item(i, k, self.seed)


# --------------------------------------------------------------------------------------------
# Loader
# --------------------------------------------------------------------------------------------


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn``: seed Python's and NumPy's global RNGs from the worker's torch seed.

    The datasets here do not use global RNGs; this keeps user transforms that do repeatable.
    """
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def make_loader(
    dataset: Dataset,
    *,
    batch_size: int = 4,
    sampler: Sampler[int] | None = None,
    shuffle: bool = False,
    num_workers: int = 0,
    seed: int = 0,
    drop_last: bool = False,
    pin_memory: bool = False,
    persistent_workers: bool = False,
    prefetch_factor: int | None = None,
    collate_fn: Any = None,
) -> DataLoader:
    """A DataLoader whose batches depend only on the seeds, not on the number of workers.

    Workers are not persistent by default, so a :func:`set_epoch` before each epoch reaches
    them. Persistent workers keep their copy of the dataset, and with it its epoch: use them only
    with a sampler that carries the epoch to the workers (:class:`~.compact.EpochTaggedSampler`).

    Args:
        dataset: usually a :class:`MammoDataset` or :class:`TTADataset`.
        batch_size: 4 in the paper.
        sampler: e.g. :class:`~.sampler.BalancedEpochSampler`; excludes ``shuffle``.
        shuffle: shuffle with a generator seeded by ``seed`` (when no sampler is given).
        num_workers: worker processes.
        seed: seed of the loader's generator (shuffling and workers' base seed).
        pin_memory: page-locked batches, so a ``non_blocking`` copy to a GPU overlaps compute.
        persistent_workers: keep worker processes between epochs (ignored without workers).
        prefetch_factor: batches each worker prepares ahead (ignored without workers).
        collate_fn: batching function; ``None`` = torch's default collate.
    """
    if sampler is not None and shuffle:
        raise DataConfigError("make_loader: give either a sampler or shuffle=True, not both")
    if batch_size < 1:
        raise DataConfigError(f"make_loader: batch_size must be >= 1, got {batch_size!r}")
    generator = torch.Generator()
    generator.manual_seed(int(seed))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        shuffle=shuffle,
        num_workers=num_workers,
        worker_init_fn=seed_worker,
        generator=generator,
        drop_last=drop_last,
        pin_memory=pin_memory,
        persistent_workers=persistent_workers and num_workers > 0,
        prefetch_factor=prefetch_factor if num_workers > 0 else None,
        collate_fn=collate_fn,
    )


def set_epoch(loader: DataLoader, epoch: int) -> None:
    """Call ``set_epoch(epoch)`` on the loader's sampler and dataset where they have one."""
    seen: set[int] = set()
    for obj in (loader.sampler, getattr(loader.batch_sampler, "sampler", None), loader.dataset):
        if obj is not None and id(obj) not in seen and hasattr(obj, "set_epoch"):
            seen.add(id(obj))
            obj.set_epoch(epoch)

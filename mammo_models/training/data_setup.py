"""Data of one run: splits, the epoch sampler and loader, and the LCA evaluation subset E."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from lca_toolkit import distributed

from ..data import (
    BalancedEpochSampler,
    DataConfig,
    MammoDataset,
    TTADataset,
    get_preset,
    load_manifest,
    load_synthetic,
    make_loader,
    with_testbed,
)
from ..data.compact import CompactDataset, EpochTaggedSampler, collate_compact
from ..data.manifest import Manifest
from ..data.prepare import prepare_batch
from .config import ExperimentConfig
from .evaluate import to_device

VIEWS: dict[str, tuple[str, ...]] = {
    "uni_cc": ("CC",),
    "uni_mlo": ("MLO",),
    "joint": ("CC", "MLO"),
    "shared": ("CC", "MLO"),
    "split": ("CC", "MLO"),
}

_MATERIALIZE_LIMIT_BYTES = 512 * 2**20
PREFETCH_FACTOR = 4
"""Batches each worker prepares ahead on the device feed (torch's default is 2); compact
batches are small, and a deeper queue absorbs the slow decode of an occasional large file."""


def resolve_feed(feed: str, device: torch.device, heatmaps: bool = False) -> str:
    """``auto`` -> ``device`` on CUDA without heatmaps, else ``workers``; others as given.

    On the CPU the training device is the main process, which would then do the workers' job
    itself, so ``auto`` keeps the worker path (the reference path the tests pin) there.
    """
    if feed == "auto":
        return "device" if device.type == "cuda" and not heatmaps else "workers"
    return feed


@dataclass
class RunData:
    """Datasets and loaders of one run.

    Attributes:
        manifest: the validated manifest (its ``summary`` is printed at the start of a run).
        data_config: image scale, windows and channels.
        train: training breasts, random windows.
        train_eval: the same breasts with centred windows (for the LCA subset E).
        val, test: centred windows.
        sampler: the paper's per-epoch sampler (all positives + as many negatives, or
            ``config.epoch_breasts`` of them in that proportion: appendix A).
        loader: the training loader over ``sampler``.
        feed: ``workers`` (the loader yields model batches) or ``device`` (it yields compact
            batches that :meth:`to_model_batch` finishes on the device).
    """

    manifest: Manifest
    data_config: DataConfig
    train: MammoDataset
    train_eval: MammoDataset
    val: MammoDataset
    test: MammoDataset
    sampler: BalancedEpochSampler
    loader: DataLoader
    feed: str = "workers"

    def to_model_batch(
        self, batch: dict[str, Any], device: torch.device
    ) -> dict[str, torch.Tensor]:
        """A training batch from :attr:`loader` as the model's batch on ``device``."""
        if self.feed == "device":
            return prepare_batch(batch, self.data_config, device)
        return to_device(batch, device)


def load_run_manifest(config: ExperimentConfig) -> Manifest:
    """The synthetic set of the preset (generated once, cached) or the user's manifest."""
    views = VIEWS[config.variant]
    if config.data.kind == "synthetic":
        synthetic = with_testbed(get_preset(config.preset).synthetic, config.data.testbed)
        if config.data.heatmaps:  # the same breasts, plus the two lesion heatmaps per image
            synthetic = replace(synthetic, heatmaps=True)
        root = Path(config.data.synthetic_root) / synthetic.hash()[:12]
        if not distributed.is_main():
            distributed.barrier()  # rank 0 generates the data set once; the others then read it
        manifest = load_synthetic(synthetic, root, views=views)
        if distributed.is_main():
            distributed.barrier()
        return manifest
    return load_manifest(
        config.data.manifest,
        config.data.data_root,
        views=views,
        skip_bad_images=config.data.skip_bad_images,
        heatmaps=config.data.heatmaps,
    )


def full_epoch_size(config: ExperimentConfig) -> int:
    """Breasts in one full training epoch of ``config``'s data (every positive plus as many
    negatives), before ``--epoch-breasts``; reads the manifest, decodes no image."""
    manifest = load_run_manifest(config)
    train = MammoDataset.from_manifest(
        manifest, "train", _data_config(config), views=VIEWS[config.variant], train=True
    )
    return BalancedEpochSampler.from_dataset(train, seed=config.seed).epoch_size


def _data_config(config: ExperimentConfig):
    """The preset's image settings for ``config`` (heatmap channels, crop seed)."""
    return get_preset(config.preset).data_config(heatmaps=config.data.heatmaps, seed=config.seed)


def build_run_data(config: ExperimentConfig, device: torch.device | None = None) -> RunData:
    """Datasets, sampler and loader for ``config`` (seeded by ``config.seed``).

    ``device`` (the training device; the CPU when omitted) settles ``config.feed = "auto"`` and
    pins the loader's memory for CUDA.
    """
    device = torch.device("cpu") if device is None else torch.device(device)
    feed = resolve_feed(config.feed, device, config.data.heatmaps)
    manifest = load_run_manifest(config)
    views = VIEWS[config.variant]
    data_config = _data_config(config)
    train = MammoDataset.from_manifest(manifest, "train", data_config, views=views, train=True)
    # Under torchrun every rank draws the same epoch and takes every N-th sample of it, so each
    # global batch of batch_size holds the samples one process would see, batch_size/N per rank.
    # --epoch-breasts is checked against the full epoch here, where the data are known.
    sampler = BalancedEpochSampler.from_dataset(
        train,
        seed=config.seed,
        num_replicas=distributed.world_size(),
        rank=distributed.rank(),
        epoch_breasts=config.epoch_breasts,
    )
    batch_size = distributed.per_rank_batch_size(config.batch_size)
    if feed == "device":
        # The epoch travels with every index, so workers may persist across epochs.
        compact = CompactDataset(train)
        loader = make_loader(
            compact,
            batch_size=batch_size,
            sampler=EpochTaggedSampler(sampler, compact),
            num_workers=config.num_workers,
            seed=config.seed,
            pin_memory=device.type == "cuda",
            persistent_workers=True,
            prefetch_factor=PREFETCH_FACTOR,
            collate_fn=collate_compact,
        )
    else:
        loader = make_loader(
            train,
            batch_size=batch_size,
            sampler=sampler,
            num_workers=config.num_workers,
            seed=config.seed,
            pin_memory=device.type == "cuda",
        )
    return RunData(
        manifest=manifest,
        data_config=data_config,
        train=train,
        train_eval=MammoDataset.from_manifest(
            manifest, "train", data_config, views=views, train=False
        ),
        val=MammoDataset.from_manifest(manifest, "val", data_config, views=views, train=False),
        test=MammoDataset.from_manifest(manifest, "test", data_config, views=views, train=False),
        sampler=sampler,
        loader=loader,
        feed=feed,
    )


def balanced_subset(
    positives: np.ndarray, pool: np.ndarray, size: int, rng: np.random.Generator
) -> np.ndarray:
    """Up to ``size`` breasts of ``pool``, half with a finding and half without where possible.

    Half and half is an epoch's prevalence (every positive and as many negatives), so the
    subset's loss weighs the two classes as training does. Returned sorted: a fixed order.

    Args:
        positives: (N,) bool per breast of the dataset.
        pool: (M,) distinct indices into the dataset to draw from.
        size: at most this many breasts (all of ``pool`` when it is smaller).
        rng: the draw's generator (seeded by the caller).
    """
    pos = pool[positives[pool]]
    neg = pool[~positives[pool]]
    n_pos = min(len(pos), (size + 1) // 2)
    n_neg = min(len(neg), size - n_pos)
    n_pos = min(len(pos), size - n_neg)
    chosen = np.concatenate(
        [rng.choice(pos, size=n_pos, replace=False), rng.choice(neg, size=n_neg, replace=False)]
    )
    return np.sort(chosen)


def lca_subset_indices(train_eval: MammoDataset, size: int, seed: int) -> np.ndarray:
    """Breasts of the fixed LCA subset E (``lca_set='fixed-train'``), drawn once.

    The paper takes 10% of an epoch's positives and negatives, in a fixed seeded order.
    """
    rng = np.random.default_rng([seed, 0x1CA])
    return balanced_subset(train_eval.positives, np.arange(len(train_eval)), size, rng)


def val_subset_indices(val: MammoDataset, size: int, seed: int) -> np.ndarray:
    """Breasts of the held-out LCA subset E (``lca_set='val'``): a fixed part of the validation
    split, so LCA says which group lowered the loss on data it was not trained on."""
    rng = np.random.default_rng([seed, 0x1CA, 1])
    return balanced_subset(val.positives, np.arange(len(val)), size, rng)


def epoch_subset_indices(
    sampler: BalancedEpochSampler, positives: np.ndarray, epoch: int, size: int, seed: int
) -> np.ndarray:
    """Breasts of epoch ``epoch``'s LCA subset E (``lca_set='epoch'``, appendix A).

    The epoch's own breasts (every rank's, before the rank split), all of them when the epoch
    holds at most ``size``; otherwise a subset of ``size`` seeded by ``(seed, epoch)``, so a
    resumed run rebuilds the same E for the same epoch.
    """
    pool = np.sort(sampler.epoch_indices(epoch))
    rng = np.random.default_rng([seed, 0x1CA, 2, epoch])
    return balanced_subset(positives, pool, size, rng)


def lca_subset(
    run_data: RunData, lca_set: str, size: int, seed: int, epoch: int = 0
) -> tuple[MammoDataset, np.ndarray]:
    """The dataset (centred windows) and breasts of E for ``lca_set`` (in force at ``epoch``)."""
    if lca_set == "val":
        return run_data.val, val_subset_indices(run_data.val, size, seed)
    if lca_set == "epoch":
        positives = run_data.train_eval.positives
        return run_data.train_eval, epoch_subset_indices(
            run_data.sampler, positives, epoch, size, seed
        )
    return run_data.train_eval, lca_subset_indices(run_data.train_eval, size, seed)


def eval_loader(dataset, batch_size: int, num_workers: int = 0) -> DataLoader:
    """Fixed order, no augmentation: evaluation and LCA passes."""
    return make_loader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)


def lca_eval_batches(
    run_data: RunData,
    size: int,
    batch_size: int,
    seed: int,
    *,
    lca_set: str = "fixed-train",
    epoch: int = 0,
) -> Iterable[dict[str, torch.Tensor]]:
    """The subset E (see :func:`lca_subset`) as a re-iterable collection of batches.

    Small subsets are decoded once and kept in memory (a list of batches); large ones (the paper's
    970 full-resolution exams) stay a DataLoader that reads the same files in the same order.
    """
    dataset, indices = lca_subset(run_data, lca_set, size, seed, epoch)
    subset = Subset(dataset, indices.tolist())
    loader = eval_loader(subset, batch_size)
    pixels = sum(h * w for h, w in (run_data.data_config.window(v) for v in run_data.train.views))
    if len(indices) * pixels * run_data.data_config.channels * 4 <= _MATERIALIZE_LIMIT_BYTES:
        return list(loader)
    return loader


def tta_loader(
    dataset: MammoDataset, n: int, batch_size: int, seed: int, num_workers: int = 0
) -> DataLoader:
    """Every breast ``n`` times with seeded random windows (the paper's 10x test-time augmentation)."""
    return eval_loader(TTADataset(dataset, n=n, seed=seed), batch_size, num_workers)

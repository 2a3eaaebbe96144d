"""The device feed: compact worker items finished by prepare_batch equal the worker path's batches."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import torch
from dicom_files import mammo_dataset
from PIL import Image

from mammo_models.data import (
    DataConfig,
    DataConfigError,
    MammoDataset,
    SyntheticConfig,
    load_synthetic,
    make_loader,
)
from mammo_models.data.compact import (
    CompactDataset,
    EpochTaggedSampler,
    collate_compact,
    upsampled_grid,
)
from mammo_models.data.images import read_image, read_pixels, resize
from mammo_models.data.prepare import prepare_batch

TOL = 1e-4
"""Largest |difference| allowed between the two paths, in standard deviations of the window:
the standardisation sums differently (about 1e-6); everything else is the same operations."""

SYN = SyntheticConfig(
    n_patients=4, image_size_cc=(46, 34), image_size_mlo=(50, 30), pixel_scale=0.015, seed=3
)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    return load_synthetic(SYN, tmp_path_factory.mktemp("syn"))


def _config(scale: float) -> DataConfig:
    crop = dataclasses.replace(DataConfig().crop, shift_px=200, size_px=200)
    return DataConfig(scale=scale, crop=crop)


def _both(ds: MammoDataset, indices: list[int]) -> tuple[dict, dict]:
    worker = {k: torch.stack([ds[i][k] for i in indices]) for k in ds[indices[0]]}
    compact = CompactDataset(ds)
    device = prepare_batch(collate_compact([compact[i] for i in indices]), ds.config, "cpu")
    return worker, device


@pytest.mark.parametrize("scale", [0.015, 0.06, 0.01], ids=["same", "enlarge-4x", "shrink"])
@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_device_path_matches_worker_path(manifest, scale, train):
    ds = MammoDataset.from_manifest(manifest, None, _config(scale), train=train)
    ds.set_epoch(2)
    worker, device = _both(ds, list(range(len(ds))))
    assert set(device) == set(worker)
    for key in ("malignant", "benign", "index"):
        assert torch.equal(device[key], worker[key])
    for view in ("cc", "mlo"):
        assert device[view].shape == worker[view].shape and device[view].dtype == torch.float32
        assert (device[view] - worker[view]).abs().max().item() <= TOL


def test_windows_are_the_worker_paths(manifest):
    """The window a compact item carries is the one the worker path cuts (4x enlarged images)."""
    ds = MammoDataset.from_manifest(manifest, None, _config(0.06), train=True)
    compact = CompactDataset(ds)
    for i in range(len(ds)):
        for view in ("CC", "MLO"):
            g = compact.view(i, view, epoch=1)["geometry"].tolist()
            ds.set_epoch(1)
            w = ds.window(i, view)
            assert g[3:] == [w.top, w.left, w.height, w.width]


def test_tagged_epoch_wins_over_the_workers_copy(manifest):
    ds = MammoDataset.from_manifest(manifest, None, _config(0.015), train=True)
    compact = CompactDataset(ds)
    ds.set_epoch(0)
    tagged = compact[(1, 5)]["cc"]["geometry"]
    ds.set_epoch(5)
    assert torch.equal(tagged, compact[1]["cc"]["geometry"])
    sampler = EpochTaggedSampler([2, 0], compact)
    assert list(sampler) == [(2, 5), (0, 5)] and len(sampler) == 2


def test_upsampled_grid_agrees_with_the_full_resize():
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 4095, size=(37, 23)).astype(np.float32)
    full = resize(image, (150, 91))
    grid = upsampled_grid(image, (150, 91), 4)
    assert grid.shape == full[::4, ::4].shape
    # a few float32 roundings of the image's range: the summation order differs
    np.testing.assert_allclose(grid, full[::4, ::4], rtol=0, atol=2e-6 * float(image.max()))


def _files(tmp_path, fmt: str) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = []
    for i, lat in enumerate("LR"):
        row = {"laterality": lat, "malignant": i, "benign": 0}
        for view, (h, w) in {"CC": (60, 45), "MLO": (66, 40)}.items():
            y, x = np.mgrid[0:h, 0:w]
            inside = ((y - h / 2) / (0.4 * h)) ** 2 + (x / (0.7 * w)) ** 2 < 1
            pixels = np.where(
                inside, 3000 + rng.integers(0, 900, (h, w)), rng.integers(0, 99, (h, w))
            )
            pixels = pixels.astype(np.uint16)
            if lat == "R":
                pixels = np.ascontiguousarray(pixels[:, ::-1])
            path = tmp_path / f"{i}_{view}.{fmt}"
            if fmt == "png":
                Image.fromarray(pixels).save(path)
            else:
                ds = mammo_dataset(h, w)
                ds.PixelData = pixels.astype("<u2").tobytes()
                ds.save_as(path, enforce_file_format=True)
            row[f"{view.lower()}_image_path"] = path.name
        rows.append(row)
    return pd.DataFrame(rows)


@pytest.mark.parametrize("fmt", ["png", "dcm"])
def test_full_resolution_files_ship_uint16_crops(tmp_path, fmt):
    """At scale 1 a worker ships only the window's part of the file, still 16-bit."""
    table = _files(tmp_path, fmt)
    config = DataConfig(scale=1.0, windows={"CC": (50, 36), "MLO": (56, 32)})
    ds = MammoDataset(table, tmp_path, config, train=True)
    item = CompactDataset(ds)[1]
    assert item["cc"]["pixels"].dtype == torch.uint16
    assert item["cc"]["pixels"].numel() <= 50 * 36 + 2 * 50 + 2 * 36 + 4  # the window, jittered
    assert not math.isnan(item["cc"]["fill"].item())
    worker, device = _both(ds, [0, 1])
    for view in ("cc", "mlo"):
        assert (device[view] - worker[view]).abs().max().item() <= TOL
    path = tmp_path / table.loc[0, "cc_image_path"]
    assert np.array_equal(read_pixels(path).astype(np.float32), read_image(path))


def test_loader_with_workers_gives_the_in_process_batches(manifest):
    ds = MammoDataset.from_manifest(manifest, "train", _config(0.06), train=True)
    compact = CompactDataset(ds)
    ds.set_epoch(1)
    sampler = EpochTaggedSampler(list(range(len(ds))), compact)

    def batches(workers: int) -> list[dict]:
        loader = make_loader(
            compact,
            batch_size=2,
            sampler=sampler,
            num_workers=workers,
            persistent_workers=True,
            prefetch_factor=2 if workers else None,
            collate_fn=collate_compact,
        )
        return [prepare_batch(b, ds.config, "cpu") for b in loader]

    for a, b in zip(batches(0), batches(2), strict=True):
        for key in a:
            assert torch.equal(a[key], b[key])


def test_heatmaps_are_refused(manifest):
    ds = MammoDataset.from_manifest(manifest, None, _config(0.015))
    ds.config = dataclasses.replace(ds.config, heatmaps=True)
    with pytest.raises(DataConfigError, match="heatmap"):
        CompactDataset(ds)

"""Datasets and loader: batch contract, views, heatmaps, train/eval windows, TTA, workers, scale."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from mammo_models.data import (
    PRESETS,
    BalancedEpochSampler,
    DataConfig,
    DataConfigError,
    MammoDataset,
    SyntheticConfig,
    TTADataset,
    get_preset,
    load_manifest,
    load_synthetic,
    make_loader,
    set_epoch,
)

SYN = SyntheticConfig(
    n_patients=5,
    image_size_cc=(46, 34),
    image_size_mlo=(50, 30),
    pixel_scale=0.015,
    heatmaps=True,
    seed=2,
)
WINDOWS = {"CC": (40, 29), "MLO": (44, 26)}


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    return load_synthetic(SYN, tmp_path_factory.mktemp("syn"))


def _config(**kw) -> DataConfig:
    base = DataConfig(
        scale=0.015,
        windows=WINDOWS,
        crop=dataclasses.replace(DataConfig().crop, shift_px=200, size_px=200),
    )
    return dataclasses.replace(base, **kw)


def test_batches_follow_the_model_contract(manifest):
    ds = MammoDataset.from_manifest(manifest, None, _config())
    batch = next(iter(make_loader(ds, batch_size=3)))
    assert set(batch) == {"cc", "mlo", "malignant", "benign", "index"}
    assert batch["cc"].shape == (3, 1, 40, 29) and batch["mlo"].shape == (3, 1, 44, 26)
    assert batch["cc"].dtype == torch.float32 and batch["malignant"].dtype == torch.float32
    assert batch["index"].dtype == torch.int64 and batch["index"].tolist() == [0, 1, 2]
    expected = torch.tensor(manifest.breasts["malignant"].to_numpy()[:3], dtype=torch.float32)
    assert torch.equal(batch["malignant"], expected)
    for view in ("cc", "mlo"):  # per-window standardisation of the image channel
        x = batch[view][:, 0].flatten(1)
        torch.testing.assert_close(x.mean(1), torch.zeros(3), atol=1e-4, rtol=0)
        torch.testing.assert_close(x.std(1, correction=0), torch.ones(3), atol=1e-3, rtol=0)


def test_single_view_dataset_has_only_its_key(manifest):
    ds = MammoDataset(manifest.breasts, manifest.data_root, _config(), views=("MLO",))
    assert set(ds[0]) == {"mlo", "malignant", "benign", "index"}


def test_heatmap_channels_are_cropped_with_the_image_and_stay_in_unit_range(manifest):
    ds = MammoDataset.from_manifest(manifest, None, _config(heatmaps=True))
    i = int(np.flatnonzero(manifest.breasts["malignant"].to_numpy())[0])
    item = ds[i]
    assert item["cc"].shape == (3, 40, 29)
    heat = item["cc"][1:]
    assert heat.min() >= 0 and heat.max() <= 1
    assert heat[1].max() > 0.3  # channel order: image, benign, malignant
    # the malignant heatmap peaks on the bright lesion of the image channel
    peak = np.unravel_index(int(heat[1].argmax()), heat[1].shape)
    assert item["cc"][0][peak] > item["cc"][0].mean() + 0.5


def test_missing_heatmap_path_names_the_breast(manifest):
    breasts = manifest.breasts.copy()
    breasts.loc[2, "mlo_heatmap_benign_path"] = ""
    with pytest.raises(
        DataConfigError, match=r"no benign heatmap for MLO.*S00001\|E0\|L.*manifest row"
    ):
        MammoDataset(breasts, manifest.data_root, _config(heatmaps=True))


def test_right_breasts_are_mirrored_chest_wall_left(manifest):
    ds = MammoDataset.from_manifest(
        manifest, None, _config(windows={"CC": (46, 34), "MLO": (50, 30)})
    )
    for i, lat in enumerate(manifest.breasts["laterality"]):
        for view in ("cc", "mlo"):
            profile = ds[i][view][0].mean(0)  # mean over rows, per column
            assert profile[:5].mean() > profile[-5:].mean() + 0.5, (i, lat, view)


def test_eval_is_centred_and_fixed_train_is_jittered_per_epoch(manifest):
    ds = MammoDataset.from_manifest(manifest, "train", _config())
    assert ds.training
    a = ds[0]["cc"]
    ds.set_epoch(0)
    assert torch.equal(ds[0]["cc"], a)  # pure function of (seed, epoch, index)
    ds.set_epoch(1)
    assert not torch.equal(ds[0]["cc"], a)
    ds.eval()
    e0 = ds[0]["cc"]
    ds.set_epoch(5)
    assert torch.equal(ds[0]["cc"], e0)  # eval ignores the epoch
    other_seed = MammoDataset.from_manifest(manifest, "train", _config(seed=1))
    assert not torch.equal(other_seed[0]["cc"], a)


def test_tta_is_seeded_and_prefix_stable(manifest):
    ds = MammoDataset.from_manifest(manifest, "test", _config())
    t = ds.tta_views(1, n=10, seed=3)
    assert t["cc"].shape == (10, 1, 40, 29) and t["index"].tolist() == [1] * 10
    assert torch.equal(t["cc"], ds.tta_views(1, n=10, seed=3)["cc"])
    assert torch.equal(ds.tta_views(1, n=4, seed=3)["mlo"], t["mlo"][:4])
    assert not torch.equal(ds.tta_views(1, n=10, seed=4)["cc"], t["cc"])
    assert len({tuple(x.flatten()[:50].tolist()) for x in t["cc"]}) > 5  # windows differ
    flat = TTADataset(ds, n=10, seed=3)
    assert len(flat) == 10 * len(ds)
    assert torch.equal(flat[10 + 7]["cc"], t["cc"][7]) and int(flat[17]["index"]) == 1


def test_loader_with_workers_gives_the_same_batches(manifest):
    def epochs(workers: int) -> list[torch.Tensor]:
        ds = MammoDataset.from_manifest(manifest, None, _config(), train=True)
        sampler = BalancedEpochSampler.from_dataset(ds, seed=9)
        loader = make_loader(ds, batch_size=2, sampler=sampler, num_workers=workers, seed=9)
        out = []
        for e in range(2):
            set_epoch(loader, e)
            out += [torch.cat([b["cc"].flatten(), b["index"].float()]) for b in loader]
        return out

    single, multi = epochs(0), epochs(2)
    assert len(single) == len(multi) and all(
        torch.equal(a, b) for a, b in zip(single, multi, strict=True)
    )


def test_cache_returns_identical_items(manifest):
    cached = MammoDataset.from_manifest(manifest, None, _config(cache_mb=4, heatmaps=True))
    plain = MammoDataset.from_manifest(manifest, None, _config(heatmaps=True))
    for _ in range(2):
        for i in range(3):
            assert torch.equal(cached[i]["mlo"], plain[i]["mlo"])
    assert cached._cache.hits > 0


def test_full_resolution_dicom_trains_under_the_tiny_preset(tmp_path, files):
    H, W = 2800, 2100  # a full-field mammogram, right breast, MONOCHROME1 as some archives store
    y, x = np.mgrid[0:H, 0:W]
    inside = ((y - 1500) / 1100.0) ** 2 + ((W - 1 - x) / 1500.0) ** 2 < 1
    stored = np.where(inside, 1000, 15000).astype(np.uint16)  # MONOCHROME1: tissue is low
    files.write_dicom(
        tmp_path / "r_cc.dcm", stored, photometric="MONOCHROME1", laterality="R", view="CC"
    )
    files.write_png(tmp_path / "r_mlo.png", files.breast_image(300, 180, laterality="R"))
    rows = [
        files.manifest_row(image_path="r_cc.dcm", laterality="", view=""),
        files.manifest_row(image_path="r_mlo.png", laterality="R", view="MLO", pixel_scale=0.1),
    ]
    manifest = load_manifest(pd.DataFrame(rows), tmp_path)
    preset = get_preset("tiny")
    item = MammoDataset.from_manifest(manifest, None, preset.data_config())[0]
    assert item["cc"].shape == (1, *preset.windows["CC"]) and item["mlo"].shape == (
        1,
        *preset.windows["MLO"],
    )
    profile = item["cc"][0].mean(0)
    assert profile[:5].mean() > 0 > profile[-5:].mean()  # breast bright, chest wall left


def test_small_images_are_padded_with_the_background(manifest):
    ds = MammoDataset.from_manifest(
        manifest, None, _config(windows={"CC": (60, 50), "MLO": (44, 26)})
    )
    cc = ds[0]["cc"][0]
    assert cc.shape == (60, 50)
    assert torch.allclose(cc[:, -10:], cc.min().expand(60, 10))  # padding = the darkest value


def test_presets_and_data_config():
    assert set(PRESETS) == {"tiny", "small", "demo", "paper"}
    assert get_preset("paper").windows == {"CC": (2677, 1942), "MLO": (2974, 1748)}
    assert get_preset("demo").windows == {"CC": (167, 121), "MLO": (186, 109)}
    tiny = get_preset("tiny")
    assert tiny.synthetic.image_size_cc[0] > tiny.windows["CC"][0]
    assert tiny.data_config(heatmaps=True).channels == 3 and tiny.data_config().scale == 0.024
    with pytest.raises(
        DataConfigError, match="unknown data preset 'huge'.*tiny, small, demo, paper"
    ):
        get_preset("huge")
    with pytest.raises(DataConfigError, match="mirror"):
        DataConfig(mirror="sometimes")

"""Where training batches are finished (--feed): loader settings per feed, a tiny run on each."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from killed_experiment import tiny_config

from lca_toolkit import open_run
from mammo_models.data.compact import CompactDataset, EpochTaggedSampler
from mammo_models.training import Experiment
from mammo_models.training.config import ConfigError
from mammo_models.training.data_setup import PREFETCH_FACTOR, build_run_data, resolve_feed


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return tmp_path_factory.mktemp("synthetic")


def test_auto_feed_is_device_on_cuda_only():
    assert resolve_feed("auto", torch.device("cpu")) == "workers"
    assert resolve_feed("auto", torch.device("cuda")) == "device"
    assert resolve_feed("auto", torch.device("cuda"), heatmaps=True) == "workers"
    assert resolve_feed("device", torch.device("cpu")) == "device"
    with pytest.raises(ConfigError, match="--feed"):
        tiny_config_with(None, None, feed="gpu")


def tiny_config_with(out, root, **changes):
    return dataclasses.replace(tiny_config(out, root), **changes)


def test_device_feed_loader_persists_workers_and_pins_for_cuda(synth, tmp_path):
    config = tiny_config_with(tmp_path / "r.zarr", synth, feed="device", num_workers=2)
    data = build_run_data(config, torch.device("cpu"))
    loader = data.loader
    assert data.feed == "device" and isinstance(loader.dataset, CompactDataset)
    assert isinstance(loader.sampler, EpochTaggedSampler)
    assert loader.persistent_workers and loader.prefetch_factor == PREFETCH_FACTOR
    assert not loader.pin_memory  # nothing to pin for on the CPU
    # pin_memory is asked for CUDA; building the loader needs no GPU
    cuda = build_run_data(config, torch.device("cuda"))
    assert cuda.loader.pin_memory


def test_worker_feed_loader_is_todays(synth, tmp_path):
    config = tiny_config_with(tmp_path / "r.zarr", synth, num_workers=2)
    data = build_run_data(config)
    loader = data.loader
    assert data.feed == "workers" and loader.dataset is data.train
    assert loader.sampler is data.sampler
    assert not loader.persistent_workers and not loader.pin_memory


def test_device_feed_batches_equal_worker_feed_batches(synth, tmp_path):
    out = tmp_path / "r.zarr"
    device = build_run_data(tiny_config_with(out, synth, feed="device"))
    workers = build_run_data(tiny_config_with(out, synth, feed="workers"))
    for epoch in (0, 1):
        for data in (device, workers):
            data.sampler.set_epoch(epoch)
            data.train.set_epoch(epoch)
        pairs = zip(device.loader, workers.loader, strict=True)
        for k, (a, b) in enumerate(pairs):
            a = device.to_model_batch(a, torch.device("cpu"))
            b = workers.to_model_batch(b, torch.device("cpu"))
            assert torch.equal(a["index"], b["index"])
            for view in ("cc", "mlo"):
                assert (a[view] - b[view]).abs().max().item() <= 1e-4
            if k == 1:
                break


def test_tiny_run_trains_on_the_device_feed(synth, tmp_path):
    out = tmp_path / "dev.zarr"
    config = tiny_config_with(out, synth, feed="device", max_steps=4, epochs=1)
    result = Experiment(config, progress=False, echo=lambda _: None).run()
    assert result.steps == 4
    run = open_run(out)
    assert run.status == "finished"
    assert run.config["experiment"]["feed"] == "device"
    steps = run.steps()
    assert torch.isfinite(torch.tensor(steps["grad_norm/cc"].to_numpy())).all()

"""``lca_set``: which breasts form the LCA evaluation subset E (fixed-train, epoch, val; SPEC 4)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from killed_experiment import tiny_config
from lca_toolkit_cli.run import main

from lca_toolkit import open_run
from mammo_models.data import BalancedEpochSampler
from mammo_models.losses import per_sample_loss
from mammo_models.training import LCA_SETS, ConfigError, Experiment, RecordConfig
from mammo_models.training.data_setup import (
    balanced_subset,
    build_run_data,
    epoch_subset_indices,
    lca_eval_batches,
)


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("synthetic")


def lca_run(*args: object) -> tuple[int, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


# ----------------------------------------------------------------------------- choosing E
def test_balanced_subset_takes_half_of_each_class_from_the_pool_only():
    positives = np.array([True] * 6 + [False] * 14)
    pool = np.arange(2, 20)  # positives 2..5, negatives 6..19
    chosen = balanced_subset(positives, pool, 6, np.random.default_rng(0))
    assert np.all(np.diff(chosen) > 0) and set(chosen) <= set(pool)
    assert positives[chosen].sum() == 3 and (~positives[chosen]).sum() == 3
    few = balanced_subset(positives, pool, 10, np.random.default_rng(0))
    assert positives[few].sum() == 4 and len(few) == 10  # 4 positives: negatives fill up
    every = balanced_subset(positives, pool, 100, np.random.default_rng(0))
    np.testing.assert_array_equal(every, pool)


def test_epoch_subset_is_drawn_from_that_epochs_breasts_and_rebuilt_identically():
    positives = np.array([True] * 10 + [False] * 30)
    sampler = BalancedEpochSampler(positives, seed=4)  # epochs of 20 breasts
    for epoch in range(3):
        breasts = set(sampler.epoch_indices(epoch).tolist())
        small = epoch_subset_indices(sampler, positives, epoch, size=8, seed=4)
        assert len(small) == 8 and set(small) <= breasts
        assert positives[small].sum() == 4
        again = epoch_subset_indices(sampler, positives, epoch, size=8, seed=4)
        np.testing.assert_array_equal(small, again)  # a resumed run rebuilds the same E
        whole = epoch_subset_indices(sampler, positives, epoch, size=64, seed=4)
        assert set(whole.tolist()) == breasts  # an epoch within lca_subset is E as it is
    first = epoch_subset_indices(sampler, positives, 0, size=64, seed=4)
    second = epoch_subset_indices(sampler, positives, 1, size=64, seed=4)
    assert not np.array_equal(first, second)  # negatives are redrawn every epoch


def test_bad_lca_set_is_one_line_naming_the_option(synth, tmp_path):
    config = tiny_config(tmp_path / "x.zarr", synth)
    with pytest.raises(ConfigError) as info:
        replace(config, record=RecordConfig(lca_set="x"))
    assert str(info.value) == "--lca-set 'x' is unknown; expected one of fixed-train, epoch, val"
    assert LCA_SETS == ("fixed-train", "epoch", "val")
    assert RecordConfig().lca_set == "fixed-train"  # today's behaviour stays the default
    for command in ("mammo", "sweep"):
        extra = ("--kind", "seed") if command == "sweep" else ()
        code, text = lca_run(command, *extra, "--lca-set", "x", "--out", tmp_path / "y")
        assert code == 2 and "Traceback" not in text
        lines = [line for line in text.splitlines() if "--lca-set" in line]
        assert lines == [
            "Error: Invalid value for '--lca-set': 'x' is not one of 'fixed-train', 'epoch', 'val'."
        ]
    assert not (tmp_path / "y").exists()


# ----------------------------------------------------------------------------- tiny runs
def fresh_initial_loss(config, lca_set: str) -> float:
    """L_E at the initial weights, from scratch: E rebuilt, eval mode but BN in train mode on
    E's batches (the mammography bn_policy), summed per-sample losses / |E|."""
    run_data = build_run_data(config)
    model = Experiment(config, progress=False)._build_model(run_data)
    tp = config.train_preset
    batches = lca_eval_batches(
        run_data, tp.lca_subset, tp.eval_batch_size, config.seed, lca_set=lca_set
    )
    model.eval()  # no input noise
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.training = True
    with torch.no_grad():
        losses = torch.cat([per_sample_loss(model(b), b) for b in batches])
    return float(losses.double().sum() / len(losses))


@pytest.mark.parametrize("lca_set", ["fixed-train", "val"])
def test_fixed_sets_are_recorded_and_evaluated_on_their_breasts(lca_set, synth, tmp_path):
    out = tmp_path / f"{lca_set}.zarr"
    code, text = lca_run(
        "mammo", "--preset", "tiny", "--quiet", "--device", "cpu", "--synthetic-root", synth,
        "--max-steps", "3", "--lca-set", lca_set, "--out", out,
    )  # fmt: skip
    assert code == 0, text
    run = open_run(out)
    assert run.config["experiment"]["record"]["lca_set"] == lca_set
    lca = run.lca()
    assert lca[["start_step", "end_step"]].values.tolist() == [[0, 3]]
    config = replace(tiny_config(out, synth), device="cpu")
    expected = fresh_initial_loss(config, lca_set)
    other = fresh_initial_loss(config, "val" if lca_set == "fixed-train" else "fixed-train")
    assert lca["loss_start"].iloc[0] == pytest.approx(expected, rel=1e-5)
    assert lca["loss_start"].iloc[0] != pytest.approx(other, rel=1e-3)  # the sets differ


def test_epoch_set_closes_intervals_at_epoch_boundaries_and_resumes_with_the_same_e(
    synth, tmp_path
):
    reference = tmp_path / "reference.zarr"
    code, text = lca_run(
        "mammo", "--preset", "tiny", "--quiet", "--device", "cpu", "--synthetic-root", synth,
        "--lca-set", "epoch", "--lr", "1e-3", "--out", reference,
        "--quadrature", "simpson",  # spans and E are asked here, not accuracy: 2 passes, not 16
    )  # fmt: skip
    assert code == 0, text
    run = open_run(reference)
    assert run.config["experiment"]["record"]["lca_set"] == "epoch"
    epochs = len(run.epochs())
    steps_per_epoch = len(run.steps()) // epochs
    assert (epochs, steps_per_epoch, run.config["tracker"]["lca"]["every"]) == (2, 4, 3)
    lca = run.lca()
    spans = lca[["start_step", "end_step"]].values.tolist()
    # (3, 4] is closed at the boundary after step 4, (7, 8] when the run ends.
    assert spans == [[0, 3], [3, 4], [4, 7], [7, 8]]
    for start, end in spans:
        assert start // steps_per_epoch == (end - 1) // steps_per_epoch, (start, end)
    # The interval after the boundary starts on epoch 1's E: another loss at the same weights.
    assert lca["loss_start"].iloc[2] != pytest.approx(lca["loss_end"].iloc[1], rel=1e-6)
    assert lca["loss_start"].iloc[1] == lca["loss_end"].iloc[0]  # same E inside an epoch

    # Stopped at the epoch boundary (its checkpoint predates the switch), then inside epoch 1.
    out = tmp_path / "resumed.zarr"
    config = replace(
        tiny_config(out, synth),
        device="cpu",
        checkpoint_every=0,
        record=RecordConfig(lca_set="epoch", quadrature="simpson"),
    )
    Experiment(replace(config, max_steps=4), progress=False).run()
    Experiment(replace(config, max_steps=6), resume=True, progress=False).run()
    Experiment(config, resume=True, progress=False).run()
    resumed = open_run(out)
    for name in (
        "lca/start_step",
        "lca/end_step",
        "lca/by_group",
        "lca/loss_start",
        "lca/loss_end",
    ):
        np.testing.assert_array_equal(run.array(name), resumed.array(name), err_msg=name)

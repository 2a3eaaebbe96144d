"""The LCA schedule of the paper's appendix A: shrunk epochs (``--epoch-breasts``) and LCA over the
first epochs only (``--lca-epochs``), gradient norms for the whole run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from killed_experiment import tiny_config
from lca_toolkit_cli.run import main

from lca_toolkit import open_run
from mammo_models.data import BalancedEpochSampler, DataConfigError
from mammo_models.losses import per_sample_loss
from mammo_models.training import ConfigError, Experiment, ExperimentConfig, RecordConfig
from mammo_models.training.data_setup import (
    build_run_data,
    epoch_subset_indices,
    lca_eval_batches,
)
from mammo_models.training.experiment import check_resumable

ROOT = Path(__file__).resolve().parents[2]
HELPERS = ROOT / "tests" / "helpers"


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("synthetic")


def lca_run(*args: object) -> tuple[int, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def old_epoch_indices(positive: np.ndarray, seed: int, epoch: int) -> np.ndarray:
    """The sampler's epoch before ``epoch_breasts`` existed (a copy, to pin it bit for bit)."""
    flags = np.asarray(positive).astype(bool)
    pos, neg = np.flatnonzero(flags), np.flatnonzero(~flags)
    rng = np.random.default_rng([seed, int(epoch)])
    k = min(pos.size, neg.size)
    if k == neg.size:
        negatives = neg.copy()
    else:
        negatives = np.sort(rng.choice(neg, size=k, replace=False))
    indices = np.concatenate([pos, negatives]).astype(np.int64)
    return indices[rng.permutation(indices.size)]


# ----------------------------------------------------------------------------- the sampler
@pytest.mark.parametrize(
    ("n_pos", "n_neg", "n", "expected_pos"),
    [
        (30, 100, 12, 6),  # a balanced full epoch of 60: half and half
        (30, 100, 13, 6),  # round(6.5) = 6 (Python rounds halves to even)
        (30, 10, 10, 8),  # fewer negatives: the full epoch's 30:10 proportion, round(7.5) = 8
    ],
)
def test_a_shrunk_epoch_holds_n_breasts_in_a_full_epochs_proportion(n_pos, n_neg, n, expected_pos):
    flags = np.array([True] * n_pos + [False] * n_neg)
    sampler = BalancedEpochSampler(flags, seed=3, epoch_breasts=n)
    full = n_pos + min(n_pos, n_neg)
    assert sampler.full_epoch_size == full and sampler.shrinks
    assert expected_pos == round(n * n_pos / full)
    assert (sampler.positives_per_epoch, sampler.negatives_per_epoch) == (
        expected_pos,
        n - expected_pos,
    )
    draws = []
    for epoch in range(4):
        sampler.set_epoch(epoch)
        indices = list(sampler)
        assert len(indices) == len(sampler) == sampler.epoch_size == n
        assert len(set(indices)) == n  # without replacement
        assert sum(flags[indices]) == expected_pos
        np.testing.assert_array_equal(indices, sampler.epoch_indices(epoch))
        draws.append(frozenset(indices))
        again = BalancedEpochSampler(flags, seed=3, epoch_breasts=n)  # resume, another rank
        np.testing.assert_array_equal(again.epoch_indices(epoch), indices)
    assert len(set(draws)) == 4  # redrawn every epoch
    positives_drawn = {frozenset(i for i in d if flags[i]) for d in draws}
    assert len(positives_drawn) > 1  # positives too, not only negatives
    other_seed = BalancedEpochSampler(flags, seed=4, epoch_breasts=n).epoch_indices(0)
    assert frozenset(other_seed.tolist()) != draws[0]
    assert indices != sorted(indices)  # shuffled


@pytest.mark.parametrize(("n_pos", "n_neg"), [(10, 40), (6, 4), (5, 5), (3, 0)])
def test_full_epochs_are_drawn_exactly_as_before(n_pos, n_neg):
    flags = np.array([True] * n_pos + [False] * n_neg)
    for seed in (0, 7):
        default = BalancedEpochSampler(flags, seed=seed)
        as_large = BalancedEpochSampler(flags, seed=seed, epoch_breasts=default.full_epoch_size)
        assert not default.shrinks and not as_large.shrinks
        for epoch in range(3):
            old = old_epoch_indices(flags, seed, epoch)
            np.testing.assert_array_equal(default.epoch_indices(epoch), old)
            np.testing.assert_array_equal(as_large.epoch_indices(epoch), old)
        assert len(default) == len(as_large) == default.full_epoch_size
        assert as_large.summary() == default.summary()


def test_shrunk_epochs_split_across_ranks_and_resume_mid_epoch():
    flags = np.array([True] * 20 + [False] * 40)  # full epoch 40, shrunk to 10
    single = BalancedEpochSampler(flags, seed=5, epoch_breasts=10)
    ranks = [
        BalancedEpochSampler(flags, seed=5, num_replicas=3, rank=r, epoch_breasts=10)
        for r in range(3)
    ]
    parts = []
    for sampler in ranks:
        sampler.set_epoch(2)
        parts.append(list(sampler))
    assert [len(p) for p in parts] == [4, 4, 4] and all(len(s) == 4 for s in ranks)
    counts = Counter(i for p in parts for i in p)
    assert set(counts) == set(single.epoch_indices(2).tolist()) and sum(counts.values()) == 12

    single.set_epoch(2, start=6)
    assert list(single) == single.epoch_indices(2).tolist()[6:] and len(single) == 4
    state = single.state_dict()
    assert state == {"seed": 5, "epoch": 2, "start": 6, "epoch_breasts": 10}
    restored = BalancedEpochSampler(flags, seed=5, epoch_breasts=10)
    restored.load_state_dict(state)
    assert list(restored) == list(single)
    with pytest.raises(DataConfigError, match="checkpoint --epoch-breasts 10 differs"):
        BalancedEpochSampler(flags, seed=5).load_state_dict(state)
    old_state = {"seed": 5, "epoch": 1, "start": 0}  # written before epoch_breasts existed
    BalancedEpochSampler(flags, seed=5).load_state_dict(old_state)


def test_the_summary_says_the_epoch_is_shrunk():
    flags = np.array([True] * 485 + [False] * 4000)
    sampler = BalancedEpochSampler(flags, seed=0, epoch_breasts=97)
    assert sampler.summary().startswith(
        "each epoch: 97 of 970 breasts (10%, --epoch-breasts as in the paper's appendix A): "
        "48 of 485 with a finding + 49 of 4000 without, redrawn every epoch (seed 0)"
    )
    unbalanced = BalancedEpochSampler(np.array([True] * 6 + [False] * 2), epoch_breasts=4)
    assert "fewer negatives than positives" in unbalanced.summary()
    assert not unbalanced.all_negatives_used  # a shrunk epoch leaves negatives out


@pytest.mark.parametrize("bad", [1, 0, 41, 2.5, True, "8"])
def test_a_bad_epoch_size_is_one_line_naming_the_option_and_the_full_epoch(bad):
    flags = np.array([True] * 20 + [False] * 40)
    with pytest.raises(DataConfigError) as info:
        BalancedEpochSampler(flags, epoch_breasts=bad)
    assert str(info.value) == (
        "--epoch-breasts must be an integer from 2 to 40 (the breasts of a full epoch: every "
        f"positive plus as many negatives), got {bad!r}"
    )


# ----------------------------------------------------------------------------- configuration
def test_bad_config_values_are_one_line_naming_the_options(tmp_path):
    config = tiny_config(tmp_path / "x.zarr", tmp_path)
    cases = {
        (1, None, True): "--epoch-breasts must be an integer >= 2, got 1",
        (9.0, None, True): "--epoch-breasts must be an integer >= 2, got 9.0",
        (None, 0, True): "--lca-epochs must be an integer >= 1, got 0",
        (None, 1.5, True): "--lca-epochs must be an integer >= 1, got 1.5",
        (None, 2, False): (
            "--lca-epochs 2 limits LCA to the first epochs, but --no-lca records none; "
            "give one of --lca-epochs and --no-lca"
        ),
    }
    for (breasts, lca_epochs, lca), message in cases.items():
        with pytest.raises(ConfigError) as info:
            replace(
                config, epoch_breasts=breasts, record=RecordConfig(lca=lca, lca_epochs=lca_epochs)
            )
        assert str(info.value) == message
    assert (config.epoch_breasts, config.record.lca_epochs) == (None, None)  # today's run


def test_settings_stored_before_the_options_existed_take_their_defaults(tmp_path):
    config = tiny_config(tmp_path / "x.zarr", tmp_path)
    old = config.to_dict()
    del old["epoch_breasts"], old["record"]["lca_epochs"]
    assert ExperimentConfig.from_dict(old) == config
    check_resumable(old, config)  # a checkpoint written before them resumes


def test_the_epoch_lca_set_takes_the_shrunk_epochs_breasts(synth, tmp_path):
    config = replace(tiny_config(tmp_path / "x.zarr", synth), epoch_breasts=8)
    run_data = build_run_data(config)
    sampler = run_data.sampler
    assert (sampler.full_epoch_size, sampler.epoch_size, len(run_data.loader)) == (16, 8, 2)
    positives = run_data.train_eval.positives
    for epoch in range(3):
        breasts = set(sampler.epoch_indices(epoch).tolist())
        e = epoch_subset_indices(sampler, positives, epoch, size=64, seed=config.seed)
        assert set(e.tolist()) == breasts  # E is the shrunk epoch itself
    with pytest.raises(DataConfigError, match="from 2 to 16 .*got 17"):
        build_run_data(replace(config, epoch_breasts=17))


# ----------------------------------------------------------------------------- runs
KILL = """
import os, signal, sys
from dataclasses import replace
from pathlib import Path

from killed_experiment import tiny_config
from mammo_models.training import Experiment, RecordConfig

out, root, kill_at = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
config = replace(tiny_config(out, root), epochs=2, record=RecordConfig(lca_epochs=1))

def maybe_kill(step):
    if step == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)

Experiment(config, progress=False, on_step=maybe_kill).run()
"""


def test_lca_over_the_first_epoch_only_and_resumed_across_the_boundary(synth, tmp_path):
    reference = tmp_path / "reference.zarr"
    command = (
        "mammo", "--preset", "tiny", "--quiet", "--device", "cpu", "--synthetic-root", synth,
        "--lr", "1e-3", "--epochs", "2", "--lca-epochs", "1", "--checkpoint-every", "3",
    )  # fmt: skip
    code, text = lca_run(*command, "--out", reference)
    assert code == 0, text
    assert "note: LCA recorded during the first 1 epoch(s) only, up to step 4" in text
    run = open_run(reference)
    assert run.config["experiment"]["record"]["lca_epochs"] == 1
    steps_per_epoch, k = 4, run.config["tracker"]["lca"]["every"]
    assert (len(run.epochs()), len(run.steps()), k) == (2, 8, 3)
    # (0, 3] by the schedule, (3, 4] closed when LCA stopped at the start of epoch 1.
    assert run.lca()[["start_step", "end_step"]].values.tolist() == [[0, 3], [3, 4]]
    assert run.array("steps/step").tolist() == list(range(1, 9))
    assert np.isfinite(run.array("steps/grad_norm")).all()  # norms for epoch 1 too
    assert run.attrs["lca_stopped_at"] == steps_per_epoch
    assert any("--lca-epochs" in note for note in run.attrs["results"]["notes"])

    # SIGKILLed in epoch 1: the last checkpoint is epoch 0's end, written before the stop.
    out = tmp_path / "killed.zarr"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(HELPERS)])}
    proc = subprocess.run(
        [sys.executable, "-c", KILL, str(out), str(synth), "5"],
        cwd=HELPERS, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    state = torch.load(f"{out}.ckpt/last.pt", weights_only=False)
    assert (state["epoch"], state["start"], state["tracker"]["lca_stopped_at"]) == (1, 0, None)
    code, text = lca_run(*command, "--out", out, "--resume", "--lca-epochs", "2")
    assert code == 2 and "--lca-epochs: the run at" in text and "trained with 1, this" in text
    # Resumed there (stops LCA first), then stopped inside epoch 1 and resumed stopped.
    code, text = lca_run(*command, "--out", out, "--resume", "--max-steps", "7")
    assert code == 0 and "resuming at epoch 1, step 4" in text, text
    state = torch.load(f"{out}.ckpt/last.pt", weights_only=False)
    assert (state["tracker"]["step"], state["tracker"]["lca_stopped_at"]) == (7, 4)
    code, text = lca_run(*command, "--out", out, "--resume")
    assert code == 0 and "resuming at epoch 1, step 7" in text, text
    resumed = open_run(out)
    for name in (
        "steps/step",
        "steps/loss",
        "lca/start_step",
        "lca/end_step",
        "lca/by_group",
        "lca/loss_start",
        "lca/loss_end",
        "lca/residual",
    ):
        np.testing.assert_array_equal(run.array(name), resumed.array(name), err_msg=name)
    # The steps' float32 norms may differ in their last bit after a resume (step 8 here; a
    # --max-steps resume without these options does the same), the losses after them do not.
    np.testing.assert_allclose(
        run.array("steps/grad_norm"), resumed.array("steps/grad_norm"), rtol=1e-6
    )
    assert resumed.attrs["lca_stopped_at"] == 4


def initial_epoch_loss(config: ExperimentConfig) -> float:
    """L_E of epoch 0 (``lca_set='epoch'``) at the initial weights, from scratch: BatchNorm in
    train mode on E's batches (the mammography bn_policy), summed per-sample losses / |E|."""
    run_data = build_run_data(config)
    model = Experiment(config, progress=False)._build_model(run_data)
    tp = config.train_preset
    batches = lca_eval_batches(
        run_data, tp.lca_subset, tp.eval_batch_size, config.seed, lca_set="epoch", epoch=0
    )
    model.eval()
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.training = True
    with torch.no_grad():
        losses = torch.cat([per_sample_loss(model(b), b) for b in batches])
    return float(losses.double().sum() / len(losses))


def test_shrunk_epochs_with_the_epoch_set_and_lca_over_two_of_them(synth, tmp_path):
    out = tmp_path / "shrunk.zarr"
    code, text = lca_run(
        "mammo", "--preset", "tiny", "--quiet", "--device", "cpu", "--synthetic-root", synth,
        "--lr", "1e-3", "--epochs", "3", "--epoch-breasts", "8", "--lca-set", "epoch",
        "--lca-epochs", "2", "--out", out,
    )  # fmt: skip
    assert code == 0, text
    assert "each epoch: 8 of 16 breasts (50%, --epoch-breasts" in text
    run = open_run(out)
    assert run.config["experiment"]["epoch_breasts"] == 8
    assert (len(run.epochs()), len(run.steps())) == (3, 6)  # 2 steps of 4 breasts an epoch
    # k = 3, epochs of 2 steps: (0, 2] closed when E changes, (2, 4] when LCA stops.
    lca = run.lca()
    assert lca[["start_step", "end_step"]].values.tolist() == [[0, 2], [2, 4]]
    assert lca["loss_start"].iloc[1] != pytest.approx(lca["loss_end"].iloc[0], rel=1e-6)
    assert run.attrs["lca_stopped_at"] == 4 and len(run.array("steps/grad_norm")) == 6
    # E of epoch 0 is the shrunk epoch's 8 breasts, not a subset of a full epoch's 16.
    config = replace(tiny_config(out, synth), epoch_breasts=8)
    shrunk = initial_epoch_loss(config)
    assert lca["loss_start"].iloc[0] == pytest.approx(shrunk, rel=1e-5)
    assert shrunk != pytest.approx(
        initial_epoch_loss(replace(config, epoch_breasts=None)), rel=1e-3
    )


def test_bad_values_are_one_line_cli_errors_naming_the_option(synth, tmp_path):
    base = ("mammo", "--preset", "tiny", "--quiet", "--device", "cpu", "--synthetic-root", synth)
    cases = [
        (
            ("--lca-epochs", "0"),
            2,
            "Error: Invalid value for '--lca-epochs': 0 is not in the range x>=1.",
        ),
        (
            ("--epoch-breasts", "1"),
            2,
            "Error: Invalid value for '--epoch-breasts': 1 is not in the range x>=2.",
        ),
        (
            ("--epoch-breasts", "9.5"),
            2,
            "Error: Invalid value for '--epoch-breasts': '9.5' is not a valid integer range.",
        ),
        (  # refused by the command line before the config is built
            ("--lca-epochs", "2", "--no-lca"),
            2,
            "Error: --lca-epochs is used only when LCA is recorded (not with --no-lca): this "
            "command would ignore it; drop it or add what it needs",
        ),
        (
            ("--epoch-breasts", "17"),
            1,
            "Error: --epoch-breasts must be an integer from 2 to 16 (the breasts of a full "
            "epoch: every positive plus as many negatives), got 17",
        ),
    ]
    for i, (extra, exit_code, line) in enumerate(cases):
        code, text = lca_run(*base, *extra, "--out", tmp_path / f"{i}.zarr")
        assert code == exit_code, text
        assert "Traceback" not in text
        assert [x for x in text.splitlines() if x.startswith("Error")] == [line]
        assert not (tmp_path / f"{i}.zarr").exists()

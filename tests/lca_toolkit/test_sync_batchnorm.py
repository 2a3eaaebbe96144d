"""BatchNorm under DDP: a warning for small per-rank batches, ``--sync-bn``, and LCA passes that
normalise each batch on its own whatever the training BatchNorm is."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import syncbn_worker
import torch
from torchrun import torchrun

from lca_toolkit import distributed
from lca_toolkit.distributed import (
    DistributedError,
    SmallBatchNormWarning,
    convert_sync_batchnorm,
    warn_small_batchnorm,
)

WORKER = Path(__file__).resolve().parents[1] / "helpers" / "syncbn_worker.py"


def test_lca_under_sync_batchnorm_on_two_ranks_equals_one_plain_process(tmp_path):
    done = torchrun(2, str(WORKER), str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    reference = syncbn_worker.measure(sync=False)
    for rank in (0, 1):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        for key, want in reference.items():
            torch.testing.assert_close(got[key], want, rtol=1e-12, atol=1e-14)


def test_sync_batchnorm_modules_regain_their_own_forward_after_a_pass():
    from lca_toolkit.lca_batchnorm import plain_sync_batchnorm

    model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(
        torch.nn.Sequential(torch.nn.BatchNorm1d(3))
    )
    bn = model[0]
    with plain_sync_batchnorm(model):
        assert bn.forward.__func__ is torch.nn.modules.batchnorm._BatchNorm.forward
    assert "forward" not in bn.__dict__
    assert type(bn).forward is torch.nn.SyncBatchNorm.forward


def test_small_per_rank_batches_warn_once_naming_the_batch(monkeypatch):
    bn_model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    plain_model = torch.nn.Linear(2, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not warn_small_batchnorm(bn_model, 2)  # one process: nothing to say
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    with pytest.warns(SmallBatchNormWarning, match=r"with 2 sample\(s\) per rank \(2 ranks\)"):
        assert warn_small_batchnorm(bn_model, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not warn_small_batchnorm(bn_model, 8)  # enough samples per rank
        assert not warn_small_batchnorm(bn_model, 2, synced=True)  # statistics pooled
        assert not warn_small_batchnorm(plain_model, 2)  # no BatchNorm


def test_sync_bn_converts_on_cuda_only():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    with pytest.raises(DistributedError, match="--sync-bn needs CUDA"):
        convert_sync_batchnorm(model, torch.device("cpu"))
    if torch.cuda.is_available():
        model = convert_sync_batchnorm(model.cuda(), torch.device("cuda"))
        assert isinstance(model[1], torch.nn.SyncBatchNorm)


def test_lca_run_sync_bn_on_cpu_is_one_line(tmp_path):
    from click.testing import CliRunner
    from lca_toolkit_cli.run import main

    out = tmp_path / "run.zarr"
    result = CliRunner().invoke(
        main,
        ["mammo", "--preset", "tiny", "--device", "cpu", "--sync-bn", "--out", str(out)],
    )
    assert result.exit_code != 0
    assert "--sync-bn needs CUDA" in result.output
    assert "Traceback" not in result.output

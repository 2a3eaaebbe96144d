"""The Tracker under DDP (2 gloo ranks on the CPU, started by torchrun) equals one process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import ddp_worker
import numpy as np
import pytest
import torch
from problems import SmoothMLP, mlp_batches, mlp_loss

from lca_toolkit import ParamGroups, Tracker, distributed, open_run
from lca_toolkit.distributed import DistributedError
from lca_toolkit.sinks import NullSink
from lca_toolkit.store._records import StepBlock

REPO = Path(__file__).resolve().parents[2]
WORKER = REPO / "tests" / "helpers" / "ddp_worker.py"


def torchrun(nproc: int, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m torch.distributed.run --standalone --nproc_per_node=nproc ...`` (CPU, gloo)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests" / "helpers")]),
        "OMP_NUM_THREADS": "1",
        "LCA_DIST_TIMEOUT_S": "60",
    }
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cmd += [f"--nproc_per_node={nproc}", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def _numbers(frame):
    return frame.select_dtypes("number").to_numpy(np.float64)


def test_two_ranks_record_what_one_process_records(tmp_path):
    done = torchrun(2, str(WORKER), str(tmp_path / "ddp.zarr"), str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    reference = ddp_worker.train(tmp_path / "one.zarr")
    one, two = open_run(tmp_path / "one.zarr"), open_run(tmp_path / "ddp.zarr")

    # Gradient norms (from DDP's averaged gradients), losses (averaged across ranks), update norms.
    s1, s2 = one.steps(), two.steps()
    assert list(s1.columns) == list(s2.columns)
    assert s2["step"].tolist() == list(range(1, ddp_worker.STEPS + 1))  # one writer, no repeats
    np.testing.assert_allclose(_numbers(s2), _numbers(s1), rtol=1e-12, atol=1e-14)
    # Per-interval LCA, loss_start/end and residual: E sharded, one all-reduce per pass.
    l1, l2 = one.lca(), two.lca()
    assert l2["end_step"].tolist() == [2, 4, 6, 8]
    np.testing.assert_allclose(_numbers(l2), _numbers(l1), rtol=1e-12, atol=1e-14)

    # Every rank holds the same LCA numbers and the same engine state.
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    assert ranks[0]["lca"] == ranks[1]["lca"]
    np.testing.assert_allclose(ranks[0]["lca"], reference["lca"], rtol=1e-12, atol=1e-14)
    for a, b in zip(
        ranks[0]["final"]["engine"]["g_prev"], ranks[1]["final"]["engine"]["g_prev"], strict=True
    ):
        assert torch.equal(a, b)
    assert ranks[1]["mid_state_step"] == 5 and ranks[1]["final"]["step"] == ddp_worker.STEPS

    # One writer's attrs: parameter names of the unwrapped module, the world size recorded.
    attrs = two.attrs
    assert attrs["status"] == "finished"
    assert attrs["model_summary"]["model"] == "SmoothMLP"
    assert attrs["group_members"] == one.attrs["group_members"]
    assert not any(n.startswith("module.") for m in attrs["group_members"].values() for n in m)
    assert attrs["config"]["tracker"]["world_size"] == 2
    assert attrs["rows"] == {"steps": ddp_worker.STEPS, "lca": 4, "epochs": 0}


def test_a_failing_rank_fails_the_job_and_the_store_stays_readable(tmp_path):
    done = torchrun(2, str(WORKER), str(tmp_path / "ddp.zarr"), str(tmp_path), "--fail-at", "3")
    assert done.returncode != 0
    assert "rank 1 fails on purpose at step 3" in done.stderr
    run = open_run(tmp_path / "ddp.zarr")
    assert run.attrs["status"] in {"failed", "running"}
    steps = run.steps()["step"].tolist()
    assert steps == sorted(set(steps)) and len(steps) <= 4
    assert not (tmp_path / "rank0.pt").exists()


# ----------------------------------------------------------------------------- single process
def test_single_process_helpers_are_no_ops():
    assert not distributed.is_distributed()
    assert (distributed.world_size(), distributed.rank(), distributed.is_main()) == (1, 0, True)
    t = [torch.arange(3.0), torch.ones(2, dtype=torch.float64)]
    distributed.all_reduce_sum_(t)
    assert t[0].tolist() == [0.0, 1.0, 2.0] and t[1].tolist() == [1.0, 1.0]
    x = torch.arange(4.0)
    assert distributed.all_gather_cat(x) is x
    assert distributed.all_reduce_mean_(x) is x and x.tolist() == [0.0, 1.0, 2.0, 3.0]
    model = SmoothMLP()
    assert distributed.wrap(model) is model
    assert distributed.unwrap(torch.nn.DataParallel(model)) is model
    assert distributed.init_from_env() is False  # no WORLD_SIZE: nothing to join


def test_shard_batch_splits_every_tensor_and_names_an_uneven_batch():
    batch = {"x": torch.arange(12).reshape(6, 2), "y": [torch.arange(6)], "name": "b", "t": 3}
    parts = [distributed.shard_batch(batch, r, 3) for r in range(3)]
    assert torch.equal(torch.cat([p["x"] for p in parts]), batch["x"])
    assert parts[1]["y"][0].tolist() == [2, 3] and parts[2]["name"] == "b"
    assert distributed.shard_batch(batch, 0, 1) is batch
    with pytest.raises(DistributedError, match=r"batch 7: 6 samples .* 4 ranks"):
        distributed.shard_batch(batch, 0, 4, where="batch 7")


def test_batch_size_must_divide_by_the_world_and_timeout_is_checked(monkeypatch):
    assert distributed.per_rank_batch_size(4) == 4
    monkeypatch.setattr(distributed, "world_size", lambda: 3)
    with pytest.raises(DistributedError, match="--batch-size 4 is not divisible by the 3"):
        distributed.per_rank_batch_size(4)
    monkeypatch.setenv(distributed.TIMEOUT_ENV, "soon")
    with pytest.raises(DistributedError, match="LCA_DIST_TIMEOUT_S='soon'"):
        distributed.timeout_s()
    monkeypatch.setenv(distributed.TIMEOUT_ENV, "12.5")
    assert distributed.timeout_s() == 12.5


def test_null_sink_accepts_every_call_and_keeps_only_the_status(tmp_path, monkeypatch):
    sink = NullSink(["a"])
    block = StepBlock(
        step=np.array([1]),
        loss=np.array([0.5]),
        grad_norm_total=np.array([1.0]),
        grad_norm=np.ones((1, 1)),
        rel_sq_norm=np.ones((1, 1)),
        update_norm=np.ones((1, 1)),
        skipped=np.array([False]),
        lr=np.ones((1, 1)),
    )
    sink.append_steps(block)
    sink.append_epoch(0, {"m": 1.0})
    sink.write_table("t", {"c": np.zeros(2)})
    sink.update_attrs(x=1)
    sink.truncate(last_step=0, last_epoch=-1)
    sink.flush()
    sink.close("failed", reason="boom")
    assert (sink.status, sink.status_reason, sink.path) == ("failed", "boom", None)
    assert vars(sink) == {
        "groups": ["a"],
        "path": None,
        "status": "failed",
        "status_reason": "boom",
    }

    # A Tracker on a rank other than 0 gets a NullSink and creates no store.
    monkeypatch.setattr(distributed, "rank", lambda: 1)
    tracker = Tracker(SmoothMLP(), store=tmp_path / "x.zarr")
    assert isinstance(tracker.sink, NullSink)
    tracker.close()
    assert not (tmp_path / "x.zarr").exists()


def test_tracker_takes_groups_built_on_the_ddp_wrapper(tmp_path):
    """A one-rank gloo group: DDP-built groups lose their ``module.`` prefix, LCA still runs."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        ddp = torch.nn.parallel.DistributedDataParallel(SmoothMLP())
        groups = ParamGroups.from_prefixes(
            ddp, {"branches": ["module.audio.", "module.image."], "head": "module.head."}
        )
        assert groups.members["head"] == ["module.head.weight", "module.head.bias"]
        tracker = Tracker(
            ddp,
            groups,
            loss_fn=mlp_loss,
            eval_batches=mlp_batches(n=6, batch_size=3),
            lca_every=1,
        )
        assert tracker.model is ddp.module and tracker.engine.model is ddp.module
        assert tracker.groups.members["head"] == ["head.weight", "head.bias"]
        loss = mlp_loss(ddp, mlp_batches(n=4, batch_size=4)[0]).mean()
        loss.backward()
        tracker.after_backward(loss)
        with torch.no_grad():
            for p in ddp.parameters():
                p -= 0.01 * p.grad
        result = tracker.after_step()
        assert result is not None and abs(float(result.residual)) < 1e-6
        tracker.close()
    finally:
        dist.destroy_process_group()

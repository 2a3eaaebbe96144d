"""Fault injection: SIGKILL the training process at many points, resume until done, compare.

Two chains of runs share one store each: every process is killed at its kill point (counted in
that process, see ``tests/helpers/fault_run.py``), the store is read with ``open_run`` right after
the kill, and the next process resumes (``--resume``) until one finishes. The finished store and
the final weights must equal those of one uninterrupted run exactly (CPU, one thread). The two
chains and the reference run go in parallel.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

from lca_toolkit import open_run

HELPER = Path(__file__).resolve().parents[1] / "helpers" / "fault_run.py"

# (name, POINT:N) in the order they happen. N counts in the killed process only; the comment
# says where the previous kill leaves the run (the checkpoint the next process resumes from).
CHAIN_A = [
    ("very first step", "optimizer_step:1"),  # fresh run, no checkpoint yet
    ("checkpoint temp half written", "checkpoint_temp_partial:1"),  # restart at 0; last.pt @3
    ("right after a checkpoint", "after_checkpoint:1"),  # restart at 0; last.pt @3 in place
    ("inside a training step", "optimizer_step:1"),  # from @3: step 4
    ("inside an LCA gradient pass", "lca_gradient_pass:1"),  # from @3: interval (3, 6]
    ("during validation", "predict:1"),  # from @4 (epoch 1): validation of epoch 1
    ("store commit: arrays written, counts not", "store_commit_attrs:1"),  # from @6
]
CHAIN_B = [
    ("store commit: mid chunk write", "store_chunk_write:5"),  # fresh run, first commit
    ("checkpoint temp complete, not renamed", "checkpoint_temp_written:3"),  # restart at 0
    ("between epochs", "between_epochs:2"),  # from @3: start of epoch 1
    ("after an epoch row was logged", "log_epoch:1"),  # from @4: end of epoch 1
    ("during the TTA test", "predict:2"),  # from @6: test after epoch 1
    ("results written, store not closed", "before_close:1"),  # from @8: after the test
]


@dataclass
class Kill:
    """What one killed process left behind."""

    name: str
    point: str
    returncode: int
    stderr: str
    status: str | None = None
    steps: list[int] = field(default_factory=list)
    lca_ends: list[int] = field(default_factory=list)
    epochs: list[int] = field(default_factory=list)
    read_error: str | None = None


@dataclass
class Chain:
    out: Path
    kills: list[Kill]
    final_returncode: int
    final_stderr: str
    resumed: int


def run_helper(out: Path, synth: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(HELPER), str(out), str(synth), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


def read_after_kill(kill: Kill, out: Path) -> None:
    try:
        run = open_run(out)
        kill.status = run.status
        kill.steps = run.steps()["step"].tolist()
        kill.lca_ends = run.lca()["end_step"].tolist()
        kill.epochs = run.epochs()["epoch"].tolist()
    except Exception as exc:  # noqa: BLE001 - reported by the test of this kill point
        kill.read_error = f"{type(exc).__name__}: {exc}"


def run_chain(out: Path, synth: Path, plan: list[tuple[str, str]]) -> Chain:
    kills = []
    for i, (name, point) in enumerate(plan):
        proc = run_helper(out, synth, *(["--resume"] if i else []), "--kill", point)
        kill = Kill(name, point, proc.returncode, proc.stderr[-3000:])
        read_after_kill(kill, out)
        kills.append(kill)
    final = run_helper(out, synth, "--resume")
    resumed = len(open_run(out).attrs.get("resumed", [])) if out.exists() else -1
    return Chain(out, kills, final.returncode, final.stderr[-3000:], resumed)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("kills")
    synth = root / "synthetic"
    warm = run_helper(root / "warm.zarr", synth, "--kill", "optimizer_step:1")  # data once
    assert warm.returncode == -signal.SIGKILL, warm.stderr[-3000:]
    with ThreadPoolExecutor(max_workers=3) as pool:
        ref = pool.submit(run_helper, root / "reference.zarr", synth)
        a = pool.submit(run_chain, root / "a.zarr", synth, CHAIN_A)
        b = pool.submit(run_chain, root / "b.zarr", synth, CHAIN_B)
        reference = ref.result()
        assert reference.returncode == 0, reference.stderr[-3000:]
        return {"reference": root / "reference.zarr", "a": a.result(), "b": b.result()}


KILLS = [("a", i, name) for i, (name, _) in enumerate(CHAIN_A)] + [
    ("b", i, name) for i, (name, _) in enumerate(CHAIN_B)
]


@pytest.mark.parametrize(("chain", "index", "name"), KILLS, ids=[k[2] for k in KILLS])
def test_killed_process_leaves_a_readable_consistent_store(runs, chain, index, name):
    kill = runs[chain].kills[index]
    assert kill.returncode == -signal.SIGKILL, f"{kill.point} was never reached:\n{kill.stderr}"
    assert kill.read_error is None, kill.read_error
    assert kill.status == "running"  # nobody recorded an end: never presented as complete
    assert kill.steps == list(range(1, len(kill.steps) + 1))  # a prefix: no gap, no duplicate
    # Every 3 steps, and the last interval (6, 8] measured once training ended, before the test.
    assert all(end in (3, 6, 8) and end <= len(kill.steps) for end in kill.lca_ends)
    assert kill.epochs == list(range(len(kill.epochs)))


@pytest.mark.parametrize("chain", ["a", "b"])
def test_resumed_chain_equals_the_uninterrupted_run(runs, chain):
    result: Chain = runs[chain]
    assert result.final_returncode == 0, result.final_stderr
    ref, got = open_run(runs["reference"]), open_run(result.out)
    assert got.status == "finished"
    # Every process after the first resumed the store, also those that restarted at step 0.
    assert result.resumed == len(result.kills)
    for section in ("steps", "lca", "epochs"):
        assert ref.rows[section] == got.rows[section], section
    names = [
        "steps/step",
        "steps/loss",
        "steps/grad_norm_total",
        "steps/grad_norm",
        "steps/rel_sq_norm",
        "steps/update_norm",
        "steps/skipped",
        "steps/lr",
        "lca/start_step",
        "lca/end_step",
        "lca/by_group",
        "lca/abs_by_group",
        "lca/loss_start",
        "lca/loss_end",
        "lca/residual",
        "epochs/epoch",
        *(f"epochs/{m}" for m in ref.attrs["epoch_metrics"]),
    ]
    for name in names:
        np.testing.assert_array_equal(ref.array(name), got.array(name), err_msg=name)
    assert ref.attrs["results"] == got.attrs["results"]
    ref_pred, got_pred = ref.table("test_predictions"), got.table("test_predictions")
    assert ref_pred.equals(got_pred)
    for file in ("last.pt", "best.pt"):
        wa = torch.load(f"{runs['reference']}.ckpt/{file}", weights_only=False)
        wb = torch.load(f"{result.out}.ckpt/{file}", weights_only=False)
        assert wa["model"].keys() == wb["model"].keys()
        for k in wa["model"]:
            assert torch.equal(wa["model"][k], wb["model"][k]), (file, k)
    opt_a = torch.load(f"{runs['reference']}.ckpt/last.pt", weights_only=False)["optimizer"]
    opt_b = torch.load(f"{result.out}.ckpt/last.pt", weights_only=False)["optimizer"]
    for pid, st in opt_a["state"].items():
        for key, value in st.items():
            assert torch.equal(value, opt_b["state"][pid][key]), (pid, key)

"""What recording costs the training thread per step, and what the run store costs on disk.

Part 1, time (interleaved A B C A B C ... in one process). The model is ``G`` one-element
parameters, one per group, so the gradient-norm math is trivial and what is left is the
Tracker's bookkeeping and the store:

* ``plain``: zero_grad, a tiny backward and ``optimizer.step()`` (SGD), the floor;
* ``tracker``: the same with ``Tracker.after_backward`` / ``after_step`` writing to a zarr run
  store on disk (the writer thread included: it shares the process and the GIL);
* ``sink``: ``RunWriter.append_steps`` alone, the training thread's share of the store, per row
  (appends in blocks of 64 rows, as the Tracker sends them).

The cost per recorded step is ``tracker - plain`` (median and min-max over repeats).

Part 2, disk. Writes a store of ``--disk-steps`` steps (LCA every 60 steps) for two group counts,
measures its size (``du``: bytes of the files and allocated blocks) and fits bytes = fixed +
per-group x G, per 1,000 steps.

Part 3, scale. The original LCA approach stores every weight and every gradient of every
iteration: 2 x parameters x 4 bytes x iterations. Iterations of a paper-length run come from the
paper preset: 100 epochs of (10 x the 970-breast LCA subset, which the paper says is 10% of an
epoch) / batch 4.

    python benchmarks/store_cost.py --groups 3 --steps 2000 --repeats 7
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lca_toolkit import ParamGroups, Tracker
from lca_toolkit.store import RunWriter
from lca_toolkit.store._records import StepBlock

JOINT_PARAMETERS = 5_863_266  # Joint ResNet-22 (mammo_models.build_model("joint"))


class Scalars(nn.Module):
    """``G`` one-element weights; the loss of a batch x (B, G) is sum_j w_j x_j, per sample."""

    def __init__(self, n_groups: int) -> None:
        super().__init__()
        self.g = nn.ModuleList(nn.Linear(1, 1, bias=False) for _ in range(n_groups))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, G = x.shape
        return torch.cat([lin(x[:, j : j + 1]) for j, lin in enumerate(self.g)], dim=1).sum(1)


def make(n_groups: int, seed: int = 0) -> tuple[Scalars, ParamGroups, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = Scalars(n_groups)
    groups = ParamGroups.from_prefixes(model, {f"group{j}": f"g.{j}." for j in range(n_groups)})
    return model, groups, torch.optim.SGD(model.parameters(), lr=1e-3)


def run_steps(mode: str, n_groups: int, xs: torch.Tensor, root: Path, rep: int) -> dict[str, float]:
    """Seconds per step of ``len(xs)`` steps in ``mode`` (store creation and close excluded).

    Returns ``{"total": ..., "opt_step": ..., "after_step": ...}``: the whole loop, the time
    inside ``optimizer.step()`` (where the Tracker's hooks compute the norms) and inside
    ``Tracker.after_step`` (row bookkeeping, the batched host transfer, the store append).
    """
    model, groups, opt = make(n_groups)
    tracker = None
    if mode == "tracker":
        tracker = Tracker(model, groups, optimizer=opt, store=root / f"time_{rep}.zarr")
    clock = time.perf_counter
    in_step = in_after = 0.0
    start = clock()
    for x in xs:
        opt.zero_grad(set_to_none=True)
        loss = model(x).mean()
        loss.backward()
        if tracker is not None:
            tracker.after_backward(loss)
        t0 = clock()
        opt.step()
        t1 = clock()
        in_step += t1 - t0
        if tracker is not None:
            tracker.after_step()
            in_after += clock() - t1
    total = clock() - start
    if tracker is not None:
        tracker.close()
    n = len(xs)
    return {"total": total / n, "opt_step": in_step / n, "after_step": in_after / n}


def sink_append(n_groups: int, steps: int, root: Path, rep: int, block: int = 64) -> float:
    """Seconds per row of ``RunWriter.append_steps`` alone, in blocks of ``block`` rows."""
    names = [f"group{j}" for j in range(n_groups)]
    writer = RunWriter(
        root / f"sink_{rep}.zarr",
        groups=names,
        group_members={g: [f"{g}.weight"] for g in names},
        lr_groups=1,
    )
    rng = np.random.default_rng(rep + 1)
    blocks = []
    for first in range(1, steps + 1, block):
        n = min(block, steps - first + 1)
        blocks.append(
            StepBlock(
                step=np.arange(first, first + n, dtype=np.int64),
                loss=rng.random(n),
                grad_norm_total=rng.random(n),
                grad_norm=rng.random((n, n_groups)),
                rel_sq_norm=rng.random((n, n_groups)),
                update_norm=rng.random((n, n_groups)),
                skipped=np.zeros(n, dtype=bool),
                lr=np.full((n, 1), 1e-3),
            )
        )
    start = time.perf_counter()
    for b in blocks:
        writer.append_steps(b)
    seconds = time.perf_counter() - start
    writer.close()
    return seconds / steps


def du_bytes(path: Path) -> tuple[int, int]:
    """(apparent bytes of the files, bytes of allocated blocks) under ``path``."""
    apparent = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    blocks = (
        int(
            subprocess.run(
                ["du", "-sk", str(path)], capture_output=True, text=True, check=True
            ).stdout.split()[0]
        )
        * 1024
    )
    return apparent, blocks


def write_store(n_groups: int, steps: int, path: Path, lca_every: int = 60) -> None:
    """A realistic store: ``steps`` trained steps with gradient norms, update norms and LCA."""
    model, groups, opt = make(n_groups, seed=n_groups)
    g = torch.Generator().manual_seed(n_groups)
    eval_batches = [torch.randn(16, n_groups, generator=g)]
    with Tracker(
        model,
        groups,
        optimizer=opt,
        store=path,
        loss_fn=lambda m, x: m(x),
        eval_batches=eval_batches,
        lca_every=lca_every,
    ) as tracker:
        for _ in range(steps):
            x = torch.randn(8, n_groups, generator=g)
            opt.zero_grad(set_to_none=True)
            loss = model(x).mean()
            loss.backward()
            tracker.after_backward(loss)
            opt.step()
            tracker.after_step()


def paper_iterations() -> tuple[int, int]:
    """(iterations, steps per epoch) of a paper-length run, from the paper preset."""
    from mammo_models.training.config import TRAIN_PRESETS

    paper = TRAIN_PRESETS["paper"]
    epoch_breasts = 10 * paper.lca_subset  # the subset is 10% of an epoch (appendix A)
    steps_per_epoch = epoch_breasts // 4  # batch 4
    return paper.epochs * steps_per_epoch, steps_per_epoch


def human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000:
            return f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} EB"


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--groups", type=int, default=3, help="G for the timing (mammography: 3)")
    p.add_argument("--steps", type=int, default=2000, help="steps per timed repeat")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--disk-steps", type=int, default=10_000)
    p.add_argument("--disk-groups", type=int, nargs=2, default=[3, 12])
    p.add_argument("--root", type=Path, default=Path("/tmp/bench/store_cost"))
    a = p.parse_args()
    if a.groups < 1 or a.steps < 1 or a.repeats < 1 or a.disk_steps < 1:
        p.error("--groups, --steps, --repeats and --disk-steps must be >= 1")
    if a.root.exists():
        shutil.rmtree(a.root)
    a.root.mkdir(parents=True)
    torch.set_num_threads(1)

    xs = torch.randn(a.steps, 4, a.groups, generator=torch.Generator().manual_seed(0))
    modes = ("plain", "tracker", "sink")

    def once(mode: str, rep: int) -> dict[str, float]:
        if mode == "sink":
            return {"per_row": sink_append(a.groups, a.steps, a.root, rep)}
        return run_steps(mode, a.groups, xs, a.root, rep)

    for mode in modes:  # warm-up
        once(mode, 0)
    runs: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
    for rep in range(1, a.repeats + 1):
        for mode in modes:
            runs[mode].append(once(mode, rep))

    def col(mode: str, key: str) -> list[float]:
        return [r[key] for r in runs[mode]]

    def diff(key: str) -> list[float]:
        return [t - q for t, q in zip(col("tracker", key), col("plain", key), strict=True)]

    print(
        f"{a.groups} groups, {a.steps} steps x {a.repeats} repeats, SGD on {a.groups} scalars, "
        f"threads {torch.get_num_threads()}"
    )
    print()
    print("| measured | median µs per step | spread (min-max) |")
    print("| --- | --- | --- |")
    for label, values in (
        ("plain step, whole loop (floor)", col("plain", "total")),
        ("step with Tracker + store, whole loop", col("tracker", "total")),
        ("difference, whole loop", diff("total")),
        ("`Tracker.after_step` (rows, host transfer, store append)", col("tracker", "after_step")),
        ("norm hooks inside `optimizer.step()` (difference)", diff("opt_step")),
        ("`RunWriter.append_steps` alone, per row", col("sink", "per_row")),
    ):
        us = [v * 1e6 for v in values]
        print(f"| {label} | {statistics.median(us):.2f} | {min(us):.2f}-{max(us):.2f} |")

    print()
    sizes = {}
    for g in a.disk_groups:
        path = a.root / f"disk_g{g}.zarr"
        write_store(g, a.disk_steps, path)
        sizes[g] = du_bytes(path)
    (g1, g2) = a.disk_groups
    per_k = 1000 / a.disk_steps
    print(f"store of {a.disk_steps:,} steps, LCA every 60 steps")
    print()
    print("| groups | files (bytes) | allocated (du) | files per 1,000 steps |")
    print("| --- | --- | --- | --- |")
    for g in a.disk_groups:
        app, blk = sizes[g]
        print(f"| {g} | {app:,} | {blk:,} | {human(app * per_k)} |")
    slope = (sizes[g2][0] - sizes[g1][0]) / (g2 - g1) * per_k
    fixed = sizes[g1][0] * per_k - slope * g1
    print(f"\nfit (files): {human(fixed)} fixed + {human(slope)} per group, per 1,000 steps")

    iterations, per_epoch = paper_iterations()
    original = 2 * JOINT_PARAMETERS * 4 * iterations
    ours = (fixed + slope * 3) * iterations / 1000
    print(
        f"\npaper-length run: 100 epochs x {per_epoch:,} steps = {iterations:,} iterations; "
        f"original LCA (2 x {JOINT_PARAMETERS:,} x 4 bytes per iteration): {human(original)}; "
        f"this store with the 3 mammography groups: {human(ours)} "
        f"(ratio {original / ours:,.0f})"
    )


if __name__ == "__main__":
    main()

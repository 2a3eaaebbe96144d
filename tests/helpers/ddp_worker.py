"""A tiny recorded DDP training run, started by the distributed tests under torchrun.

``python -m torch.distributed.run --standalone --nproc_per_node=N ddp_worker.py STORE OUT_DIR``
trains :class:`problems.SmoothMLP` (float64, no BatchNorm) with Adam on fixed global batches, each
split evenly across the ranks, with a Tracker recording into STORE (LCA every 2 steps). Every rank
saves what its Tracker returned to ``OUT_DIR/rank<r>.pt``. :func:`train` with no process group is
the single-process reference over the same global batches.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
from problems import SmoothMLP, mlp_batches, mlp_loss

from lca_toolkit import Tracker, distributed

GROUPS = {"audio": "audio.", "image": "image.", "head": "head."}
STEPS = 8
GLOBAL_BATCH = 4


def train(store: Any, fail_at: int | None = None) -> dict[str, Any]:
    """Train STEPS steps; returns this rank's LCA results and its Tracker's final state."""
    world, rank = distributed.world_size(), distributed.rank()
    model = SmoothMLP(seed=0)
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    train_batches = mlp_batches(n=STEPS * GLOBAL_BATCH, batch_size=GLOBAL_BATCH, seed=3)
    tracker = Tracker(
        model,
        GROUPS,
        optimizer=optimizer,
        store=store,
        loss_fn=mlp_loss,
        eval_batches=mlp_batches(n=22, batch_size=5, seed=1),
        lca_every=2,
        transfer_every=3,
    )
    results = []
    with tracker:
        for batch in train_batches:
            batch = distributed.shard_batch(batch, rank, world)
            optimizer.zero_grad(set_to_none=True)
            loss = mlp_loss(model, batch).mean()
            loss.backward()
            tracker.after_backward(loss)
            optimizer.step()
            result = tracker.after_step()
            if result is not None:
                results.append(
                    torch.cat(
                        [result.by_group, torch.stack([result.loss_start, result.loss_end])]
                    ).tolist()
                )
            if fail_at is not None and tracker.step == fail_at and rank == world - 1:
                raise RuntimeError(f"rank {rank} fails on purpose at step {fail_at}")
            if tracker.step == 5:
                state = tracker.state_dict()  # a collective flush: must work on every rank
        final = tracker.state_dict()
    return {"lca": results, "mid_state_step": state["step"], "final": final}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("store")
    parser.add_argument("out_dir")
    parser.add_argument("--fail-at", type=int)
    args = parser.parse_args()
    created = distributed.init_from_env()
    try:
        out = train(args.store, fail_at=args.fail_at)
        torch.save(out, Path(args.out_dir) / f"rank{distributed.rank()}.pt")
    finally:
        if created:
            distributed.destroy()


if __name__ == "__main__":
    main()

"""One LCA interval of a BatchNorm model, measured under torchrun (CPU, gloo) or in one process.

``python -m torch.distributed.run --standalone --nproc_per_node=2 syncbn_worker.py OUT_DIR``
converts :class:`problems.SmoothMLP` (float64, with BatchNorm) to ``torch.nn.SyncBatchNorm``, as
``--sync-bn`` does for training, and measures one interval with train-mode BN on an E of 22
samples in batches of 5 (rank 0 evaluates 3 batches, rank 1 evaluates 2). Every rank saves its
result to ``OUT_DIR/rank<r>.pt``. :func:`measure` with no process group and ``sync=False`` is the
single-process, plain-BatchNorm reference.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from problems import SmoothMLP, mlp_batches, mlp_loss

from lca_toolkit import LcaConfig, LcaEngine, ParamGroups, distributed


def measure(sync: bool) -> dict[str, torch.Tensor]:
    model = SmoothMLP(seed=0, bn=True)
    if sync:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules()) == sync
    groups = ParamGroups.from_children(model)
    config = LcaConfig(1, "simpson", bn_policy="train")
    engine = LcaEngine(model, groups, mlp_loss, mlp_batches(22, 5, seed=1), config)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():  # one "step": every parameter moves a little
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    result = engine.measure(1)
    return {
        "by_group": result.by_group.cpu(),
        "loss_start": result.loss_start.cpu(),
        "loss_end": result.loss_end.cpu(),
    }


if __name__ == "__main__":
    out = Path(sys.argv[1])
    with distributed.process_group():
        torch.save(measure(sync=True), out / f"rank{distributed.rank()}.pt")

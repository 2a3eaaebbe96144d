"""A Lightning fit of a module sharded with FSDP2 (``ModelParallelStrategy``, 2 gloo ranks on the
CPU) with the LcaCallback, stopped after 2 steps with a distributed checkpoint and resumed to 4.

Started under torchrun: ``lightning_fsdp.py OUT``. Rank 0's store is ``OUT/run.zarr``; the
distributed checkpoint of step 2 is ``OUT/ckpt.ckpt``. The test compares the store with one unsharded process.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from lightning.pytorch.callbacks import ModelCheckpoint  # noqa: E402
from lightning.pytorch.strategies import ModelParallelStrategy  # noqa: E402
from lightning_problems import (  # noqa: E402
    GROUPS,
    TwoTower,
    dataset,
    eval_batches,
    per_sample_loss,
    trainer,
)
from torch.utils.data import DataLoader, Subset  # noqa: E402

from lca_toolkit.integrations.lightning import LcaCallback  # noqa: E402

BATCH_PER_RANK = 4


class ShardedTwoTower(TwoTower):
    """The two-tower module with each tower and the root sharded by ``fully_shard``."""

    def configure_model(self) -> None:
        from torch.distributed.fsdp import fully_shard

        mesh = self.device_mesh["data_parallel"]
        fully_shard(self.net.a, mesh=mesh)
        fully_shard(self.net.b, mesh=mesh)
        fully_shard(self, mesh=mesh)


def fit(out: Path, max_steps: int, ckpt_path: Path | None) -> None:
    callback = LcaCallback(
        GROUPS,
        store=out / "run.zarr",
        loss_fn=per_sample_loss,
        eval_batches=eval_batches(),
        lca_every=2,
    )
    every_2 = ModelCheckpoint(dirpath=out, filename="ckpt", every_n_train_steps=2, save_top_k=1)
    run = trainer(
        [callback, every_2],
        devices=2,
        strategy=ModelParallelStrategy(
            data_parallel_size=2, tensor_parallel_size=1, process_group_backend="gloo"
        ),
        max_steps=max_steps,
        enable_checkpointing=True,
        use_distributed_sampler=False,
    )
    run.fit(ShardedTwoTower(), rank_loader(), ckpt_path=ckpt_path)


def rank_loader() -> DataLoader:
    """This rank's contiguous half of each of the 2 global batches of 8 of an epoch (one
    process's batches of 8); the checkpoint at step 2 ends the first epoch."""
    rank = int(os.environ["RANK"])
    per_rank = [8 * b + BATCH_PER_RANK * rank + i for b in range(2) for i in range(BATCH_PER_RANK)]
    return DataLoader(Subset(dataset(16), per_rank), batch_size=BATCH_PER_RANK, shuffle=False)


if __name__ == "__main__":
    out = Path(sys.argv[1])
    fit(out, 2, None)
    fit(out, 4, out / "ckpt.ckpt")  # the checkpoint written during training, at step 2

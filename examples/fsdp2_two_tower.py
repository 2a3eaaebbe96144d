"""A two-tower model sharded with FSDP2 (``fully_shard``), recorded by the Tracker.

Run it under torchrun (gloo on the CPU, NCCL on GPUs)::

    torchrun --standalone --nproc_per_node=2 examples/fsdp2_two_tower.py --out runs/fsdp2.zarr

Each tower and the root are sharded, as the multimodal models that need FSDP2 are; every rank
holds only its shards of the weights, of the gradients and of the Tracker's LCA buffers. The
recorded rows are the ones one unsharded process would record (``tests/lca_toolkit/test_fsdp2.py``
checks it). The same model as an ``lca-run job``, sharded by the runner::

    torchrun --standalone --nproc_per_node=2 --no-python lca-run job \\
        examples/fsdp2_two_tower.py:make_job --out runs/fsdp2_job.zarr --lca-every 10 --fsdp
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from lca_toolkit import Tracker, distributed
from lca_toolkit.job import Job

GROUPS = {"image": "image.", "text": "text.", "head": "head."}


class Tower(nn.Module):
    """A small pre-norm MLP tower: the shape of a transformer block's feed-forward part."""

    def __init__(self, d_in: int, width: int, depth: int) -> None:
        super().__init__()
        self.proj = nn.Linear(d_in, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.LayerNorm(width),
                nn.Linear(width, 2 * width),
                nn.GELU(),
                nn.Linear(2 * width, width),
            )
            for _ in range(depth)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.proj(x)
        for block in self.blocks:
            h = h + block(h)
        return h


class TwoTower(nn.Module):
    """Image and text towers whose embeddings meet in a head that says whether they match."""

    def __init__(self, width: int = 64, depth: int = 2) -> None:
        super().__init__()
        self.image = Tower(48, width, depth)
        self.text = Tower(32, width, depth)
        self.head = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, 1))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        # (a sum, not a squeeze: FSDP warns about views returned by a sharded module)
        return self.head(self.image(batch["image"]) * self.text(batch["text"])).sum(-1)


def per_sample_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return nn.functional.binary_cross_entropy_with_logits(
        model(batch), batch["match"], reduction="none"
    )


def make_batches(n: int, batch_size: int, seed: int) -> list[dict[str, torch.Tensor]]:
    """Pairs whose text is a noisy projection of the image's latent (match) or of another's."""
    g = torch.Generator().manual_seed(seed)
    latent = torch.randn(n, 8, generator=g)
    match = torch.randint(0, 2, (n,), generator=g).float()
    other = latent[torch.randperm(n, generator=g)]
    to_image = torch.randn(8, 48, generator=torch.Generator().manual_seed(1))
    to_text = torch.randn(8, 32, generator=torch.Generator().manual_seed(2))
    image = latent @ to_image + 0.5 * torch.randn(n, 48, generator=g)
    paired = torch.where(match[:, None] > 0, latent, other)
    text = paired @ to_text + 0.5 * torch.randn(n, 32, generator=g)
    return [
        {
            "image": image[i : i + batch_size],
            "text": text[i : i + batch_size],
            "match": match[i : i + batch_size],
        }
        for i in range(0, n, batch_size)
    ]


def make_job(epochs: int = 2, lr: float = 2e-3, n_train: int = 512, seed: int = 0) -> Job:
    """The unsharded job: ``lca-run job --fsdp`` shards it under torchrun."""
    torch.manual_seed(seed)
    model = TwoTower()
    return Job(
        model=model,
        loss_fn=per_sample_loss,
        optimizer=torch.optim.AdamW(model.parameters(), lr=lr),
        train_batches=make_batches(n_train, 32, seed),
        eval_batches=make_batches(128, 32, seed + 1),
        groups=GROUPS,
        epochs=epochs,
        config={"lr": lr, "n_train": n_train, "seed": seed},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="run store to write (.zarr)")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--lca-every", type=int, default=10)
    args = parser.parse_args()
    with distributed.process_group():
        from torch.distributed.fsdp import fully_shard

        rank, world = distributed.rank(), distributed.world_size()
        torch.manual_seed(0)
        model = TwoTower()
        for tower in (model.image, model.text):
            fully_shard(tower)
        fully_shard(model)  # the root takes the head
        optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)  # over the sharded parameters
        train = make_batches(args.steps * 32, 32, seed=0)
        with Tracker(
            model,
            GROUPS,
            optimizer=optimizer,
            store=args.out,
            loss_fn=per_sample_loss,
            eval_batches=make_batches(128, 32, seed=1),
            lca_every=args.lca_every,
            store_mode="overwrite",
        ) as tracker:
            for batch in train:
                batch = distributed.shard_batch(batch, rank, world)  # 1/N of each global batch
                optimizer.zero_grad(set_to_none=True)
                loss = per_sample_loss(model, batch).mean()
                loss.backward()
                tracker.after_backward(loss)
                optimizer.step()
                tracker.after_step()
        if distributed.is_main():
            from lca_toolkit import open_run

            lca = open_run(args.out).lca()
            shares = {g: float(lca[f"lca/{g}"].sum()) for g in GROUPS}
            print(
                f"{tracker.step} steps on {world} ranks; summed LCA per group: "
                + ", ".join(f"{g} {v:+.4f}" for g, v in shares.items())
            )


if __name__ == "__main__":
    main()

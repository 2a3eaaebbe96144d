"""Record per-tower gradient norms and LCA from a Lightning fit with ``LcaCallback``.

A LightningModule with two input towers (``net.a`` sees a strong cue, ``net.b`` a weak one) summed
into a linear head, trained with gradient accumulation; the callback records one row per optimizer
step and LCA every ``lca_every`` steps into ``OUT_DIR/run.zarr``. Run:
``python examples/lightning_two_tower.py OUT_DIR``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lca_toolkit import open_run
from lca_toolkit.integrations.lightning import LcaCallback

GROUPS = {"a": "net.a.", "b": "net.b.", "head": "head."}


class TwoTower(pl.LightningModule):
    def __init__(self, width: int = 32, lr: float = 0.05) -> None:
        super().__init__()
        self.net = nn.ModuleDict(
            {
                "a": nn.Sequential(nn.Linear(8, width), nn.Tanh()),
                "b": nn.Sequential(nn.Linear(8, width), nn.Tanh()),
            }
        )
        self.head = nn.Linear(width, 1)
        self.lr = lr

    def forward(self, xa: torch.Tensor, xb: torch.Tensor) -> torch.Tensor:
        h_a, h_b = self.net["a"](xa), self.net["b"](xb)  # (B, width) each
        assert h_a.shape == h_b.shape, (h_a.shape, h_b.shape)
        return self.head(h_a + h_b).squeeze(-1)  # (B,)

    def training_step(self, batch, batch_idx):
        return per_sample_loss(self, batch).mean()

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)


def per_sample_loss(module: nn.Module, batch) -> torch.Tensor:
    """Squared error per sample (1-D): what LCA averages over the evaluation subset."""
    xa, xb, y = batch
    return (module(xa, xb) - y) ** 2


def data(n: int, seed: int) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    xa, xb = torch.randn(n, 8, generator=g), torch.randn(n, 8, generator=g)
    y = 2.0 * xa[:, 0] + 0.3 * xb[:, 0] + 0.1 * torch.randn(n, generator=g)
    return TensorDataset(xa, xb, y)


def main(out_dir: str | Path, steps: int = 60, quadrature: str | None = None) -> Path:
    """Fit for ``steps`` optimizer steps; return the store's path.

    ``quadrature`` picks the LCA rule (``None``: the Tracker's default).
    """
    torch.manual_seed(0)
    store = Path(out_dir) / "run.zarr"
    eval_batches = list(DataLoader(data(64, seed=1), batch_size=32))  # the fixed subset E
    callback = LcaCallback(
        GROUPS, store=store, loss_fn=per_sample_loss, eval_batches=eval_batches,
        lca_every=max(steps // 6, 1), store_mode="overwrite", quadrature=quadrature,
    )
    trainer = pl.Trainer(
        max_steps=steps, accumulate_grad_batches=2, gradient_clip_val=1.0, callbacks=[callback],
        accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )
    trainer.fit(TwoTower(), DataLoader(data(512, seed=0), batch_size=16, shuffle=True))
    return store


if __name__ == "__main__":
    path = main(sys.argv[1] if len(sys.argv) > 1 else "runs/lightning_two_tower")
    run = open_run(path)
    print(run.steps()[["step", "loss", *[f"grad_norm/{g}" for g in GROUPS]]].tail())
    print(run.lca()[["start_step", "end_step", *[f"lca/{g}" for g in GROUPS], "residual"]])

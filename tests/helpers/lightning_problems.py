"""A tiny two-tower LightningModule and a reference callback for the Lightning integration tests."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

GROUPS = {"a": "net.a.", "b": "net.b.", "head": "head."}


class TwoTowerNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Sequential(nn.Linear(4, 16), nn.Tanh())
        self.b = nn.Sequential(nn.Linear(3, 16), nn.Tanh())


class TwoTower(pl.LightningModule):
    """Two input towers summed into a linear head; per-sample squared error (about 180 weights)."""

    def __init__(self, lr: float = 0.1, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.net = TwoTowerNet()
        self.head = nn.Linear(16, 1)
        self.lr = lr

    def forward(self, xa: torch.Tensor, xb: torch.Tensor) -> torch.Tensor:
        return self.head(self.net.a(xa) + self.net.b(xb)).squeeze(-1)

    def training_step(self, batch, batch_idx):
        return per_sample_loss(self, batch).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)


def per_sample_loss(module: nn.Module, batch) -> torch.Tensor:
    xa, xb, y = batch
    return (module(xa, xb).float() - y) ** 2


def dataset(n: int = 64, seed: int = 1) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    xa, xb = torch.randn(n, 4, generator=g), torch.randn(n, 3, generator=g)
    y = xa[:, 0] - 2 * xb[:, 1] + 0.1 * torch.randn(n, generator=g)
    return TensorDataset(xa, xb, y)


def loader(n: int = 64, batch_size: int = 4) -> DataLoader:
    return DataLoader(dataset(n), batch_size=batch_size, shuffle=False)


def eval_batches(n: int = 16, batch_size: int = 8) -> list:
    return list(DataLoader(dataset(n, seed=7), batch_size=batch_size))


def trainer(callbacks, **kwargs) -> pl.Trainer:
    options = dict(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    options.update(kwargs)
    return pl.Trainer(callbacks=callbacks, **options)


class GradReference(pl.Callback):
    """Per-group norms with torch.nn.utils.get_total_norm right before each optimizer step
    (Lightning calls this hook after unscaling and before it clips)."""

    def __init__(self, groups: dict[str, str]) -> None:
        self.groups = groups
        self.norms: list[dict[str, float]] = []

    def _grads(self, module, prefix):
        return [p.grad for n, p in module.named_parameters() if n.startswith(prefix)]

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        row = {g: float(torch.nn.utils.get_total_norm(self._grads(pl_module, pre)))
               for g, pre in self.groups.items()}
        row["total"] = float(torch.nn.utils.get_total_norm([p.grad for p in pl_module.parameters()]))
        self.norms.append(row)

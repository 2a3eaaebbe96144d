"""Toy problems shared by the tests (importable as `problems`; all float64 on CPU)."""

from __future__ import annotations

import torch
from torch import nn


class Theta(nn.Module):
    """A model that is just a parameter vector, for losses written in closed form."""

    def __init__(self, values) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.as_tensor(values, dtype=torch.float64).clone())


class SmoothMLP(nn.Module):
    """Two-branch tanh MLP fused by sum: smooth, so quadrature error behaves by the book."""

    def __init__(self, seed: int = 0, width: int = 8, bn: bool = False) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.audio = nn.Sequential(nn.Linear(3, width), nn.Tanh(), nn.Linear(width, 4))
        self.image = nn.Sequential(nn.Linear(5, width), nn.Tanh(), nn.Linear(width, 4))
        self.bn = nn.BatchNorm1d(4) if bn else nn.Identity()
        self.head = nn.Linear(4, 1)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        self.double()

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        h = self.audio(batch["audio"]) + self.image(batch["image"])
        return self.head(torch.tanh(self.bn(h))).squeeze(-1)


def mlp_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Per-sample squared error (1-D)."""
    return (model(batch) - batch["y"]) ** 2


def mlp_batches(n: int = 22, batch_size: int = 5, seed: int = 1) -> list[dict[str, torch.Tensor]]:
    """Fixed evaluation batches with an uneven last batch."""
    g = torch.Generator().manual_seed(seed)
    audio = torch.randn(n, 3, generator=g, dtype=torch.float64)
    image = torch.randn(n, 5, generator=g, dtype=torch.float64)
    y = torch.sin(audio.sum(1)) + 0.3 * image[:, 0]
    return [
        {
            "audio": audio[i : i + batch_size],
            "image": image[i : i + batch_size],
            "y": y[i : i + batch_size],
        }
        for i in range(0, n, batch_size)
    ]

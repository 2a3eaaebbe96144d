"""The training predictions of the running epoch, kept on the device and gathered across ranks.

A checkpoint written inside an epoch holds them, so a resumed run reports the same train loss and
AUC for that epoch as an uninterrupted one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from lca_toolkit import distributed

from .metrics import auc


@dataclass
class EpochAccumulator:
    """Training predictions of the running epoch (for train loss/AUC), kept on the device."""

    losses: list[torch.Tensor] = field(default_factory=list)
    probs: list[torch.Tensor] = field(default_factory=list)
    labels: list[torch.Tensor] = field(default_factory=list)

    def add(
        self, losses: torch.Tensor, logits: torch.Tensor, batch: dict[str, torch.Tensor]
    ) -> None:
        self.losses.append(losses.detach().float())
        self.probs.append(torch.sigmoid(logits.detach().float()))
        self.labels.append(torch.stack([batch["malignant"], batch["benign"]], 1).float())

    def gathered(self, device: torch.device) -> EpochAccumulator:
        """Every rank's predictions in one accumulator (itself in a single process)."""
        if not distributed.is_distributed():
            return self
        widths = {"losses": (), "probs": (2,), "labels": (2,)}
        out = EpochAccumulator()
        for k, tail in widths.items():
            parts = getattr(self, k)
            local = torch.cat(parts) if parts else torch.zeros((0, *tail), device=device)
            both = distributed.all_gather_cat(local.float())
            setattr(out, k, [both] if len(both) else [])
        return out

    def metrics(self) -> dict[str, float]:
        if not self.losses:
            return {"train_loss": math.nan, "train_auc": math.nan, "train_auc_benign": math.nan}
        losses = torch.cat(self.losses).cpu().numpy()
        probs = torch.cat(self.probs).cpu().numpy()
        labels = torch.cat(self.labels).cpu().numpy()
        return {
            "train_loss": float(losses.mean()),
            "train_auc": auc(labels[:, 0], probs[:, 0], what="train malignant AUC"),
            "train_auc_benign": auc(labels[:, 1], probs[:, 1], what="train benign AUC"),
        }

    def state_dict(self) -> dict[str, Any]:
        return {k: [t.cpu() for t in getattr(self, k)] for k in ("losses", "probs", "labels")}

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        for k in ("losses", "probs", "labels"):
            setattr(self, k, [t.to(device) for t in state[k]])

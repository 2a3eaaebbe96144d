"""Predictions and metrics of a model on a dataset, with optional test-time augmentation."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..losses import per_sample_loss
from .metrics import auc


@dataclass(frozen=True)
class SplitMetrics:
    """Loss and AUCs of one split (malignant AUC selects models; benign is reported)."""

    loss: float
    auc: float
    auc_benign: float

    def as_dict(self, prefix: str) -> dict[str, float]:
        return {
            f"{prefix}_loss": self.loss,
            f"{prefix}_auc": self.auc,
            f"{prefix}_auc_benign": self.auc_benign,
        }


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


@torch.no_grad()
def predict(
    model: nn.Module, batches: Iterable[dict[str, torch.Tensor]], device: torch.device
) -> pd.DataFrame:
    """Per-item predictions in eval mode, averaged over items sharing an ``index`` (TTA).

    Returns:
        One row per breast: ``index``, ``malignant_label``, ``benign_label``, ``malignant_prob``,
        ``benign_prob``, ``loss`` (the training objective per item, averaged like the probabilities).
    """
    was_training = model.training
    model.eval()
    parts = []
    try:
        for batch in batches:
            batch = to_device(batch, device)
            outputs = model(batch)
            probs = torch.sigmoid(outputs["logits"].float())
            losses = per_sample_loss(outputs, batch)
            parts.append(
                torch.stack(
                    [
                        batch["index"].to(probs.dtype),
                        batch["malignant"].float(),
                        batch["benign"].float(),
                        probs[:, 0],
                        probs[:, 1],
                        losses.float(),
                    ],
                    dim=1,
                )
            )
    finally:
        model.train(was_training)
    if not parts:
        return pd.DataFrame(
            columns=[
                "index",
                "malignant_label",
                "benign_label",
                "malignant_prob",
                "benign_prob",
                "loss",
            ]
        )
    table = torch.cat(parts).cpu().numpy()
    frame = pd.DataFrame(
        table,
        columns=[
            "index",
            "malignant_label",
            "benign_label",
            "malignant_prob",
            "benign_prob",
            "loss",
        ],
    )
    frame = frame.groupby("index", sort=True).mean().reset_index()
    frame["index"] = frame["index"].astype(np.int64)
    return frame


def split_metrics(predictions: pd.DataFrame, split: str) -> SplitMetrics:
    """Mean loss and malignant/benign AUC of a prediction table."""
    return SplitMetrics(
        loss=float(predictions["loss"].mean()) if len(predictions) else float("nan"),
        auc=auc(
            predictions["malignant_label"],
            predictions["malignant_prob"],
            what=f"{split} malignant AUC",
        ),
        auc_benign=auc(
            predictions["benign_label"], predictions["benign_prob"], what=f"{split} benign AUC"
        ),
    )

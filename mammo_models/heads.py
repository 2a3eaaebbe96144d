"""The small layers on top of the columns: the per-view projection and the output layer.

Per view: column -> GAP (256) -> :class:`ViewProjection` (FC 256 -> 512, then ReLU) -> ``h_view``.
The ReLU follows the NYU code (``h = relu(fc1(h))`` in nyukat/breast_cancer_classifier); the paper
only says "a fully connected layer", so it is a fact of the reference code, not of the text.
The output layer is ``Linear(512, 2)``: two independent binary classifiers whose logit columns are
``[malignant, benign]`` (sigmoid each, not a softmax over the two).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .resnet22 import FEATURE_DIM

HIDDEN_DIM: int = 512
TASKS: tuple[str, ...] = ("malignant", "benign")  # logit column order


class ViewProjection(nn.Module):
    """FC 256 -> 512 followed by ReLU: pooled column features (B, 256) -> ``h_view`` (B, 512)."""

    def __init__(self, in_features: int = FEATURE_DIM, out_features: int = HIDDEN_DIM) -> None:
        super().__init__()
        self.fc = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.fc(x))


def output_layer(in_features: int = HIDDEN_DIM) -> nn.Linear:
    """Two independent binary classifiers: (B, 512) -> logits (B, 2), columns [malignant, benign]."""
    return nn.Linear(in_features, len(TASKS))

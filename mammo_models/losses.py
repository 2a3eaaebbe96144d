"""The per-sample training loss shared by every model variant.

The loss of one breast is the sum of two binary cross-entropies, malignant and benign (the paper's
two independent binary classifiers). It is returned per sample, shape (B,), because the LCA
recorder needs sums over the evaluation subset rather than batch means; a training loop takes
``.mean()``.

Gradient Blending: a model built with blending returns, besides ``"logits"``, the per-view head
logits ``"logits_cc"`` / ``"logits_mlo"`` and its fixed loss weights as ``"blend_weights"``
(B, 3), columns ``[joint, cc, mlo]`` (a broadcast view of one buffer stored on the model, so
checkpoints keep the weights). The loss is then
``w_joint * L(logits) + w_cc * L(logits_cc) + w_mlo * L(logits_mlo)``. Carrying the weights in the
outputs keeps ``per_sample_loss(outputs, batch)`` free of extra arguments, so the recorder's loss
function ``lambda model, batch: per_sample_loss(model(batch), batch)`` works for every variant.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

from .heads import TASKS

BLEND_HEADS: tuple[str, ...] = ("joint", "cc", "mlo")  # column order of outputs["blend_weights"]
_HEAD_KEYS: dict[str, str] = {"joint": "logits", "cc": "logits_cc", "mlo": "logits_mlo"}


def targets_from_batch(batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Stack the labels into (B, 2), columns [malignant, benign], float32.

    Raises:
        KeyError: a label key is missing.
        ValueError: a label is not a 1-D tensor or the two have different lengths.
    """
    cols = []
    for task in TASKS:
        if task not in batch:
            raise KeyError(f"batch has no {task!r} labels (keys: {sorted(batch)})")
        y = batch[task]
        if not isinstance(y, torch.Tensor) or y.dim() != 1:
            got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            raise ValueError(f"batch[{task!r}] must be a 1-D tensor (B,), got {got}")
        cols.append(y)
    if cols[0].shape != cols[1].shape:
        raise ValueError(
            f"batch['malignant'] has shape {tuple(cols[0].shape)} but batch['benign'] has "
            f"{tuple(cols[1].shape)}"
        )
    return torch.stack(cols, dim=1).float()


def bce_per_sample(
    logits: torch.Tensor, targets: torch.Tensor, name: str = "logits"
) -> torch.Tensor:
    """Sum over the two tasks of BCE-with-logits: (B, 2) logits, (B, 2) targets -> (B,)."""
    if logits.dim() != 2 or tuple(logits.shape) != tuple(targets.shape):
        raise ValueError(
            f"outputs[{name!r}] must have shape (B, 2) = {tuple(targets.shape)} matching the "
            f"labels, got {tuple(logits.shape)}"
        )
    loss = F.binary_cross_entropy_with_logits(
        logits, targets.to(logits.dtype), reduction="none"
    )  # (B, 2)
    return loss.sum(dim=1)


def per_sample_loss(
    outputs: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor]
) -> torch.Tensor:
    """Per-sample loss (B,) of any mammography model's outputs.

    Args:
        outputs: ``model(batch)``: ``"logits"`` (B, 2); with Gradient Blending also
            ``"logits_cc"``, ``"logits_mlo"`` (B, 2) and ``"blend_weights"`` (B, 3).
        batch: needs ``"malignant"`` and ``"benign"`` (B,) in {0, 1}.

    Returns:
        (B,) tensor: BCE(malignant) + BCE(benign) per sample, or the blended sum over heads.
    """
    if "logits" not in outputs:
        raise KeyError(f"model outputs have no 'logits' (keys: {sorted(outputs)})")
    targets = targets_from_batch(batch)  # (B, 2)
    if "blend_weights" not in outputs:
        return bce_per_sample(outputs["logits"], targets)
    weights = outputs["blend_weights"]  # (B, 3) or (3,)
    if weights.shape[-1] != len(BLEND_HEADS):
        raise ValueError(
            f"outputs['blend_weights'] must have {len(BLEND_HEADS)} columns {BLEND_HEADS}, "
            f"got shape {tuple(weights.shape)}"
        )
    total = None
    for i, head in enumerate(BLEND_HEADS):
        key = _HEAD_KEYS[head]
        if key not in outputs:
            raise KeyError(f"outputs have 'blend_weights' but no {key!r} (keys: {sorted(outputs)})")
        term = weights[..., i] * bce_per_sample(outputs[key], targets, key)  # (B,)
        total = term if total is None else total + term
    return total

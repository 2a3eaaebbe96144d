"""Moving nested batches (tensors in dicts, lists, tuples) to a device, and checking what
``loss_fn`` returns for one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch


def move_to(batch: Any, device: torch.device, upcast: bool = False) -> Any:
    """Return ``batch`` with every tensor moved to ``device`` (non-blocking where possible).

    Mappings, lists and tuples (named tuples included) are rebuilt; anything else is returned as it
    is. Tensors already on ``device`` are not copied. With ``upcast``, half and bfloat16 tensors
    become float32 (LCA evaluates a low-precision model on float32 copies, inputs included).
    """
    if isinstance(batch, torch.Tensor):
        if upcast and batch.is_floating_point() and batch.dtype.itemsize < 4:
            return batch.to(device=device, dtype=torch.float32, non_blocking=True)
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return type(batch)((k, move_to(v, device, upcast)) for k, v in batch.items())
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(move_to(v, device, upcast) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to(v, device, upcast) for v in batch)
    return batch


def per_sample_losses(losses: Any) -> torch.Tensor:
    """``losses`` as returned by ``loss_fn(model, batch)``, checked to be a 1-D tensor.

    Raises:
        LcaError: anything else (a mean over the batch, a scalar, another type).
    """
    if not isinstance(losses, torch.Tensor) or losses.dim() != 1:
        from .errors import LcaError

        shape = tuple(losses.shape) if isinstance(losses, torch.Tensor) else type(losses).__name__
        raise LcaError(
            f"loss_fn must return a 1-D tensor of per-sample losses (reduction='none'); got {shape}"
        )
    return losses

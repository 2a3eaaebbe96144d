"""BatchNorm in the LCA passes: the policies, and the chain rule for running statistics.

BatchNorm policies (the loss must be a function of the interpolated state only):

* ``"interpolate"`` (default): eval-mode BN; the running statistics are interpolated along the chord
  like parameters and their share of the loss change goes to a separate ``bn_buffers`` group, so
  completeness holds and both endpoint losses are real eval-mode losses. Gradients with respect to
  the running statistics come from the exact chain rule of eval-mode BN,
  ``dL/d mean = -(w / sqrt(var + eps)) dL/db`` and ``dL/d var = -(w / (2 (var + eps))) dL/dw``,
  so the fused BN kernels run unchanged (requires affine BN).
* ``"train"``: train-mode BN on the fixed evaluation batches (batch statistics), the model's
  buffers untouched (the LCA paper's choice); dropout and other layers stay in eval mode.
* ``"none"``: eval-mode BN with whatever buffers the model holds at measurement time. Only for
  comparison: if the buffers move inside an interval, completeness fails.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor, nn


@contextlib.contextmanager
def plain_sync_batchnorm(model: nn.Module) -> Iterator[None]:
    """``SyncBatchNorm`` modules normalise each batch on its own during LCA passes.

    Training with ``SyncBatchNorm`` pools batch statistics across ranks. An LCA pass is not a
    training step: each rank evaluates whole batches of E and the engine all-reduces their sums,
    so each batch must be normalised by its own statistics, as one process would (and ranks may hold
    different numbers of batches, so a cross-rank reduction inside the forward could wait forever).
    The plain ``_BatchNorm.forward`` is bound on the instance for the pass and removed after it.
    """
    synced = [m for m in model.modules() if isinstance(m, nn.SyncBatchNorm)]
    plain = nn.modules.batchnorm._BatchNorm.forward
    try:
        for m in synced:
            m.forward = plain.__get__(m)  # type: ignore[method-assign]
        yield
    finally:
        for m in synced:
            m.__dict__.pop("forward", None)


def running_stat_grad(attr: str, weight: Tensor, bias: Tensor, var: Tensor, eps: float) -> Tensor:
    """Gradient of the loss w.r.t. an eval-mode BN running statistic from the affine gradients.

    Eval-mode BN computes ``w (x - mean) / sqrt(var + eps) + b``, so
    ``dL/d mean = -(w / sqrt(var + eps)) dL/db`` and ``dL/d var = -(w / (2 (var + eps))) dL/dw``.

    Args:
        attr: ``running_mean`` or ``running_var``.
        weight, bias: the node's affine parameters (leaves; their ``.grad`` after the pass).
        var: the node's running variance.
        eps: the module's epsilon.
    """
    w = weight.detach()
    if attr == "running_mean":
        if bias.grad is None:
            return torch.zeros_like(var)
        return -(w / torch.sqrt(var + eps)) * bias.grad
    if weight.grad is None:
        return torch.zeros_like(var)
    return -(w / (2.0 * (var + eps))) * weight.grad

"""Per-group gradient norms, relative squared norms and update norms as fused device computations.

These run on every optimizer step, so they are written as a handful of ``torch._foreach_*`` kernels
plus one ``index_add_`` per quantity, with no per-parameter Python arithmetic and no host sync: the
results stay on the device until the Tracker moves a batch of rows to the host.

Definitions, per group g with parameter tensors t in g:

* ``grad_norm[g] = sqrt(sum_t ||grad_t||^2)``: the L2 norm of the group's gradient (the paper's
  ||dL/dtheta_CC||), equal to ``torch.nn.utils.get_total_norm`` over the group's gradients.
* ``grad_norm_total = sqrt(sum_g grad_norm[g]^2)``.
* ``rel_sq_norm[g] = sum_t ||grad_t||^2 / ||theta_t||^2``: the per-tensor relative squared norm
  summed over the group ("learning speed", Wu et al., ICML 2022). Tensors with ``||theta_t|| = 0``
  (for example zero-initialised biases at step one) are left out of the sum rather than making it
  infinite.
* ``update_norm[g] = ||theta_after - theta_before||`` over the group's tensors.

Tensors without a gradient (unused in this step's graph) count as zero gradient.
"""

from __future__ import annotations

import torch
from torch import Tensor


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for half/bfloat16/float32 tensors, float64 for float64 ones."""
    return torch.promote_types(dtype, torch.float32)


def tensor_norms(tensors: list[Tensor], dtype: torch.dtype) -> Tensor:
    """(T,) L2 norms of each tensor, computed in ``dtype`` (one fused kernel)."""
    return torch.stack(torch._foreach_norm(tensors, 2, dtype=dtype))


def group_sum(values: Tensor, group_index: Tensor, n_groups: int) -> Tensor:
    """(G,) sums of per-tensor ``values`` (T,) by group."""
    return torch.zeros(n_groups, dtype=values.dtype, device=values.device).index_add_(
        0, group_index, values
    )


def gradient_norms(
    params: list[Tensor], group_index: Tensor, n_groups: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-group gradient norms, total norm and relative squared norms of ``params``' ``.grad``.

    One fused norm kernel covers gradients and parameters together and one ``index_add_`` does
    both group reductions, so the cost per step is a dozen kernel launches whatever the model.

    Args:
        params: T parameter tensors (their ``.grad`` is read, never written).
        group_index: int64 (T,) group position of each tensor.
        n_groups: G.

    Returns:
        ``(grad_norm (G,), grad_norm_total (), rel_sq_norm (G,))`` on the parameters' device.
    """
    dtype = accumulation_dtype(params[0].dtype)
    grads = [p.grad for p in params]
    if any(g is None for g in grads):
        present = [i for i, g in enumerate(grads) if g is not None]
        if not present:
            zeros = torch.zeros(n_groups, dtype=dtype, device=params[0].device)
            return zeros, zeros.sum(), zeros.clone()
        group_index = group_index[present]
        params = [params[i] for i in present]
        grads = [grads[i] for i in present]
    n = len(params)
    sq = torch.stack(torch._foreach_norm(grads + [p.detach() for p in params], 2, dtype=dtype))
    sq = sq.square_().view(2, n)  # rows: ||grad_t||^2, ||theta_t||^2
    ratio = torch.where(sq[1] > 0, sq[0] / sq[1], 0.0)
    sums = torch.zeros(2, n_groups, dtype=dtype, device=sq.device).index_add_(
        1, group_index, torch.stack([sq[0], ratio])
    )
    return sums[0].sqrt(), sums[0].sum().sqrt(), sums[1]


def update_norms(
    before: list[Tensor], params: list[Tensor], group_index: Tensor, n_groups: int
) -> Tensor:
    """(G,) ``||theta_after - theta_before||`` per group; ``before`` is overwritten with the difference."""
    with torch.no_grad():
        torch._foreach_sub_(before, params)
    dtype = accumulation_dtype(params[0].dtype)
    return group_sum(tensor_norms(before, dtype).square_(), group_index, n_groups).sqrt_()

"""Per-group gradient norms, relative squared norms and update norms, split into a cheap per-step
part on the device and a batched per-block part on the host.

These run on every optimizer step, so the per-step part is the least work that keeps the numbers
exact: one fused ``torch._foreach_norm`` over the gradients and parameters, written with one
``torch.stack(..., out=row)`` into a preallocated device buffer of per-*tensor* norms (plus, for
update norms, one parameter copy before the step and a subtract, a norm and a stack after it).
Nothing is synced to the host. The grouping (squares, ratios, sums per group) happens once per
block of rows, on the host, when the Tracker moves the block off the device
(:func:`group_rows`). Per step that is about half a dozen kernel launches whatever the model; the
per-group arithmetic costs nothing on the training thread.

Definitions, per group g with parameter tensors t in g:

* ``grad_norm[g] = sqrt(sum_t ||grad_t||^2)``: the L2 norm of the group's gradient (the paper's
  ||dL/dtheta_CC||), equal to ``torch.nn.utils.get_total_norm`` over the group's gradients.
* ``grad_norm_total = sqrt(sum_g grad_norm[g]^2)``.
* ``rel_sq_norm[g] = sum_t ||grad_t||^2 / ||theta_t||^2``: the per-tensor relative squared norm
  summed over the group ("learning speed", Wu et al., ICML 2022). Tensors with ``||theta_t|| = 0``
  (for example zero-initialised biases at step one) are left out of the sum rather than making it
  infinite.
* ``param_norm[g] = sqrt(sum_t ||theta_t||^2)``: the L2 norm of the group's parameters at the
  step, i.e. where the gradient was taken (before the optimizer step). With ``grad_norm`` it
  gives the group-as-a-whole ratio ``grad_norm^2 / param_norm^2`` that Wu et al.'s conditional
  learning speed sums (:mod:`lca_toolkit.learning_speed`); the per-tensor squares are already in
  the row for ``rel_sq_norm``, so it costs no kernel and no transfer.
* ``update_norm[g] = ||theta_after - theta_before||`` over the group's tensors.

Sharded parameters (FSDP2): with a :class:`~lca_toolkit.sharding.ShardLayout`, each rank takes the
norms of its local shards, and one all-reduce of the squared row over the sharded mesh dimensions
(:meth:`~lca_toolkit.sharding.ShardLayout.sum_squares_`) gives every rank the global norms, still
on the device, still without a host sync.

Everything is computed in the parameters' accumulation dtype (float32 for half, bfloat16 and
float32 parameters, float64 for float64 ones) and stored as float64; carrying float32 norms on in
float64 would add digits that mean nothing and cost a third more disk after compression. Tensors
without a gradient (unused in this step's graph) count as zero gradient. A NaN or Inf in one
tensor makes its own group's numbers non-finite and no other group's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .sharding import ShardLayout, local


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for half/bfloat16/float32 tensors, float64 for float64 ones."""
    return torch.promote_types(dtype, torch.float32)


def write_norm_row(
    params: list[Tensor], out: Tensor, zero: Tensor, layout: ShardLayout | None = None
) -> None:
    """Write ``[||grad_t|| for t] + [||theta_t|| for t]`` (2T values) into ``out``.

    One fused norm kernel and one stack into ``out``; no host sync.

    Args:
        params: T parameter tensors (their ``.grad`` is read, never written).
        out: (2T,) slice of the row buffer, of the accumulation dtype.
        zero: a 0-d zero of that dtype on the device, the norm of a missing gradient.
        layout: for sharded (``DTensor``) parameters, how to add the shards' squares across
            ranks (its layout is for a row of gradient norms then parameter norms).
    """
    if torch.is_grad_enabled():  # (a check is cheaper than a no_grad context every step)
        with torch.no_grad():
            return write_norm_row(params, out, zero, layout)
    dtype = out.dtype
    if layout is not None:
        grads = [None if p.grad is None else local(p.grad) for p in params]
        params = [local(p) for p in params]
    else:
        grads = [p.grad for p in params]
    if any(g is None for g in grads):
        present = [i for i, g in enumerate(grads) if g is not None]
        norms = torch._foreach_norm([grads[i] for i in present] + params, 2, dtype=dtype)
        gnorms = [zero] * len(params)
        for k, i in enumerate(present):
            gnorms[i] = norms[k]
        norms = gnorms + list(norms[len(present) :])
    else:
        norms = torch._foreach_norm(grads + params, 2, dtype=dtype)
    torch.stack(norms, out=out)
    if layout is not None:
        layout.sum_squares_(out)


def write_update_row(
    before: list[Tensor], params: list[Tensor], out: Tensor, layout: ShardLayout | None = None
) -> None:
    """Write ``[||theta_after_t - theta_before_t|| for t]`` (T values) into ``out``.

    ``before`` holds the parameters copied before the step (local shards under a ``layout``) and
    is overwritten with the difference.
    """
    if torch.is_grad_enabled():
        with torch.no_grad():
            return write_update_row(before, params, out, layout)
    if layout is not None:
        params = [local(p) for p in params]
    torch._foreach_sub_(before, params)
    torch.stack(torch._foreach_norm(before, 2, dtype=out.dtype), out=out)
    if layout is not None:
        layout.sum_squares_(out)


@dataclass(frozen=True)
class GroupedRows:
    """Per-group numbers of a block of R rows (float64 arrays)."""

    grad_norm: np.ndarray  # (R, G)
    grad_norm_total: np.ndarray  # (R,)
    rel_sq_norm: np.ndarray  # (R, G)
    update_norm: np.ndarray  # (R, G)
    param_norm: np.ndarray  # (R, G)


def group_rows(raw: np.ndarray, members: list[np.ndarray]) -> GroupedRows:
    """Group a block of per-tensor norm rows (from :func:`write_norm_row` / :func:`write_update_row`).

    Args:
        raw: (R, 3T) rows ``[grad norms (T) | parameter norms (T) | update norms (T)]``.
        members: per group, the positions of its tensors among the T.

    Returns:
        group sums in ``raw``'s dtype, as float64 arrays; a group without tensors has zeros.
    """
    T = raw.shape[1] // 3
    sq = np.square(raw)  # in the accumulation dtype, as the norms themselves
    g_sq, p_sq, u_sq = sq[:, :T], sq[:, T : 2 * T], sq[:, 2 * T :]
    ratio = np.divide(g_sq, p_sq, out=np.zeros_like(g_sq), where=p_sq != 0)
    R, G = raw.shape[0], len(members)
    gn, rel, upd, pn = (np.zeros((R, G), dtype=raw.dtype) for _ in range(4))
    for j, idx in enumerate(members):  # per group, so a NaN stays in its own group
        gn[:, j] = g_sq[:, idx].sum(axis=1)
        rel[:, j] = ratio[:, idx].sum(axis=1)
        upd[:, j] = u_sq[:, idx].sum(axis=1)
        pn[:, j] = p_sq[:, idx].sum(axis=1)
    f64 = np.float64
    return GroupedRows(
        grad_norm=np.sqrt(gn).astype(f64),
        grad_norm_total=np.sqrt(gn.sum(axis=1)).astype(f64),
        rel_sq_norm=rel.astype(f64),
        update_norm=np.sqrt(upd).astype(f64),
        param_norm=np.sqrt(pn).astype(f64),
    )

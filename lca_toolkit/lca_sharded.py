"""LCA gradient passes through an FSDP2 module, each rank holding only its shards.

``torch.func.functional_call`` cannot evaluate an FSDP2 module at other parameter values: FSDP's
pre-forward hook all-gathers its own sharded parameters and puts them back in the module, so the
swapped-in tensors are ignored and no gradient reaches them, silently. The engine therefore
evaluates a sharded model *in place*, as FSDP itself trains it:

* the chord point is written into the parameters' local shards (``DTensor.to_local()`` is a view
  of the storage FSDP all-gathers from);
* forward and backward run through the FSDP module, a collective in which every rank takes part;
  FSDP's reduce-scatter, switched to a plain sum for the pass, leaves on each rank its shard of
  the gradient summed over every rank's batches;
* the batches of E are split by batch index as under DDP (rank ``r`` of ``W`` takes batches
  ``r, r + W, ...``); a rank with fewer batches than another takes part in the extra forward and
  backward with a batch weighted 0, so uneven shards of E add up to exactly the one-process sum;
* everything is restored afterwards: the parameters' local shards (copied back from the values the
  engine keeps), the training gradients (the same tensors, put back), the BatchNorm buffers and
  FSDP's reduction settings, so training with recording on and off stays bit-identical.

The per-tensor dot products the rules need are taken on the local shards and added across ranks
by :class:`~lca_toolkit.sharding.ShardLayout`, once per pass where a rule needs them.

Mixed precision (``MixedPrecisionPolicy``): the passes run through the FSDP module and so in the
policy's parameter dtype; the snapshots and sums stay in the sharded parameters' own dtype. The
residual then includes the low-precision rounding of the forward; the README says so.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from . import distributed
from ._batches import per_sample_losses
from .sharding import local


def _fsdp_modules(model: nn.Module) -> list[nn.Module]:
    from torch.distributed.fsdp import FSDPModule

    return [m for m in model.modules() if isinstance(m, FSDPModule)]


@contextlib.contextmanager
def summed_reduce_scatter(model: nn.Module) -> Iterator[None]:
    """FSDP's gradient reduction as a plain sum over ranks (no division) for the block.

    FSDP averages gradients over the data-parallel ranks; an LCA pass needs the sum of the loss
    over E, i.e. the sum over ranks. The settings are restored to what they were.
    """
    saved = []
    for m in _fsdp_modules(model):
        for group in m._get_fsdp_state()._fsdp_param_groups:
            saved.append(
                (
                    group,
                    group.gradient_divide_factor,
                    getattr(group, "force_sum_reduction_for_comms", False),
                )
            )
            group.gradient_divide_factor = 1.0
            group.force_sum_reduction_for_comms = True
    try:
        yield
    finally:
        for group, factor, force_sum in saved:
            group.gradient_divide_factor = factor
            group.force_sum_reduction_for_comms = force_sum


@contextlib.contextmanager
def borrowed_state(model: nn.Module, params: Sequence[nn.Parameter]) -> Iterator[None]:
    """Lend the model to the LCA passes and give it back untouched.

    The training gradients are taken off the parameters (the same tensors are put back, no copy)
    and every floating-point buffer is copied and written back, so nothing the passes do (their
    own gradients, a train-mode BatchNorm's running statistics) reaches training. The caller
    restores the parameters' values, which it keeps anyway.
    """
    grads = [p.grad for p in params]
    buffers = [(b, b.detach().clone()) for b in model.buffers() if b.is_floating_point()]
    counters = [(b, b.detach().clone()) for b in model.buffers() if not b.is_floating_point()]
    for p in params:
        p.grad = None
    try:
        with summed_reduce_scatter(model):
            yield
    finally:
        with torch.no_grad():
            for b, saved in buffers + counters:
                b.copy_(saved)
        for p, g in zip(params, grads, strict=True):
            p.grad = g


def my_weighted_batches(batches: Iterable[Any]) -> Iterator[tuple[Any, float]]:
    """This rank's batches of E with weight 1, then weight-0 batches until every rank has taken
    as many as the rank with the most (FSDP's forward and backward are collectives).

    Rank ``r`` of ``W`` takes batches ``r, r + W, ...``; E holds ``n`` batches, so every rank takes
    part in ``ceil(n / W)`` rounds. A weight-0 round reuses a batch of E (its loss is multiplied
    by 0, so it adds nothing to the sums).
    """
    world, rank = distributed.world_size(), distributed.rank()
    first: Any = None
    mine = n = 0
    if isinstance(batches, Sequence):
        n = len(batches)
        first = batches[0] if n else None
        for i in range(rank, n, world):
            mine += 1
            yield batches[i], 1.0
    else:
        for i, batch in enumerate(batches):
            if i == 0:
                first = batch
            if i % world == rank:
                mine += 1
                yield batch, 1.0
            n = i + 1
    for _ in range(-(-n // world) - mine):
        yield first, 0.0


def sharded_gradient_pass(
    model: nn.Module,
    params: Sequence[nn.Parameter],
    loss_fn: Any,
    batches: Iterable[Any],
    move: Any,
    like: Sequence[Tensor],
) -> tuple[Tensor, int, list[Tensor]]:
    """Loss sum over E (float64, 0-d), |E|, and the local shards of the gradient summed over all
    of E (in the dtypes of ``like``), at the values the parameters hold now.

    Runs inside :func:`borrowed_state`. One all-reduce adds the ranks' loss sums and counts.
    """
    device = like[0].device
    total = torch.zeros((), dtype=torch.float64, device=device)
    count = torch.zeros((), dtype=torch.float64, device=device)
    for batch, weight in my_weighted_batches(batches):
        losses = per_sample_losses(loss_fn(model, move(batch)))
        batch_sum = losses.sum()
        (batch_sum * weight if weight != 1.0 else batch_sum).backward()
        if weight:
            total += batch_sum.detach().to(torch.float64)
            count += losses.shape[0]
    grads = []
    for p, t in zip(params, like, strict=True):
        g = p.grad
        grads.append(torch.zeros_like(t) if g is None else local(g).detach().to(t.dtype))
        p.grad = None
    sums = torch.stack([total, count])
    distributed.all_reduce_sum_([sums])
    return sums[0], int(sums[1]), grads

"""One interval's LCA result, and the pure reduction that makes it from per-parameter LCA.

The engine hands over the per-parameter LCA (one tensor per parameter tensor, still missing a
positive common factor) and the :class:`~lca_toolkit.chord.ChordIntegral` it came from; the
reduction sums per tensor in float64, then per group, and counts the parameters that helped and
hurt. Everything stays on the device: the host sees the numbers once, when they are stored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .chord import ChordIntegral, covering_error
from .records import LcaRecord


@dataclass
class LcaResult:
    """One interval's LCA, still on the model's device (float64 unless stated).

    Attributes:
        start_step, end_step: the interval covers optimizer steps ``start_step < step <= end_step``
            (state ``end_step`` is the parameters after ``end_step`` optimizer steps).
        by_group: (G,) summed LCA per group, negative = helped.
        abs_by_group: (G,) summed |LCA| per group.
        error_by_group: (G,) estimated quadrature error of each group's LCA, >= 0: the absolute
            difference to a cruder estimate on the same nodes (see :mod:`lca_toolkit.lca`),
            raised where needed so that the group estimates sum to at least ``|residual|``
            (:func:`~lca_toolkit.chord.covering_error`). An estimate, not a bound.
        helped, hurt: (G,) int64 counts of scalar parameters with LCA < 0 and > 0.
        by_tensor: (T,) summed LCA per tensor, or None when not asked for.
        loss_start, loss_end, residual: 0-d; residual = loss_end - loss_start - by_group.sum().
        passes: gradient passes over E used for this interval.
    """

    start_step: int
    end_step: int
    by_group: Tensor
    abs_by_group: Tensor
    error_by_group: Tensor
    helped: Tensor
    hurt: Tensor
    by_tensor: Tensor | None
    loss_start: Tensor
    loss_end: Tensor
    residual: Tensor
    passes: int


def reduce_lca(
    lca: Sequence[Tensor],
    integral: ChordIntegral,
    group_index: Tensor,
    n_groups: int,
    *,
    start_step: int,
    end_step: int,
    loss_start: Tensor,
    passes: int,
    per_tensor: bool,
    reduce: Callable[[Tensor], Tensor] | None = None,
) -> LcaResult:
    """Per-group sums of ``integral.scale * lca``, of its absolute value and sign counts, in
    float64.

    ``integral.scale`` is a positive common factor not yet applied to ``lca``: it multiplies the
    (T,) per-tensor sums instead, which saves a pass over the parameters and leaves the signs
    alone. The signed error estimate per tensor (:meth:`ChordIntegral.error_by_tensor`) is summed
    per group, then made absolute, so differences of opposite sign within a group cancel as they
    do in the LCA; then it is made to cover the residual (:func:`~lca_toolkit.chord.covering_error`).

    Args:
        lca: per-parameter LCA before ``integral.scale``, one tensor per entry (T in all).
        integral: the chord integral the LCA came from (scale, right-end loss, error estimate).
        group_index: (T,) int64, the group of each tensor, on the tensors' device.
        n_groups: G.
        start_step, end_step, loss_start, passes: copied into the result.
        per_tensor: keep the (T,) per-tensor sums in ``by_tensor``.
        reduce: for tensors sharded across ranks (FSDP2), adds a (4, T) float64 block of the
            local shards' sums, |sums| and counts into global ones in one collective
            (:meth:`~lca_toolkit.sharding.ShardLayout.sum_`); ``None`` when nothing is sharded.
    """
    scale, loss_end = integral.scale, integral.loss_end
    sums = torch.stack([t.sum(dtype=torch.float64) for t in lca]) * scale
    abs_sums = torch.stack(torch._foreach_norm(lca, 1, dtype=torch.float64)) * scale
    helped = torch.stack([(t < 0).sum() for t in lca])
    hurt = torch.stack([(t > 0).sum() for t in lca])
    if reduce is not None:  # counts below 2^53 are exact in float64
        block = reduce(torch.stack([sums, abs_sums, helped.to(sums), hurt.to(sums)]))
        sums, abs_sums = block[0], block[1]
        helped, hurt = block[2].to(torch.int64), block[3].to(torch.int64)

    def by_group(values: Tensor) -> Tensor:
        return torch.zeros(n_groups, dtype=values.dtype, device=values.device).index_add_(
            0, group_index, values
        )

    group_sums = by_group(sums)
    return LcaResult(
        start_step=start_step,
        end_step=end_step,
        by_group=group_sums,
        abs_by_group=by_group(abs_sums),
        error_by_group=covering_error(
            by_group(integral.error_by_tensor(sums)).abs(),
            group_sums,
            loss_end - loss_start - group_sums.sum(),
        ),
        helped=by_group(helped),
        hurt=by_group(hurt),
        by_tensor=sums if per_tensor else None,
        loss_start=loss_start,
        loss_end=loss_end,
        residual=loss_end - loss_start - group_sums.sum(),
        passes=passes,
    )


def to_record(result: LcaResult) -> LcaRecord:
    """The stored form of an interval's result, in one host transfer."""
    g = result.by_group.numel()
    parts = [
        result.by_group,
        result.abs_by_group,
        result.error_by_group,
        result.helped.to(torch.float64),
        result.hurt.to(torch.float64),
        torch.stack([result.loss_start, result.loss_end, result.residual]).to(torch.float64),
    ]
    if result.by_tensor is not None:
        parts.append(result.by_tensor)
    host = torch.cat(parts).cpu().numpy()
    return LcaRecord(
        start_step=result.start_step,
        end_step=result.end_step,
        by_group=host[:g].copy(),
        abs_by_group=host[g : 2 * g].copy(),
        helped=host[3 * g : 4 * g].astype(np.int64),
        hurt=host[4 * g : 5 * g].astype(np.int64),
        loss_start=float(host[5 * g]),
        loss_end=float(host[5 * g + 1]),
        residual=float(host[5 * g + 2]),
        passes=result.passes,
        by_tensor=host[5 * g + 3 :].copy() if result.by_tensor is not None else None,
        error_by_group=host[2 * g : 3 * g].copy(),
    )

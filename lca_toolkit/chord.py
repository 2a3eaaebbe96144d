"""The chord integral of LCA as pure functions: quadrature driven by a gradient callback.

Step-k LCA needs ``integral_0^1 g(s) ds`` with ``g(s)`` the gradient of the summed loss over the
evaluation subset E at ``theta_start + s D`` (``D = theta_end - theta_start``). The functions here
know nothing of models or batches: they ask a callback ``grad_at(s)`` for the loss sum
and the gradient sums (one tensor per parameter tensor) at a node ``s`` in [0, 1], and return the
weighted gradient, the number of gradient passes and the per-tensor error estimate. The engine
(:class:`~lca_toolkit.lca.LcaEngine`) owns the buffers and the gradient passes.

Memory: the left-endpoint gradient ``g(0)`` is the first term of every rule's weighted sum, so
``g_start`` is overwritten in place and becomes the accumulator (``ChordIntegral.weighted`` is
the same list of tensors). Fixed rules keep no other parameter-sized buffer; the adaptive rule
keeps one more, the sum of its newest nodes' gradients. At most one node gradient is alive besides
the right end's.

Order of evaluation: fixed rules evaluate their interior nodes in ascending order and the right
end last, so the caller's node buffer holds ``theta_end`` when they return; the adaptive rule
evaluates the right end first (its stopping rule needs the loss there), then the midpoints of
each level from left to right.

Every sum is formed in a fixed order, so the numbers are reproducible bit for bit.

Error estimate (``error_by_group``, per interval and group): the rule's LCA minus a cruder
estimate on the same nodes, so it costs no gradient pass. Simpson is compared with the composite
trapezoid on its nodes 0, 1/2, 1 (weights 1/4, 1/2, 1/4), Lobatto-4 with the composite trapezoid
on its 4 nodes, trapezoid and first-order with each other (trapezoid minus left point), and the
adaptive rule's last level with the level before it (with one level, with the composite trapezoid
on its nodes). The signed per-tensor differences are summed within each group, then the absolute
value is taken. It is the error of the cruder estimate up to the rule's own: an estimate, not a
bound (first-order excepted: there it estimates first-order's own error). The group estimates are
then raised, where needed, to sum to at least the interval's |residual|, the error that is known
(:func:`~lca_toolkit.chord.covering_error`). It needs no parameter-sized buffer
either, only scalars per tensor ``t``: for the fixed rules the difference is rewritten as
``alpha * LCA_t + sum_j beta_j <D_t, g_t(s_j)>`` over the interior nodes (the right end for
trapezoid and first-order; see :func:`~lca_toolkit.quadrature.error_split`), so Simpson takes one
dot product per interval, as its midpoint gradient arrives; the adaptive rule already forms
``<D_t, .>`` of its level sums for its stopping rule and keeps them per tensor.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .quadrature import AdaptiveOptions, error_split, get_rule

Reduce = Callable[[Tensor], Tensor]
"""``reduce(values)``: (T,) per-tensor values of this rank's shards -> their global values, in
place (:meth:`lca_toolkit.sharding.ShardLayout.sum_`); ``None`` for an unsharded model."""

GradAt = Callable[[float], tuple[Tensor, list[Tensor]]]
"""``grad_at(s) -> (loss_sum, grads)``: the loss summed over E (float64, 0-d) and its gradient
sums, one tensor per parameter tensor, at the chord node ``s``. Called with grad mode on. The
loss sum is used at the right end only (the adaptive stopping rule and the interval's loss)."""


@dataclass
class ChordIntegral:
    """What a rule made of one interval's chord (tensors on the gradients' device).

    Attributes:
        weighted: per tensor, the rule's weighted gradient sum; ``scale * weighted`` approximates
            ``integral_0^1 g(s) ds / |E|``, the chord integral of the mean gradient. The same
            tensors as the ``g_start`` passed in.
        scale: positive common factor not yet applied to ``weighted`` (fixed rules defer
            ``w_0 / |E|`` to the per-tensor sums, which saves a pass over the parameters).
        g_end: the gradient sums at the right end, ``s = 1`` (the next interval's left end).
        loss_end: mean loss over E at the right end (float64, 0-d).
        passes: gradient passes made (calls of ``grad_at``).
        error_alpha, error_rest: the signed error estimate per tensor is
            ``error_alpha * LCA_t + error_rest_t`` with ``LCA_t`` the tensor's summed LCA
            (``error_rest`` is (T,) float64); see :meth:`error_by_tensor`.
    """

    weighted: list[Tensor]
    scale: float
    g_end: list[Tensor]
    loss_end: Tensor
    passes: int
    error_alpha: float
    error_rest: Tensor

    def error_by_tensor(self, lca_by_tensor: Tensor) -> Tensor:
        """(T,) float64 signed error estimate, given the (T,) summed LCA per tensor.

        The rule's LCA minus a cruder estimate on the same nodes (see
        :func:`~lca_toolkit.quadrature.comparison_weights`; for the adaptive rule, the previous
        level), so it costs no gradient pass.
        """
        return self.error_alpha * lca_by_tensor + self.error_rest


def covering_error(error: Tensor, lca: Tensor, residual: Tensor) -> Tensor:
    """(G,) per-group error estimates made to cover the interval's known error, the residual.

    Why: the true LCA of the groups sums to the loss change exactly, so the true per-group
    errors ``eps_g = LCA_g - true_g`` sum to the residual up to sign (``sum_g eps_g = -r``). An
    estimate can only cover every group's error (``e_g >= |eps_g|``) if
    ``sum_g e_g >= sum_g |eps_g| >= |r|`` (triangle inequality). The rule-minus-cruder estimate
    does not always satisfy that (it misses what both rules get wrong), so the shortfall
    ``max(0, |r| - sum_g e_g)`` is added to the groups in proportion to their ``|LCA_g|``, the
    share of the integral each group carries (equal shares when every ``|LCA_g|`` is 0).

    Claim: ``sum_g e'_g >= |r|``. Proof: if ``sum_g e_g >= |r|`` nothing is added and the sum
    is unchanged; otherwise the weights ``w_g = |LCA_g| / sum_h |LCA_h|`` (or ``1/G``) sum to 1,
    so ``sum_g e'_g = sum_g e_g + (|r| - sum_g e_g) = |r|``. The shortfall is multiplied by
    ``1 + 1e-12`` so that rounding in the weights' sum cannot leave the total a hair below
    ``|r|``. Each ``e'_g >= e_g >= 0``: covering never shrinks an estimate. It is still an
    estimate, not a bound: how often it misses the true per-group error is measured in
    ``BENCHMARKS.md`` (``benchmarks/lca_error_coverage.py``).

    Args:
        error: (G,) float64 non-negative estimates (rule minus cruder rule, per group).
        lca: (G,) float64 per-group LCA of the interval.
        residual: 0-d float64, ``loss_end - loss_start - lca.sum()``.

    Everything stays on the tensors' device: no host synchronisation.
    """
    short = (residual.abs() - error.sum()).clamp(min=0) * (1 + 1e-12)
    size = lca.abs()
    total = size.sum()
    weight = torch.where(
        total > 0,
        size / total.clamp(min=torch.finfo(size.dtype).tiny),
        torch.full_like(size, 1.0 / max(1, size.numel())),
    )
    return error + short * weight


def _dots(a: Sequence[Tensor], b: Sequence[Tensor]) -> Tensor:
    """(T,) float64: ``<a_t, b_t>`` per tensor, accumulated in the tensors' dtype.

    No temporary, and about 7x faster than :func:`_dots64` on the CPU for the 5.9M float32
    parameters of the joint ResNet. Only the error estimate uses it: its rounding, about 1e-7 of
    ``sum |a_t b_t|`` in float32, is far below any quadrature error worth reporting.
    """
    return torch.stack(
        [
            torch.dot(x.reshape(-1), y.reshape(-1)).to(torch.float64)
            for x, y in zip(a, b, strict=True)
        ]
    )


def _dots64(a: Sequence[Tensor], b: Sequence[Tensor]) -> Tensor:
    """(T,) float64: ``<a_t, b_t>`` per tensor (products rounded in the tensors' dtype).

    Accumulated in float64, as the adaptive rule's residual needs; one tensor-sized temporary at a
    time, never a parameter-sized one.
    """
    return torch.stack([(x * y).sum(dtype=torch.float64) for x, y in zip(a, b, strict=True)])


def _ordered_sum(values: Tensor) -> Tensor:
    """Sum of a (T,) tensor added one element after the other, in order.

    A vectorised sum may associate differently; the adaptive rule's stopping decision depends on
    the last bits of these totals, so they are added in a fixed order.
    """
    total = torch.zeros((), dtype=values.dtype, device=values.device)
    for v in values:
        total += v
    return total


def _evaluate(grad_at: GradAt, s: float) -> tuple[Tensor, list[Tensor]]:
    """One gradient pass at node ``s``, with grad mode on inside the rules' no-grad arithmetic."""
    with torch.enable_grad():
        return grad_at(s)


def _reduced(values: Tensor, reduce: Reduce | None) -> Tensor:
    return values if reduce is None else reduce(values)


@torch.no_grad()
def integrate_fixed(
    name: str,
    direction: list[Tensor],
    g_start: list[Tensor],
    grad_at: GradAt,
    n: float,
    reduce: Reduce | None = None,
) -> ChordIntegral:
    """Fixed rule ``name`` on the chord: ``weighted = g(0) + sum_j (w_j / w_0) g(s_j)``.

    The factor ``w_0 / |E|`` is left to ``scale``. The error estimate is
    ``alpha * LCA + sum_j beta_j <D, g(s_j)> / |E|`` per tensor
    (:func:`~lca_toolkit.quadrature.error_split`): one dot product per node of ``beta``, taken
    as the node's gradient arrives, so no node gradient is kept.

    Args:
        name: ``first_order`` | ``trapezoid`` | ``simpson`` | ``lobatto4``.
        direction: D per tensor (read only).
        g_start: gradient sums at ``s = 0``; overwritten, it becomes ``weighted``.
        grad_at: the gradient callback (:data:`GradAt`); called at the interior nodes in
            ascending order, then at ``s = 1``.
        n: |E|, the number of evaluation samples.
        reduce: adds per-tensor dot products of sharded tensors across ranks (:data:`Reduce`),
            once, at the end.
    """
    rule = get_rule(name)
    w0 = rule.weights[0]
    last = len(rule.nodes) - 1
    error_alpha, beta = error_split(name)
    weighted = g_start  # in place: g(0) is the sum's first term, so no new buffer is needed
    # sum_j beta_j <D, g(s_j)> per tensor, of gradient sums over E.
    error_dots = torch.zeros(len(weighted), dtype=torch.float64, device=weighted[0].device)
    passes = 0
    for k in range(1, last):
        _, g = _evaluate(grad_at, rule.nodes[k])
        passes += 1
        error_dots += beta[k] * _dots(direction, g)
        torch._foreach_add_(weighted, g, alpha=rule.weights[k] / w0)
        del g
    # Right end last: no interior gradient is alive beside the endpoint's (one buffer less).
    end_sum, g_end = _evaluate(grad_at, rule.nodes[last])
    passes += 1
    loss_end = end_sum / n
    if last in beta:  # two-node rules
        error_dots += beta[last] * _dots(direction, g_end)
    if rule.weights[-1]:
        torch._foreach_add_(weighted, g_end, alpha=rule.weights[-1] / w0)
    return ChordIntegral(
        weighted=weighted,
        scale=w0 / n,
        g_end=g_end,
        loss_end=loss_end,
        passes=passes,
        error_alpha=error_alpha,
        error_rest=_reduced(error_dots, reduce) / n,
    )


@torch.no_grad()
def integrate_adaptive(
    options: AdaptiveOptions,
    direction: list[Tensor],
    g_start: list[Tensor],
    grad_at: GradAt,
    n: float,
    loss_start: Tensor | float,
    reduce: Reduce | None = None,
) -> ChordIntegral:
    """Composite Simpson with doubling panels until the residual meets ``options``.

    With n = 2m subintervals of width h, Simpson is ``h/3 (ends + 4 odd + 2 even)``. We keep the
    level sums ``A = ends + 2 even`` and ``odd``; doubling the panels turns every old node into an
    even one (``A += 2 odd``) and the new midpoints become ``odd``. Per-tensor scalars ``<D, A>``
    and ``<D, odd>`` give the residual ``loss change - LCA`` of every level and its per-tensor LCA
    without another pass over memory. The panels stop doubling when the residual is within
    tolerance (:meth:`AdaptiveOptions.converged`), not finite, or at ``options.max_panels``.

    The error estimate per tensor is the last level's LCA minus the previous level's (with one
    level, minus the composite trapezoid on its nodes 0, 1/2, 1); ``error_alpha`` is 0.

    Args:
        options: tolerances and panel cap.
        direction: D per tensor (read only).
        g_start: gradient sums at ``s = 0``; overwritten, it becomes ``weighted`` (``scale`` 1).
        grad_at: the gradient callback (:data:`GradAt`); called at ``s = 1`` first, then at each
            level's new midpoints in ascending order.
        n: |E|, the number of evaluation samples.
        loss_start: mean loss over E at ``s = 0``.
        reduce: adds per-tensor dot products of sharded tensors across ranks (:data:`Reduce`),
            once per level, before the stopping rule reads them.
    """
    end_sum, g_end = _evaluate(grad_at, 1.0)
    passes = 1
    loss_end = end_sum / n
    level_sum = g_start  # in place: A = g(0) + g(1), later ends + 2 even, last the result
    torch._foreach_add_(level_sum, g_end)
    dots_a = _reduced(_dots64(direction, level_sum), reduce)
    d_a = _ordered_sum(dots_a)
    loss_change = float(loss_end - loss_start)
    loss_level = float(loss_end)
    panels = 1
    odd: list[Tensor] | None = None  # gradient sum at the newest level's midpoints
    previous: Tensor | None = None  # the previous level's per-tensor LCA, times |E|
    while True:
        new_nodes = [(2 * i + 1) / (2 * panels) for i in range(panels)]
        if odd is None:
            odd = [torch.zeros_like(t) for t in level_sum]
        else:
            torch._foreach_add_(level_sum, odd, alpha=2.0)
            torch._foreach_zero_(odd)
        for s in new_nodes:
            _, g = _evaluate(grad_at, s)
            passes += 1
            torch._foreach_add_(odd, g)
            del g
        dots_o = _reduced(_dots64(direction, odd), reduce)
        d_o = _ordered_sum(dots_o)
        h = 1.0 / (2 * panels)
        lca_sum = float(h / (3 * n) * (d_a + 4 * d_o))
        residual = loss_change - lca_sum
        if (
            not math.isfinite(residual)
            or options.converged(residual, loss_change, loss_level)
            or panels >= options.max_panels
        ):
            break
        d_a = d_a + 2 * d_o
        previous = h / 3 * (dots_a + 4 * dots_o)
        dots_a = dots_a + 2 * dots_o
        panels *= 2  # the next level evaluates the midpoints of the current subintervals
    if previous is None:  # one level: the composite trapezoid on nodes 0, 1/2, 1
        previous = h * (dots_a / 2 + dots_o)
    error = (h / 3 * (dots_a + 4 * dots_o) - previous) / n
    torch._foreach_add_(level_sum, odd, alpha=4.0)
    torch._foreach_mul_(level_sum, h / (3 * n))  # the weighted gradient h/(3|E|) (A + 4 odd)
    return ChordIntegral(
        weighted=level_sum,
        scale=1.0,
        g_end=g_end,
        loss_end=loss_end,
        passes=passes,
        error_alpha=0.0,
        error_rest=error,
    )


def integrate(
    quadrature: str,
    options: AdaptiveOptions,
    direction: list[Tensor],
    g_start: list[Tensor],
    grad_at: GradAt,
    n: float,
    loss_start: Tensor | float,
    *,
    reduce: Reduce | None = None,
) -> ChordIntegral:
    """The chord integral by rule ``quadrature`` (:func:`integrate_adaptive` for ``adaptive``,
    else :func:`integrate_fixed`); ``options`` and ``loss_start`` matter to the adaptive rule only.
    """
    if quadrature == "adaptive":
        return integrate_adaptive(options, direction, g_start, grad_at, n, loss_start, reduce)
    return integrate_fixed(quadrature, direction, g_start, grad_at, n, reduce)

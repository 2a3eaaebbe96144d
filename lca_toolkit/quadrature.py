"""Quadrature rules on [0, 1] for the chord integral of step-k LCA.

LCA of parameter i over an interval is ``D_i * integral_0^1 dL/dtheta_i(theta_start + s D) ds``, with
``D = theta_end - theta_start``. The integral is approximated with a rule ``sum_k w_k g(s_k)``.
Every rule here has nodes at both ends (except first-order, which still evaluates the right end to
measure the loss there), so the gradient at ``theta_end`` is reused as the left end of the next
interval: Simpson costs 2 gradient passes over the evaluation subset per interval, trapezoid 1,
Lobatto 3.

Exactness (integrand degree, i.e. loss degree minus one): first-order 0, trapezoid 1, Simpson 3,
Lobatto-4 5. The adaptive rule is composite Simpson whose number of panels doubles (reusing all
earlier nodes) until the residual is small enough. This module holds the rules' numbers; applying
them to the chord's gradients is :mod:`lca_toolkit.chord`.

Error estimates come for free from the same nodes: each fixed rule is paired with a cruder rule on
its own nodes (:func:`comparison_weights`), and ``|rule - comparison|`` estimates the error of the
cruder one, which is usually larger than the rule's own error when the integrand is smooth: an
estimate, not a bound (:func:`lca_toolkit.chord.covering_error` makes it cover the residual).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from .errors import LcaError

RuleName = Literal["first_order", "trapezoid", "simpson", "lobatto4", "adaptive"]
RULE_NAMES: tuple[str, ...] = ("first_order", "trapezoid", "simpson", "lobatto4", "adaptive")


@dataclass(frozen=True)
class QuadratureRule:
    """Nodes in [0, 1] (ascending, first node 0, last node 1) and their weights.

    Attributes:
        name: the rule's name.
        nodes: ascending nodes; always start at 0 and end at 1 so endpoint gradients can be reused.
        weights: weights summing to 1 (first-order puts all weight on node 0 and none on node 1).
        degree: highest polynomial degree of the integrand the rule integrates exactly.
    """

    name: str
    nodes: tuple[float, ...]
    weights: tuple[float, ...]
    degree: int

    @property
    def gradient_passes(self) -> int:
        """Gradient passes per interval when the left endpoint gradient is reused."""
        return len(self.nodes) - 1


_LOBATTO_OFFSET = 1.0 / (2.0 * math.sqrt(5.0))

FIXED_RULES: dict[str, QuadratureRule] = {
    "first_order": QuadratureRule("first_order", (0.0, 1.0), (1.0, 0.0), 0),
    "trapezoid": QuadratureRule("trapezoid", (0.0, 1.0), (0.5, 0.5), 1),
    "simpson": QuadratureRule("simpson", (0.0, 0.5, 1.0), (1 / 6, 4 / 6, 1 / 6), 3),
    "lobatto4": QuadratureRule(
        "lobatto4",
        (0.0, 0.5 - _LOBATTO_OFFSET, 0.5 + _LOBATTO_OFFSET, 1.0),
        (1 / 12, 5 / 12, 5 / 12, 1 / 12),
        5,
    ),
}


def composite_trapezoid_weights(nodes: tuple[float, ...]) -> tuple[float, ...]:
    """Weights of the composite trapezoid rule on ascending ``nodes`` from 0 to 1.

    Node ``k`` gets half of each neighbouring gap, ``(s_{k+1} - s_{k-1}) / 2``; exact to degree 1.
    """
    gaps = [b - a for a, b in zip(nodes[:-1], nodes[1:], strict=True)]
    before, after = [0.0, *gaps], [*gaps, 0.0]
    return tuple((b + a) / 2 for b, a in zip(before, after, strict=True))


_LEFT_POINT = (1.0, 0.0)


def comparison_weights(name: str) -> tuple[float, ...]:
    """Weights, on the nodes of fixed rule ``name``, of the cruder rule its error estimate uses.

    Simpson and Lobatto-4 are compared with the composite trapezoid on their own nodes (for
    Simpson: 1/4, 1/2, 1/4), trapezoid and first-order with each other (the left point and the
    trapezoid). No node is added, so the estimate costs no gradient pass. ``|rule - comparison|``
    is the error of the cruder rule up to the rule's own error: a conservative estimate of the
    rule's error, except first-order, for which it is the usual estimate from the better rule.
    """
    if name == "trapezoid":
        return _LEFT_POINT
    if name == "first_order":
        return FIXED_RULES["trapezoid"].weights
    return composite_trapezoid_weights(get_rule(name).nodes)


def error_weights(name: str) -> tuple[float, ...]:
    """``w_k - c_k`` per node: the rule's weights minus :func:`comparison_weights`."""
    rule = get_rule(name)
    return tuple(w - c for w, c in zip(rule.weights, comparison_weights(name), strict=True))


def error_split(name: str) -> tuple[float, dict[int, float]]:
    """``(alpha, beta)`` with ``w - c = alpha * w + sum_j beta[j] * e_j`` for fixed rule ``name``.

    The rule's own estimate ``sum_k w_k f(s_k)`` is computed anyway, so the error estimate
    ``sum_k (w_k - c_k) f(s_k)`` equals ``alpha * rule + sum_j beta[j] f(s_j)`` and needs the
    values at the nodes ``j`` of ``beta`` only: the interior nodes, or the right end of a
    two-node rule. Simpson: ``alpha = -1/2``, ``beta = {1: 1/2}``, i.e. half of midpoint minus
    Simpson. For LCA each ``f(s_j)`` is a dot product over the parameters, so this saves all but
    one (Lobatto-4: two) of them per interval.
    """
    rule = get_rule(name)
    diff = error_weights(name)
    last = len(rule.nodes) - 1
    split = list(range(1, last)) or [last]
    rest = [k for k in range(last + 1) if k not in split]
    alpha = diff[rest[0]] / rule.weights[rest[0]]
    if not all(math.isclose(diff[k], alpha * rule.weights[k], abs_tol=1e-15) for k in rest):
        raise LcaError(f"rule {name!r} has no error split on nodes {split}")
    return alpha, {j: diff[j] - alpha * rule.weights[j] for j in split}


def composite_simpson(panels: int) -> QuadratureRule:
    """Composite Simpson with ``panels`` panels (``2 * panels`` subintervals) on [0, 1].

    Used as the slow, obviously correct reference for the adaptive rule, which builds the same sum
    incrementally.
    """
    if panels < 1:
        raise LcaError(f"composite Simpson needs at least 1 panel, got {panels}")
    n = 2 * panels
    h = 1.0 / n
    nodes = tuple(i / n for i in range(n + 1))
    weights = tuple(h / 3 * (1 if i in (0, n) else 4 if i % 2 else 2) for i in range(n + 1))
    return QuadratureRule(f"simpson_x{panels}", nodes, weights, 3)


def get_rule(name: str) -> QuadratureRule:
    """The fixed rule called ``name`` (``adaptive`` starts from :func:`composite_simpson` (1))."""
    if name == "adaptive":
        return composite_simpson(1)
    try:
        return FIXED_RULES[name]
    except KeyError:
        raise LcaError(
            f"unknown quadrature {name!r}; expected one of {', '.join(RULE_NAMES)}"
        ) from None


@dataclass(frozen=True)
class AdaptiveOptions:
    """Stopping rule of adaptive composite Simpson.

    Panels double while ``|residual| > max(rel_tol * |loss change|, abs_tol * loss)`` and the number
    of panels is below ``max_panels``.
    """

    rel_tol: float = 1e-3
    abs_tol: float = 1e-7
    max_panels: int = 16

    def __post_init__(self) -> None:
        if not (self.rel_tol >= 0 and self.abs_tol >= 0):
            raise LcaError(
                f"adaptive tolerances must be >= 0, got rel_tol={self.rel_tol}, abs_tol={self.abs_tol}"
            )
        if self.max_panels < 1 or self.max_panels & (self.max_panels - 1):
            raise LcaError(f"max_panels must be a power of two >= 1, got {self.max_panels}")

    def converged(self, residual: float, loss_change: float, loss: float) -> bool:
        """Whether an interval's residual is within tolerance."""
        bound = max(self.rel_tol * abs(loss_change), self.abs_tol * abs(loss))
        return abs(residual) <= bound

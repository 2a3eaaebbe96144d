"""The chord integral's pure functions against slow references (float64, CPU, no model).

The integrand is given per component in closed form: ``g_i(s) = f_i(s)`` along a chord with
``D_i`` set per component, the loss ``L(s) = L0 + sum_i D_i F_i(s)`` (``F_i`` an antiderivative
of ``f_i``), and the callback returns SUMS over an evaluation subset of ``N`` samples, as the
engine's gradient passes do.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lca_toolkit.chord import ChordIntegral, integrate, integrate_adaptive, integrate_fixed
from lca_toolkit.quadrature import (
    AdaptiveOptions,
    comparison_weights,
    composite_simpson,
    get_rule,
)

N = 3.0  # |E|
L0 = 0.75  # mean loss at s = 0
D = [torch.tensor([1.5], dtype=torch.float64), torch.tensor([-0.5, 2.0], dtype=torch.float64)]


class Integrand:
    """``grad_at`` for per-component functions; records the nodes it is asked for."""

    def __init__(self, fs, antiderivatives) -> None:
        self.fs, self.Fs = fs, antiderivatives
        self.nodes: list[float] = []

    def values(self, s: float) -> np.ndarray:
        return np.array([f(s) for f in self.fs])

    def loss(self, s: float) -> float:
        d = np.concatenate([t.numpy() for t in D])
        return L0 + float(d @ (np.array([F(s) for F in self.Fs]) - [F(0.0) for F in self.Fs]))

    def grads(self, s: float) -> list[torch.Tensor]:
        v = torch.tensor(self.values(s), dtype=torch.float64) * N
        return [v[:1].clone(), v[1:].clone()]

    def __call__(self, s: float):
        assert torch.is_grad_enabled()  # the engine's passes need autograd
        self.nodes.append(s)
        return torch.tensor(self.loss(s) * N, dtype=torch.float64), self.grads(s)

    def exact(self) -> np.ndarray:
        """Per component, the exact mean-gradient integral over [0, 1]."""
        return np.array([F(1.0) - F(0.0) for F in self.Fs])


def polynomial(degree: int) -> Integrand:
    """Three components ``c_i s^degree + 1`` with exact antiderivatives."""
    cs = (1.0, -2.0, 0.5)
    fs = [lambda s, c=c: c * s**degree + 1.0 for c in cs]
    Fs = [lambda s, c=c: c * s ** (degree + 1) / (degree + 1) + s for c in cs]
    return Integrand(fs, Fs)


def smooth() -> Integrand:
    """Smooth, not polynomial: exp, cos and 1 / (1 + s)."""
    return Integrand(
        [math.exp, lambda s: math.cos(3 * s), lambda s: 1 / (1 + s)],
        [math.exp, lambda s: math.sin(3 * s) / 3, lambda s: math.log(1 + s)],
    )


def integral(result: ChordIntegral) -> np.ndarray:
    """Per component, the rule's estimate of the mean-gradient integral."""
    return np.concatenate([(result.scale * t).numpy() for t in result.weighted])


def lca_by_tensor(result: ChordIntegral) -> torch.Tensor:
    lca = [result.scale * w * d for w, d in zip(result.weighted, D, strict=True)]
    return torch.stack([t.sum() for t in lca])


def per_tensor(values: np.ndarray) -> np.ndarray:
    """(3,) per component -> (2,) per tensor, weighted by D."""
    d = np.concatenate([t.numpy() for t in D])
    return np.array([d[0] * values[0], d[1] * values[1] + d[2] * values[2]])


def start(problem: Integrand) -> list[torch.Tensor]:
    return problem.grads(0.0)


FIXED = ("first_order", "trapezoid", "simpson", "lobatto4")


@pytest.mark.parametrize("name", FIXED)
def test_fixed_rule_is_its_weighted_sum(name):
    problem, rule = smooth(), get_rule(name)
    result = integrate_fixed(name, D, start(problem), problem, N)
    reference = sum(w * problem.values(s) for w, s in zip(rule.weights, rule.nodes, strict=True))
    np.testing.assert_allclose(integral(result), reference, rtol=1e-14, atol=1e-15)
    # Interior nodes in ascending order, the right end last; s = 0 is the caller's.
    assert problem.nodes == [*rule.nodes[1:]]
    assert result.passes == rule.gradient_passes
    assert result.loss_end.item() == pytest.approx(problem.loss(1.0), rel=1e-15)
    g1 = problem.grads(1.0)
    assert all(torch.equal(a, b) for a, b in zip(result.g_end, g1, strict=True))


@pytest.mark.parametrize("name", FIXED)
def test_fixed_rule_exact_at_its_degree_and_not_above(name):
    degree = get_rule(name).degree
    for p, exact in ((degree, True), (degree + 1, False)):
        problem = polynomial(p)
        result = integrate_fixed(name, D, start(problem), problem, N)
        err = np.abs(integral(result) - problem.exact()).max()
        if exact:
            assert err < 1e-14, (name, p, err)
        else:
            assert err > 1e-4, (name, p, err)


@pytest.mark.parametrize("name", FIXED)
def test_fixed_error_is_rule_minus_comparison(name):
    problem, rule = smooth(), get_rule(name)
    result = integrate_fixed(name, D, start(problem), problem, N)
    diff = np.subtract(rule.weights, comparison_weights(name))
    reference = per_tensor(
        sum(w * problem.values(s) for w, s in zip(diff, rule.nodes, strict=True))
    )
    got = result.error_by_tensor(lca_by_tensor(result)).numpy()
    np.testing.assert_allclose(got, reference, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", [*FIXED, "adaptive"])
def test_left_endpoint_gradient_becomes_the_accumulator(name):
    problem = smooth()
    g0 = start(problem)
    result = integrate(name, AdaptiveOptions(), D, g0, problem, N, L0)
    assert all(a is b for a, b in zip(result.weighted, g0, strict=True))  # no new buffer


def test_direction_is_read_only():
    before = [t.clone() for t in D]
    for name in (*FIXED, "adaptive"):
        problem = smooth()
        integrate(name, AdaptiveOptions(), D, start(problem), problem, N, L0)
    assert all(torch.equal(a, b) for a, b in zip(D, before, strict=True))


def test_adaptive_exact_on_a_cubic_in_one_level():
    problem = polynomial(3)
    result = integrate_adaptive(AdaptiveOptions(), D, start(problem), problem, N, L0)
    np.testing.assert_allclose(integral(result), problem.exact(), rtol=1e-14)
    assert problem.nodes == [1.0, 0.5]  # the right end first: the stopping rule needs its loss
    assert result.passes == 2 and result.scale == 1.0 and result.error_alpha == 0.0


@pytest.mark.parametrize("max_panels", [1, 2, 8, 32])
def test_adaptive_at_its_cap_is_composite_simpson(max_panels):
    problem = smooth()
    opts = AdaptiveOptions(rel_tol=0.0, abs_tol=0.0, max_panels=max_panels)
    result = integrate_adaptive(opts, D, start(problem), problem, N, L0)
    rule = composite_simpson(max_panels)
    values = np.stack([problem.values(s) for s in rule.nodes])
    np.testing.assert_allclose(integral(result), rule.weights @ values, rtol=1e-14)
    assert result.passes == 2 * max_panels
    assert sorted(problem.nodes) == list(rule.nodes[1:])  # every node once, s = 0 excepted
    # Each level's new midpoints from left to right, after the right end.
    levels, panels = [[1.0]], 1
    while panels <= max_panels:
        levels.append([(2 * i + 1) / (2 * panels) for i in range(panels)])
        panels *= 2
    assert problem.nodes == [s for level in levels for s in level]
    # The error estimate: the last level minus the previous one (one level: minus the
    # composite trapezoid on 0, 1/2, 1).
    if max_panels == 1:
        previous = np.array([0.25, 0.5, 0.25]) @ values
    else:
        previous = np.asarray(composite_simpson(max_panels // 2).weights) @ values[::2]
    reference = per_tensor(rule.weights @ values - previous)
    np.testing.assert_allclose(result.error_rest.numpy(), reference, rtol=1e-10, atol=1e-14)


def test_adaptive_converges_on_a_smooth_integrand():
    errors, passes = [], []
    for rel_tol in (1e-3, 1e-6, 1e-9):
        problem = smooth()
        opts = AdaptiveOptions(rel_tol=rel_tol, abs_tol=0.0, max_panels=1024)
        result = integrate_adaptive(opts, D, start(problem), problem, N, L0)
        loss_change = problem.loss(1.0) - L0
        lca = lca_by_tensor(result).sum().item()
        assert abs(loss_change - lca) <= rel_tol * abs(loss_change)  # stopped by the rule
        assert result.passes < 2 * 1024  # not by the cap
        errors.append(np.abs(integral(result) - problem.exact()).max())
        passes.append(result.passes)
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-9
    assert passes[0] < passes[1] < passes[2]


def test_adaptive_stops_on_a_non_finite_residual():
    problem = Integrand([lambda s: math.nan] * 3, [lambda s: 0.0] * 3)
    opts = AdaptiveOptions(rel_tol=0.0, abs_tol=0.0, max_panels=16)
    result = integrate_adaptive(opts, D, start(problem), problem, N, L0)
    assert result.passes == 2


def test_integrate_dispatches_by_name():
    for name in (*FIXED, "adaptive"):
        a, b = smooth(), smooth()
        via = integrate(name, AdaptiveOptions(), D, start(a), a, N, L0)
        if name == "adaptive":
            direct = integrate_adaptive(AdaptiveOptions(), D, start(b), b, N, L0)
        else:
            direct = integrate_fixed(name, D, start(b), b, N)
        assert a.nodes == b.nodes
        assert np.array_equal(integral(via), integral(direct))

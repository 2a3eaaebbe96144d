"""LCA engine against closed forms and slow references (float64, CPU).

Every exactness test is paired with the same rule one polynomial degree higher, asserted to be
visibly wrong, so the test cannot pass by accident.
"""

from __future__ import annotations

import pytest
import torch
from problems import SmoothMLP, Theta, mlp_batches, mlp_loss
from torch.func import functional_call

from lca_toolkit import LcaError, ParamGroups
from lca_toolkit.lca import LcaConfig, LcaEngine
from lca_toolkit.quadrature import AdaptiveOptions, composite_simpson, get_rule

A = torch.tensor([0.3, -1.2, 0.7, 2.0, -0.4], dtype=torch.float64)
B = torch.tensor([1.1, -0.5, -0.6, 1.5, 0.9], dtype=torch.float64)
ALPHA = torch.tensor([1.0, 0.5, -2.0, 0.25, 1.5], dtype=torch.float64)
WEIGHTS = [torch.tensor([0.5, 2.0], dtype=torch.float64), torch.tensor([1.5], dtype=torch.float64)]
MEAN_C = (0.5 + 2.0 + 1.5) / 3


def separable_loss(power: int):
    """Per-sample loss c_k * sum_i alpha_i theta_i^power; L_E = mean(c) * sum_i alpha_i theta_i^p."""

    def loss_fn(model, c):
        return c * (ALPHA * model.theta**power).sum()

    return loss_fn


def one_interval(model, loss_fn, batches, quadrature, b, **kw):
    """Measure one interval from the model's current theta to ``b``; per-parameter LCA via cumulative."""
    groups = (
        ParamGroups.from_children(model)
        if list(model.children())
        else ParamGroups(model, {"theta": ["theta"]})
    )
    engine = LcaEngine(
        model, groups, loss_fn, batches, LcaConfig(1, quadrature, cumulative=True, **kw)
    )
    with torch.no_grad():
        model.theta.copy_(b)
    result = engine.measure(1)
    return result, engine.cumulative()["theta"]


@pytest.mark.parametrize(
    "rule, power", [("first_order", 1), ("trapezoid", 2), ("simpson", 4), ("lobatto4", 6)]
)
def test_rule_exact_at_its_degree_and_wrong_one_above(rule, power):
    assert get_rule(rule).degree == power - 1
    for p, exact_expected in ((power, True), (power + 1, False)):
        model = Theta(A)
        result, lca = one_interval(model, separable_loss(p), WEIGHTS, rule, B)
        exact = MEAN_C * ALPHA * (B**p - A**p)
        err = (lca - exact).abs().max().item()
        scale = exact.abs().max().item()
        if exact_expected:
            assert err < 1e-12 * scale, (rule, p, err)
            assert abs(result.residual.item()) < 1e-12 * scale
        else:
            assert err > 1e-4 * scale, (rule, p, err)
            assert abs(result.residual.item()) > 1e-6 * scale
        # Loss values are the real mean over the evaluation subset.
        assert result.loss_end.item() == pytest.approx(
            MEAN_C * (ALPHA * B**p).sum().item(), rel=1e-14
        )


def test_simpson_non_separable_quartic_exact():
    def loss_fn(model, c):
        return c * model.theta.sum() ** 4

    model = Theta(A)
    _, lca = one_interval(model, loss_fn, WEIGHTS, "simpson", B)
    d = B - A
    exact = MEAN_C * d / d.sum() * (B.sum() ** 4 - A.sum() ** 4)
    torch.testing.assert_close(lca, exact, rtol=1e-12, atol=1e-12)


def test_least_squares_first_order_residual_is_half_dHd():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(13, 5, generator=g, dtype=torch.float64)
    y = torch.randn(13, generator=g, dtype=torch.float64)
    batches = [(x[i : i + 4], y[i : i + 4]) for i in range(0, 13, 4)]  # uneven last batch

    def loss_fn(model, batch):
        xb, yb = batch
        return 0.5 * (xb @ model.theta - yb) ** 2

    hessian = x.T @ x / 13
    d = B - A
    half_dhd = 0.5 * (d @ hessian @ d).item()
    result, _ = one_interval(Theta(A), loss_fn, batches, "first_order", B)
    assert result.residual.item() == pytest.approx(half_dhd, rel=1e-12)
    assert result.passes == 2  # the left endpoint had to be computed: the first interval
    for rule in ("trapezoid", "simpson"):
        result, _ = one_interval(Theta(A), loss_fn, batches, rule, B)
        assert abs(result.residual.item()) < 1e-13 * abs(half_dhd) * 100


BN_BATCHES_LOSS = mlp_loss


def bn_batches():
    """Batches of 8 and a last one of 6: train-mode BN on a batch of 2 is nearly a step function."""
    return mlp_batches(n=22, batch_size=8)


def _train(model, steps, lr=0.02, seed=0):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    torch.manual_seed(seed)
    for _ in range(steps):
        for batch in mlp_batches(seed=7):
            opt.zero_grad()
            mlp_loss(model, batch).mean().backward()
            opt.step()
    return opt


def test_completeness_adaptive_on_mlp_after_real_steps():
    model = SmoothMLP()
    groups = ParamGroups.from_children(model)
    opts = AdaptiveOptions(rel_tol=1e-13, abs_tol=0.0, max_panels=64)
    engine = LcaEngine(
        model, groups, mlp_loss, mlp_batches(), LcaConfig(1, "adaptive", adaptive=opts)
    )
    for step in range(1, 4):
        _train(model, 1)
        r = engine.measure(step)
        assert abs(r.residual.item()) < 1e-10 * r.loss_end.item(), (step, r.residual.item())
        assert r.passes >= 2
        # Residual is the defined difference, and the change really happened.
        total = r.by_group.sum().item()
        assert r.loss_end.item() - r.loss_start.item() == pytest.approx(total, abs=1e-10)
        assert abs(total) > 1e-4


def test_simpson_error_shrinks_16x_per_panel_doubling_and_matches_reference():
    model = SmoothMLP(seed=2)
    groups = ParamGroups.from_children(model)
    start = {k: v.detach().clone() for k, v in model.named_parameters()}
    engines = {
        m: LcaEngine(
            model,
            groups,
            mlp_loss,
            mlp_batches(),
            LcaConfig(1, "adaptive", adaptive=AdaptiveOptions(0.0, 0.0, m), cumulative=True),
        )
        for m in (2, 4, 8)
    }
    _train(model, 1, lr=0.02)
    residuals = {m: e.measure(1).residual.item() for m, e in engines.items()}
    assert 13 < residuals[2] / residuals[4] < 19, residuals
    assert 13 < residuals[4] / residuals[8] < 19, residuals

    # Slow reference: composite Simpson with 4 panels, plain autograd on the chord.
    end = {k: v.detach().clone() for k, v in model.named_parameters()}
    rule = composite_simpson(4)
    ref = {k: torch.zeros_like(v) for k, v in start.items()}
    for s, w in zip(rule.nodes, rule.weights, strict=True):
        node = {k: (start[k] + s * (end[k] - start[k])).requires_grad_() for k in start}
        losses = (
            torch.cat([functional_call(model, node, (b,)) - b["y"] for b in mlp_batches()]) ** 2
        )
        grads = torch.autograd.grad(losses.mean(), list(node.values()))
        for k, gk in zip(node, grads, strict=True):
            ref[k] += w * gk * (end[k] - start[k])
    got = engines[4].cumulative()
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], rtol=1e-10, atol=1e-14)


def test_reused_endpoint_gradient_equals_fresh_bit_for_bit():
    model = SmoothMLP(seed=4)
    engine = LcaEngine(
        model, ParamGroups.from_children(model), mlp_loss, mlp_batches(), LcaConfig(1, "simpson")
    )
    _train(model, 1)
    engine.measure(1)
    stored = engine.stored_endpoint_gradient()
    loss, fresh = engine.gradient_at_snapshot()
    assert all(torch.equal(a, b) for a, b in zip(stored, fresh, strict=True))
    assert any(a.abs().sum() > 0 for a in stored)
    # The endpoint really is the current state: the next interval starts where this one ended.
    assert loss.item() == engine._loss_prev.item()


@pytest.mark.parametrize("policy", ["interpolate", "train"])
def test_batchnorm_policies_keep_completeness(policy):
    model = SmoothMLP(seed=5, bn=True)
    opts = AdaptiveOptions(rel_tol=1e-13, abs_tol=0.0, max_panels=64)
    engine = LcaEngine(
        model,
        ParamGroups.from_children(model),
        BN_BATCHES_LOSS,
        bn_batches(),
        LcaConfig(1, "adaptive", adaptive=opts, bn_policy=policy),
    )
    buffers_before = model.bn.running_mean.clone()
    model.train()
    _train(model, 1)
    assert not torch.equal(buffers_before, model.bn.running_mean)  # buffers moved in the interval
    running = model.bn.running_mean.clone()
    r = engine.measure(1)
    assert abs(r.residual.item()) < 1e-10 * r.loss_end.item()
    assert torch.equal(running, model.bn.running_mean)  # the engine left the buffers alone
    assert model.training  # and the train flag
    if policy == "interpolate":
        assert engine.group_names[-1] == "bn_buffers"
        assert abs(r.by_group[-1].item()) > 1e-6  # the buffers' share is allocated, not lost


def test_batchnorm_without_policy_fails_completeness():
    model = SmoothMLP(seed=5, bn=True)
    opts = AdaptiveOptions(rel_tol=1e-13, abs_tol=0.0, max_panels=64)
    engine = LcaEngine(
        model,
        ParamGroups.from_children(model),
        BN_BATCHES_LOSS,
        bn_batches(),
        LcaConfig(1, "adaptive", adaptive=opts, bn_policy="none"),
    )
    model.train()
    _train(model, 1)
    first = engine.measure(1)  # start endpoint computed now, with the END buffers: consistent
    assert abs(first.residual.item()) < 1e-10
    _train(model, 1)
    second = engine.measure(
        2
    )  # its start loss used the buffers of step 1, the path those of step 2
    change = abs(second.loss_end.item() - second.loss_start.item())
    assert abs(second.residual.item()) > 1e-3 * change


def test_low_precision_model_is_evaluated_on_float32_copies():
    model = SmoothMLP(seed=6).to(torch.bfloat16)
    batches = [{k: v.to(torch.bfloat16) for k, v in b.items()} for b in mlp_batches()]

    def loss_fn(m, b):
        return (m(b).float() - b["y"].float()) ** 2

    engine = LcaEngine(model, ParamGroups.from_children(model), loss_fn, batches, LcaConfig(1))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05)
    r = engine.measure(1)
    reference = model.float()
    with torch.no_grad():
        want = torch.cat(
            [loss_fn(reference, {k: v.float() for k, v in b.items()}) for b in batches]
        ).mean()
    assert r.loss_end.item() == pytest.approx(want.item(), rel=1e-6)
    assert r.by_group.dtype == torch.float64


def test_errors_are_clear():
    model = SmoothMLP()
    groups = ParamGroups.from_children(model)
    with pytest.raises(LcaError, match="one-shot iterator"):
        LcaEngine(model, groups, mlp_loss, iter(mlp_batches()), LcaConfig(1))
    with pytest.raises(LcaError, match="unknown quadrature 'rk4'"):
        LcaConfig(1, "rk4")
    with pytest.raises(LcaError, match="lca_every must be a positive integer"):
        LcaConfig(0)
    engine = LcaEngine(
        model, groups, lambda m, b: mlp_loss(m, b).mean(), mlp_batches(), LcaConfig(1)
    )
    with pytest.raises(LcaError, match=r"1-D tensor of per-sample losses .* got \(\)"):
        engine.measure(1)
    bn_model = SmoothMLP(bn=True)
    bn_model.bn = torch.nn.BatchNorm1d(4, affine=False).double()
    with pytest.raises(LcaError, match="'bn' is not affine"):
        LcaEngine(
            bn_model, ParamGroups.from_children(bn_model), mlp_loss, mlp_batches(), LcaConfig(1)
        )

"""The per-group reduction of per-parameter LCA against a slow reference (plain Python loops)."""

from __future__ import annotations

import math

import pytest
import torch

from lca_toolkit.chord import ChordIntegral
from lca_toolkit.lca_result import reduce_lca

GROUP_INDEX = torch.tensor([0, 2, 0, 1])  # 4 tensors in 3 groups


def problem(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    lca = [torch.randn(*shape, generator=g) for shape in ((3, 2), (5,), (4,), (2, 2))]
    lca[1][0] = 0.0  # neither helped nor hurt
    error_rest = torch.randn(4, generator=g, dtype=torch.float64)
    integral = ChordIntegral(
        weighted=lca,
        scale=0.25,
        g_end=[],
        loss_end=torch.tensor(1.5, dtype=torch.float64),
        passes=2,
        error_alpha=-0.5,
        error_rest=error_rest,
    )
    return lca, integral


@pytest.mark.parametrize("per_tensor", [False, True])
def test_reduction_matches_a_slow_reference(per_tensor):
    lca, integral = problem()
    loss_start = torch.tensor(2.0, dtype=torch.float64)
    result = reduce_lca(
        lca,
        integral,
        GROUP_INDEX,
        3,
        start_step=4,
        end_step=8,
        loss_start=loss_start,
        passes=3,
        per_tensor=per_tensor,
    )
    by_tensor = [integral.scale * sum(float(x) for x in t.flatten()) for t in lca]
    by_group, abs_by_group, error = [0.0] * 3, [0.0] * 3, [0.0] * 3
    helped, hurt = [0] * 3, [0] * 3
    for t, (values, group) in enumerate(zip(lca, GROUP_INDEX.tolist(), strict=True)):
        by_group[group] += by_tensor[t]
        abs_by_group[group] += integral.scale * sum(abs(float(x)) for x in values.flatten())
        error[group] += -0.5 * by_tensor[t] + float(integral.error_rest[t])
        helped[group] += sum(1 for x in values.flatten() if x < 0)
        hurt[group] += sum(1 for x in values.flatten() if x > 0)
    assert result.by_group.dtype == torch.float64
    assert result.by_group.tolist() == pytest.approx(by_group, rel=1e-6)
    assert result.abs_by_group.tolist() == pytest.approx(abs_by_group, rel=1e-6)
    assert result.error_by_group.tolist() == pytest.approx([abs(e) for e in error], rel=1e-6)
    assert result.helped.tolist() == helped and result.hurt.tolist() == hurt
    assert sum(helped) + sum(hurt) == sum(t.numel() for t in lca) - 1
    assert math.isclose(result.residual.item(), 1.5 - 2.0 - sum(by_group), rel_tol=1e-6)
    assert (result.start_step, result.end_step, result.passes) == (4, 8, 3)
    assert result.loss_start is loss_start and result.loss_end is integral.loss_end
    if per_tensor:
        assert result.by_tensor.tolist() == pytest.approx(by_tensor, rel=1e-6)
    else:
        assert result.by_tensor is None


def test_empty_group_sums_to_zero():
    lca, integral = problem(1)
    result = reduce_lca(
        lca,
        integral,
        GROUP_INDEX,
        4,  # group 3 has no tensor
        start_step=0,
        end_step=1,
        loss_start=torch.tensor(0.0, dtype=torch.float64),
        passes=2,
        per_tensor=False,
    )
    assert result.by_group[3].item() == 0.0 and result.helped[3].item() == 0

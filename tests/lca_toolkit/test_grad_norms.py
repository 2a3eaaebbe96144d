"""Gradient-norm rows: missing gradients, zero-norm parameters, NaN isolation, mixed blocks."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from lca_toolkit import ParamGroups, Tracker
from lca_toolkit.grad_norms import group_rows, write_norm_row, write_update_row


def test_norm_row_counts_a_missing_gradient_as_zero_and_group_rows_skip_zero_parameters():
    a = torch.tensor([3.0, 4.0], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(2, dtype=torch.float64, requires_grad=True)  # ||theta|| = 0
    c = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)  # no gradient
    a.grad = torch.tensor([0.6, 0.8], dtype=torch.float64)
    b.grad = torch.tensor([2.0, 0.0], dtype=torch.float64)
    raw = torch.zeros(1, 9, dtype=torch.float64)
    write_norm_row([a, b, c], raw[0, :6], torch.zeros((), dtype=torch.float64))
    assert raw[0, :6].tolist() == [1.0, 2.0, 0.0, 5.0, 0.0, 1.0]
    rows = group_rows(raw.numpy(), [np.array([0, 1]), np.array([2])])
    np.testing.assert_allclose(rows.grad_norm, [[math.sqrt(5.0), 0.0]], rtol=1e-15)
    np.testing.assert_allclose(rows.grad_norm_total, [math.sqrt(5.0)], rtol=1e-15)
    # b has ||theta|| = 0 and is left out of the relative norm instead of making it infinite
    np.testing.assert_allclose(rows.rel_sq_norm, [[1.0 / 25.0, 0.0]], rtol=1e-15)


def test_update_row_is_the_norm_of_the_change():
    p = [torch.tensor([1.0, 2.0]), torch.tensor([[5.0]])]
    before = [t.clone() for t in p]
    p[0] += torch.tensor([3.0, 4.0])
    out = torch.zeros(2)
    write_update_row(before, p, out)
    assert out.tolist() == [5.0, 0.0]


def test_a_nan_stays_in_its_own_group():
    raw = np.array([[1.0, math.nan, 2.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5]])
    rows = group_rows(raw, [np.array([0]), np.array([1]), np.array([2])])
    assert rows.grad_norm[0, 0] == 1.0 and rows.grad_norm[0, 2] == 2.0
    assert math.isnan(rows.grad_norm[0, 1]) and math.isnan(rows.rel_sq_norm[0, 1])
    assert math.isnan(rows.grad_norm_total[0])
    np.testing.assert_allclose(rows.update_norm, [[0.5, 0.5, 0.5]])


class TwoHeads(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(3, 1)
        self.b = nn.Linear(3, 1)

    def forward(self, x: torch.Tensor, use_b: bool) -> torch.Tensor:
        return self.a(x) + (self.b(x) if use_b else 0.0)


def test_tracker_rows_equal_the_direct_computation_across_transfer_blocks():
    """Steps where a head is unused, rows split over several transfers, float32 parameters."""
    torch.manual_seed(0)
    model = TwoHeads()
    groups = ParamGroups.from_children(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    tracker = Tracker(model, groups, optimizer=opt, transfer_every=3)
    expected = []
    for step in range(7):
        opt.zero_grad(set_to_none=True)
        loss = model(torch.randn(4, 3), use_b=step % 2 == 0).pow(2).mean()
        loss.backward()
        tracker.after_backward(loss)
        expected.append(
            [
                math.sqrt(sum(float(p.grad.double().norm()) ** 2 for p in groups.params(g)))
                if all(p.grad is not None for p in groups.params(g))
                else 0.0
                for g in groups
            ]
        )
        opt.step()
        tracker.after_step()
    tracker.close()
    np.testing.assert_allclose(tracker.sink.step_array("grad_norm"), expected, rtol=1e-6)
    assert tracker.sink.step_array("step").tolist() == list(range(1, 8))
    assert (tracker.sink.step_array("update_norm")[:, 0] > 0).all()

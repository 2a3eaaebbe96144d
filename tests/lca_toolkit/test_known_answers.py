"""Known answers of the whole Tracker on toy two-branch models (float64 on CPU, seconds each).

Three facts about a model whose two input branches are fused by sum into a head, each of which
fails if LCA or the gradient norms are allocated to the wrong group:

* a branch fed pure noise gets (almost) none of the loss reduction on held-out data, while on a
  small training set it memorises and takes a visible share;
* swapping the inputs of two identically initialised branches swaps their numbers exactly;
* a group that never moves (learning rate 0) has LCA exactly 0 although its gradient is not.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from lca_toolkit import ParamGroups
from lca_toolkit.tracker import Tracker

Batch = dict[str, torch.Tensor]
GROUPS = {"a": "a.", "b": "b.", "head": "head."}  # column order a, b, head
A, B, HEAD = 0, 1, 2


def branch(d_in: int, width: int) -> nn.Sequential:
    """No biases: fed symmetric noise, the branch's output has mean zero and cannot stand in for
    the head's bias (which would lower the held-out loss through a noise input)."""
    return nn.Sequential(
        nn.Linear(d_in, width, bias=False), nn.Tanh(), nn.Linear(width, 4, bias=False)
    )


class TwoBranch(nn.Module):
    """``head(tanh(a(xa) + b(xb)))``: two input branches fused by sum (float64)."""

    def __init__(self, d_a: int, d_b: int, width: int = 16, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.a = branch(d_a, width)
        self.b = branch(d_b, width)
        self.head = nn.Linear(4, 1)
        self.double()

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.head(torch.tanh(self.a(batch["xa"]) + self.b(batch["xb"]))).squeeze(-1)


def squared_error(model: nn.Module, batch: Batch) -> torch.Tensor:
    """Per-sample loss, (B,)."""
    return (model(batch) - batch["y"]) ** 2


def batched(xa: torch.Tensor, xb: torch.Tensor, y: torch.Tensor, size: int) -> list[Batch]:
    return [
        {"xa": xa[i : i + size], "xb": xb[i : i + size], "y": y[i : i + size]}
        for i in range(0, len(y), size)
    ]


def train(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: list[Batch],
    eval_batches: list[Batch],
    epochs: int,
    lca_every: int,
) -> Tracker:
    """Train with a Tracker on (groups a, b, head, Simpson) and return it, closed."""
    groups = ParamGroups.from_prefixes(model, GROUPS)
    with Tracker(
        model,
        groups,
        optimizer=optimizer,
        loss_fn=squared_error,
        eval_batches=eval_batches,
        lca_every=lca_every,
        quadrature="simpson",
    ) as tracker:
        for _ in range(epochs):
            for batch in batches:
                optimizer.zero_grad()
                loss = squared_error(model, batch).mean()
                loss.backward()
                tracker.after_backward(loss)
                optimizer.step()
                tracker.after_step()
    return tracker


def lca_table(tracker: Tracker, name: str) -> np.ndarray:
    """(intervals, groups) array of one LCA record field."""
    return np.array([getattr(r, name) for r in tracker.sink.lca])


# ----------------------------------------------------------------------------- noise branch
D_A, D_B = 4, 16


def noise_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """y depends on xa only; xb is noise drawn independently of it."""
    g = torch.Generator().manual_seed(seed)
    xa = torch.randn(n, D_A, generator=g, dtype=torch.float64)
    xb = torch.randn(n, D_B, generator=g, dtype=torch.float64)
    y = 1.5 * torch.tanh(xa @ torch.linspace(-1, 1, D_A, dtype=torch.float64))
    return xa, xb, y


def noise_run(
    n_train: int, epochs: int, batch_size: int, eval_on: str, seed: int = 0
) -> dict[str, float]:
    """Train on ``n_train`` samples; LCA on a held-out set or on the training set itself.

    Both branches' output layers start at zero, so the noise branch starts out adding nothing:
    shrinking an initial noise contribution would be a real, but uninteresting, loss reduction.
    Returns the shares of the summed loss change over the run of branches a and b, the change
    and the first loss.
    """
    model = TwoBranch(D_A, D_B, seed=seed)
    with torch.no_grad():
        model.a[2].weight.zero_()
        model.b[2].weight.zero_()
    train_set = noise_data(n_train, seed=2 * seed + 1)
    held_out = noise_data(1024, seed=2 * seed + 2)
    tracker = train(
        model,
        torch.optim.Adam(model.parameters(), lr=1e-2),
        batched(*train_set, batch_size),
        batched(*(held_out if eval_on == "held-out" else train_set), 256),
        epochs=epochs,
        lca_every=10,
    )
    by_group = lca_table(tracker, "by_group").sum(axis=0)
    change = float(sum(r.loss_end - r.loss_start for r in tracker.sink.lca))
    return {
        "a": by_group[A] / change,
        "b": by_group[B] / change,
        "change": change,
        "start": tracker.sink.lca[0].loss_start,
    }


def test_a_noise_branch_gets_at_most_5_percent_of_the_held_out_loss_reduction():
    share = noise_run(n_train=2048, epochs=2, batch_size=32, eval_on="held-out")
    assert share["change"] < -0.5 * share["start"]  # the model really learned
    assert abs(share["b"]) <= 0.05, share  # seeds 0-7 of this setting: |share| <= 0.006
    assert share["a"] >= 0.5, share  # the informative branch gets most (0.68-0.86; head rest)


def test_on_a_small_training_set_the_noise_branch_memorises_and_gets_more():
    """The same claim fails when E is a small training set: the noise branch (16 inputs, 32
    samples) fits the labels and takes a real share of the loss reduction on those samples
    (0.13-0.27 over seeds 0-7). So the 5% bound above is a property of a held-out E; on held-out
    data the memorising branch of this small run hurts instead (a positive LCA, -0.02 to -0.07
    of the reduction; not asserted here)."""
    share = noise_run(n_train=32, epochs=30, batch_size=8, eval_on="train")
    assert share["change"] < -0.5 * share["start"]
    assert share["b"] > 0.1, share


# ----------------------------------------------------------------------------- symmetry
def swap_run(swap: bool) -> tuple[Tracker, nn.Module]:
    """Two identical branches (b starts as a copy of a); ``swap`` feeds x1 to b and x2 to a."""
    model = TwoBranch(3, 3, width=8, seed=5)
    model.b.load_state_dict(model.a.state_dict())
    g = torch.Generator().manual_seed(6)
    x1 = torch.randn(256, 3, generator=g, dtype=torch.float64)
    x2 = torch.randn(256, 3, generator=g, dtype=torch.float64)
    w = torch.tensor([1.0, -0.5, 0.25], dtype=torch.float64)
    y = torch.tanh(x1 @ w) + 0.3 * torch.sin(x2 @ w.flip(0))  # the inputs matter differently
    xa, xb = (x2, x1) if swap else (x1, x2)
    tracker = train(
        model,
        torch.optim.Adam(model.parameters(), lr=1e-2),
        batched(xa[:192], xb[:192], y[:192], 16),
        batched(xa[192:], xb[192:], y[192:], 24),
        epochs=3,
        lca_every=5,
    )
    return tracker, model


def test_swapping_the_inputs_of_identical_branches_swaps_their_numbers_exactly():
    """Bitwise: a + b == b + a in IEEE arithmetic, each group's tensors are reduced in the same
    order, and Adam acts per element, so nothing but the column order may differ."""
    plain, plain_model = swap_run(swap=False)
    swapped, swapped_model = swap_run(swap=True)
    order = [B, A, HEAD]
    for name in ("grad_norm", "rel_sq_norm", "update_norm"):
        x, y = plain.sink.step_array(name), swapped.sink.step_array(name)
        assert not np.array_equal(x[:, A], x[:, B]), name  # the branches really differ
        np.testing.assert_array_equal(x, y[:, order], err_msg=name)
    assert len(plain.sink.lca) == 8  # 36 steps, k = 5: (35, 36] measured at close()
    for name in ("by_group", "abs_by_group", "helped", "hurt"):
        x, y = lca_table(plain, name), lca_table(swapped, name)
        assert not np.array_equal(x[:, A], x[:, B]), name
        np.testing.assert_array_equal(x, y[:, order], err_msg=name)
    np.testing.assert_array_equal(lca_table(plain, "loss_end"), lca_table(swapped, "loss_end"))
    for key, value in plain_model.a.state_dict().items():
        assert torch.equal(value, swapped_model.b.state_dict()[key]), key


# ----------------------------------------------------------------------------- frozen by lr 0
def test_a_group_with_learning_rate_zero_has_lca_exactly_zero():
    model = TwoBranch(3, 3, width=8, seed=7)
    g = torch.Generator().manual_seed(8)
    xa = torch.randn(160, 3, generator=g, dtype=torch.float64)
    xb = torch.randn(160, 3, generator=g, dtype=torch.float64)
    y = torch.tanh(xa.sum(1)) - torch.tanh(xb[:, 0])  # b's input matters: its gradient is real
    before = {k: v.clone() for k, v in model.b.state_dict().items()}
    optimizer = torch.optim.Adam(
        [
            {"params": model.a.parameters(), "lr": 1e-2},
            {"params": model.b.parameters(), "lr": 0.0},
            {"params": model.head.parameters(), "lr": 1e-2},
        ]
    )
    tracker = train(
        model, optimizer, batched(xa[:128], xb[:128], y[:128], 8), batched(xa, xb, y, 32), 2, 4
    )
    assert len(tracker.sink.lca) == 8
    by_group = lca_table(tracker, "by_group")
    assert (by_group[:, B] == 0.0).all()
    assert (lca_table(tracker, "abs_by_group")[:, B] == 0.0).all()
    assert (lca_table(tracker, "helped")[:, B] == 0).all()
    assert (lca_table(tracker, "hurt")[:, B] == 0).all()
    assert (by_group[:, A] != 0.0).all() and (by_group[:, HEAD] != 0.0).all()
    assert (tracker.sink.step_array("grad_norm")[:, B] > 0).all()
    assert (tracker.sink.step_array("update_norm")[:, B] == 0.0).all()
    assert (tracker.sink.step_array("lr")[:, 1] == 0.0).all()
    for key, value in model.b.state_dict().items():
        assert torch.equal(value, before[key]), key

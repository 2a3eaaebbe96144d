"""Input ablation: Shapley contributions, unimodal numbers, non-interference, errors, the table."""

from __future__ import annotations

from collections import namedtuple
from itertools import combinations
from math import factorial

import pytest
import torch
from torch import nn

from lca_toolkit import AblationError, AblationProbe, Modality, RunWriter, open_run
from lca_toolkit.ablation import ablation_columns, ablation_frame
from lca_toolkit.shapley import coalitions

NAMES = ("a", "b", "c")


class ThreeInputNet(nn.Module):
    """A tanh MLP on three inputs (sizes 2, 3, 1), optionally with BatchNorm and dropout."""

    def __init__(self, seed: int = 0, uses_c: bool = True, bn: bool = False) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.uses_c = uses_c
        self.a = nn.Linear(2, 6)
        self.b = nn.Linear(3, 6)
        self.c = nn.Linear(1, 6)
        self.mix = nn.Sequential(
            nn.BatchNorm1d(6) if bn else nn.Identity(), nn.Tanh(), nn.Dropout(0.2), nn.Linear(6, 1)
        )
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g))
        self.double()

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        h = self.a(batch["a"]) * self.b(batch["b"])  # an interaction, so the game is not additive
        if self.uses_c:
            h = h + self.c(batch["c"])
        return self.mix(h).squeeze(-1)  # (B,)


def sq_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return (model(batch) - batch["y"]) ** 2


def sign_accuracy(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return ((model(batch) > 0) == (batch["y"] > 0)).double()


def batches(n: int = 13, size: int = 4, seed: int = 1) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    x = {k: torch.randn(n, d, generator=g, dtype=torch.float64) for k, d in zip(NAMES, (2, 3, 1))}
    y = torch.tanh(x["a"].sum(1) * x["b"][:, 0]) + 0.5 * x["c"][:, 0]
    return [
        {**{k: v[i : i + size] for k, v in x.items()}, "y": y[i : i + size]}
        for i in range(0, n, size)
    ]


def shapley_by_definition(loss: dict[tuple[str, ...], float], names) -> dict[str, float]:
    """phi_m = sum over coalitions S of present modalities without m of the Shapley weight times
    v(S + m) - v(S), v(S) = -loss(everything outside S removed)."""
    M = len(names)

    def v(present: set[str]) -> float:
        return -loss[tuple(n for n in names if n not in present)]

    phi = {}
    for m in names:
        others = [n for n in names if n != m]
        phi[m] = sum(
            factorial(k) * factorial(M - k - 1) / factorial(M) * (v(set(S) | {m}) - v(set(S)))
            for k in range(M)
            for S in combinations(others, k)
        )
    return phi


def test_exact_shapley_is_efficient_and_matches_the_definition():
    model = ThreeInputNet()
    mods = {"a": "a", "b": Modality("b", mute="mean"), "c": Modality("c", mute=lambda x: -x)}
    r = AblationProbe(model, sq_loss, batches(), mods, metric=sign_accuracy).measure(step=7)
    assert r.step == 7 and r.exact and r.method == "shapley" and r.n_eval == 13
    assert len(r.loss) == 8 and () in r.loss and NAMES in r.loss
    total = sum(r.contribution.values())
    assert abs(total - (r.loss[NAMES] - r.loss[()])) <= 1e-12
    assert abs(total) > 1e-3  # a real loss change, not 0 = 0
    metric_total = sum(r.metric_contribution.values())
    assert abs(metric_total - (r.metric[()] - r.metric[NAMES])) <= 1e-12
    for m, phi in shapley_by_definition(r.loss, NAMES).items():
        assert r.contribution[m] == pytest.approx(phi, abs=1e-14)
    # unimodal: only m present = every other modality removed
    assert r.unimodal_loss["b"] == r.loss[("a", "c")]
    assert r.unimodal_metric["a"] == r.metric[("b", "c")]


def test_a_model_that_ignores_an_input_gives_it_exactly_zero():
    model = ThreeInputNet(uses_c=False)
    r = AblationProbe(model, sq_loss, batches(), {n: Modality(n) for n in NAMES}).measure(0)
    assert r.contribution["c"] == 0.0
    assert r.contribution["a"] != 0.0 and r.contribution["b"] != 0.0


class AdditivePlusPair(nn.Module):
    """Per-sample loss -(1 x_a + 2 x_b + 3 x_c + 4 x_a x_b): known effects and one interaction."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64))

    def forward(self, views, label) -> torch.Tensor:
        xa, xb, xc = (v.sum(1) for v in views)
        w = self.w
        return -(w[0] * xa + w[1] * xb + w[2] * xc + w[3] * xa * xb)


def test_hand_computed_shapley_values_on_a_tuple_batch():
    # batch ((x_a, x_b, x_c), label) with every input 1 per sample: zeros remove an effect.
    ones = torch.ones(5, 1, dtype=torch.float64)
    E = [((ones, ones, ones), torch.zeros(5))]
    mods = {"a": (0, 0), "b": [0, 1], "c": Modality(at=(0, 2))}
    probe = AblationProbe(AdditivePlusPair(), lambda m, b: m(*b), E, mods)
    r = probe.measure(0)
    # v(S) = 1[a] + 2[b] + 3[c] + 4[a and b]: the pair's 4 is shared equally.
    assert r.contribution == pytest.approx({"a": 3.0, "b": 4.0, "c": 3.0}, abs=1e-15)
    assert r.unimodal_loss == pytest.approx({"a": -1.0, "b": -2.0, "c": -3.0}, abs=1e-15)
    assert E[0][0][0] is ones and torch.equal(ones, torch.ones(5, 1, dtype=torch.float64))


Pair = namedtuple("Pair", ["x", "y"])


def test_mean_mute_uses_the_mean_over_all_of_E():
    # loss = x^2 per sample: x replaced by its mean over E gives mean(x)^2, so the contribution
    # is mean(x^2) - mean(x)^2 with the opposite sign: minus the variance over E (13 samples in
    # uneven batches of 4).
    x = torch.linspace(-1.0, 2.0, 13, dtype=torch.float64).reshape(13, 1) ** 3
    E = [Pair(x[i : i + 4], torch.zeros(len(x[i : i + 4]))) for i in range(0, 13, 4)]

    class Square(nn.Module):
        def forward(self, x):
            return (x**2).sum(1)

    probe = AblationProbe(Square(), lambda m, b: m(b.x), E, {"x": Modality("x", mute="mean")})
    r = probe.measure(0)
    assert r.contribution["x"] == pytest.approx(-float(x.var(unbiased=False)), rel=1e-12)


def test_more_than_four_modalities_use_leave_one_out_and_say_so():
    names = [f"m{i}" for i in range(5)]
    g = torch.Generator().manual_seed(0)
    E = [{n: torch.randn(3, 1, generator=g) for n in names}]
    weights = torch.arange(1.0, 6.0)

    def loss_fn(model, b):
        return (torch.cat([b[n] for n in names], 1) @ weights - 1.0) ** 2

    r = AblationProbe(nn.Linear(1, 1), loss_fn, E, {n: n for n in names}).measure(3)
    assert not r.exact and r.method == "leave_one_out"
    assert len(r.loss) == 12 == len(coalitions(5))  # none, each removed, each alone, all
    for n in names:
        assert r.contribution[n] == r.loss[(n,)] - r.loss[()]
        assert r.unimodal_loss[n] == r.loss[tuple(o for o in names if o != n)]
    cols = ablation_columns([r])
    assert cols["exact"].tolist() == [0]


def _train(probe_every: int | None, steps: int = 6):
    torch.manual_seed(0)
    model = ThreeInputNet(seed=2, bn=True)
    model.c.weight.requires_grad_(False)  # a frozen tensor must stay frozen
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    E = batches(n=9, size=3, seed=5)
    probe = AblationProbe(model, sq_loss, E, {"a": "a", "b": Modality("b", "mean"), "c": "c"})
    model.train()
    model.mix[2].eval()  # a mixed train/eval state that must survive
    records = []
    for i, batch in enumerate(batches(n=6 * 4, size=4, seed=9)[:steps]):
        opt.zero_grad()
        sq_loss(model, batch).mean().backward()
        if probe_every and i % probe_every == 0:
            grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
            records.append(probe.measure(i))
            assert all(
                torch.equal(g, p.grad)
                for g, p in zip(grads, [p for p in model.parameters() if p.grad is not None])
            )
        opt.step()
    return model, opt, records


def test_training_with_and_without_the_probe_is_bit_identical():
    on, opt_on, records = _train(probe_every=2)
    rng_on = torch.get_rng_state()
    off, opt_off, _ = _train(probe_every=None)
    assert len(records) == 3
    for (name, a), (_, b) in zip(on.state_dict().items(), off.state_dict().items()):
        assert torch.equal(a, b), name  # parameters and BN running statistics
    for k, state in opt_on.state_dict()["state"].items():
        for key, value in state.items():
            assert torch.equal(value, opt_off.state_dict()["state"][k][key]), (k, key)
    assert torch.equal(rng_on, torch.get_rng_state())  # dropout drew the same numbers
    assert on.training and on.a.training and not on.mix[2].training
    assert not on.c.weight.requires_grad and on.c.bias.requires_grad


@pytest.mark.parametrize(
    ("mods", "message"),
    [
        (
            {"a": Modality("a", mute="zero")},
            r"modality 'a': mute must be one of \('zeros', 'mean'\)",
        ),
        ({"a": Modality(mute="mean")}, r"modality 'a': mute='mean' needs 'at'"),
        ({"a+b": "a"}, r"modality name 'a\+b'"),
        ({"a": 3.5}, r"modality 'a': 'at' must be a key"),
        ({}, "non-empty mapping"),
    ],
)
def test_bad_modality_specs_name_the_modality(mods, message):
    with pytest.raises(AblationError, match=message):
        AblationProbe(ThreeInputNet(), sq_loss, batches(), mods)


def test_errors_name_the_modality_and_the_batch():
    with pytest.raises(
        AblationError, match=r"modality 'mlo': batch has no 'mlo' \(it is a mapping"
    ):  # at construction, against the first batch of E
        AblationProbe(ThreeInputNet(), sq_loss, batches(), {"a": "a", "mlo": "mlo"})
    probe = AblationProbe(
        ThreeInputNet(), sq_loss, batches(), {"a": Modality("a", lambda x: x[:1])}
    )
    with pytest.raises(
        AblationError, match=r"modality 'a': its mute function must return .*\(4, 2\)"
    ):
        probe.measure(0)
    r = AblationProbe(ThreeInputNet(), sq_loss, batches(), {"a": "a", "b": "b"}).measure(0)
    with pytest.raises(
        AblationError, match=r"unknown modality 'cc'; this measurement has \['a', 'b'\]"
    ):
        r.contribution_of("cc")
    with pytest.raises(AblationError, match="one-shot iterator"):
        AblationProbe(ThreeInputNet(), sq_loss, iter(batches()), {"a": "a"})


def test_records_become_a_store_table(tmp_path):
    probe = AblationProbe(
        ThreeInputNet(), sq_loss, batches(), {"a": "a", "b": "b"}, metric=sign_accuracy
    )
    records = [probe.measure(0), probe.measure(5)]
    cols = ablation_columns(records)
    assert {len(v) for v in cols.values()} == {2} and all(v.ndim == 1 for v in cols.values())
    path = tmp_path / "r.zarr"
    with RunWriter(path, groups=["g"], group_members={"g": ["x"]}) as w:
        w.write_table("ablation", cols)
    frame = open_run(path).table("ablation")
    assert frame["step"].tolist() == [0, 5]
    assert frame["loss_contribution_b"].tolist() == [r.contribution["b"] for r in records]
    assert frame["loss_without_a+b"].tolist() == [r.loss[("a", "b")] for r in records]
    assert frame["metric_only_a"].tolist() == [r.unimodal_metric["a"] for r in records]
    assert list(ablation_frame(records).columns) == list(frame.columns)

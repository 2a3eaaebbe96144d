"""Split Learning Rates: one optimizer group per component, lr = eta * 10 ** alpha."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mammo_models import build_model, sample_split_lr_alphas, split_lr_param_groups


def _ids(params) -> set[int]:
    return {id(p) for p in params}


def test_each_group_holds_exactly_its_components_parameters_with_its_rate() -> None:
    model = build_model("joint")
    alphas = {"cc": -0.5, "mlo": 0.75, "shared": 0.0}
    groups = split_lr_param_groups(model, 1e-4, alphas)
    assert [g["name"] for g in groups] == ["cc", "mlo", "shared"]
    by_name = {g["name"]: g for g in groups}
    want = {
        "cc": [*model.cc_column.parameters(), *model.cc_fc.parameters()],
        "mlo": [*model.mlo_column.parameters(), *model.mlo_fc.parameters()],
        "shared": list(model.output_layer.parameters()),
    }
    for name, params in want.items():
        assert _ids(by_name[name]["params"]) == _ids(params)
        assert len(by_name[name]["params"]) == len(params)
        assert by_name[name]["lr"] == pytest.approx(1e-4 * 10 ** alphas[name])
    opt = torch.optim.Adam(groups)
    assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in groups]
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))


def test_rates_act_per_group_in_an_optimizer_step() -> None:
    torch.manual_seed(0)
    model = build_model("joint")
    groups = split_lr_param_groups(model, 1e-3, {"cc": 0.0, "mlo": 0.0, "shared": 0.0})
    groups[0]["lr"] = 0.0  # freeze cc through its rate only
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.SGD(groups)
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    opt.step()
    for n, p in model.named_parameters():
        moved = not torch.equal(p, before[n])
        assert moved == (not n.startswith(("cc_column.", "cc_fc."))), n


def test_alphas_must_match_the_models_groups() -> None:
    with pytest.raises(ValueError, match=r"missing \['shared'\]"):
        split_lr_param_groups(build_model("joint"), 1e-4, {"cc": 0.0, "mlo": 0.0})
    with pytest.raises(ValueError, match=r"missing \['column'\]"):
        split_lr_param_groups(build_model("shared"), 1e-4, {"cc": 0, "mlo": 0, "shared": 0})
    with pytest.raises(ValueError, match=r"unknown \['theta'\]"):
        split_lr_param_groups(
            build_model("joint"), 1e-4, {"cc": 0, "mlo": 0, "shared": 0, "theta": 0}
        )
    with pytest.raises(ValueError, match="base_lr"):
        split_lr_param_groups(build_model("joint"), -1.0, {"cc": 0, "mlo": 0, "shared": 0})
    with pytest.raises(ValueError, match=r"alphas\['mlo'\]"):
        split_lr_param_groups(
            build_model("joint"), 1e-4, {"cc": 0, "mlo": float("nan"), "shared": 0}
        )


def test_sampled_alphas_are_uniform_in_minus_one_one_and_seeded() -> None:
    a = sample_split_lr_alphas(np.random.default_rng(0))
    b = sample_split_lr_alphas(np.random.default_rng(0))
    assert a == b and list(a) == ["cc", "mlo", "shared"]
    assert len(set(a.values())) == 3
    rng = np.random.default_rng(1)
    draws = np.array([list(sample_split_lr_alphas(rng).values()) for _ in range(3000)])
    assert draws.min() >= -1.0 and draws.max() <= 1.0
    assert np.all(np.abs(draws.mean(axis=0)) < 0.05)
    assert np.all(np.abs(draws.var(axis=0) - 1 / 3) < 0.03)  # var of U[-1, 1]
    assert abs(np.corrcoef(draws[:, 0], draws[:, 1])[0, 1]) < 0.06
    assert sample_split_lr_alphas(7) == sample_split_lr_alphas(7)

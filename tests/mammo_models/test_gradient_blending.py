"""Gradient Blending: offline weight estimation and the multi-head model and loss."""

from __future__ import annotations

import math

import pytest
import torch

from mammo_models import (
    HeadMetrics,
    average_blend_weights,
    build_model,
    estimate_blend_weights,
    param_groups,
    per_sample_loss,
)


def _check_weights(w: dict[str, float]) -> None:
    assert all(math.isfinite(v) and v >= 0 for v in w.values())
    assert math.fsum(w.values()) == pytest.approx(1.0, abs=1e-12)


# --------------------------------------------------------------------------- estimator


def test_weights_follow_the_g_blend_formula() -> None:
    # loss: dG = heldout_start - heldout_end; dO = (heldout_end - train_end) - (heldout_start - train_start)
    metrics = {
        "joint": HeadMetrics(
            train_start=0.60, heldout_start=0.65, train_end=0.40, heldout_end=0.55
        ),
        "cc": (0.60, 0.62, 0.50, 0.54),
        "mlo": (0.60, 0.66, 0.30, 0.63),
    }
    w = estimate_blend_weights(metrics, metric="loss")
    raw = {"joint": 0.10 / 0.10**2, "cc": 0.08 / 0.02**2, "mlo": 0.03 / 0.27**2}
    total = sum(raw.values())
    for head in raw:
        assert w[head] == pytest.approx(raw[head] / total)
    _check_weights(w)
    assert list(w) == ["joint", "cc", "mlo"]


def test_improving_head_with_flat_gap_gets_largest_weight() -> None:
    metrics = {
        "joint": (0.50, 0.60, 0.30, 0.55),  # gain 0.05, gap widens by 0.15
        "cc": (0.50, 0.60, 0.40, 0.50),  # gain 0.10, gap unchanged
        "mlo": (0.50, 0.60, 0.20, 0.58),  # gain 0.02, gap widens by 0.28
    }
    w = estimate_blend_weights(metrics, metric="loss")
    _check_weights(w)
    assert max(w, key=w.get) == "cc"
    auc = {
        "joint": (0.70, 0.68, 0.90, 0.72),  # gain 0.04, gap moves by 0.16
        "cc": (0.70, 0.68, 0.78, 0.76),  # gain 0.08, gap flat
        "mlo": (0.70, 0.68, 0.95, 0.66),  # loses held-out AUC
    }
    w = estimate_blend_weights(auc, metric="auc")
    _check_weights(w)
    assert max(w, key=w.get) == "cc" and w["mlo"] == 0.0


def test_degenerate_inputs_give_finite_weights() -> None:
    flat = estimate_blend_weights({"joint": (1, 1, 1, 1), "cc": (1, 1, 1, 1), "mlo": (1, 1, 1, 1)})
    assert flat == pytest.approx({"joint": 1 / 3, "cc": 1 / 3, "mlo": 1 / 3})
    worse = estimate_blend_weights({"joint": (0.5, 0.5, 0.4, 0.6), "cc": (0.5, 0.5, 0.3, 0.7)})
    assert worse == pytest.approx({"joint": 0.5, "cc": 0.5})  # no head improves: uniform
    nan = float("nan")
    w = estimate_blend_weights(
        {"joint": (0.6, 0.6, 0.7, 0.7), "cc": (nan, 0.5, 0.8, nan), "mlo": (0.6, 0.6, 0.6, 0.65)},
        metric="auc",
    )
    _check_weights(w)
    assert w["cc"] == 0.0 and w["joint"] > 0 and w["mlo"] > 0
    all_nan = estimate_blend_weights({"joint": (nan,) * 4, "cc": (nan,) * 4}, metric="auc")
    assert all_nan == {"joint": 0.5, "cc": 0.5}
    w = estimate_blend_weights(
        {"joint": (0.5, 0.6, 0.4, 0.5), "cc": (0.5, 0.6, 0.5, 0.59)}, metric="loss", eps=1e-12
    )  # joint: zero gap change -> capped by eps, still finite
    _check_weights(w)
    assert w["joint"] > 0.99


def test_bad_estimator_arguments() -> None:
    with pytest.raises(ValueError, match="metric"):
        estimate_blend_weights({"cc": (1, 1, 1, 1)}, metric="accuracy")
    with pytest.raises(ValueError, match="head 'cc'.*four numbers"):
        estimate_blend_weights({"cc": (1, 1, 1)})
    with pytest.raises(ValueError, match="at least one head"):
        estimate_blend_weights({})


def test_average_over_a_window_of_epochs() -> None:
    history = [{"joint": 0.5, "cc": 0.5, "mlo": 0.0}, {"joint": 0.3, "cc": 0.1, "mlo": 0.6}]
    avg = average_blend_weights(history)
    assert avg == pytest.approx({"joint": 0.4, "cc": 0.3, "mlo": 0.3})
    with pytest.raises(ValueError, match="heads"):
        average_blend_weights([{"joint": 1.0}, {"cc": 1.0}])


# --------------------------------------------------------------------------- model and loss


def _batch(b: int = 3) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "cc": torch.randn(b, 1, 37, 30, generator=g),
        "mlo": torch.randn(b, 1, 39, 28, generator=g),
        "malignant": torch.tensor([1.0, 0.0, 1.0])[:b],
        "benign": torch.tensor([0.0, 1.0, 1.0])[:b],
    }


@pytest.mark.parametrize("variant", ["joint", "shared"])
def test_blended_model_outputs_heads_and_weighted_loss(variant: str) -> None:
    torch.manual_seed(0)
    weights = {"joint": 0.446, "cc": 0.498, "mlo": 0.056}
    model = build_model(variant, gradient_blending=True, blend_weights=weights).eval()
    batch = _batch()
    out = model(batch)
    assert set(out) == {"logits", "logits_cc", "logits_mlo", "blend_weights"}
    assert all(out[k].shape == (3, 2) for k in ("logits", "logits_cc", "logits_mlo"))
    assert out["blend_weights"].shape == (3, 3)
    with torch.no_grad():
        h_cc = model.cc_fc(model.encode("cc", batch["cc"]))
        assert torch.equal(out["logits_cc"], model.cc_head(h_cc))
    parts = {
        k: per_sample_loss({"logits": out[k]}, batch) for k in ("logits", "logits_cc", "logits_mlo")
    }
    want = 0.446 * parts["logits"] + 0.498 * parts["logits_cc"] + 0.056 * parts["logits_mlo"]
    torch.testing.assert_close(per_sample_loss(out, batch), want)
    model.set_blend_weights({"joint": 1.0, "cc": 0.0, "mlo": 0.0})
    torch.testing.assert_close(per_sample_loss(model(batch), batch), parts["logits"])
    assert torch.equal(model.state_dict()["blend_weights"], torch.tensor([1.0, 0.0, 0.0]))


def test_heads_belong_to_their_view_groups() -> None:
    model = build_model("joint", gradient_blending=True)
    prefixes = model.group_prefixes()
    assert prefixes["cc"] == ("cc_column.", "cc_fc.", "cc_head.")
    assert prefixes["mlo"] == ("mlo_column.", "mlo_fc.", "mlo_head.")
    groups = param_groups(model)
    assert {id(p) for p in model.cc_head.parameters()} <= {id(p) for p in groups.params("cc")}
    shared = build_model("shared", gradient_blending=True).group_prefixes()
    assert shared["cc"] == ("cc_fc.", "cc_head.") and shared["column"] == ("column.",)


def test_heads_read_h_before_modality_dropout() -> None:
    torch.manual_seed(1)
    model = build_model("joint", gradient_blending=True, modality_dropout=(1.0, 0.0), noise_std=0)
    batch = _batch()
    out = model.train()(batch)
    h_cc = model.cc_fc(model.cc_column(batch["cc"]))
    torch.testing.assert_close(out["logits_cc"], model.cc_head(h_cc))
    assert not torch.allclose(out["logits_cc"], model.cc_head.bias.expand(3, 2))


def test_blend_weight_validation() -> None:
    with pytest.raises(ValueError, match="exactly the keys"):
        build_model("joint", gradient_blending=True, blend_weights={"cc": 0.5, "mlo": 0.5})
    with pytest.raises(ValueError, match=r"blend_weights\['mlo'\]"):
        build_model("joint", gradient_blending=True, blend_weights={"joint": 1, "cc": 1, "mlo": -1})
    with pytest.raises(ValueError, match="gradient_blending is False"):
        build_model("joint", blend_weights={"joint": 1, "cc": 1, "mlo": 1})
    with pytest.raises(ValueError, match="without gradient_blending"):
        build_model("joint").set_blend_weights({"joint": 1, "cc": 0, "mlo": 0})
    default = build_model("joint", gradient_blending=True)
    torch.testing.assert_close(default.blend_weights, torch.full((3,), 1 / 3))

"""Model variants: outputs, parameter groups, sharing in Shared ResNet, averaging in Split ResNet."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mammo_models import (
    VARIANTS,
    ResNet22,
    build_model,
    mean_probability_logits,
    param_groups,
    per_sample_loss,
)

CC_HW, MLO_HW = (41, 34), (47, 29)  # different odd/even sizes per view, as crop windows differ


def make_batch(b: int = 3, channels: int = 1, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "cc": torch.randn(b, channels, *CC_HW, generator=g),
        "mlo": torch.randn(b, channels, *MLO_HW, generator=g),
        "malignant": torch.randint(0, 2, (b,), generator=g).float(),
        "benign": torch.randint(0, 2, (b,), generator=g).float(),
        "index": torch.arange(b),
    }


def _trainable(model: torch.nn.Module) -> list[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad]


def _assert_partition(model: torch.nn.Module) -> None:
    """Every trainable parameter matches the prefixes of exactly one group."""
    prefixes = model.group_prefixes()
    for name in _trainable(model):
        hits = [g for g, ps in prefixes.items() if any(name.startswith(p) for p in ps)]
        assert len(hits) == 1, f"{name} matched {hits}"
    for group, ps in prefixes.items():
        assert any(n.startswith(p) for n in _trainable(model) for p in ps), group


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("channels", [1, 3])
def test_output_shape_and_loss(variant: str, channels: int) -> None:
    torch.manual_seed(0)
    model = build_model(variant, input_channels=channels)
    batch = make_batch(3, channels)
    out = model(batch)
    assert set(out) == {"logits"}
    assert out["logits"].shape == (3, 2)
    loss = per_sample_loss(out, batch)
    assert loss.shape == (3,) and torch.isfinite(loss).all()


EXPECTED_GROUPS = {
    "uni_cc": {"cc": ("column.", "fc."), "shared": ("output_layer.",)},
    "uni_mlo": {"mlo": ("column.", "fc."), "shared": ("output_layer.",)},
    "joint": {
        "cc": ("cc_column.", "cc_fc."),
        "mlo": ("mlo_column.", "mlo_fc."),
        "shared": ("output_layer.",),
    },
    "shared": {
        "column": ("column.",),
        "cc": ("cc_fc.",),
        "mlo": ("mlo_fc.",),
        "shared": ("output_layer.",),
    },
    "split": {"cc": ("cc_model.",), "mlo": ("mlo_model.",)},
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_group_prefixes_partition_trainable_parameters(variant: str) -> None:
    model = build_model(variant)
    assert model.group_prefixes() == EXPECTED_GROUPS[variant]
    _assert_partition(model)
    groups = param_groups(model)
    assert groups.names == list(EXPECTED_GROUPS[variant])
    assert sum(groups.numel().values()) == sum(p.numel() for p in model.parameters())


def test_joint_groups_hold_the_papers_components() -> None:
    model = build_model("joint")
    groups = param_groups(model)
    ids = {g: {id(p) for p in groups.params(g)} for g in groups.names}
    for view in ("cc", "mlo"):
        column, fc = getattr(model, f"{view}_column"), getattr(model, f"{view}_fc")
        assert ids[view] == {id(p) for p in [*column.parameters(), *fc.parameters()]}
    assert ids["shared"] == {id(p) for p in model.output_layer.parameters()}
    assert model.cc_column is not model.mlo_column


def test_uni_view_model_reads_only_its_view() -> None:
    batch = make_batch()
    model = build_model("uni_mlo").eval()
    only_mlo = {k: v for k, v in batch.items() if k != "cc"}
    assert torch.equal(model(only_mlo)["logits"], model(batch)["logits"])
    with pytest.raises(KeyError, match="'cc'"):
        build_model("uni_cc")(only_mlo)


def test_views_with_different_batch_sizes_are_rejected() -> None:
    batch = make_batch(3)
    batch["mlo"] = batch["mlo"][:2]
    for variant in ("joint", "shared", "split"):
        with pytest.raises(ValueError, match="batch size"):
            build_model(variant)(batch)


def test_wrong_channel_count_names_the_key() -> None:
    with pytest.raises(ValueError, match=r"batch\['cc'\] must have shape \(B, 3, H, W\)"):
        build_model("joint", input_channels=3)(make_batch(2, channels=1))


def test_build_model_rejects_bad_options() -> None:
    with pytest.raises(ValueError, match="variant must be one of"):
        build_model("triple")
    with pytest.raises(ValueError, match="modality_dropout"):
        build_model("uni_cc", modality_dropout=(0.1, 0.2))
    with pytest.raises(ValueError, match="gradient_blending"):
        build_model("split", gradient_blending=True)
    with pytest.raises(ValueError, match="input_channels"):
        build_model("joint", input_channels=2)


def test_joint_logits_are_output_layer_of_summed_views() -> None:
    torch.manual_seed(1)
    model = build_model("joint").eval()
    batch = make_batch()
    with torch.no_grad():
        h_cc = F.relu(model.cc_fc.fc(model.cc_column(batch["cc"])))
        h_mlo = F.relu(model.mlo_fc.fc(model.mlo_column(batch["mlo"])))
        want = model.output_layer(h_cc + h_mlo)
        assert torch.equal(model(batch)["logits"], want)


# --------------------------------------------------------------------------- Shared ResNet


def test_shared_model_has_one_column_used_by_both_views() -> None:
    model = build_model("shared")
    assert sum(isinstance(m, ResNet22) for m in model.modules()) == 1
    calls = []
    model.column.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[-2:]))
    model(make_batch())
    assert calls == [torch.Size(CC_HW), torch.Size(MLO_HW)]


def test_shared_column_gradient_accumulates_both_views() -> None:
    torch.manual_seed(2)
    model = build_model("shared").eval()  # eval: BN and noise independent of the call
    batch = make_batch()
    params = list(model.column.parameters())

    def column_grad(detach_view: str | None) -> list[torch.Tensor]:
        encode = model.encode

        def patched(view: str, x: torch.Tensor) -> torch.Tensor:
            feats = encode(view, x)
            return feats.detach() if view == detach_view else feats

        model.encode = patched
        try:
            loss = per_sample_loss(model(batch), batch).sum()
            return torch.autograd.grad(loss, params)
        finally:
            del model.encode

    both, only_cc, only_mlo = column_grad(None), column_grad("mlo"), column_grad("cc")
    for g, a, b in zip(both, only_cc, only_mlo, strict=True):
        torch.testing.assert_close(g, a + b, rtol=1e-5, atol=1e-7)
    assert any(a.abs().sum() > 0 for a in only_cc)
    assert any(b.abs().sum() > 0 for b in only_mlo)
    assert not all(torch.allclose(g, a) for g, a in zip(both, only_cc, strict=True))


# --------------------------------------------------------------------------- Split ResNet


def test_split_loss_is_bce_of_averaged_probabilities() -> None:
    torch.manual_seed(3)
    model = build_model("split").eval()
    batch = make_batch(4)
    out = model(batch)
    p_cc = torch.sigmoid(model.cc_model(batch)["logits"])
    p_mlo = torch.sigmoid(model.mlo_model(batch)["logits"])
    p = (p_cc + p_mlo) / 2  # (B, 2)
    torch.testing.assert_close(torch.sigmoid(out["logits"]), p)
    y = torch.stack([batch["malignant"], batch["benign"]], dim=1)
    want = F.binary_cross_entropy(p, y, reduction="none").sum(dim=1)
    loss = per_sample_loss(out, batch)
    torch.testing.assert_close(loss, want)
    loss.sum().backward()
    for sub in (model.cc_model, model.mlo_model):
        assert sub.column.first_conv.weight.grad.abs().sum() > 0
        assert sub.output_layer.weight.grad.abs().sum() > 0


def test_mean_probability_logits_is_stable_for_extreme_inputs() -> None:
    a = torch.tensor([[80.0, -80.0], [-200.0, 30.0], [0.0, 5.0]], dtype=torch.float64)
    b = torch.tensor([[-90.0, -75.0], [-210.0, 30.0], [0.0, -5.0]], dtype=torch.float64)
    got = mean_probability_logits(a, b)
    assert torch.isfinite(got).all()
    p = (torch.sigmoid(a) + torch.sigmoid(b)) / 2
    # mean of 1 and ~0 is 1/2 -> logit 0; where p is representable, compare directly
    torch.testing.assert_close(
        got[0, 0], torch.tensor(0.0, dtype=torch.float64), atol=1e-12, rtol=0
    )
    torch.testing.assert_close(got[2], torch.logit(p[2]))
    # both very negative: logit(p) ~ log(mean(exp(a), exp(b)))
    want = torch.logaddexp(a[1, 0], b[1, 0]) - torch.log(torch.tensor(2.0, dtype=torch.float64))
    torch.testing.assert_close(got[1, 0], want)
    torch.testing.assert_close(got[1, 1], torch.tensor(30.0, dtype=torch.float64))

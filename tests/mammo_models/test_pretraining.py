"""Pretraining: columns + FCs from uni-view models, frozen (eval-mode BN); only the output layer trains."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mammo_models import (
    CheckpointError,
    apply_pretraining,
    build_model,
    param_groups,
    per_sample_loss,
)


def _batch(seed: int, b: int = 4) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "cc": torch.randn(b, 1, 37, 30, generator=g),
        "mlo": torch.randn(b, 1, 39, 28, generator=g),
        "malignant": torch.randint(0, 2, (b,), generator=g).float(),
        "benign": torch.randint(0, 2, (b,), generator=g).float(),
    }


def _trained_uni(view: str, seed: int) -> torch.nn.Module:
    """A uni-view model with non-default weights and BN statistics (a few train-mode steps)."""
    torch.manual_seed(seed)
    model = build_model(f"uni_{view}").train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for step in range(2):
        batch = _batch(seed + step)
        opt.zero_grad()
        per_sample_loss(model(batch), batch).mean().backward()
        opt.step()
    return model


@pytest.fixture(scope="module")
def uni_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("uni")
    out = {}
    for view, seed in (("cc", 10), ("mlo", 20)):
        out[view] = root / f"uni_{view}.pt"
        state = _trained_uni(view, seed).state_dict()
        # the cc file is a training checkpoint with the state under "model", the mlo one is bare
        torch.save({"model": state, "epoch": 3} if view == "cc" else state, out[view])
    return out


def test_columns_and_fcs_come_from_uni_models_and_are_frozen(uni_files: dict[str, Path]) -> None:
    model = build_model("joint", pretraining=(uni_files["cc"], uni_files["mlo"]))
    for view in ("cc", "mlo"):
        loaded = torch.load(uni_files[view], weights_only=True)
        uni = loaded.get("model", loaded)
        for part, prefix in (("column", "column."), ("fc", "fc.")):
            mine = getattr(model, f"{view}_{part}").state_dict()
            for k, v in mine.items():
                assert torch.equal(v, uni[prefix + k]), f"{view}_{part}.{k}"
            assert not any(p.requires_grad for p in getattr(model, f"{view}_{part}").parameters())
    assert model.frozen == ("cc_column", "mlo_column", "cc_fc", "mlo_fc")
    assert model.group_prefixes() == {"shared": ("output_layer.",)}
    assert param_groups(model).names == ["shared"]


def test_training_changes_only_the_output_layer(uni_files: dict[str, Path]) -> None:
    torch.manual_seed(0)
    model = build_model("joint", pretraining=(uni_files["cc"], uni_files["mlo"]))
    model.train()
    assert not model.cc_column.training and not model.mlo_fc.training
    assert model.output_layer.training
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for step in range(3):
        batch = _batch(100 + step)
        opt.zero_grad()
        per_sample_loss(model(batch), batch).mean().backward()
        opt.step()
    after = model.state_dict()
    for k in before:
        changed = not torch.equal(before[k], after[k])
        assert changed == k.startswith("output_layer."), k  # BN statistics included
    assert all(p.grad is None for n, p in model.named_parameters() if not n.startswith("output"))


def test_frozen_columns_are_a_fixed_function(uni_files: dict[str, Path]) -> None:
    model = build_model("joint", pretraining=(uni_files["cc"], uni_files["mlo"])).train()
    batch = _batch(7)
    torch.manual_seed(1)
    a = model.cc_fc(model.cc_column(batch["cc"]))
    torch.manual_seed(2)
    b = model.cc_fc(model.cc_column(batch["cc"][:2]))
    # no input noise, no batch statistics: equal up to batch-size-dependent kernel rounding
    torch.testing.assert_close(a[:2], b, rtol=1e-5, atol=1e-6)


def test_state_dict_mappings_are_accepted_and_blending_heads_stay_trainable(
    uni_files: dict[str, Path],
) -> None:
    cc = torch.load(uni_files["cc"], weights_only=True)  # {"model": ..., "epoch": ...}
    mlo = torch.load(uni_files["mlo"], weights_only=True)
    model = apply_pretraining(build_model("joint", gradient_blending=True), cc, mlo)
    assert model.group_prefixes() == {
        "cc": ("cc_head.",),
        "mlo": ("mlo_head.",),
        "shared": ("output_layer.",),
    }
    assert param_groups(model).names == ["cc", "mlo", "shared"]


def test_bad_uni_checkpoint_is_listed_and_changes_nothing(
    uni_files: dict[str, Path], tmp_path: Path
) -> None:
    three = build_model("uni_mlo", input_channels=3).state_dict()
    del three["fc.fc.bias"]
    bad = tmp_path / "three_channel_mlo.pt"
    torch.save(three, bad)
    model = build_model("joint")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError) as info:
        apply_pretraining(model, uni_files["cc"], bad)
    msg = str(info.value)
    assert "three_channel_mlo.pt" in msg
    assert "first_conv.weight: expected shape (16, 1, 7, 7), received (16, 3, 7, 7)" in msg
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.requires_grad for p in model.parameters())

    joint_file = tmp_path / "joint.pt"
    torch.save(build_model("joint").state_dict(), joint_file)
    with pytest.raises(CheckpointError, match="not a uni-view model state dict"):
        apply_pretraining(build_model("joint"), joint_file, uni_files["mlo"])


def test_pretraining_needs_the_joint_variant(uni_files: dict[str, Path]) -> None:
    for variant in ("shared", "split", "uni_cc"):
        with pytest.raises(ValueError, match="joint"):
            build_model(variant, pretraining=(uni_files["cc"], uni_files["mlo"]))

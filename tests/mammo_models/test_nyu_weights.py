"""Loading NYU-layout checkpoints into a ResNet-22 column."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mammo_models import CheckpointError, ResNet22, load_nyu_column, resnet22


def _randomised_column(channels: int, seed: int) -> ResNet22:
    torch.manual_seed(seed)
    column = resnet22(channels)
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for name, t in column.state_dict().items():
            if name.endswith("num_batches_tracked"):
                t.fill_(1234)
            elif name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif "bn" in name:  # BN weight, bias, running_mean
                t.copy_(torch.randn(t.shape, generator=g) * 0.1 + (t == 1).float())
    return column.eval()


def _write_nyu_file(
    path: Path, cc: ResNet22, mlo: ResNet22, *, drop_counters: bool = True, edit=None
) -> Path:
    """A four-view checkpoint in the NYU layout, optionally without num_batches_tracked."""
    model = {"fc1_cc.weight": torch.randn(512, 512), "fc1_cc.bias": torch.randn(512)}
    for view, column in (("cc", cc), ("mlo", mlo)):
        for k, v in column.state_dict().items():
            if drop_counters and k.endswith("num_batches_tracked"):
                continue
            model[f"four_view_resnet.{view}.{k}"] = v.clone()
    if edit is not None:
        edit(model)
    torch.save({"model": model}, path)
    return path


def test_loaded_column_reproduces_outputs_bit_for_bit(tmp_path: Path) -> None:
    cc, mlo = _randomised_column(1, 0), _randomised_column(1, 1)
    path = _write_nyu_file(tmp_path / "nyu.p", cc, mlo)
    x = torch.randn(2, 1, 70, 53)
    for view, source in (("cc", cc), ("mlo", mlo)):
        torch.manual_seed(7)
        target = resnet22(1).eval()
        assert not torch.equal(target(x), source(x))
        load_nyu_column(target, path, view=view)
        with torch.no_grad():
            assert torch.equal(target(x), source(x))
            assert torch.equal(target.forward_feature_map(x), source.forward_feature_map(x))


def test_missing_counters_are_filled_with_zero_and_present_ones_kept(tmp_path: Path) -> None:
    cc = _randomised_column(3, 2)
    target = resnet22(3)
    load_nyu_column(target, _write_nyu_file(tmp_path / "old.p", cc, cc), view="mlo")
    counters = [v for k, v in target.state_dict().items() if k.endswith("num_batches_tracked")]
    assert counters and all(int(c) == 0 for c in counters)
    load_nyu_column(target, _write_nyu_file(tmp_path / "new.p", cc, cc, drop_counters=False))
    counters = [v for k, v in target.state_dict().items() if k.endswith("num_batches_tracked")]
    assert all(int(c) == 1234 for c in counters)


def test_bad_checkpoint_lists_every_bad_key_with_shapes_and_file(tmp_path: Path) -> None:
    cc = _randomised_column(1, 3)

    def edit(model: dict) -> None:
        del model["four_view_resnet.cc.layer_list.2.0.downsample.0.weight"]
        del model["four_view_resnet.cc.final_bn.bias"]
        model["four_view_resnet.cc.layer_list.5.0.conv1.weight"] = torch.zeros(3, 3)
        model["four_view_resnet.cc.first_conv.weight"] = torch.zeros(16, 3, 7, 7)

    path = _write_nyu_file(tmp_path / "bad.p", cc, cc, edit=edit)
    target = resnet22(1)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(CheckpointError) as info:
        load_nyu_column(target, path, view="cc")
    msg = str(info.value)
    assert str(path) in msg
    assert "2 missing keys" in msg and "1 unexpected keys" in msg and "1 shape mismatches" in msg
    assert "layer_list.2.0.downsample.0.weight: expected shape (64, 32, 1, 1)" in msg
    assert "final_bn.bias: expected shape (256,)" in msg
    assert "layer_list.5.0.conv1.weight: received shape (3, 3)" in msg
    assert "first_conv.weight: expected shape (16, 1, 7, 7), received (16, 3, 7, 7)" in msg
    after = target.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "a failed load changed weights"


def test_wrong_layouts_are_clear_errors(tmp_path: Path) -> None:
    target = resnet22(1)
    flat = tmp_path / "flat.p"
    torch.save(target.state_dict(), flat)
    with pytest.raises(CheckpointError, match="under 'model'"):
        load_nyu_column(target, flat)
    other = tmp_path / "other.p"
    torch.save({"model": {"encoder.conv.weight": torch.zeros(1)}}, other)
    with pytest.raises(CheckpointError, match=r"four_view_resnet\.cc\..*'encoder\.conv\.'"):
        load_nyu_column(target, other)
    with pytest.raises(ValueError, match="view must be one of"):
        load_nyu_column(target, other, view="lcc")
    with pytest.raises(FileNotFoundError, match="nope.p"):
        load_nyu_column(target, tmp_path / "nope.p")
    garbage = tmp_path / "garbage.p"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="garbage.p"):
        load_nyu_column(target, garbage)

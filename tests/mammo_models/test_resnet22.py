"""ResNet-22 column: parameter counts, NYU state-dict names, shape arithmetic, reference forward."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mammo_models import ResNet22, feature_map_size, resnet22

# --------------------------------------------------------------------------- expected structure


def _expected_state_names(input_channels: int) -> dict[str, tuple[int, ...]]:
    """State-dict names and shapes of the NYU column, written out from the architecture."""
    widths = [16, 32, 64, 128, 256]
    names: dict[str, tuple[int, ...]] = {"first_conv.weight": (16, input_channels, 7, 7)}

    def bn(prefix: str, ch: int) -> None:
        for suffix in ("weight", "bias", "running_mean", "running_var"):
            names[f"{prefix}.{suffix}"] = (ch,)

    in_ch = 16
    for i, w in enumerate(widths):
        for j in range(2):
            p = f"layer_list.{i}.{j}"
            cin = in_ch if j == 0 else w
            bn(f"{p}.bn1", cin)
            names[f"{p}.conv1.weight"] = (w, cin, 3, 3)
            bn(f"{p}.bn2", w)
            names[f"{p}.conv2.weight"] = (w, w, 3, 3)
            if j == 0:
                names[f"{p}.downsample.0.weight"] = (w, cin, 1, 1)
        in_ch = w
    bn("final_bn", 256)
    return names


@pytest.mark.parametrize(("channels", "count"), [(1, 2_799_536), (3, 2_801_104)])
def test_trainable_parameter_count(channels: int, count: int) -> None:
    column = resnet22(channels)
    assert sum(p.numel() for p in column.parameters() if p.requires_grad) == count


@pytest.mark.parametrize("channels", [1, 3])
def test_state_dict_names_and_shapes_match_nyu(channels: int) -> None:
    state = {
        k: tuple(v.shape)
        for k, v in resnet22(channels).state_dict().items()
        if not k.endswith("num_batches_tracked")
    }
    assert state == _expected_state_names(channels)


def test_first_block_of_every_layer_downsamples_with_layer_stride() -> None:
    column = resnet22()
    for i, layer in enumerate(column.layer_list):
        ds = layer[0].downsample[0]
        assert ds.stride == ((1, 1) if i == 0 else (2, 2))
        assert ds.bias is None
        assert layer[1].downsample is None


def test_rejects_unsupported_channels() -> None:
    with pytest.raises(ValueError, match="input_channels"):
        resnet22(2)
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        resnet22(1)(torch.zeros(1, 3, 32, 32))


# --------------------------------------------------------------------------- shape arithmetic


def _side(n: int) -> int:
    n = (n - 7) // 2 + 1  # 7x7 stride 2 no padding
    n = (n - 3) // 2 + 1  # 3x3 max pool stride 2 no padding
    for _ in range(4):  # four stride-2 layers with padded 3x3 convs: ceil(n / 2)
        n = math.ceil(n / 2)
    return n


@pytest.mark.parametrize(
    ("h", "w"), [(11, 11), (12, 13), (14, 15), (31, 30), (47, 64), (64, 47), (77, 50)]
)
def test_feature_map_shape_matches_formula(h: int, w: int) -> None:
    column = resnet22().eval()
    with torch.no_grad():
        fmap = column.forward_feature_map(torch.randn(2, 1, h, w))
        feats = column.forward_features(torch.randn(2, 1, h, w))
    assert fmap.shape == (2, 256, _side(h), _side(w))
    assert feature_map_size(h, w) == (_side(h), _side(w))
    assert feats.shape == (2, 256)


def test_too_small_input_is_rejected_by_formula() -> None:
    with pytest.raises(ValueError, match="too small"):
        feature_map_size(10, 100)


def test_full_size_cc_forward() -> None:
    column = resnet22().eval()
    with torch.no_grad():
        fmap = column.forward_feature_map(torch.randn(1, 1, 2677, 1942))
    assert fmap.shape == (1, 256, _side(2677), _side(1942)) == (1, 256, 42, 31)
    assert feature_map_size(2974, 1748) == (_side(2974), _side(1748))


# --------------------------------------------------------------------------- reference forward


def _reference_column(state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Eval-mode ResNet-22 written with functional ops straight from the block definition."""

    def bn(prefix: str, t: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(
            t,
            state[f"{prefix}.running_mean"],
            state[f"{prefix}.running_var"],
            state[f"{prefix}.weight"],
            state[f"{prefix}.bias"],
            training=False,
            eps=1e-5,
        )

    h = F.conv2d(x, state["first_conv.weight"], stride=2)
    h = F.max_pool2d(h, 3, 2)
    for i, stride in enumerate([1, 2, 2, 2, 2]):
        for j in range(2):
            p = f"layer_list.{i}.{j}"
            s = stride if j == 0 else 1
            a = F.relu(bn(f"{p}.bn1", h))
            shortcut = F.conv2d(a, state[f"{p}.downsample.0.weight"], stride=s) if j == 0 else h
            out = F.conv2d(a, state[f"{p}.conv1.weight"], stride=s, padding=1)
            out = F.conv2d(F.relu(bn(f"{p}.bn2", out)), state[f"{p}.conv2.weight"], padding=1)
            h = out + shortcut
    return F.relu(bn("final_bn", h)).mean(dim=(2, 3))


def _randomise_bn(column: ResNet22, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for name, buf in column.named_buffers():
        if name.endswith("running_mean"):
            buf.copy_(torch.randn(buf.shape, generator=g) * 0.1)
        elif name.endswith("running_var"):
            buf.copy_(torch.rand(buf.shape, generator=g) + 0.5)
    with torch.no_grad():
        for name, p in column.named_parameters():
            if "bn" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2 + (1.0 if "weight" in name else 0))


@pytest.mark.parametrize("channels", [1, 3])
def test_forward_matches_functional_reference(channels: int) -> None:
    torch.manual_seed(0)
    column = resnet22(channels).eval()
    _randomise_bn(column, 1)
    x = torch.randn(2, channels, 61, 46)
    with torch.no_grad():
        got = column(x)
        want = _reference_column(column.state_dict(), x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_input_noise_only_in_training() -> None:
    torch.manual_seed(0)
    column = resnet22()
    x = torch.zeros(1, 1, 300, 300)
    noisy = column.input_noise(x)
    assert 0.0095 < noisy.std().item() < 0.0105
    column.eval()
    assert torch.equal(column.input_noise(x), x)
    with torch.no_grad():
        assert torch.equal(column(x[:, :, :40, :40]), column(x[:, :, :40, :40]))
    assert torch.equal(resnet22(noise_std=0.0).input_noise.train()(x), x)

"""The ResNet-22 column of Wu et al. (2019), one per mammography view.

A pre-activation ResNet with basic blocks, built for full-field mammograms (CC 2677x1942, MLO
2974x1748 pixels): a 7x7 stride-2 convolution and a 3x3 stride-2 max pool without padding, then five
layers of two blocks (widths 16, 32, 64, 128, 256; strides 1, 2, 2, 2, 2), a final BatchNorm + ReLU
and global average pooling to 256 features.

The layout and the state-dict names follow the public NYU code (nyukat/breast_cancer_classifier,
``ViewResNetV2``) so that its published column weights load into :class:`ResNet22` unchanged
(see :mod:`mammo_models.nyu_weights`). Two details differ from torchvision's ResNet and are easy to
get wrong:

* the FIRST block of EVERY layer, layer 0 included, has a 1x1 downsample convolution (no bias, no
  BatchNorm) even where the stride is 1 and the width is unchanged;
* the downsample is applied to the pre-activated tensor ``relu(bn1(x))``, not to ``x``.

Trainable parameters of one column: 2,799,536 with 1 input channel, 2,801,104 with 3.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

WIDTHS: tuple[int, ...] = (16, 32, 64, 128, 256)
STRIDES: tuple[int, ...] = (1, 2, 2, 2, 2)
BLOCKS_PER_LAYER: int = 2
FEATURE_DIM: int = WIDTHS[-1]
DEFAULT_NOISE_STD: float = 0.01


def _conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution, padding 1, no bias (BatchNorm follows in the next block)."""
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False)


class GaussianNoise(nn.Module):
    """Additive N(0, std^2) input noise in training mode; identity in eval mode.

    Draws from the global torch RNG of the input's device, so seeded runs repeat. Has no
    parameters or buffers, hence no state-dict entries.
    """

    def __init__(self, std: float = DEFAULT_NOISE_STD) -> None:
        super().__init__()
        if not std >= 0.0:
            raise ValueError(f"noise std must be >= 0, got {std!r}")
        self.std = float(std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.std == 0.0:
            return x
        return x + torch.randn_like(x) * self.std

    def extra_repr(self) -> str:
        return f"std={self.std}"


class PreActBasicBlock(nn.Module):
    """Pre-activation basic block (He et al. 2016, "v2").

    ``a = relu(bn1(x))``; ``shortcut = downsample(a)`` when the block has one, else ``x``;
    ``out = conv2(relu(bn2(conv1(a)))) + shortcut``. No activation after the sum: the next block
    (or the column's final BN + ReLU) applies it.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int, downsample: bool) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv1 = _conv3x3(in_ch, out_ch, stride)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.conv2 = _conv3x3(out_ch, out_ch, 1)
        # nn.Sequential only so the weight is named `downsample.0.weight`, as in NYU checkpoints.
        self.downsample: nn.Sequential | None = (
            nn.Sequential(nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False))
            if downsample
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.relu(self.bn1(x))
        shortcut = self.downsample(a) if self.downsample is not None else x
        out = self.conv2(F.relu(self.bn2(self.conv1(a))))
        return out + shortcut


def _make_layer(in_ch: int, out_ch: int, stride: int, blocks: int) -> nn.Sequential:
    """One layer: a first block with stride and downsample, then ``blocks - 1`` plain blocks."""
    layer = [PreActBasicBlock(in_ch, out_ch, stride, downsample=True)]
    layer += [PreActBasicBlock(out_ch, out_ch, 1, downsample=False) for _ in range(blocks - 1)]
    return nn.Sequential(*layer)


def _conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def feature_map_size(height: int, width: int) -> tuple[int, int]:
    """Spatial size (h, w) of the column's last feature map for an input of ``height x width``.

    Raises:
        ValueError: the input is too small to survive the unpadded 7x7 conv and 3x3 pool.
    """
    sizes = []
    for s in (height, width):
        s = _conv_out(s, 7, 2, 0)  # first conv
        s = _conv_out(s, 3, 2, 0) if s >= 3 else 0  # first pool
        if s < 1:
            raise ValueError(
                f"input of {height}x{width} pixels is too small for ResNet-22: each side needs "
                "at least 11 pixels (7x7/2 conv then 3x3/2 pool, both unpadded)"
            )
        for stride in STRIDES:
            s = _conv_out(s, 3, stride, 1)
        sizes.append(s)
    return sizes[0], sizes[1]


class ResNet22(nn.Module):
    """One ResNet-22 view column: image (B, C, H, W) -> features (B, 256).

    Args:
        input_channels: 1 (image only) or 3 (image, benign heatmap, malignant heatmap).
        noise_std: std of the training-only Gaussian input noise (0.01 in the NYU code).
    """

    def __init__(self, input_channels: int = 1, noise_std: float = DEFAULT_NOISE_STD) -> None:
        super().__init__()
        if input_channels not in (1, 3):
            raise ValueError(
                f"input_channels must be 1 (image) or 3 (image + benign + malignant heatmaps), "
                f"got {input_channels!r}"
            )
        self.input_channels = input_channels
        self.input_noise = GaussianNoise(noise_std)
        # `first_conv`, `first_pool`, `layer_list`, `final_bn`: NYU names, kept for weight loading.
        self.first_conv = nn.Conv2d(
            input_channels, WIDTHS[0], kernel_size=7, stride=2, padding=0, bias=False
        )
        self.first_pool = nn.MaxPool2d(kernel_size=3, stride=2, padding=0)
        layers = []
        in_ch = WIDTHS[0]
        for width, stride in zip(WIDTHS, STRIDES, strict=True):
            layers.append(_make_layer(in_ch, width, stride, BLOCKS_PER_LAYER))
            in_ch = width
        self.layer_list = nn.ModuleList(layers)
        self.final_bn = nn.BatchNorm2d(FEATURE_DIM)

    def forward_feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) image -> (B, 256, h, w) map after the final BN + ReLU.

        ``(h, w) == feature_map_size(H, W)``; noise is added first in training mode.
        """
        if x.dim() != 4 or x.shape[1] != self.input_channels:
            raise ValueError(
                f"ResNet-22 column expects a (B, {self.input_channels}, H, W) tensor, "
                f"got shape {tuple(x.shape)}"
            )
        h = self.first_conv(self.input_noise(x))
        h = self.first_pool(h)
        for layer in self.layer_list:
            h = layer(h)
        return F.relu(self.final_bn(h))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) image -> (B, 256) globally average-pooled features."""
        return self.forward_feature_map(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`forward_features`: (B, C, H, W) -> (B, 256)."""
        return self.forward_features(x)


def resnet22(input_channels: int = 1, noise_std: float = DEFAULT_NOISE_STD) -> ResNet22:
    """Build one ResNet-22 column with PyTorch's default initialisation (as the NYU code).

    Args:
        input_channels: 1 (image only) or 3 (image + benign + malignant heatmaps).
        noise_std: training-only Gaussian input noise std; 0 disables it.
    """
    return ResNet22(input_channels=input_channels, noise_std=noise_std)

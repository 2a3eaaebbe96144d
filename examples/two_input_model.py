"""A small two-input model ("audio" and "image" branches fused by sum) and synthetic data.

Used by the README quickstart, the examples and the recording benchmark. The image branch sees a
cue that is easy to learn, the audio branch a weaker one, so the two groups learn at different
speeds and the recorded norms and LCA differ visibly between them.
"""

from __future__ import annotations

import torch
from torch import nn


class AudioImageNet(nn.Module):
    """Audio branch (1-D conv) + image branch (2-D conv), each to 32 features, fused by sum."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.audio = nn.Sequential(
            nn.Conv1d(1, 16, 9, stride=4),
            nn.BatchNorm1d(16),
            nn.ReLU(),
            nn.AdaptiveAvgPool1d(1),
            nn.Flatten(),
            nn.Linear(16, width),
        )
        self.image = nn.Sequential(
            nn.Conv2d(1, 16, 5, stride=2),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(16, width),
        )
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(width, 1))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        h_audio = self.audio(batch["audio"])  # (B, width)
        h_image = self.image(batch["image"])  # (B, width)
        assert h_audio.shape == h_image.shape, (h_audio.shape, h_image.shape)
        return self.head(h_audio + h_image).squeeze(-1)  # (B,) logits


def per_sample_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Binary cross-entropy per sample (reduction='none'): what the Tracker's loss_fn returns."""
    return nn.functional.binary_cross_entropy_with_logits(
        model(batch), batch["label"], reduction="none"
    )


def make_batches(n: int, batch_size: int, seed: int) -> list[dict[str, torch.Tensor]]:
    """Synthetic samples: label-dependent bump in the image, a fainter tone in the audio."""
    g = torch.Generator().manual_seed(seed)
    label = torch.randint(0, 2, (n,), generator=g).float()
    audio = torch.randn(n, 1, 256, generator=g)
    audio += 0.3 * label[:, None, None] * torch.sin(torch.linspace(0, 40, 256))
    image = torch.randn(n, 1, 32, 32, generator=g)
    image[:, :, 12:20, 12:20] += 1.0 * label[:, None, None, None]
    return [
        {
            "audio": audio[i : i + batch_size],
            "image": image[i : i + batch_size],
            "label": label[i : i + batch_size],
        }
        for i in range(0, n, batch_size)
    ]

"""Modality Dropout (Neverova et al. 2015), as adapted in Wu et al. (2020), section 6.2.

Each view's 512-d representation ``h_view`` is zeroed, per sample, with its own rate before the
fusion ``h_cc + h_mlo``. Rates are hyper-parameters sampled in [0, 1) by the sweep.

Our rule (a choice, not from the paper): the two views of one sample are never both dropped, since
the output layer would then see only zeros. Per sample, draw ``drop_cc ~ Bernoulli(p_cc)`` and
``drop_mlo ~ Bernoulli(p_mlo)`` independently; if both are drawn, a fair coin decides which view
is kept. The effective drop probabilities are therefore

    P(drop cc)  = p_cc  - p_cc * p_mlo / 2
    P(drop mlo) = p_mlo - p_cc * p_mlo / 2.

Scaling ``"none"`` (default, the paper's description) leaves kept views as they are. ``"inverted"``
divides a kept view by its effective keep probability ``1 - P(drop view)``, so the expectation of
``h_view`` over the masks equals its eval-mode value.

Active only in training mode; eval mode (and the LCA evaluation passes) is the identity. Random
numbers come from the global torch RNG of the tensors' device, three uniform draws per sample per
forward call, so seeded runs repeat.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

SCALINGS: tuple[str, ...] = ("none", "inverted")


@dataclass(frozen=True)
class ModalityDropoutConfig:
    """Per-view drop rates and the scaling rule.

    Attributes:
        p_cc: probability of dropping the CC representation of a sample, in [0, 1].
        p_mlo: probability of dropping the MLO representation of a sample, in [0, 1].
        scaling: ``"none"`` or ``"inverted"`` (see the module docstring).
    """

    p_cc: float = 0.0
    p_mlo: float = 0.0
    scaling: str = "none"

    def __post_init__(self) -> None:
        for name in ("p_cc", "p_mlo"):
            p = getattr(self, name)
            if not isinstance(p, (int, float)) or not 0.0 <= float(p) <= 1.0:
                raise ValueError(f"modality dropout {name} must be a number in [0, 1], got {p!r}")
        if self.scaling not in SCALINGS:
            raise ValueError(
                f"modality dropout scaling must be one of {SCALINGS}, got {self.scaling!r}"
            )

    def effective_drop_rates(self) -> tuple[float, float]:
        """(P(drop cc), P(drop mlo)) after the never-both rule."""
        both = self.p_cc * self.p_mlo
        return self.p_cc - both / 2, self.p_mlo - both / 2


def draw_keep_masks(
    batch_size: int, p_cc: float, p_mlo: float, device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean keep masks (B,), (B,) for CC and MLO; never both False for one sample.

    Uses the global torch RNG of ``device``: one (3, B) uniform draw (drop cc, drop mlo, coin).
    """
    u = torch.rand(3, batch_size, device=device)  # (3, B)
    drop_cc = u[0] < p_cc
    drop_mlo = u[1] < p_mlo
    both = drop_cc & drop_mlo
    keep_cc_if_both = u[2] < 0.5
    drop_cc = drop_cc & ~(both & keep_cc_if_both)
    drop_mlo = drop_mlo & ~(both & ~keep_cc_if_both)
    return ~drop_cc, ~drop_mlo


class ModalityDropout(nn.Module):
    """Drop whole view representations per sample: (h_cc, h_mlo) each (B, D) -> same shapes."""

    def __init__(self, config: ModalityDropoutConfig) -> None:
        super().__init__()
        self.config = config

    def forward(self, h_cc: torch.Tensor, h_mlo: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if h_cc.shape != h_mlo.shape:
            raise ValueError(
                f"modality dropout needs h_cc and h_mlo of one shape (B, D), got "
                f"{tuple(h_cc.shape)} and {tuple(h_mlo.shape)}"
            )
        cfg = self.config
        if not self.training or (cfg.p_cc == 0.0 and cfg.p_mlo == 0.0):
            return h_cc, h_mlo
        B = h_cc.shape[0]
        keep_cc, keep_mlo = draw_keep_masks(B, cfg.p_cc, cfg.p_mlo, device=h_cc.device)
        scale_cc, scale_mlo = 1.0, 1.0
        if cfg.scaling == "inverted":
            drop_cc, drop_mlo = cfg.effective_drop_rates()
            # A view with keep probability 0 is always zeroed; its scale is never used.
            scale_cc = 1.0 / (1.0 - drop_cc) if drop_cc < 1.0 else 0.0
            scale_mlo = 1.0 / (1.0 - drop_mlo) if drop_mlo < 1.0 else 0.0
        m_cc = keep_cc.to(h_cc.dtype).unsqueeze(1) * scale_cc  # (B, 1)
        m_mlo = keep_mlo.to(h_mlo.dtype).unsqueeze(1) * scale_mlo  # (B, 1)
        return h_cc * m_cc, h_mlo * m_mlo

    def extra_repr(self) -> str:
        c = self.config
        return f"p_cc={c.p_cc}, p_mlo={c.p_mlo}, scaling={c.scaling!r}"

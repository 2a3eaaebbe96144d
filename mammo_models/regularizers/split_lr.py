"""Split Learning Rates (Wu et al. 2020, section 6.2 and appendix B).

The Joint ResNet's parameters are split into theta_CC (CC column + FC), theta_MLO (MLO column + FC)
and theta_shared (output layer), exactly the groups the recorder reports, and each gets its own
learning rate ``eta * 10 ** alpha`` with ``alpha ~ U[-1, 1]`` drawn independently per group. With
base rates 1e-5 and 1e-4 this spans 1e-6 .. 1e-3, as in the paper's figure 8.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from torch import nn

SPLIT_LR_GROUPS: tuple[str, ...] = ("cc", "mlo", "shared")
ALPHA_RANGE: tuple[float, float] = (-1.0, 1.0)


def sample_split_lr_alphas(
    rng: np.random.Generator | int | None,
    groups: Sequence[str] = SPLIT_LR_GROUPS,
    low: float = ALPHA_RANGE[0],
    high: float = ALPHA_RANGE[1],
) -> dict[str, float]:
    """Draw ``alpha ~ U[low, high]`` independently for every group, in the order given.

    Args:
        rng: a ``numpy.random.Generator`` (advanced by ``len(groups)`` draws) or a seed.
        groups: group names, by default ``("cc", "mlo", "shared")``.
        low, high: bounds of the uniform distribution (appendix B: -1, 1).
    """
    if not low <= high:
        raise ValueError(f"alpha range must satisfy low <= high, got [{low}, {high}]")
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    draws = gen.uniform(low, high, size=len(groups))
    return {g: float(a) for g, a in zip(groups, draws, strict=True)}


def split_lr_param_groups(
    model: nn.Module, base_lr: float, alphas: Mapping[str, float]
) -> list[dict[str, object]]:
    """Optimizer parameter groups, one per model group, with ``lr = base_lr * 10 ** alpha``.

    Group membership is the model's own ``group_prefixes()`` (checked to be a partition of the
    trainable parameters by ``lca_toolkit.ParamGroups``), so the learning-rate groups are exactly
    the groups whose gradient norms and LCA are recorded.

    Args:
        model: a mammography model (``build_model(...)``).
        base_lr: eta.
        alphas: group name -> alpha; must name every trainable group of the model and no other.

    Returns:
        ``[{"params": [...], "lr": float, "name": group, "alpha": float}, ...]`` in the model's
        group order, ready for ``torch.optim.Adam(groups)``.
    """
    from lca_toolkit import ParamGroups

    if not (isinstance(base_lr, (int, float)) and math.isfinite(base_lr) and base_lr > 0):
        raise ValueError(f"base_lr must be a finite number > 0, got {base_lr!r}")
    groups = ParamGroups.from_prefixes(model, model.group_prefixes())
    missing = [g for g in groups.names if g not in alphas]
    unknown = [g for g in alphas if g not in groups.names]
    if missing or unknown:
        raise ValueError(
            f"alphas must name exactly the model's trainable groups {groups.names}; "
            f"missing {missing}, unknown {unknown}"
        )
    out = []
    for name in groups.names:
        alpha = alphas[name]
        if not (isinstance(alpha, (int, float)) and math.isfinite(alpha)):
            raise ValueError(f"alphas[{name!r}] must be a finite number, got {alpha!r}")
        out.append(
            {
                "params": groups.params(name),
                "lr": float(base_lr) * 10.0 ** float(alpha),
                "name": name,
                "alpha": float(alpha),
            }
        )
    return out

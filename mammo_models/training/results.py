"""What a finished mammography run returns and prints."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class RunResult:
    """What a finished run prints and returns.

    Attributes:
        lca_share: each group's share of the total LCA (sum over intervals), so the numbers of the
            groups add up to 1 when every group helped; a negative share means the group's movement
            raised the loss overall.
        median_rel_residual: median over intervals of |residual| / |loss change|.
    """

    out: Path
    steps: int
    epochs: int
    best_epoch: int
    best_val_auc: float
    test_auc: float
    test_auc_benign: float
    tta: int = 10
    lca_share: dict[str, float] = field(default_factory=dict)
    median_rel_residual: float = math.nan
    notes: list[str] = field(default_factory=list)


def lca_summary(run: Any) -> tuple[dict[str, float], float]:
    """Each group's share of the summed LCA, and the median relative residual, of a stored run."""
    if not run.has_lca:
        return {}, math.nan
    lca = run.lca()
    totals = {g: float(lca[f"lca/{g}"].sum()) for g in run.groups}
    whole = sum(totals.values())
    share = {g: v / whole for g, v in totals.items()} if whole else {}
    change = lca["loss_change"].abs().replace(0, np.nan)
    return share, float((lca["residual"].abs() / change).median())


def summary_lines(result: RunResult) -> list[str]:
    """The short printed summary of a run."""
    lines = [
        f"run store: {result.out}",
        f"steps: {result.steps} over {result.epochs} epochs; best epoch {result.best_epoch} "
        f"(val AUC {result.best_val_auc:.3f})",
        f"test AUC ({result.tta}x TTA): malignant {result.test_auc:.3f}, benign {result.test_auc_benign:.3f}",
    ]
    if result.lca_share:
        shares = ", ".join(f"{g} {100 * s:.1f}%" for g, s in result.lca_share.items())
        lines.append(f"share of the loss reduction (LCA): {shares}")
        lines.append(f"median relative LCA residual: {result.median_rel_residual:.2e}")
    lines += [f"note: {n}" for n in result.notes]
    return lines

"""Appendix C's Gradient Blending weight sets as recipe runs (Tables 2, 4 and 5).

A Gradient Blending run that estimates its own weights (three short runs, appendix C) stores the
per-epoch-pair estimates for every metric and held-out side (``blend_estimation.histories``). Every
other weight set of the same seed is a *derived* run: it waits for that run and trains the blended
model with weights read from its estimation, so the estimation is trained once per seed.

==================  ===========================================================================
weight set          weights (w_joint, w_cc, w_mlo)
==================  ===========================================================================
``loss``            validation loss, averaged over the epoch pairs of [0, N] (the estimating run)
``loss_late``       validation loss, over [0.9 N, N]
``auc``             validation AUC, over [0, N]
``auc_late``        validation AUC, over [0.9 N, N]
``equal``           1/3 each (Table 5)
``loss_part``       loss on a fixed tenth of the validation set, over [0, N] (Table 5)
``loss_part_swap``  the same with the CC and MLO weights exchanged (Table 5)
``auc_part``        AUC on the tenth, over [0, N] (Table 5)
``auc_part_swap``   the same, swapped (Table 5)
==================  ===========================================================================
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from lca_toolkit import open_run

from ..training import ExperimentConfig
from ..training.blending import weight_set
from .settings import RecipeSettings, RunSpec

DERIVED_COST = 1.1
"""A blended model trained with given weights: a Joint ResNet run plus two small heads."""


@dataclass(frozen=True)
class WeightSet:
    """One of appendix C's weight sets (module docstring).

    Attributes:
        name: folder and setting name (``loss_late``).
        label: the row's name in Tables 4 and 5.
        metric: ``loss`` or ``auc`` (``None`` for equal weights).
        window: ``all`` ([0, N]) or ``late`` ([0.9 N, N]).
        heldout: ``val`` (whole validation set) or ``val_part`` (its tenth).
        swap: CC and MLO weights exchanged.
    """

    name: str
    label: str
    metric: str | None = "loss"
    window: str = "all"
    heldout: str = "val"
    swap: bool = False

    def weights(self, details: dict[str, Any]) -> tuple[float, float, float]:
        """``(w_joint, w_cc, w_mlo)`` from a stored estimation."""
        if self.metric is None:
            return (1 / 3, 1 / 3, 1 / 3)
        return weight_set(details, self.metric, self.window, self.heldout, self.swap)

    @property
    def params(self) -> dict[str, Any]:
        """What a selection table shows for this set."""
        if self.metric is None:
            return {"weights": "equal"}
        return {"blend_metric": self.metric, "window": self.window, "heldout": self.heldout}


TABLE4_SETS: tuple[WeightSet, ...] = (
    WeightSet("loss", "loss, [0, N]"),
    WeightSet("loss_late", "loss, [0.9 N, N]", window="late"),
    WeightSet("auc", "AUC, [0, N]", metric="auc"),
    WeightSet("auc_late", "AUC, [0.9 N, N]", metric="auc", window="late"),
)
"""Table 4: metric x window, estimated on the whole validation set."""

TABLE5_SETS: tuple[WeightSet, ...] = (
    WeightSet("equal", "equal weights", metric=None),
    WeightSet("loss_part", "loss (10% of val)", heldout="val_part"),
    WeightSet("loss_part_swap", "swapped*", heldout="val_part", swap=True),
    WeightSet("auc_part", "AUC (10% of val)", metric="auc", heldout="val_part"),
    WeightSet("auc_part_swap", "swapped*", metric="auc", heldout="val_part", swap=True),
)
"""Table 5: the ablation; the whole-validation loss set of Table 2 is shown beside it."""

BY_NAME = {w.name: w for w in TABLE4_SETS + TABLE5_SETS}


def estimation(store: Path) -> dict[str, Any]:
    """The ``blend_estimation`` a finished Gradient Blending run stored in its config."""
    details = open_run(store).config.get("experiment", {}).get("blend_estimation")
    if details is None:
        raise ValueError(
            f"{store} estimated no Gradient Blending weights (it was given them); a derived "
            "weight set needs the run that estimated them"
        )
    return details


def derived_run(
    s: RecipeSettings,
    source: ExperimentConfig,
    out: Path,
    ws: WeightSet,
    cost: float = DERIVED_COST,
) -> RunSpec:
    """The blended model of ``source``'s seed trained with weight set ``ws``, read from the
    estimation ``source`` stored once it has finished."""
    name = _name(s, out)

    def build() -> ExperimentConfig:
        w = ws.weights(estimation(Path(source.out)))
        regs = replace(source.regularizers, blend_weights=w, blend_metric=ws.metric or "loss")
        return replace(source, out=out, regularizers=regs)

    return RunSpec(name, build, needs=(_name(s, Path(source.out)),), cost=cost)


def _name(s: RecipeSettings, out: Path) -> str:
    return Path(out).relative_to(s.root).as_posix().removesuffix(".zarr")

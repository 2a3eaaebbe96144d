"""Model selection as the paper did it: the setting with the best mean validation AUC over seeds.

Section 6 and appendix B: every setting (a learning rate, a pair of Modality Dropout rates, a set
of Split Learning Rates alphas, a set of Gradient Blending weights) is trained with three seeds;
the setting whose runs reach the highest *best validation AUC* on average over the seeds is
selected, and its runs' test AUC is what the tables report.

Rules (the same for sweeps and recipes):

* A run counts when its store exists, its status is ``finished`` and its stored
  ``results.best_val_auc`` is finite. A missing, unreadable or unfinished store, or a NaN
  validation AUC (a diverged run, a validation set with one class), does not count.
* Mean and standard error are over the runs that count (SE = sample std / sqrt(n), NaN for one).
* Only *complete* settings compete: every planned run counts. A setting with a missing seed would
  be compared on fewer seeds (noisier), and one with a diverged seed is not a setting the paper
  would have picked; such settings stay in the table, marked incomplete.
* Ties of the mean (equal within :data:`TIE_TOLERANCE`, so that AUCs equal but for float
  rounding, 0.2 and 0.19999999999999996, tie) go to the setting listed first (the sweep's
  order), so the choice is the same on every call and a resumed search selects what the
  uninterrupted one would.
* No complete setting: no winner (:meth:`Selection.require_winner` raises :class:`SelectionError`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lca_toolkit import open_run

TABLE_COLUMNS: tuple[str, ...] = (
    "setting",
    "runs",
    "counted",
    "val_auc_mean",
    "val_auc_se",
    "test_auc_mean",
    "test_auc_std",
    "complete",
    "selected",
)
"""Columns of :attr:`Selection.table` (the setting's parameters come between ``setting`` and
``runs``)."""


TIE_TOLERANCE = 1e-9
"""Means closer than this are a tie (AUCs of a few hundred breasts differ by far more)."""


def mean_se_text(mean: float, se: float, n: int, digits: int = 4) -> str:
    """``0.8123 ± 0.0101 s.e. over 3 seeds``; with one seed ``0.8123 from 1 seed, so no s.e.``
    (a standard error needs two), never ``± nan``."""
    if n > 1 and math.isfinite(se):
        return f"{mean:.{digits}f} ± {se:.{digits}f} s.e. over {n} seeds"
    return f"{mean:.{digits}f} from {n} seed{'s' if n != 1 else ''}, so no s.e."


class SelectionError(ValueError):
    """No setting can be selected (none has all its runs finished with a validation AUC)."""


@dataclass(frozen=True)
class RunScore:
    """What selection reads from one run store."""

    store: Path
    status: str  # "finished" | "unfinished" | "missing"
    best_val_auc: float = math.nan
    test_auc: float = math.nan

    @property
    def counts(self) -> bool:
        return self.status == "finished" and math.isfinite(self.best_val_auc)


def score_run(store: str | Path) -> RunScore:
    """Status, best validation AUC and test AUC of one store (NaN where absent)."""
    store = Path(store)
    if not store.exists():
        return RunScore(store, "missing")
    try:
        run = open_run(store)
        status = run.status
        results = run.attrs.get("results") or {}
    except Exception:  # noqa: BLE001 - an unreadable store simply does not count
        return RunScore(store, "missing")
    if status != "finished":
        return RunScore(store, "unfinished")
    return RunScore(
        store, "finished", _float(results.get("best_val_auc")), _float(results.get("test_auc"))
    )


def _float(x: object) -> float:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else math.nan


@dataclass
class Selection:
    """The table of settings and the selected one.

    Attributes:
        table: one row per setting, in the given order (columns :data:`TABLE_COLUMNS` plus the
            settings' parameters).
        winner: the selected setting's name, ``None`` when no setting is complete.
        groups: setting -> its run stores, as given.
        scores: setting -> what was read from each of its stores.
    """

    table: pd.DataFrame
    winner: str | None
    groups: dict[str, list[Path]] = field(default_factory=dict)
    scores: dict[str, list[RunScore]] = field(default_factory=dict)
    tied: list[str] = field(default_factory=list)
    """Complete settings whose mean ties the winner's (within :data:`TIE_TOLERANCE`), which
    lost only because the winner is listed first."""

    def require_winner(self, what: str = "the search") -> str:
        """The winner, or :class:`SelectionError` naming what is missing."""
        if self.winner is None:
            incomplete = ", ".join(
                f"{name} ({row.counted}/{row.runs})"
                for name, row in self.table.set_index("setting").iterrows()
            )
            raise SelectionError(
                f"{what}: no setting has all its runs finished with a validation AUC "
                f"(runs counted per setting: {incomplete}); finish the runs and select again"
            )
        return self.winner

    def winner_stores(self, what: str = "the search") -> list[Path]:
        """The selected setting's run stores (one per seed)."""
        return list(self.groups[self.require_winner(what)])

    def lines(self) -> list[str]:
        """The table as aligned text, the winner marked with ``*``, then one line naming it."""
        shown = self.table.drop(columns=["selected", "complete"]).copy()
        shown.insert(0, " ", ["*" if s else "" for s in self.table["selected"]])
        text = shown.to_string(
            index=False, float_format=lambda x: f"{x:.4g}", na_rep="n/a"
        ).splitlines()
        if self.winner is None:
            text.append("selected: none (no setting has all its runs finished with a val AUC)")
            return text
        row = self.table.set_index("setting").loc[self.winner]
        shown = mean_se_text(row.val_auc_mean, row.val_auc_se, int(row.counted))
        line = (
            f"selected: {self.winner} (mean best val AUC {shown}; test AUC {row.test_auc_mean:.4f})"
        )
        if self.tied:
            line += (
                f"; tied with {', '.join(self.tied)} (means within {TIE_TOLERANCE:g}): the "
                "setting listed first in the sweep's order is picked"
            )
        text.append(line)
        return text


def select_best(
    groups: Mapping[str, Sequence[str | Path]],
    params: Mapping[str, Mapping[str, Any]] | None = None,
) -> Selection:
    """Select the setting with the best mean validation AUC over its seeds (module docstring).

    Args:
        groups: setting name -> its run stores (one per seed), in the order ties are broken.
        params: setting name -> its parameters (``lr``, ``p_cc``, ...) shown in the table.

    Returns:
        The :class:`Selection`; its table has a row per setting even when nothing finished.
    """
    if not groups:
        raise SelectionError("nothing to select from: no settings given")
    params = params or {}
    rows, scores = [], {}
    for name, stores in groups.items():
        got = [score_run(p) for p in stores]
        scores[name] = got
        val = np.array([r.best_val_auc for r in got if r.counts])
        test = np.array([r.test_auc for r in got if r.counts and math.isfinite(r.test_auc)])
        n = len(val)
        rows.append(
            {
                "setting": name,
                **dict(params.get(name, {})),
                "runs": len(got),
                "counted": n,
                "val_auc_mean": float(val.mean()) if n else math.nan,
                "val_auc_se": float(val.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan,
                "test_auc_mean": float(test.mean()) if len(test) else math.nan,
                "test_auc_std": float(test.std(ddof=1)) if len(test) > 1 else math.nan,
                "complete": bool(got) and n == len(got),
            }
        )
    table = pd.DataFrame(rows)
    winner = None
    best = -math.inf
    for row in rows:  # in order: a tie keeps the earlier setting
        if row["complete"] and row["val_auc_mean"] > best + TIE_TOLERANCE:
            winner, best = row["setting"], row["val_auc_mean"]
    tied = [
        row["setting"]
        for row in rows
        if winner is not None
        and row["setting"] != winner
        and row["complete"]
        and abs(row["val_auc_mean"] - best) <= TIE_TOLERANCE
    ]
    table["selected"] = table["setting"] == winner
    ordered = [c for c in table.columns if c not in TABLE_COLUMNS]
    table = table[["setting", *ordered, *TABLE_COLUMNS[1:]]]
    paths = {k: [Path(p) for p in v] for k, v in groups.items()}
    return Selection(table, winner, paths, scores, tied)

"""Input ablation as a Tracker quantity: every K steps, each modality's contribution on E.

The measurement itself is :class:`~lca_toolkit.ablation.AblationProbe` (evaluation-mode passes on
copies of the parameters, never touching training). This quantity gives it a schedule and one way
out: the rows measured so far go to the store as the table ``ablation`` (one row per
measurement; columns in :func:`~lca_toolkit.ablation_result.ablation_columns`), rewritten whole at
each measurement, and they are part of the Tracker's checkpoint so a resumed run keeps them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ..ablation import AblationProbe
from ..ablation_result import ablation_columns
from ..errors import TrackerError
from ..records import Table
from ..schedules import Schedule
from ._base import Quantity

if TYPE_CHECKING:
    from ..output import Output

TABLE = "ablation"
"""The store table the measurements go to (``open_run(path).table("ablation")``)."""


class InputAblation(Quantity):
    """Each modality's Shapley contribution to the loss on E (leave-one-out beyond 4), every K steps.

    Args:
        probe: the measurement (model, ``loss_fn``, E, modalities, optional metric).
        every: K, optimizer steps between measurements (at K, 2K, ...).
    """

    name = "ablation"

    def __init__(self, probe: AblationProbe, every: int) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise TrackerError(f"ablation_every must be a positive integer, got {every!r}")
        super().__init__(Schedule.every_k(every))
        self.probe = probe
        self.columns: dict[str, list[float]] = {}
        self.dtypes: dict[str, str] = {}  # numpy dtype of each column, as ablation_columns gives it

    def set_eval_batches(self, eval_batches: Iterable[Any]) -> None:
        """E changed (the Tracker's :meth:`~lca_toolkit.Tracker.set_eval_batches`)."""
        self.probe.reset_eval(eval_batches)

    def at_step(self, step: int, out: Output) -> None:
        row = ablation_columns([self.probe.measure(step)])
        if self.columns and set(row) != set(self.columns):
            raise TrackerError(
                f"input ablation at step {step} gave other columns than before: "
                f"{sorted(set(row) ^ set(self.columns))}"
            )
        for key, value in row.items():
            self.columns.setdefault(key, []).append(value[0].item())
            self.dtypes.setdefault(key, value.dtype.str)
        out.emit(Table(TABLE, self.arrays()))

    def arrays(self) -> dict[str, np.ndarray]:
        """The measurements so far, as the table's columns."""
        return {k: np.asarray(v, dtype=self.dtypes[k]) for k, v in self.columns.items()}

    def state_dict(self) -> dict[str, Any]:
        return {
            "columns": {k: list(v) for k, v in self.columns.items()},
            "dtypes": dict(self.dtypes),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.columns = {k: list(v) for k, v in state["columns"].items()}
        self.dtypes = dict(state["dtypes"])


def input_ablation(
    model: Any,
    loss_fn: Any,
    eval_batches: Iterable[Any] | None,
    modalities: Mapping[str, Any] | None,
    every: int | None,
    metric: Any = None,
) -> InputAblation | None:
    """The quantity the Tracker's ``modalities=`` / ``ablation_every=`` ask for (``None``: neither).

    Raises:
        TrackerError: one is given without the other, or without ``loss_fn`` and E.
    """
    if modalities is None and every is None:
        if metric is not None:
            raise TrackerError(
                "ablation_metric= needs modalities= and ablation_every= (input ablation)"
            )
        return None
    if modalities is None or every is None:
        given, missing = ("modalities", "ablation_every")[:: 1 if every is None else -1]
        raise TrackerError(f"{given}= needs {missing}= too (input ablation)")
    if loss_fn is None or eval_batches is None:
        raise TrackerError("input ablation needs loss_fn= and eval_batches= (the subset E)")
    return InputAblation(
        AblationProbe(model, loss_fn, eval_batches, modalities, metric=metric), every
    )

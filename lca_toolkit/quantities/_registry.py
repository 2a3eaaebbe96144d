"""The quantities one Tracker measures: registration, the order they run in, their checkpoint.

Kept apart from the Tracker, which owns the clock and the training-loop calls: this is the list
it walks at each event (a step ended, an epoch ended, the run finished), and the one place that
knows how their states make up the Tracker's checkpoint. The built-in quantities keep the flat
keys checkpoints have always had (``step``, ``nonfinite_skipped``, ``last_epoch``, ``engine``,
``lca_stopped_at``); an added quantity's state is under ``"quantities"``, by its name.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import TrackerError
from ..lca import LcaResult
from ..records import Attrs
from ._base import Quantity
from .epoch_log import EpochLog
from .lca_intervals import LcaIntervals
from .step_norms import StepNorms

if TYPE_CHECKING:
    from ..output import Output


BUILT_IN: tuple[str, ...] = ("step_norms", "lca", "epochs")
"""Names of the Tracker's own quantities (an added one takes another)."""


def check_added(quantities: Sequence[object], taken: Sequence[str] = BUILT_IN) -> None:
    """Refuse what is not a :class:`Quantity`, or a name already measured (before any store)."""
    names = list(taken)
    for quantity in quantities:
        if not isinstance(quantity, Quantity):
            raise TrackerError(
                f"quantities must be lca_toolkit.quantities.Quantity objects, got "
                f"{type(quantity).__name__}: {quantity!r}"
            )
        if quantity.name in names:
            raise TrackerError(
                f"a quantity named {quantity.name!r} is already measured (quantities: "
                f"{', '.join(names)}); give each its own name"
            )
        names.append(quantity.name)


class Quantities:
    """The built-in quantities, then the added ones, in the order they are measured.

    Args:
        norms: the per-step rows (also the step clock).
        lca: step-k LCA, or ``None`` when the run has none.
        epochs: the per-epoch metrics.
    """

    def __init__(self, norms: StepNorms, lca: LcaIntervals | None, epochs: EpochLog) -> None:
        self.norms, self.lca, self.epochs = norms, lca, epochs
        self._all: list[Quantity] = [norms] + ([lca] if lca is not None else []) + [epochs]
        self._added: list[Quantity] = []

    def __iter__(self) -> Iterator[Quantity]:
        return iter(self._all)

    def __len__(self) -> int:
        return len(self._all)

    def add(self, quantity: Quantity) -> None:
        """Measure ``quantity`` after the ones already here (names must differ)."""
        check_added([quantity], taken=[q.name for q in self._all])
        self._all.append(quantity)
        self._added.append(quantity)

    # ----------------------------------------------------------------------------- events
    def at_step(self, step: int, out: Output) -> LcaResult | None:
        """Measure every quantity due after ``step``; returns LCA's result when it measured."""
        result = None
        for quantity in self._all:
            if quantity.due_at_step(step):
                value = quantity.at_step(step, out)
                if quantity is self.lca:
                    result = value
        return result

    def at_epoch_end(
        self, epoch: int, step: int, out: Output, metrics: Mapping[str, float]
    ) -> None:
        """Measure every quantity due at the end of ``epoch`` (the metrics are stored first)."""
        for quantity in self._all:
            if quantity.due_at_epoch(epoch, step):
                quantity.at_epoch_end(epoch, step, out, metrics)

    def finish(self, step: int, out: Output) -> None:
        """The run ends as finished: each quantity measures what it still has open."""
        for quantity in self._all:
            quantity.finish(step, out)

    # ----------------------------------------------------------------------------- checkpoint
    def state_dict(self) -> dict[str, Any]:
        """Every quantity's state as the Tracker's checkpoint keys (see the module docstring)."""
        lca = None if self.lca is None else self.lca.state_dict()
        state: dict[str, Any] = {
            **self.norms.state_dict(),
            **self.epochs.state_dict(),
            "engine": None if lca is None else lca["engine"],
            "lca_stopped_at": None if lca is None else lca["lca_stopped_at"],
        }
        if self._added:
            state["quantities"] = {q.name: q.state_dict() for q in self._added}
        return state

    def check_state(self, state: Mapping[str, Any]) -> None:
        """Refuse a checkpoint these quantities cannot continue, before anything changes."""
        stopped_at = state.get("lca_stopped_at")  # absent from checkpoints older than stop_lca
        saved_lca = state["engine"] is not None or stopped_at is not None
        if saved_lca != (self.lca is not None):
            raise TrackerError("checkpoint and tracker disagree on whether LCA is recorded")
        if state["engine"] is not None and self.lca is not None and self.lca.engine is None:
            raise TrackerError(
                f"the checkpoint goes on recording LCA, but stop_lca() was called on this tracker "
                f"at step {self.lca.stopped_at}"
            )
        saved = state.get("quantities", {})
        missing = [q.name for q in self._added if q.name not in saved]
        if missing:
            raise TrackerError(
                f"the checkpoint holds no state for the added quantit(y/ies) {', '.join(missing)} "
                f"(it has: {', '.join(saved) or 'none'})"
            )

    def load_state_dict(self, state: Mapping[str, Any], out: Output) -> None:
        """Continue every quantity from ``state`` (checked first) and store again the run
        attributes their states imply."""
        self.check_state(state)
        self.norms.load_state_dict(state)
        self.epochs.load_state_dict(state)
        if self.lca is not None:
            self.lca.load_state_dict(state)
        for quantity in self._added:
            quantity.load_state_dict(state["quantities"][quantity.name])
        for quantity in self._all:
            attrs = quantity.run_attrs()
            if attrs:
                out.emit(Attrs(attrs))

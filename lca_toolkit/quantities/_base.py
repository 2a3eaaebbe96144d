"""What every quantity of the Tracker is: a measurement with a schedule and one way out.

A quantity is a small class (cockpit: ``quantities/quantity.py``): it holds a
:class:`~lca_toolkit.schedules.Schedule`, answers "am I due at this step / epoch end" by asking
it, and when due measures and emits its record once through the Tracker's
:class:`~lca_toolkit.output.Output`, which stores it, mirrors it and, under DDP, lets only rank 0
write. The Tracker owns the clock (optimizer steps, epochs) and calls the hooks; the quantity owns
what it measures and the state a resumed run needs.

Adding a measurement is a subclass and registering it (``Tracker(..., quantities=[q])`` or
:meth:`Tracker.add_quantity`)::

    class WeightNorm(Quantity):
        name = "weight_norm"

        def __init__(self, model, every):
            super().__init__(Schedule.every_k(every))
            self.model, self.rows = model, {"step": [], "norm": []}

        def at_step(self, step, out):
            norm = torch.linalg.vector_norm(torch.cat([p.detach().flatten() for p in
                                                        self.model.parameters()]))
            self.rows["step"].append(step)
            self.rows["norm"].append(float(norm))
            out.emit(Table(self.name, {k: np.asarray(v) for k, v in self.rows.items()}))

Every rank calls the same hooks in the same order, so a quantity may use collectives.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..schedules import Schedule

if TYPE_CHECKING:
    from ..output import Output


class Quantity:
    """A measurement the Tracker makes on a schedule.

    Subclasses set :attr:`name` and override the hooks they use; each hook runs only when the
    schedule says the quantity is due (``due_at_step`` / ``due_at_epoch``, which a quantity with
    an anchor, such as LCA's interval start, overrides).

    Args:
        schedule: when the quantity is measured.

    Attributes:
        name: unique among a Tracker's quantities; keys the quantity's checkpoint state.
        schedule: its :class:`~lca_toolkit.schedules.Schedule`.
    """

    name: str = "quantity"

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule

    def due_at_step(self, step: int) -> bool:
        """Measured after optimizer step ``step``?"""
        return self.schedule.due_at_step(step)

    def due_at_epoch(self, epoch: int, step: int) -> bool:
        """Measured at the end of ``epoch`` (which ended after step ``step``)?"""
        return self.schedule.due_at_epoch(epoch, step=step)

    def at_step(self, step: int, out: Output) -> Any:
        """Measure after optimizer step ``step`` and emit the record; the return value is the
        caller's (``Tracker.after_step`` returns LCA's)."""
        return None

    def at_epoch_end(
        self, epoch: int, step: int, out: Output, metrics: Mapping[str, float]
    ) -> None:
        """Measure at the end of ``epoch``; ``metrics`` are what the loop logged for it."""

    def finish(self, step: int, out: Output) -> None:
        """The run ends as finished: measure what is still open (nothing by default)."""

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs (plain types and tensors)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`state_dict`."""

    def run_attrs(self) -> dict[str, Any]:
        """Run-level attributes the quantity's state implies (``nonfinite_skipped``...); the
        Tracker stores them again after a checkpoint is loaded."""
        return {}

"""Step-k LCA as a quantity: when an interval is closed, measured, checked and emitted.

An interval spans two snapshots (cockpit's ``TwoStepQuantity``): it starts at the engine's
``start_step`` and its record belongs to the step it ends at (``LcaRecord.end_step``), the
interval ``(start_step, end_step]``. The schedule is "every k steps, until a stop", with k counted
from the interval's start (:meth:`LcaIntervals.due_at_step` anchors it there), because an
interval closed early restarts the count.

Where intervals end: every k steps (``Tracker.after_step``), when E changes
(:meth:`LcaIntervals.set_eval_batches`), when LCA stops (:meth:`LcaIntervals.stop`) and when the
run ends (:meth:`LcaIntervals.finish`, from ``Tracker.close()`` with status ``finished``): the
steps since the last snapshot form a last, shorter interval, so the intervals tile the run and
their summed LCA plus residuals equals the run's loss change on E. A run that fails or is
interrupted measures nothing at its end. A checkpoint written before that last measurement keeps
the engine at the last snapshot, and resuming from it drops the stored tail interval
(``Tracker.load_state_dict``): a run stopped by ``--max-steps`` and resumed further gets the
intervals of a run that was never stopped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .. import distributed
from ..errors import TrackerError
from ..lca import LcaConfig, LcaEngine, LcaResult
from ..lca_result import to_record
from ..records import Attrs, CumulativeLca, LcaRecord
from ..residual_check import ResidualCheck
from ..schedules import Schedule
from ._base import Quantity

if TYPE_CHECKING:
    from ..output import Output


class LcaIntervals(Quantity):
    """LCA every k steps until :meth:`stop`, measured by an :class:`~lca_toolkit.lca.LcaEngine`.

    Args:
        engine: the engine (its config's ``every`` is k).

    Attributes:
        engine: the engine, ``None`` once LCA stopped (its buffers are freed).
        config: how LCA is measured (kept after the engine is released).
        stopped_at: the step LCA stopped at, or ``None``.
    """

    name = "lca"

    def __init__(self, engine: LcaEngine) -> None:
        super().__init__(Schedule.every_k(engine.config.every))
        self.engine: LcaEngine | None = engine
        self.config: LcaConfig = engine.config
        self.stopped_at: int | None = None
        self._residual_check: ResidualCheck | None = None  # made at the first interval

    def due_at_step(self, step: int) -> bool:
        """An interval is complete: k steps since it started (and LCA not stopped)."""
        engine = self.engine
        return engine is not None and self.schedule.due_at_step(step, since=engine.start_step)

    def at_step(self, step: int, out: Output) -> LcaResult:
        return self.measure(step, out)

    def measure(self, step: int, out: Output) -> LcaResult:
        """Measure LCA from the last snapshot to ``step`` and emit its record.

        An interval whose residual exceeds ``LcaConfig.residual_tol`` of its loss change is
        warned about (:class:`~lca_toolkit.residual_check.LcaResidualWarning`, once per run).
        """
        if self.engine is None:
            raise TrackerError(f"LCA was stopped at step {self.stopped_at} (stop_lca)")
        result = self.engine.measure(step)
        record = to_record(result)
        self._check_residual(record)
        out.emit(record)
        if self.config.cumulative:
            arrays = {k: v.cpu().numpy() for k, v in self.engine.cumulative().items()}
            out.emit(CumulativeLca(arrays, at_step=step))
        return result

    def measure_open(self, step: int, out: Output) -> LcaResult | None:
        """Measure the interval since the last snapshot if it has steps (else ``None``)."""
        if self.engine is None or self.engine.start_step >= step:
            return None
        return self.measure(step, out)

    def finish(self, step: int, out: Output) -> None:
        """The run ends as finished: its last ``step % k`` steps form a last interval."""
        self.measure_open(step, out)

    def set_eval_batches(
        self, eval_batches: Iterable[Any], step: int, out: Output
    ) -> LcaResult | None:
        """Close the open interval on the old E, then start the next one on the new E.

        After :meth:`stop` this does nothing (a loop may go on switching E every epoch).
        """
        if self.engine is None:
            return None
        result = self.measure_open(step, out)
        self.engine.reset_eval(eval_batches)
        return result

    def stop(self, step: int, out: Output) -> LcaResult | None:
        """Close the open interval, then release the engine: no LCA after ``step``."""
        if self.engine is None:
            return None
        result = self.measure_open(step, out)
        self._release(step)
        out.emit(Attrs(self.run_attrs()))
        return result

    def _release(self, step: int) -> None:
        """Drop the engine (and with it its buffers) and remember where LCA stopped."""
        self.engine = None
        self.stopped_at = int(step)
        self.schedule = self.schedule.until(self.stopped_at)

    def _check_residual(self, record: LcaRecord) -> None:
        """Warn (once per run, rank 0) about an interval whose residual is above tolerance."""
        if self._residual_check is None:
            self._residual_check = ResidualCheck(self.config, enabled=distributed.is_main())
        self._residual_check.check(record)

    # ----------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        return {
            "engine": None if self.engine is None else self.engine.state_dict(),
            "lca_stopped_at": self.stopped_at,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue the checkpoint's interval, or stay stopped where it stopped."""
        stopped_at = state.get("lca_stopped_at")  # absent from checkpoints older than stop_lca
        if stopped_at is not None:
            self._release(stopped_at)
        elif self.engine is not None:
            self.engine.load_state_dict(state["engine"])

    def run_attrs(self) -> dict[str, Any]:
        return {} if self.stopped_at is None else {"lca_stopped_at": self.stopped_at}

"""The Tracker's LCA schedule: when an interval is closed, measured, checked and stored.

Kept apart from :mod:`lca_toolkit.tracker` (which records the per-step rows) as a mixin of
:class:`~lca_toolkit.tracker.Tracker`: the methods here read and write the Tracker's ``engine``,
``step``, ``sink`` and ``mirror`` and nothing else of it.

Where intervals end: every k steps (:meth:`Tracker.after_step`), when E changes
(:meth:`LcaSchedule.set_eval_batches`), when LCA stops (:meth:`LcaSchedule.stop_lca`) and when the
run ends (:meth:`LcaSchedule.measure_open_interval`, called by ``Tracker.close()`` with status
``finished``): the steps since the last snapshot form a last, shorter interval, so the intervals
tile the run and their summed LCA plus residuals equals the run's loss change on E. A run that
fails or is interrupted measures nothing at its end. A checkpoint written before that last
measurement keeps the engine at the last snapshot, and resuming from it drops the stored tail
interval (:meth:`Tracker.load_state_dict`): a run stopped by ``--max-steps`` and resumed further
gets the intervals of a run that was never stopped.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from . import distributed
from .errors import TrackerError
from .lca import LcaEngine, LcaResult
from .lca_result import to_record
from .mirrors import Mirror
from .records import LcaRecord, Sink
from .residual_check import ResidualCheck


class LcaSchedule:
    """The LCA half of the Tracker (a mixin; :class:`~lca_toolkit.tracker.Tracker` sets these)."""

    engine: LcaEngine | None
    step: int
    sink: Sink
    mirror: Mirror | None
    _lca_stopped_at: int | None
    _residual_check: ResidualCheck | None = None  # made at the first interval

    def _check_open(self) -> None:  # pragma: no cover - the Tracker's own
        raise NotImplementedError

    def set_eval_batches(self, eval_batches: Iterable[Any]) -> LcaResult | None:
        """Switch the evaluation subset E, e.g. to the samples of a new epoch.

        An LCA interval never spans two E's, or its loss change would mix two different losses.
        An interval with steps in it is closed now on the old E (a shorter interval ending at
        this step) and its result returned; the next interval starts here, its left end
        evaluated on the new E (one extra gradient pass), and later intervals count k steps from
        here.

        Resume: E is data, not part of :meth:`state_dict`. The caller constructs the resumed
        Tracker with the E that was in force when the checkpoint was written, then calls
        :meth:`load_state_dict`, and switches again only at the next boundary. Distributed: every
        rank calls this at the same step with the same E.
        """
        self._check_open()
        if self.engine is None:
            if self._lca_stopped_at is not None:  # a loop may go on switching E every epoch
                return None
            raise TrackerError(
                "set_eval_batches: LCA is off; construct the Tracker with lca_every=, loss_fn=, "
                "eval_batches="
            )
        result = self.measure_lca() if self.engine.start_step < self.step else None
        self.engine.reset_eval(eval_batches)
        return result

    @property
    def lca_active(self) -> bool:
        """LCA is recorded from here on (built with LCA and :meth:`stop_lca` not called)."""
        return self.engine is not None

    @property
    def lca_stopped_at(self) -> int | None:
        """The step :meth:`stop_lca` ended LCA recording at (``None``: not stopped)."""
        return self._lca_stopped_at

    def stop_lca(self) -> LcaResult | None:
        """End LCA recording for the rest of the run; gradient norms go on every step.

        For runs that measure LCA over their first part only (LCA costs several gradient passes
        over E per interval, norms cost nothing extra): an interval with steps in it is closed
        now, on the current E, exactly as :meth:`set_eval_batches` closes one, and its result
        returned, so the stored intervals end at this step. Then the LCA engine is released: no
        further LCA pass runs, :meth:`set_eval_batches` does nothing, and the engine's
        parameter-sized buffers are freed. The step is stored in the ``lca_stopped_at`` attribute
        and in :meth:`state_dict`, so a run resumed after it stays stopped.

        Calling it again, or on a Tracker without LCA, does nothing and returns ``None``.
        Distributed: every rank calls it at the same step (the closing measurement is collective).
        """
        self._check_open()
        if self.engine is None:
            return None
        result = self.measure_lca() if self.engine.start_step < self.step else None
        self._release_lca(self.step)
        return result

    def _release_lca(self, step: int) -> None:
        """Drop the LCA engine (and with it its buffers) and record where LCA stopped."""
        self.engine = None
        self._lca_stopped_at = int(step)
        self.sink.update_attrs(lca_stopped_at=self._lca_stopped_at)

    def measure_lca(self) -> LcaResult:
        """Measure LCA from the last snapshot to now (called by :meth:`after_step` every k steps,
        by :meth:`set_eval_batches`, :meth:`stop_lca` and :meth:`measure_open_interval`).

        An interval whose residual exceeds ``LcaConfig.residual_tol`` of its loss change is
        warned about (:class:`~lca_toolkit.residual_check.LcaResidualWarning`, once per run).
        """
        if self.engine is None:
            if self._lca_stopped_at is not None:
                raise TrackerError(f"LCA was stopped at step {self._lca_stopped_at} (stop_lca)")
            raise TrackerError(
                "LCA is off: construct the Tracker with lca_every=, loss_fn=, eval_batches="
            )
        result = self.engine.measure(self.step)
        record = to_record(result)
        self._check_residual(record)
        self.sink.append_lca(record)
        if self.mirror is not None:
            self.mirror.append_lca(record)
        if self.engine.config.cumulative:
            self.sink.write_cumulative_lca(
                {k: v.cpu().numpy() for k, v in self.engine.cumulative().items()}, at_step=self.step
            )
        return result

    def measure_open_interval(self) -> LcaResult | None:
        """Measure the interval since the last snapshot if it has steps, e.g. at the end of a run.

        ``Tracker.close()`` with status ``finished`` (also the context manager leaving without
        an exception) calls it, so the last ``step % k`` steps are not dropped; call it earlier
        when the run's summary must include that last interval (the Tracker then finds nothing
        open at ``close()``). Returns ``None`` when LCA is off or stopped, or no step was taken
        since the last snapshot. Distributed: collective, every rank calls it.
        """
        self._check_open()
        if self.engine is None or self.engine.start_step >= self.step:
            return None
        return self.measure_lca()

    def _check_residual(self, record: LcaRecord) -> None:
        """Warn (once per run, rank 0) about an interval whose residual is above tolerance."""
        if self._residual_check is None:
            assert self.engine is not None
            self._residual_check = ResidualCheck(self.engine.config, enabled=distributed.is_main())
        self._residual_check.check(record)

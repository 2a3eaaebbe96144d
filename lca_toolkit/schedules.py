"""When a recorded quantity is measured: every step, every k steps, at epoch ends, until a stop.

A :class:`Schedule` is a small immutable answer to "is it due at step s / at the end of epoch e";
each quantity of the :class:`~lca_toolkit.tracker.Tracker` holds one and asks it (cockpit's
``schedules`` play the same part). Steps count optimizer steps from 1, as the store's rows do.

"Every k steps" counts from an anchor, the step the current interval started at (``since``),
not from 0: LCA intervals restart when the evaluation subset changes, and the next interval is
due k steps after that, not at the next multiple of k. A quantity that never restarts passes no
anchor and is due at multiples of k.

A stop ends the schedule after a step: ``Schedule.every_k(60).until(300)`` is due at 60, ..., 300
and never after. :meth:`Schedule.until` returns a new schedule, so a quantity stops by replacing
its own (``stop_lca``) and nothing else shares the change.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .errors import TrackerError


@dataclass(frozen=True)
class Schedule:
    """When a quantity is due.

    Attributes:
        every: due every ``every`` optimizer steps (1: every step); ``None``: never at a step.
        at_epoch_end: due at the end of every epoch (``Tracker.log_epoch``).
        stop: the last step the schedule runs to; no step after it, and no epoch end logged
            after it, is due. ``None``: runs to the end.
    """

    every: int | None = 1
    at_epoch_end: bool = False
    stop: int | None = None

    def __post_init__(self) -> None:
        if self.every is not None and (not isinstance(self.every, int) or self.every < 1):
            raise TrackerError(
                f"Schedule.every must be a positive integer or None, got {self.every!r}"
            )
        if self.stop is not None and (not isinstance(self.stop, int) or self.stop < 0):
            raise TrackerError(f"Schedule.stop must be a step >= 0 or None, got {self.stop!r}")

    # ----------------------------------------------------------------------------- constructors
    @classmethod
    def every_step(cls) -> Schedule:
        """Due after every optimizer step."""
        return cls(every=1)

    @classmethod
    def every_k(cls, k: int) -> Schedule:
        """Due every ``k`` optimizer steps (counted from the anchor the quantity gives)."""
        return cls(every=k)

    @classmethod
    def epoch_ends(cls) -> Schedule:
        """Due at the end of every epoch, never at a step."""
        return cls(every=None, at_epoch_end=True)

    def until(self, step: int) -> Schedule:
        """This schedule, stopped after ``step`` (an earlier stop stays)."""
        stop = int(step) if self.stop is None else min(self.stop, int(step))
        return replace(self, stop=stop)

    # ----------------------------------------------------------------------------- questions
    @property
    def stopped(self) -> bool:
        """The schedule has a stop (it may still be due up to that step)."""
        return self.stop is not None

    def running_at(self, step: int) -> bool:
        """Whether ``step`` is within the schedule (not past its stop)."""
        return self.stop is None or step <= self.stop

    def due_at_step(self, step: int, *, since: int | None = None) -> bool:
        """Due after optimizer step ``step`` (1-based).

        Args:
            step: the optimizer step that just ended.
            since: the anchor: due once ``every`` steps have passed since it (an interval that
                started there is complete). ``None``: due at the multiples of ``every``.
        """
        if self.every is None or not self.running_at(step):
            return False
        if since is None:
            return step % self.every == 0
        return step - since >= self.every

    def due_at_epoch(self, epoch: int, *, step: int) -> bool:
        """Due at the end of ``epoch``, which ended after optimizer step ``step``."""
        return self.at_epoch_end and self.running_at(step)

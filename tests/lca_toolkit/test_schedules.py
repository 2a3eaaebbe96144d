"""Schedule: every step, every k steps (from an anchor), at epoch ends, until a stop."""

from __future__ import annotations

import pytest

from lca_toolkit import TrackerError
from lca_toolkit.schedules import Schedule


def due_steps(schedule: Schedule, n: int = 12, **kw) -> list[int]:
    return [s for s in range(1, n + 1) if schedule.due_at_step(s, **kw)]


def test_every_step_and_every_k_count_optimizer_steps_from_one():
    assert due_steps(Schedule.every_step(), 5) == [1, 2, 3, 4, 5]
    assert due_steps(Schedule.every_k(3)) == [3, 6, 9, 12]
    assert not Schedule.every_k(3).due_at_epoch(0, step=3)


def test_every_k_from_an_anchor_is_due_once_k_steps_passed_since_it():
    # An interval that restarted at step 4 (a new E) is complete at step 7, not at 6.
    every3 = Schedule.every_k(3)
    assert [s for s in range(5, 10) if every3.due_at_step(s, since=4)] == [7, 8, 9]
    assert every3.due_at_step(3, since=0) and not every3.due_at_step(2, since=0)


def test_until_ends_the_schedule_after_its_step_and_keeps_the_earlier_stop():
    stopped = Schedule.every_k(2).until(7)
    assert due_steps(stopped) == [2, 4, 6]
    assert stopped.stopped and stopped.stop == 7
    assert stopped.until(9).stop == 7 and stopped.until(5).stop == 5
    assert not Schedule.every_k(2).stopped


def test_epoch_ends_is_never_due_at_a_step_and_stops_with_its_stop():
    ends = Schedule.epoch_ends()
    assert due_steps(ends) == []
    assert ends.due_at_epoch(0, step=10)
    assert not ends.until(5).due_at_epoch(1, step=6)
    assert ends.until(5).due_at_epoch(0, step=5)


@pytest.mark.parametrize(
    "kwargs, named",
    [({"every": 0}, "Schedule.every"), ({"every": 1.5}, "Schedule.every"), ({"stop": -1}, "stop")],
)
def test_bad_schedules_are_refused_naming_the_field(kwargs, named):
    with pytest.raises(TrackerError, match=named):
        Schedule(**kwargs)

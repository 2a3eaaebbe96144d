"""The :class:`Mirror` protocol and the guard that keeps a failing mirror from stopping training.

A mirror is a live, best-effort copy of what the Tracker records, for watching a run while it
goes (TensorBoard scalars, a dashboard). The zarr run store stays the source of truth: a mirror
gets the same records as the store, right after it, and may drop, round or lose them. Its
failure must never cost the run, so the Tracker only talks to it through :class:`GuardedMirror`:
the first exception is reported once as a :class:`MirrorWarning` naming the mirror and the error,
the mirror is closed and then ignored for the rest of the run; the store is unaffected.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from ..errors import TrackerError
from ..records import LcaRecord, StepBlock

MIRROR_KINDS: tuple[str, ...] = ("tensorboard",)
"""The ``KIND`` of a ``mirror="KIND:TARGET"`` string the Tracker understands."""


class MirrorWarning(RuntimeWarning):
    """A mirror failed and was switched off; the run and its store go on unchanged."""


@runtime_checkable
class Mirror(Protocol):
    """What the Tracker hands a mirror, in the order it happens.

    ``start`` comes once, before any record; ``append_*`` follow the store's writes (steps
    arrive in blocks of rows, as the Tracker moves them to the host); ``truncate`` only on
    resume (:meth:`Tracker.load_state_dict`), before any new record; ``flush`` when the
    Tracker flushes its store (checkpoints); ``close`` once at the end.

    Attributes:
        name: how warnings name the mirror (``"tensorboard:runs/tb"``).
    """

    name: str

    def start(self, groups: Sequence[str]) -> None: ...
    def append_steps(self, block: StepBlock) -> None: ...
    def append_lca(self, record: LcaRecord) -> None: ...
    def append_epoch(self, epoch: int, metrics: Mapping[str, float], step: int) -> None: ...
    def truncate(self, *, last_step: int) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


class GuardedMirror:
    """Forwards every call to ``mirror`` until one raises; then warns once and goes quiet.

    Args:
        mirror: the mirror to protect.

    Attributes:
        mirror: the wrapped mirror.
        error: the exception that switched it off, or ``None`` while it works.
    """

    def __init__(self, mirror: Mirror) -> None:
        self.mirror = mirror
        self.error: BaseException | None = None

    @property
    def active(self) -> bool:
        """Whether records still reach the mirror."""
        return self.error is None

    def _call(self, method: str, *args: Any, **kwargs: Any) -> None:
        if self.error is not None:
            return
        try:
            getattr(self.mirror, method)(*args, **kwargs)
        except Exception as exc:  # any failure of a mirror: report, switch off, train on
            self.error = exc
            name = getattr(self.mirror, "name", type(self.mirror).__name__)
            warnings.warn(
                f"mirror {name!r} failed in {method}() and is off for the rest of the run "
                f"({type(exc).__name__}: {exc}); the run store is unaffected",
                MirrorWarning,
                stacklevel=3,
            )
            if method != "close":
                with contextlib.suppress(Exception):
                    self.mirror.close()

    def start(self, groups: Sequence[str]) -> None:
        self._call("start", list(groups))

    def append_steps(self, block: StepBlock) -> None:
        self._call("append_steps", block)

    def append_lca(self, record: LcaRecord) -> None:
        self._call("append_lca", record)

    def append_epoch(self, epoch: int, metrics: Mapping[str, float], step: int) -> None:
        self._call("append_epoch", epoch, metrics, step)

    def truncate(self, *, last_step: int) -> None:
        self._call("truncate", last_step=last_step)

    def flush(self) -> None:
        self._call("flush")

    def close(self) -> None:
        self._call("close")


def open_mirror(spec: str | os.PathLike[str] | Mirror | None) -> GuardedMirror | None:
    """The guarded mirror ``Tracker(mirror=spec)`` asks for, or ``None`` for no mirror.

    Args:
        spec: ``"tensorboard:DIR"`` (TensorBoard event files in ``DIR``), an object that
            implements :class:`Mirror`, or ``None``.

    Raises:
        TrackerError: ``spec`` is neither; the message lists what is accepted.
        MissingExtraError: the package a mirror kind needs is not installed (names the extra).
    """
    if spec is None:
        return None
    if isinstance(spec, Mirror):
        return GuardedMirror(spec)
    kind, sep, target = str(spec).partition(":") if isinstance(spec, str) else ("", "", "")
    if not sep or not target or kind not in MIRROR_KINDS:
        raise TrackerError(
            f"mirror must be 'tensorboard:DIR' (KIND:TARGET with KIND in "
            f"{', '.join(MIRROR_KINDS)}) or an object implementing lca_toolkit.mirrors.Mirror, "
            f"got {spec!r}"
        )
    from .tensorboard import TensorBoardMirror

    return GuardedMirror(TensorBoardMirror(target))

"""A run on disk: where its files live, what state it is in, and its one resumable state file.

A run writes next to each other::

    runs/x.zarr              the run store
    runs/x.zarr.ckpt/last.pt the resumable state (model, optimizer, Tracker, RNG streams, ...)
    runs/x.zarr.ckpt/best.pt the model of the best epoch (when the caller selects one)
    runs/x.zarr.ckpt/rank<r>.pt what rank r alone holds (a sharded run's Tracker state)
    runs/x.zarr.<name>/      side folders of the caller (runs that this run is made from)

Every part of a program that creates, resumes, reuses or deletes a run asks :class:`RunDir`, so the
layout is written down once and "can this run be resumed?" has one answer.
"""

from __future__ import annotations

import pickle
import re
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from .checkpoint import save_atomic
from .errors import RunStateError

RunState = Literal["missing", "resumable", "finished", "stale"]
"""See :meth:`RunDir.state`."""

CHECKPOINT_SUFFIX = ".ckpt"
LAST = "last.pt"
BEST = "best.pt"


@dataclass(frozen=True)
class RunDir:
    """The files of one run, named from its store path.

    Attributes:
        store: the run store (``runs/x.zarr``).
        sides: names of the caller's side folders (``("blend",)`` gives ``runs/x.zarr.blend``);
            they belong to the run: :meth:`remove` deletes them with it.
    """

    store: Path
    sides: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "store", Path(self.store))
        object.__setattr__(self, "sides", tuple(self.sides))

    # ----------------------------------------------------------------------------- layout
    @property
    def checkpoint_dir(self) -> Path:
        """``<store>.ckpt``: the folder of the run's checkpoints."""
        return Path(f"{self.store}{CHECKPOINT_SUFFIX}")

    @property
    def last(self) -> Path:
        """``<store>.ckpt/last.pt``: the state a resumed run continues from."""
        return self.checkpoint_dir / LAST

    @property
    def best(self) -> Path:
        """``<store>.ckpt/best.pt``: the model of the best epoch."""
        return self.checkpoint_dir / BEST

    def side(self, name: str) -> Path:
        """``<store>.<name>``, one of :attr:`sides` (a name not declared there is a bug)."""
        if name not in self.sides:
            raise ValueError(f"{name!r} is not a side folder of {self.store} (sides: {self.sides})")
        return Path(f"{self.store}.{name}")

    @property
    def paths(self) -> tuple[Path, ...]:
        """Everything the run owns on disk: store, checkpoint folder, side folders."""
        return (self.store, self.checkpoint_dir, *(self.side(n) for n in self.sides))

    # ----------------------------------------------------------------------------- state
    def state(
        self,
        wanted: Callable[[Any], bool] | None = None,
        complete: Callable[[Any], bool] | None = None,
    ) -> RunState:
        """Whether the run can be reused as it is, continued, or must be made again.

        Args:
            wanted: ``wanted(run)`` on the opened store (:class:`~lca_toolkit.store.Run`): it
                holds the run the caller asks for (typically: the stored settings are the
                caller's). ``None``: any run store is wanted.
            complete: ``complete(run)``: a finished store has everything the caller needs (for
                example its results). ``None``: the status ``finished`` is enough.

        Returns:
            * ``missing``: nothing at the store path.
            * ``finished``: a wanted run store whose status is ``finished`` and that is complete;
              reuse it.
            * ``resumable``: a wanted run store that is not finished (or not complete) and has
              ``last.pt``; continue it from there.
            * ``stale``: something else is at the store path: not a run store, a store that
              cannot be opened, a run the caller does not want, or an unfinished run without
              ``last.pt``. It has to be removed before the run is made again.
        """
        from .store import is_run_store, open_run

        if not self.store.exists():
            return "missing"
        if not is_run_store(self.store):
            return "stale"
        try:
            run = open_run(self.store)
            if wanted is not None and not wanted(run):
                return "stale"
        except Exception:  # noqa: BLE001 - an unreadable store is made again
            return "stale"
        if run.status == "finished" and (complete is None or complete(run)):
            return "finished"
        return "resumable" if self.last.is_file() else "stale"

    def can_resume(self) -> bool:
        """The store and ``last.pt`` both exist (the files only; :meth:`state` also reads them)."""
        return self.store.exists() and self.last.is_file()

    def removable(self) -> bool:
        """Nothing at the store path, a run store, or an empty folder: :meth:`remove` may delete it.

        Anything else (a file, a folder with other contents) may be a user's data.
        """
        from .store import is_run_store

        store = self.store
        return (
            not store.exists()
            or is_run_store(store)
            or (store.is_dir() and not any(store.iterdir()))
        )

    def remove(self, *, owned: bool = False) -> None:
        """Delete the run: store, checkpoints and side folders (to replace or redo it).

        Args:
            owned: the store lies in a folder the program made for it (such as a side folder of
                another run), so whatever is at the store path is deleted, even a store whose
                creation was cut short.

        Raises:
            RunStateError: the store path holds something that is not a run store (see
                :meth:`removable`) and ``owned`` is false; nothing is deleted.
        """
        if not owned and not self.removable():
            raise RunStateError(f"{self.store} is not a run store; refusing to delete it")
        if self.store.exists():
            shutil.rmtree(self.store)
        for path in self.paths[1:]:
            shutil.rmtree(path, ignore_errors=True)

    def remove_checkpoints(self) -> None:
        """Delete the checkpoint folder only (a run that starts again at step 0)."""
        shutil.rmtree(self.checkpoint_dir, ignore_errors=True)

    # ----------------------------------------------------------------------------- resumable state
    def save_resumable(self, state: Mapping[str, Any]) -> None:
        """Write ``last.pt`` atomically: a crash while saving keeps the previous one intact."""
        save_atomic(dict(state), self.last)

    def load_resumable(self, map_location: str | torch.device = "cpu") -> dict[str, Any]:
        """Read ``last.pt`` (see :func:`load_checkpoint`)."""
        return load_checkpoint(self.last, map_location)

    def rank_state(self, rank: int) -> Path:
        """``<store>.ckpt/rank<r>.pt``: what only rank ``r`` holds (its shards under FSDP2)."""
        return self.checkpoint_dir / f"rank{rank}.pt"

    def save_rank_state(self, rank: int, state: Mapping[str, Any]) -> None:
        """Write rank ``rank``'s own part of the resumable state atomically (every rank calls it)."""
        save_atomic(dict(state), self.rank_state(rank))

    def load_rank_state(
        self, rank: int, map_location: str | torch.device = "cpu"
    ) -> dict[str, Any]:
        """Read :meth:`rank_state` (see :func:`load_checkpoint`)."""
        return load_checkpoint(self.rank_state(rank), map_location)

    def save_best(self, state: Mapping[str, Any]) -> None:
        """Write ``best.pt`` atomically."""
        save_atomic(dict(state), self.best)

    def load_best(self, map_location: str | torch.device = "cpu") -> dict[str, Any]:
        """Read ``best.pt`` (see :func:`load_checkpoint`)."""
        return load_checkpoint(self.best, map_location)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint this package wrote, with ``torch.load(..., weights_only=True)``.

    Every checkpoint the toolkit writes holds tensors (RNG states included) and plain Python
    values only, so it loads without unpickling arbitrary objects: opening a run folder someone
    sent cannot run whatever its pickle holds.

    Raises:
        RunStateError: no file at ``path`` (``no checkpoint at PATH``), a file whose pickle would
            run code (refused), or a file that is damaged or holds something other than a
            checkpoint; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise RunStateError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        if found is None:  # a damaged file fails the same way
            raise RunStateError(
                f"cannot read the checkpoint at {path} (not a checkpoint, or damaged); start the "
                "run again with --overwrite"
            ) from None
        raise RunStateError(
            f"refusing to load {path}: it holds {found.group(1)}, an object whose unpickling "
            "would run code, and lca_toolkit checkpoints hold tensors and plain values only"
        ) from None
    except (RuntimeError, EOFError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RunStateError(
            f"cannot read the checkpoint at {path} ({first}); the file is damaged: start the run "
            "again with --overwrite"
        ) from None
    if not isinstance(state, dict):
        raise RunStateError(
            f"{path} holds a {type(state).__name__}, not a checkpoint written by lca_toolkit"
        )
    return state


def rng_states() -> tuple[torch.Tensor, list[torch.Tensor] | None]:
    """The CPU and (when present) CUDA random number generator states, for a resumable state."""
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    return torch.get_rng_state(), cuda


def restore_rng(cpu: torch.Tensor, cuda: list[torch.Tensor] | None) -> None:
    """Put back the states of :func:`rng_states` (CUDA ones only where CUDA is available)."""
    torch.set_rng_state(cpu.cpu())
    if cuda is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])

"""Run (or resume) the tiny mammography experiment and SIGKILL it at a chosen point (tests only).

python fault_run.py OUT SYNTHETIC_ROOT [--resume] [--kill POINT:N]

``POINT:N`` kills the process at the N-th time (counted in this process) it reaches ``POINT``,
one of :data:`KILL_POINTS`. The faults are monkeypatched here, around the product's own
functions, so that the product code carries no fault hooks. One intra-op thread keeps the
floating-point results identical between the reference run and the killed-and-resumed runs.
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from killed_experiment import tiny_config

from mammo_models.training import Experiment, ExperimentConfig


def fault_config(out: Path, synthetic_root: Path) -> ExperimentConfig:
    """2 epochs of 4 steps, LCA every 3 steps, checkpoints every 3 steps and at epoch ends."""
    return tiny_config(out, synthetic_root)


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class Counter:
    """Calls ``die`` on the n-th ``hit``."""

    def __init__(self, n: int) -> None:
        self.n, self.calls = n, 0

    def hit(self) -> bool:
        self.calls += 1
        return self.calls == self.n


def _wrap(owner: Any, name: str, counter: Counter, *, after: bool = False) -> None:
    """Kill at the n-th call of ``owner.name``, before it runs (or right after it returned)."""
    original = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        due = counter.hit()
        if due and not after:
            die()
        result = original(*args, **kwargs)
        if due:
            die()
        return result

    setattr(owner, name, wrapper)


def optimizer_step(c: Counter) -> None:
    """Inside a training step: after backward, before Adam changes the weights."""
    _wrap(torch.optim.Adam, "step", c)


def lca_gradient_pass(c: Counter) -> None:
    """Inside an LCA interval: during the forward pass over E of the n-th gradient pass."""
    from lca_toolkit import lca

    original_pass, original_loss = lca.LcaEngine._gradient_pass, lca._LossCall.forward
    armed = [False]

    def gradient_pass(self, *args: Any, **kwargs: Any) -> Any:
        armed[0] = c.hit()
        return original_pass(self, *args, **kwargs)

    def loss_call(self, batch: Any) -> Any:
        if armed[0]:
            die()
        return original_loss(self, batch)

    lca.LcaEngine._gradient_pass = gradient_pass
    lca._LossCall.forward = loss_call


def _os_proxy(**overrides: Any) -> types.SimpleNamespace:
    """The ``os`` module as ``lca_toolkit.checkpoint`` sees it, with some functions replaced."""
    proxy = types.SimpleNamespace(**{k: getattr(os, k) for k in dir(os) if not k.startswith("__")})
    proxy.path = os.path
    for name, fn in overrides.items():
        setattr(proxy, name, fn)
    return proxy


def checkpoint_temp_partial(c: Counter) -> None:
    """While ``save_atomic`` writes: half the bytes of the temporary file are on disk."""
    import lca_toolkit.checkpoint as ckpt

    class HalfWriter(io.FileIO):
        def write(self, data: Any) -> int:
            view = memoryview(data)
            super().write(view[: len(view) // 2])
            os.fsync(self.fileno())
            die()
            return 0

    def fdopen(fd: int, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if c.hit():
            return HalfWriter(fd, "wb")
        return os.fdopen(fd, mode, *args, **kwargs)

    ckpt.os = _os_proxy(fdopen=fdopen)


def checkpoint_temp_written(c: Counter) -> None:
    """While ``save_atomic`` writes: the temporary file is complete, the rename not done."""
    import lca_toolkit.checkpoint as ckpt

    def replace(src: Any, dst: Any) -> None:
        if c.hit():
            die()
        os.replace(src, dst)

    ckpt.os = _os_proxy(replace=replace)


def after_checkpoint(c: Counter) -> None:
    """Right after a checkpoint (last.pt or best.pt) was renamed into place."""
    from lca_toolkit import rundir

    _wrap(rundir, "save_atomic", c, after=True)


def _store_put(c: Counter, matches: Callable[[Path], bool], *, partial: bool) -> None:
    import zarr.storage._local as local

    original = local._put

    def put(path: Path, value: Any, exclusive: bool = False) -> int:
        if matches(Path(path)) and c.hit():
            if partial:  # half a chunk in zarr's temporary file, as a kill mid-write leaves it
                tmp = Path(path).with_suffix(".killed.partial")
                tmp.parent.mkdir(parents=True, exist_ok=True)
                data = bytes(value.as_buffer_like())
                tmp.write_bytes(data[: len(data) // 2])
            die()
        return original(path, value, exclusive)

    local._put = put


def store_chunk_write(c: Counter) -> None:
    """While the store writer commits rows: in the middle of writing one chunk file."""
    _store_put(c, lambda p: "c" in p.parts, partial=True)


def store_commit_attrs(c: Counter) -> None:
    """While the store writer commits rows: every array written, the new row counts not yet."""
    from lca_toolkit.store import _writer

    original = _writer._gather

    async def gather(writes: Any) -> None:
        await original(writes)
        if c.hit():
            die()

    _writer._gather = gather


def between_epochs(c: Counter) -> None:
    """At the start of an epoch (after the previous epoch's checkpoint)."""
    from mammo_models.data import MammoDataset

    _wrap(MammoDataset, "set_epoch", c)


def predict_call(c: Counter) -> None:
    """Inside an evaluation pass: validation after each epoch, then the TTA test."""
    from mammo_models.training import experiment

    _wrap(experiment, "predict", c)


def log_epoch(c: Counter) -> None:
    """Right after an epoch's metrics were handed to the store (before best.pt and last.pt)."""
    from lca_toolkit import Tracker

    _wrap(Tracker, "log_epoch", c, after=True)


def before_close(c: Counter) -> None:
    """After the test results were written, before the store is marked finished."""
    from lca_toolkit import Tracker

    _wrap(Tracker, "close", c)


KILL_POINTS: dict[str, Callable[[Counter], None]] = {
    "optimizer_step": optimizer_step,
    "lca_gradient_pass": lca_gradient_pass,
    "checkpoint_temp_partial": checkpoint_temp_partial,
    "checkpoint_temp_written": checkpoint_temp_written,
    "after_checkpoint": after_checkpoint,
    "store_chunk_write": store_chunk_write,
    "store_commit_attrs": store_commit_attrs,
    "between_epochs": between_epochs,
    "predict": predict_call,
    "log_epoch": log_epoch,
    "before_close": before_close,
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("synthetic_root", type=Path)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--kill", default=None, help="POINT:N")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.kill:
        point, _, n = args.kill.partition(":")
        KILL_POINTS[point](Counter(int(n)))
    config = fault_config(args.out, args.synthetic_root)
    Experiment(config, resume=args.resume, progress=False).run()


if __name__ == "__main__":
    main()

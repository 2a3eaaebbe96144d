"""Train the runs of the chosen recipes: each once, dependencies first, longest first, resumable.

A run whose store already finished with exactly the wanted settings is reused, an interrupted one
is resumed from its checkpoint, anything else (other settings, no checkpoint) is trained again.
So ``make figures`` run twice trains nothing the second time, and a stopped one continues.

With ``jobs > 1`` runs train in that many worker processes, each with ``cores // jobs`` torch
threads: the small convolutions of the ``small`` preset use two threads poorly, two runs at a
time use the two cores well.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import torch

from lca_toolkit import RunState, open_run

from ..training import Experiment, ExperimentConfig
from ..training.config import same_run
from .settings import RunSpec


@dataclass
class RunOutcome:
    """What happened to one run."""

    name: str
    status: str  # "trained" | "reused" | "failed" | "blocked"
    seconds: float = 0.0
    test_auc: float = math.nan
    message: str = ""
    warnings: tuple[str, ...] = ()
    """What the run warned about, each once (printed under its line, not from the worker)."""


def store_state(config: ExperimentConfig) -> RunState:
    """``finished`` (same settings, done), ``resumable``, ``stale`` (remove) or ``missing``.

    See :meth:`lca_toolkit.RunDir.state`; a finished run is complete once it holds its results.
    """
    return config.run_dir.state(
        lambda run: same_run(run.config.get("experiment", {}), config),
        lambda run: "results" in run.attrs,
    )


def _remove(config: ExperimentConfig) -> None:
    run_dir = config.run_dir
    if not run_dir.removable():
        raise ValueError(f"{run_dir.store} is in the way of a recipe run and is not a run store")
    run_dir.remove()


def train_one(
    config: ExperimentConfig, resume: bool, threads: int
) -> tuple[float, float, tuple[str, ...]]:
    """Train one run (in a worker process, or in this one with ``jobs=1``, whose thread count
    is put back afterwards); returns ``(seconds, test AUC, warnings)``.

    Warnings are collected, each once, and handed back as one-line messages: a worker's
    warnings would otherwise reach the terminal as Python prints them, source line and all,
    through the parent's progress bar.
    """
    before = torch.get_num_threads()
    if threads > 0:
        torch.set_num_threads(threads)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t0 = time.perf_counter()
            result = Experiment(config, resume=resume, progress=False, echo=lambda _: None).run()
            seconds = time.perf_counter() - t0
        notes = tuple(dict.fromkeys(" ".join(str(w.message).split()) for w in caught))
        return seconds, result.test_auc, notes
    finally:
        torch.set_num_threads(before)


def threads_per_run(jobs: int, device_type: str = "cpu") -> int:
    """Torch threads of each run: ``cores // jobs`` on the CPU, never more than an
    ``OMP_NUM_THREADS`` the caller set (a test worker's 1, a batch job's share); 0 (torch's
    default) for CUDA runs."""
    if device_type == "cuda":
        return 0
    threads = max(1, (os.cpu_count() or 1) // max(1, jobs))
    limit = os.environ.get("OMP_NUM_THREADS", "")
    return min(threads, int(limit)) if limit.isdigit() and int(limit) > 0 else threads


def _prepare(config: ExperimentConfig) -> bool | None:
    """``None`` when the run is done, else whether to resume it."""
    state = store_state(config)
    if state == "finished":
        return None
    if state == "stale":
        _remove(config)
    Path(config.out).parent.mkdir(parents=True, exist_ok=True)
    return state == "resumable"


def unique_runs(specs: list[RunSpec]) -> list[RunSpec]:
    """Each run once (recipes that share a run name it the same way)."""
    seen: dict[str, RunSpec] = {}
    for spec in specs:
        seen.setdefault(spec.name, spec)
    missing = {n for s in seen.values() for n in s.needs} - set(seen)
    if missing:
        raise ValueError(f"recipe runs need runs that no recipe plans: {sorted(missing)}")
    return list(seen.values())


def run_all(
    specs: list[RunSpec],
    *,
    jobs: int = 1,
    echo: Callable[[str], None] = print,
    device_type: str = "cpu",
    on_done: Callable[[RunOutcome], None] | None = None,
) -> list[RunOutcome]:
    """Train every run in ``specs`` (see the module docstring); one failure blocks its dependants only.

    Args:
        jobs: runs trained at the same time (worker processes); 1 trains in this process.
        device_type: ``cuda`` runs keep torch's default threads.
        on_done: called with each run's outcome as it is known (a progress bar's tick).
    """
    runs = unique_runs(specs)
    outcomes: dict[str, RunOutcome] = {}
    pending = sorted(runs, key=lambda r: -r.cost)
    threads = threads_per_run(jobs, device_type)
    total = len(runs)
    running: dict[Future, tuple[RunSpec, ExperimentConfig]] = {}

    def new_pool() -> ProcessPoolExecutor | None:
        return (
            ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn"))
            if jobs > 1
            else None
        )

    pool = new_pool()

    def finish(spec: RunSpec, outcome: RunOutcome) -> None:
        outcomes[spec.name] = outcome
        extra = f", test AUC {outcome.test_auc:.3f}" if math.isfinite(outcome.test_auc) else ""
        took = f" in {outcome.seconds:.0f} s" if outcome.seconds else ""
        detail = f": {outcome.message}" if outcome.message else ""
        echo(f"[{len(outcomes)}/{total}] {spec.name}: {outcome.status}{took}{extra}{detail}")
        for note in outcome.warnings:
            echo(f"  warning: {note}")
        if on_done is not None:
            on_done(outcome)

    def ready(spec: RunSpec) -> bool | None:
        """True to start now, False to wait, None when blocked by a failed dependency."""
        states = [outcomes.get(n) for n in spec.needs]
        failed = any(o is not None and o.status in ("failed", "blocked") for o in states)
        if failed and not spec.soft_needs:
            return None
        return all(o is not None for o in states)

    try:
        while pending or running:
            for spec in list(pending):
                if pool is not None and len(running) >= jobs:
                    break
                go = ready(spec)
                if go is False:
                    continue
                pending.remove(spec)
                if go is None:
                    finish(spec, RunOutcome(spec.name, "blocked", message="a run it needs failed"))
                    continue
                try:
                    config = spec.build()
                    resume = _prepare(config)
                except Exception as exc:  # noqa: BLE001 - reported, dependants blocked
                    finish(spec, RunOutcome(spec.name, "failed", message=_one_line(exc)))
                    continue
                if resume is None:
                    auc = open_run(config.out).attrs["results"].get("test_auc", math.nan)
                    finish(spec, RunOutcome(spec.name, "reused", test_auc=auc))
                    continue
                if pool is None:
                    try:
                        seconds, auc, notes = train_one(config, resume, threads)
                        finish(spec, RunOutcome(spec.name, "trained", seconds, auc, warnings=notes))
                    except Exception as exc:  # noqa: BLE001
                        finish(spec, RunOutcome(spec.name, "failed", message=_one_line(exc)))
                else:
                    running[pool.submit(train_one, config, resume, threads)] = (spec, config)
            if running:
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                broken = False
                for future in done:
                    spec, _config = running.pop(future)
                    try:
                        seconds, auc, notes = future.result()
                        finish(spec, RunOutcome(spec.name, "trained", seconds, auc, warnings=notes))
                    except BrokenProcessPool:  # a worker died (killed, out of memory)
                        broken = True
                        message = "its worker process died; run the command again to resume it"
                        finish(spec, RunOutcome(spec.name, "failed", message=message))
                    except Exception as exc:  # noqa: BLE001
                        finish(spec, RunOutcome(spec.name, "failed", message=_one_line(exc)))
                if broken and not running and pool is not None:
                    pool.shutdown(wait=False, cancel_futures=True)
                    pool = new_pool()
            elif pending and all(ready(s) is False for s in pending):
                names = ", ".join(s.name for s in pending)
                raise ValueError(f"recipe runs wait on each other: {names}")
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return [outcomes[r.name] for r in runs]


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__

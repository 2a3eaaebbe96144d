"""The parts of ``make gpu-bench`` (``gpu_bench.py``): one function each, registered by name.

A part is a generator ``fn(ctx)`` that yields :class:`Row` objects (Markdown cells after the
card, commit, torch, CUDA and date columns) as soon as it has them, and may first yield an
:class:`Info` (the environment part does, for the row prefix). ``gpu_bench.py`` runs each part
in its own process with its own time limit, so a part may hang or crash without costing the rows
of the others. Adding a part is one function::

    @part("my_part", limit_s=60)
    def my_part(ctx: Context) -> Iterator[Row]:
        yield Row("what was measured", "the number", "what it is against, how")

``ctx.smoke`` asks for the same code path for a second or two on the CPU (``make test`` runs it,
so a part cannot rot between GPU runs). A benchmark script of its own (FSDP2's, for one)
is one :func:`script_part` line: the script's Markdown table body lines become rows.

The order of registration is the order of the run, most wanted first: a run cut short by the
machine's time limit loses the last parts.
"""

from __future__ import annotations

import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import input_pipeline  # noqa: E402
import lca_accuracy  # noqa: E402
import lca_cost  # noqa: E402
import recording_overhead  # noqa: E402

GPU_BOUND_GOAL = 0.8
"""End-to-end steps/s over the GPU-bound steps/s that counts as the input pipeline feeding the
GPU (issue goal)."""


@dataclass(frozen=True)
class Row:
    """One result: what was measured, the number, and what it is against or how it was run."""

    cells: tuple[str, ...]

    def __init__(self, *cells: object) -> None:
        object.__setattr__(self, "cells", tuple(str(c) for c in cells))


@dataclass(frozen=True)
class Info:
    """What the row prefix needs: card, GPU count, torch and CUDA versions."""

    values: dict[str, str]


@dataclass(frozen=True)
class Context:
    """What every part may read.

    Attributes:
        smoke: seconds on the CPU, the same code path (tiny preset, a step or two).
        device: ``cuda`` for the real run, ``cpu`` for the smoke run.
        scratch: synthetic data and temporary stores (kept between parts: generated once).
        workers: DataLoader workers for the end-to-end parts.
        env: environment for subprocesses (PYTHONPATH holds the repository and the wheels).
        installed: what was installed before the run (from the kept wheels or the index).
    """

    smoke: bool
    device: str
    scratch: Path
    workers: int
    env: dict[str, str] = field(default_factory=dict)
    installed: str = "nothing to install"

    @property
    def preset(self) -> str:
        return "tiny" if self.smoke else "paper"


@dataclass(frozen=True)
class Part:
    name: str
    limit_s: float
    smoke_limit_s: float
    run: Callable[[Context], Iterator[Row | Info]]


PARTS: dict[str, Part] = {}


def part(name: str, limit_s: float, smoke_limit_s: float = 60.0):
    """Register ``fn`` as the part ``name`` with its time limit on the GPU and in the smoke run."""

    def register(fn: Callable[[Context], Iterator[Row | Info]]):
        PARTS[name] = Part(name, limit_s, smoke_limit_s, fn)
        return fn

    return register


def short_card(name: str) -> str:
    """``NVIDIA H100 80GB HBM3`` -> ``H100``: the model number, else the whole name."""
    m = re.search(r"\b([A-Z]{1,2}\d{2,4}[A-Za-z]?)\b", name)
    return m.group(1) if m else name


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ------------------------------------------------------------------------------------- parts
@part("environment", limit_s=60, smoke_limit_s=30)
def environment(ctx: Context) -> Iterator[Row | Info]:
    import numpy
    import zarr

    cuda = torch.version.cuda or "none"
    n = torch.cuda.device_count() if ctx.device == "cuda" else 0
    if n:
        props = torch.cuda.get_device_properties(0)
        card, what = short_card(props.name), f"{n} x {props.name}, {props.total_memory >> 20} MiB"
    else:
        card = "CPU" if ctx.smoke else "none"
        what = f"no CUDA device: {platform.processor() or platform.machine()}"
    yield Info({"card": card, "gpus": str(n), "torch": torch.__version__, "cuda": cuda})
    yield Row(
        "machine",
        what,
        f"{os.cpu_count()} CPU cores, Python {platform.python_version()}, "
        f"zarr {zarr.__version__}, numpy {numpy.__version__}; packages: {ctx.installed}",
    )


@part("data", limit_s=150, smoke_limit_s=60)
def data(ctx: Context) -> Iterator[Row]:
    from mammo_models.training.config import DataSource, ExperimentConfig
    from mammo_models.training.data_setup import load_run_manifest

    t = time.perf_counter()
    config = ExperimentConfig(
        out=ctx.scratch / "unused.zarr",
        preset=ctx.preset,
        data=DataSource(synthetic_root=ctx.scratch / "synthetic"),
    )
    manifest = load_run_manifest(config)
    yield Row(
        f"synthetic data, --preset {ctx.preset}",
        f"{len(manifest.breasts)} breasts",
        f"generated or found in {time.perf_counter() - t:.0f} s (no download)",
    )


@part("end_to_end", limit_s=150)
def end_to_end(ctx: Context) -> Iterator[Row]:
    """Steps/s with the batch on the device, then from the run's own loader per ``--feed``."""
    steps, warmup = (1, 1) if ctx.smoke else (50, 3)
    device = torch.device(ctx.device)
    what = f"Joint ResNet-22, --preset {ctx.preset}, batch 4, {steps} steps"
    bound = None
    for name, rate in input_pipeline.train_rates(
        ctx.scratch, ctx.workers, steps, device, ctx.preset, warmup
    ):
        if bound is None:
            bound = rate
            yield Row(
                f"training, {what}: {name}", f"{rate:.2f} steps/s", f"{8 * rate:.0f} images/s"
            )
            continue
        share = rate / bound
        verdict = "met" if share >= GPU_BOUND_GOAL else "missed"
        yield Row(
            f"training, {what}: {name}",
            f"{rate:.2f} steps/s",
            f"{share:.2f} of the GPU-bound rate (goal >= {GPU_BOUND_GOAL}: {verdict}); "
            f"{8 * rate:.0f} images/s",
        )


@part("lca_accuracy", limit_s=180)
def accuracy(ctx: Context) -> Iterator[Row]:
    """|residual| / |loss change| at k = 60 for ``lca-run mammo``'s default rule and Simpson."""
    limit = PARTS["lca_accuracy"].smoke_limit_s if ctx.smoke else PARTS["lca_accuracy"].limit_s
    every, subset = (2, 2) if ctx.smoke else (60, 32)
    args = lca_accuracy.parser().parse_args(
        [
            "--preset", ctx.preset,
            "--steps", str(every if ctx.smoke else 600),
            "--every", str(every),
            "--rules", "default", "simpson",
            "--lr", "1e-5",
            "--subset", str(subset),
            "--device", ctx.device,
            "--workers", str(ctx.workers),
            "--e-on-device",
            "--max-seconds", str(limit - 45),  # model, data and E first; the table after
            "--synthetic-root", str(ctx.scratch / "synthetic"),
        ]
    )  # fmt: skip
    outcome = lca_accuracy.measure(args)
    print(outcome.header, file=sys.stderr)
    names = {
        "default": "default rule (adaptive, rel_tol 0.01, at most 8 panels)",
        "simpson": "Simpson",
    }
    for rule_k, intervals, median, p90, aggregate, passes in outcome.rows():
        rule = rule_k.split(",")[0]
        yield Row(
            f"LCA accuracy, --preset {ctx.preset}, k = {every}, lr 1e-5, E = {subset}: "
            f"{names.get(rule, rule)}",
            f"median {median}",
            f"{intervals} intervals; 90th percentile {p90}; aggregate {aggregate}; "
            f"{passes} passes per interval",
        )


@part("recording_overhead", limit_s=60)
def recording(ctx: Context) -> Iterator[Row]:
    steps, repeats, batch = (1, 1, 2) if ctx.smoke else (10, 3, 4)
    device = torch.device(ctx.device)
    torch.manual_seed(0)
    _, model, groups, loss_fn, batches = recording_overhead.joint(steps, batch, device, ctx.preset)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    times = recording_overhead.measure_modes(model, opt, batches, groups, loss_fn, repeats)
    plain = statistics.median(times["plain"]) * 1e3
    for mode in recording_overhead.MODES[1:]:
        ratios = [t / p for t, p in zip(times[mode], times["plain"], strict=True)]
        yield Row(
            f"recording overhead, Joint ResNet-22, --preset {ctx.preset}, batch {batch}: "
            f"{mode} / plain",
            f"{statistics.median(ratios):.3f}",
            f"plain {plain:.1f} ms/step; spread {min(ratios):.3f}-{max(ratios):.3f}; "
            f"{steps} steps x {repeats} repeats",
        )


@part("lca_cost", limit_s=60)
def cost(ctx: Context) -> Iterator[Row]:
    subset, batch, repeats = (2, 2, 1) if ctx.smoke else (16, 4, 3)
    rules = ("simpson", "trapezoid") if ctx.smoke else lca_cost.RULES  # adaptive: 10-30 passes
    device = torch.device(ctx.device)
    model, groups, loss_fn, batches, _ = lca_cost.joint_problem(ctx.preset, subset, batch, device)
    times, passes = lca_cost.measure(model, groups, loss_fn, batches, repeats, device, rules)
    floor = statistics.median(times["floor"])
    for r in rules:
        ratios = [t / (p * f) for t, p, f in zip(times[r], passes[r], times["floor"], strict=True)]
        yield Row(
            f"LCA cost against its floor, --preset {ctx.preset}, E = {subset} in batches of "
            f"{batch}: {r}",
            f"{statistics.median(ratios):.3f}",
            f"{statistics.mean(passes[r]):.1f} passes x floor {floor:.3f} s; "
            f"spread {min(ratios):.3f}-{max(ratios):.3f}; {repeats} repeats",
        )


def _parses(argv: list[str]) -> None:
    """Raise if ``lca-run`` would reject ``argv`` (so the command cannot rot while skipped)."""
    from lca_toolkit_cli.run import main

    command = main.commands[argv[0]]
    command.make_context(f"lca-run {argv[0]}", list(argv[1:]))


@part("sync_bn", limit_s=180)
def sync_bn(ctx: Context) -> Iterator[Row]:
    """``--sync-bn`` under torchrun on 2 GPUs, against the same run without it."""
    steps = 40
    what = f"lca-run mammo --preset paper under torchrun, 2 ranks, {steps} steps, no LCA"

    def argv(out: Path, synced: bool) -> list[str]:
        extra = ["--sync-bn"] if synced else []
        return [
            "mammo", "--preset", "paper", "--device", "cuda", "--no-lca", "--quiet",
            "--max-steps", str(steps), "--workers", str(max(1, ctx.workers // 2)),
            "--synthetic-root", str(ctx.scratch / "synthetic"), "--out", str(out),
            "--overwrite", *extra,
        ]  # fmt: skip

    _parses(argv(ctx.scratch / "syncbn.zarr", True))
    gpus = torch.cuda.device_count() if ctx.device == "cuda" else 0
    if gpus < 2:
        reason = "no CUDA device" if ctx.device != "cuda" else f"{gpus} GPU"
        yield Row(f"--sync-bn: {what}", "skipped", f"{reason}; needs 2 or more GPUs")
        return
    seconds = {}
    for synced in (False, True):
        out = ctx.scratch / f"syncbn_{synced}.zarr"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        cmd += ["--nproc_per_node=2", "-m", "lca_toolkit_cli.run", *argv(out, synced)]
        t = time.perf_counter()
        done = subprocess.run(cmd, env=ctx.env, cwd=ROOT, capture_output=True, text=True)
        seconds[synced] = time.perf_counter() - t
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            yield Row(f"--sync-bn={synced}: {what}", "failed", f"exit {done.returncode}: {tail}")
            return
    yield Row(
        f"--sync-bn: {what}",
        f"finished in {seconds[True]:.0f} s",
        f"without --sync-bn {seconds[False]:.0f} s (whole commands: start, data, steps, test)",
    )


def script_rows(ctx: Context, script: Path, args: list[str]) -> Iterator[Row]:
    """Run ``script`` and turn the body lines of the Markdown tables it prints into rows."""
    cmd = [sys.executable, str(script), *args]
    proc = subprocess.Popen(cmd, env=ctx.env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    held: str | None = None  # a table line waits one line: a separator after it makes it a header
    for line in proc.stdout:
        line = line.strip()
        is_table = line.startswith("|") and line.endswith("|")
        cells = [c.strip() for c in line.strip("|").split("|")] if is_table else []
        if cells and all(re.fullmatch(r":?-+:?", c) for c in cells):
            held = None
            continue
        if held is not None:
            yield Row(*[c.strip() for c in held.strip("|").split("|")])
        held = line if is_table else None
    if held is not None:
        yield Row(*[c.strip() for c in held.strip("|").split("|")])
    if proc.wait() != 0:
        yield Row(script.name, "failed", f"exit {proc.returncode}")


def script_part(name: str, pattern: str, limit_s: float, smoke_args: list[str]) -> None:
    """Register a part that runs every ``benchmarks/<pattern>`` script (GPU: no arguments;
    smoke run: ``smoke_args``), or says that there is none."""

    def run(ctx: Context) -> Iterator[Row]:
        scripts = sorted(BENCH.glob(pattern))
        if not scripts:
            yield Row(name, "skipped", f"no benchmarks/{pattern} in this commit")
        for script in scripts:
            yield from script_rows(ctx, script, smoke_args if ctx.smoke else [])

    part(name, limit_s)(run)


script_part("fsdp2", "fsdp2_*.py", limit_s=120, smoke_args=["--smoke"])

"""Accuracy of step-k LCA on the real model: |residual| / |loss change| per rule and k.

Trains the demo Joint ResNet-22 (synthetic two-view testbed, Adam, batch 4, the run's own
sampler and window jitter) for ``--steps`` optimizer steps. Beside the training loop, one
:class:`~lca_toolkit.lca.LcaEngine` per (k, rule) measures LCA on the same trajectory and the same
fixed evaluation subset E (drawn as ``lca-run`` draws it: the preset's size, half with a finding),
with train-mode BatchNorm on E as in ``lca-run mammo``. The engines never change training (they
work on copies), so every rule sees exactly the same intervals.

Per (k, rule) it prints the median and 90th percentile of ``|residual| / |loss change|`` over
intervals, the aggregate ``sum |residual| / sum |loss change|`` and the mean gradient passes per
interval. The first interval of each engine also computes its left endpoint; passes count the
steady state (endpoint reuse).

    python benchmarks/lca_accuracy.py --steps 360 --every 60 15
    python benchmarks/lca_accuracy.py --full-res --device cuda --steps 600 --every 60

``--full-res`` selects the paper preset (CC 2677x1942, MLO 2974x1748, batch 4, E = 970 breasts);
with the bundled synthetic data these are the demo images upsampled 16x.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Subset

import mammo_models as mm
from lca_toolkit.lca import LcaConfig, LcaEngine
from lca_toolkit.quadrature import AdaptiveOptions
from mammo_models.data import set_epoch
from mammo_models.training.config import (
    TRAIN_PRESETS,
    DataSource,
    ExperimentConfig,
    RecordConfig,
)
from mammo_models.training.data_setup import (
    build_run_data,
    eval_loader,
    lca_eval_batches,
    lca_subset,
)

RULES = ("simpson", "trapezoid", "lobatto4", "adaptive")
DEFAULT = "default"  # lca-run mammo's rule: adaptive, RecordConfig's rel_tol and max_panels


@dataclass
class Tally:
    """Residuals of one (k, rule) engine, one entry per interval."""

    ratios: list[float] = field(default_factory=list)
    abs_residual: list[float] = field(default_factory=list)
    abs_change: list[float] = field(default_factory=list)
    passes: list[int] = field(default_factory=list)

    def add(self, residual: float, change: float, passes: int) -> None:
        self.abs_residual.append(abs(residual))
        self.abs_change.append(abs(change))
        self.ratios.append(abs(residual) / abs(change) if change != 0 else math.inf)
        self.passes.append(passes)


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def rule_config(k: int, rule: str, bn_policy: str) -> LcaConfig:
    """The LcaConfig of ``rule`` (``default``: ``lca-run mammo``'s own adaptive settings)."""
    if rule == DEFAULT:
        record = RecordConfig()
        adaptive = AdaptiveOptions(rel_tol=record.rel_tol, max_panels=record.max_panels)
        return LcaConfig(k, record.quadrature, adaptive=adaptive, bn_policy=bn_policy)
    return LcaConfig(k, rule, bn_policy=bn_policy)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--steps", type=int, default=360, help="optimizer steps to train")
    p.add_argument("--every", type=int, nargs="+", default=[60, 15], help="k values")
    p.add_argument("--rules", nargs="+", default=list(RULES), choices=(*RULES, DEFAULT))
    p.add_argument("--preset", default="demo", choices=tuple(TRAIN_PRESETS))
    p.add_argument("--full-res", action="store_true", help="the paper preset (full resolution)")
    p.add_argument("--subset", type=int, default=None, help="breasts in E (default: preset's)")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bn-policy", default="train", choices=("train", "interpolate", "none"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers of training")
    p.add_argument("--feed", default="auto", choices=("auto", "workers", "device"))
    p.add_argument(
        "--e-on-device",
        action="store_true",
        help="decode E once (with --workers) and keep it on the device, whatever its size "
        "(lca-run keeps E above 512 MiB a loader that decodes it at every pass)",
    )
    p.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        help="stop training after this long and report the intervals measured so far",
    )
    p.add_argument(
        "--synthetic-root", type=Path, default=Path("data/synthetic"), help="synthetic data cache"
    )
    return p


@dataclass
class Outcome:
    """What :func:`measure` found: one tally per (k, rule) and a line that says on what."""

    header: str
    tallies: dict[tuple[int, str], Tally]

    def rows(self) -> list[tuple[str, int, str, str, str, str]]:
        """Per (k, rule): intervals, median, 90th percentile, aggregate, passes (as printed)."""
        out = []
        for (k, rule), tally in self.tallies.items():
            if not tally.ratios:
                out.append((f"{rule}, k = {k}", 0, "-", "-", "-", "-"))
                continue
            ratios = np.asarray(tally.ratios)
            aggregate = sum(tally.abs_residual) / max(sum(tally.abs_change), 1e-300)
            out.append(
                (
                    f"{rule}, k = {k}",
                    len(ratios),
                    f"{np.median(ratios):.2%}",
                    f"{np.percentile(ratios, 90):.2%}",
                    f"{aggregate:.2%}",
                    f"{statistics.mean(tally.passes):.1f}",
                )
            )
        return out


def measure(a: argparse.Namespace) -> Outcome:
    """Train for ``a.steps`` steps (or ``a.max_seconds``) with every engine measuring beside."""
    if a.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {a.steps}")
    if any(k < 1 for k in a.every):
        raise ValueError(f"--every values must be >= 1, got {a.every}")
    preset = "paper" if a.full_res else a.preset
    device = torch.device(a.device)
    config = ExperimentConfig(
        out=Path("unused.zarr"),
        preset=preset,
        lr=a.lr,
        seed=a.seed,
        device=a.device,
        num_workers=a.workers,
        feed=a.feed,
        data=DataSource(synthetic_root=a.synthetic_root),
    )
    tp = config.train_preset
    subset = a.subset or tp.lca_subset
    run_data = build_run_data(config, device)
    if a.e_on_device:  # decoded once by --workers workers, kept on the device whatever its size
        dataset, indices = lca_subset(run_data, "fixed-train", subset, config.seed, 0)
        loader = eval_loader(Subset(dataset, indices.tolist()), tp.eval_batch_size, a.workers)
        eval_batches = [to_device(b, device) for b in loader]
    else:
        eval_batches = lca_eval_batches(run_data, subset, tp.eval_batch_size, config.seed)
    if isinstance(eval_batches, list):  # small E is kept decoded; a large one stays a loader
        eval_batches = [to_device(b, device) for b in eval_batches]

    torch.manual_seed(config.seed)
    model = mm.build_model("joint").to(device)
    groups = mm.param_groups(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)

    def loss_fn(m, b):
        return mm.per_sample_loss(m(b), b)

    engines = {
        (k, rule): LcaEngine(
            model, groups, loss_fn, eval_batches, rule_config(k, rule, a.bn_policy)
        )
        for k in a.every
        for rule in a.rules
    }
    tallies = {key: Tally() for key in engines}
    first = dict.fromkeys(engines, True)
    lca_seconds = 0.0
    start = time.perf_counter()
    step, epoch, stop = 0, 0, False
    while step < a.steps and not stop:
        set_epoch(run_data.loader, epoch)
        model.train()
        for batch in run_data.loader:
            batch = run_data.to_model_batch(batch, device)
            optimizer.zero_grad(set_to_none=True)
            mm.per_sample_loss(model(batch), batch).mean().backward()
            optimizer.step()
            step += 1
            t = time.perf_counter()
            for key, engine in engines.items():
                k, _ = key
                if step % k:
                    continue
                r = engine.measure(step)
                passes = r.passes - 1 if first[key] else r.passes
                first[key] = False
                tallies[key].add(float(r.residual), float(r.loss_end - r.loss_start), passes)
            lca_seconds += time.perf_counter() - t
            elapsed = time.perf_counter() - start
            at_end = step % max(a.every) == 0
            if at_end:
                print(f"step {step}/{a.steps}, {elapsed:.0f} s", file=sys.stderr, flush=True)
            # at an interval's end, stop if the next one would not end within --max-seconds
            late = (
                a.max_seconds is not None and elapsed * (step + max(a.every)) > a.max_seconds * step
            )
            if step >= a.steps or (at_end and late):
                stop = True
                break
        epoch += 1
    wall = time.perf_counter() - start

    n_params = sum(p.numel() for p in model.parameters())
    windows = {v: run_data.data_config.window(v) for v in ("CC", "MLO")}
    header = (
        f"Joint ResNet-22 ({n_params:,} parameters), preset {preset} (CC {windows['CC']}, "
        f"MLO {windows['MLO']}), batch {config.batch_size}, lr {config.lr}, E = {subset} breasts "
        f"(eval batch {tp.eval_batch_size}), BN policy {a.bn_policy}, {step} steps "
        f"({epoch} epochs started), device {device}, feed {run_data.feed}, "
        f"threads {torch.get_num_threads()}; {wall:.0f} s, of which LCA {lca_seconds:.0f} s"
    )
    return Outcome(header, tallies)


def main() -> None:
    p = parser()
    a = p.parse_args()
    try:
        outcome = measure(a)
    except ValueError as e:
        p.error(str(e))
    print(outcome.header)
    print()
    print(
        "| rule, k | intervals | median \\|residual\\| / \\|ΔL\\| | 90th percentile "
        "| Σ\\|residual\\| / Σ\\|ΔL\\| | passes per interval |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for row in outcome.rows():
        print("| " + " | ".join(str(c) for c in row) + " |")


if __name__ == "__main__":
    main()

"""How often the true per-group LCA error exceeds the stored error estimate (``lca/error_by_group``).

Trains the Joint ResNet-22 on the synthetic testbed (Adam, batch 4, the run's own sampler) for
``--steps`` optimizer steps, as a recipe's LCA run does: the preset's k and E, train-mode
BatchNorm, the adaptive rule with the recipes' settings (``RecordConfig``: rel_tol 1%, at most 8
panels). Beside it, a reference engine on the same intervals integrates the chord with
composite Simpson on 32 panels (64 subintervals, 65 nodes; rel_tol 0 so every level is done),
which stands in for the true LCA. Per (interval, group) it counts whether
``|LCA - reference| > estimate``, for the stored (covering) estimate and for the raw one
(|last level - previous level|, before :func:`lca_toolkit.chord.covering_error` raised it),
and how many intervals had ``sum of raw estimates < |residual|``.

    python benchmarks/lca_error_coverage.py --preset tiny --steps 60
    python benchmarks/lca_error_coverage.py --preset demo --steps 120
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

import lca_toolkit.lca_result as lca_result
import mammo_models as mm
from lca_toolkit.lca import LcaConfig, LcaEngine
from lca_toolkit.quadrature import AdaptiveOptions
from mammo_models.data import set_epoch
from mammo_models.training.config import TRAIN_PRESETS, DataSource, ExperimentConfig, RecordConfig
from mammo_models.training.data_setup import build_run_data, lca_eval_batches

RAW: list[np.ndarray] = []
"""Raw per-group estimates of the engine under test, in the order its intervals were measured."""


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--preset", default="tiny", choices=tuple(TRAIN_PRESETS))
    p.add_argument("--steps", type=int, default=60, help="optimizer steps to train")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reference-panels", type=int, default=32)
    p.add_argument("--synthetic-root", type=Path, default=Path("data/synthetic"))
    a = p.parse_args()
    config = ExperimentConfig(
        out=Path("unused.zarr"),
        preset=a.preset,
        lr=a.lr,
        seed=a.seed,
        device="cpu",
        data=DataSource(synthetic_root=a.synthetic_root),
    )
    tp, record = config.train_preset, RecordConfig()
    run_data = build_run_data(config)
    eval_batches = lca_eval_batches(run_data, tp.lca_subset, tp.eval_batch_size, config.seed)
    torch.manual_seed(config.seed)
    model = mm.build_model("joint")
    groups = mm.param_groups(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)

    def loss_fn(m, b):
        return mm.per_sample_loss(m(b), b)

    k = tp.lca_every
    rule = AdaptiveOptions(rel_tol=record.rel_tol, max_panels=record.max_panels)
    exact = AdaptiveOptions(rel_tol=0.0, abs_tol=0.0, max_panels=a.reference_panels)
    tested = LcaEngine(
        model, groups, loss_fn, eval_batches, LcaConfig(k, "adaptive", adaptive=rule)
    )
    reference = LcaEngine(
        model, groups, loss_fn, eval_batches, LcaConfig(k, "adaptive", adaptive=exact)
    )
    cover = lca_result.covering_error

    def spy(error, lca, residual):
        RAW.append(error.detach().cpu().numpy().copy())
        return cover(error, lca, residual)

    rows = []
    start, step, epoch = time.perf_counter(), 0, 0
    while step < a.steps:
        set_epoch(run_data.loader, epoch)
        model.train()
        for batch in run_data.loader:
            optimizer.zero_grad(set_to_none=True)
            mm.per_sample_loss(model(batch), batch).mean().backward()
            optimizer.step()
            step += 1
            if step % k == 0:
                lca_result.covering_error = spy
                r = tested.measure(step)
                lca_result.covering_error = cover
                ref = reference.measure(step)
                rows.append(
                    (
                        r.by_group.numpy(),
                        r.error_by_group.numpy(),
                        RAW[-1],
                        ref.by_group.numpy(),
                        float(r.residual),
                        r.passes,
                    )
                )
                print(f"step {step}/{a.steps}", file=sys.stderr, flush=True)
            if step >= a.steps:
                break
        epoch += 1
    lca, est, raw, true, residual, passes = (np.array(x) for x in zip(*rows, strict=True))
    miss = np.abs(lca - true) > est
    miss_raw = np.abs(lca - true) > raw
    short = raw.sum(axis=1) < np.abs(residual)
    print(
        f"preset {a.preset}, lr {a.lr}, {step} steps, k = {k}, E = {tp.lca_subset} breasts, "
        f"adaptive rule (rel_tol {record.rel_tol}, at most {record.max_panels} panels; "
        f"{passes.mean():.1f} passes per interval), reference composite Simpson "
        f"{a.reference_panels} panels; {time.perf_counter() - start:.0f} s"
    )
    print(f"groups: {', '.join(groups.names)}")
    n = miss.size
    print(f"intervals: {len(rows)}; (interval, group) pairs: {n}")
    print(f"true error > stored (covering) estimate: {miss.sum()} of {n} ({miss.mean():.1%})")
    print(
        f"true error > raw estimate:               {miss_raw.sum()} of {n} ({miss_raw.mean():.1%})"
    )
    print(f"intervals whose raw estimates sum below |residual|: {short.sum()} of {len(rows)}")
    print(
        f"covering sum >= |residual| in every interval: {bool((est.sum(1) >= np.abs(residual)).all())}"
    )
    ratio = est / np.maximum(np.abs(lca - true), 1e-300)
    print(f"median estimate / true error: {np.median(ratio):.2f}")


if __name__ == "__main__":
    main()

"""Wall time of one input-ablation measurement against its floor, measured side by side.

The floor is (subsets evaluated) x (one plain ``torch.no_grad()`` eval-mode forward pass of
``loss_fn`` over the evaluation subset E): 2**M subsets for M <= 4 modalities. This script times,
interleaved in one process and on one model:

* ``floor``: one plain pass over E (``loss_fn(model, batch)`` per batch, no autograd, eval mode);
* one :meth:`AblationProbe.measure` (parameter copies, muting, every subset),

and prints a markdown row: the probe's time divided by (subsets x floor), median and spread over
repeats, in wall time and in process CPU time (steadier where other work shares the cores). The first measurement (which also computes the per-input means over E for
``--mute mean``) is a warm-up and not timed.

    python benchmarks/ablation_cost.py --model two_input --repeats 5
    python benchmarks/ablation_cost.py --model two_input --threads 1 --repeats 15
    python benchmarks/ablation_cost.py --model joint --preset demo --subset 24 --repeats 5
    python benchmarks/ablation_cost.py --model joint --device cuda --subset 48 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))

sys.path.insert(0, str(ROOT / "benchmarks"))
from lca_cost import joint_problem, sync, two_input_problem  # noqa: E402

from lca_toolkit import AblationProbe, Modality  # noqa: E402

PROBLEMS = {"joint": ("cc", "mlo"), "two_input": ("audio", "image")}
"""The modalities of each benchmark model (the models and E are :mod:`lca_cost`'s)."""


def measure(model, loss_fn, batches, probe: AblationProbe, repeats: int, device: torch.device):
    """(wall, process CPU) seconds of the floor pass and of one probe measurement per repeat,
    interleaved. CPU time is the steadier comparison on a machine shared with other work."""
    model.train()

    def clock() -> tuple[float, float]:
        sync(device)
        return time.perf_counter(), time.process_time()

    def since(t0: tuple[float, float]) -> tuple[float, float]:
        t1 = clock()
        return t1[0] - t0[0], t1[1] - t0[1]

    def floor_pass() -> tuple[float, float]:
        model.eval()
        t0 = clock()
        with torch.no_grad():
            for b in batches:
                loss_fn(model, b).sum()
        took = since(t0)
        model.train()
        return took

    probe.measure(0)  # warm-up (and the means over E)
    floor_pass()
    floors, probes = [], []
    for rep in range(repeats):
        floors.append(floor_pass())
        t0 = clock()
        probe.measure(rep + 1)
        probes.append(since(t0))
    return floors, probes


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", choices=("joint", "two_input"), default="two_input")
    p.add_argument("--preset", default="demo")
    p.add_argument("--subset", type=int, default=24, help="breasts in E (joint)")
    p.add_argument("--batch", type=int, default=8, help="evaluation batch size (joint)")
    p.add_argument("--mute", choices=("zeros", "mean"), default="mean")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    if a.model == "joint":
        model, _, loss_fn, batches, name = joint_problem(a.preset, a.subset, a.batch, device)
    else:
        model, _, loss_fn, batches, name = two_input_problem(device)
    views = PROBLEMS[a.model]
    probe = AblationProbe(model, loss_fn, batches, {v: Modality(v, mute=a.mute) for v in views})
    floors, probes = measure(model, loss_fn, batches, probe, a.repeats, device)
    k = len(probe.subsets)

    def ratios(i: int) -> str:
        r = [t[i] / (k * f[i]) for t, f in zip(probes, floors, strict=True)]
        return f"{statistics.median(r):.2f} ({min(r):.2f}-{max(r):.2f})"

    def med(ts: list[tuple[float, float]]) -> float:
        return statistics.median(t[0] for t in ts)

    n = sum(len(next(iter(b.values()))) for b in batches)
    print(
        f"{name}, E = {n} samples in {len(batches)} batches, {len(views)} modalities "
        f"(mute {a.mute}), device {device}, threads {torch.get_num_threads()}, {a.repeats} repeats"
    )
    print(
        "| model | device | subsets | floor pass (s) | probe (s) | "
        "probe / (subsets x floor), wall | same, process CPU time |"
    )
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {name} | {device} | {k} | {med(floors):.3f} | {med(probes):.3f} | {ratios(0)} "
        f"| {ratios(1)} |"
    )


if __name__ == "__main__":
    main()

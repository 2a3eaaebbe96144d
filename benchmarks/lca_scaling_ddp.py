"""Wall time of one LCA measurement with 1 and 2 DDP ranks (gloo on the CPU), as a ratio to 1 rank.

Each rank evaluates its shard of the evaluation subset E (batches ``rank, rank + W, ...``) and one
all-reduce per gradient pass combines the shards, so with W ranks on W free cores a measurement
should take about ``1/W`` of the 1-rank time plus the all-reduces. The driver launches
``torchrun --standalone --nproc_per_node=W`` for W = 1 and W = 2 in turn (interleaved repeats, the
same launcher for both), each launch times several Simpson measurements after small Adam steps,
and reports the slowest rank's median per launch. Every rank uses ``--threads`` intra-op threads
(default 1), so W ranks use W times the cores of one: the question is how well the work splits.

    python benchmarks/lca_scaling_ddp.py --model two_input --repeats 5
    python benchmarks/lca_scaling_ddp.py --model joint --subset 16 --batch 4 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def worker(a: argparse.Namespace) -> None:
    """One torchrun launch: time ``--measures`` LCA measurements, rank 0 writes the medians."""
    import torch
    import torch.distributed as dist

    sys.path.insert(0, str(ROOT / "benchmarks"))
    sys.path.insert(0, str(ROOT / "examples"))
    from lca_cost import joint_problem, two_input_problem

    from lca_toolkit import distributed
    from lca_toolkit.lca import LcaConfig, LcaEngine

    with distributed.process_group():
        world = distributed.world_size()
        torch.set_num_threads(a.threads)
        device = torch.device("cpu")
        if a.model == "joint":
            model, groups, loss_fn, batches, _ = joint_problem("demo", a.subset, a.batch, device)
        else:
            model, groups, loss_fn, batches, _ = two_input_problem(device)
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)

        def move() -> None:  # the same deterministic step on every rank: identical models
            opt.zero_grad(set_to_none=True)
            loss_fn(model, batches[0]).mean().backward()
            opt.step()

        engine = LcaEngine(model, groups, loss_fn, batches, LcaConfig(every=1))
        move()
        engine.measure(1)  # warm-up (also the first interval's extra left-endpoint pass)
        times = []
        for step in range(2, a.measures + 2):
            move()
            distributed.barrier()
            t = time.perf_counter()
            engine.measure(step)
            elapsed = torch.tensor([time.perf_counter() - t], dtype=torch.float64)
            if distributed.is_distributed():
                dist.all_reduce(elapsed, op=dist.ReduceOp.MAX)  # the slowest rank sets the pace
            times.append(float(elapsed))
        if distributed.is_main():
            Path(a.result).write_text(json.dumps({"world": world, "times": times}))


def launch(world: int, a: argparse.Namespace, result: Path) -> list[float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(a.threads)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cmd += [f"--nproc_per_node={world}", __file__, "--worker", "--result", str(result)]
    cmd += ["--model", a.model, "--subset", str(a.subset), "--batch", str(a.batch)]
    cmd += ["--measures", str(a.measures), "--threads", str(a.threads)]
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    return json.loads(result.read_text())["times"]


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", choices=("joint", "two_input"), default="two_input")
    p.add_argument("--subset", type=int, default=16, help="breasts in E (joint)")
    p.add_argument("--batch", type=int, default=4, help="batch size of E (joint)")
    p.add_argument("--measures", type=int, default=5, help="timed measurements per launch")
    p.add_argument("--repeats", type=int, default=5, help="interleaved launches per world size")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads per rank")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        worker(a)
        return
    medians: dict[int, list[float]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.repeats):
            for world in (1, 2) if r % 2 == 0 else (2, 1):
                times = launch(world, a, Path(tmp) / f"w{world}.json")
                medians[world].append(statistics.median(times))
                print(f"repeat {r}: {world} rank(s): {medians[world][-1]:.4f} s", flush=True)
    base = statistics.median(medians[1])
    print(f"\nLCA (Simpson) per measurement, {a.model}, {a.threads} thread(s) per rank")
    print("| ranks | median s | ratio to 1 rank (min-max over repeats) |")
    print("| --- | --- | --- |")
    for world, ms in medians.items():
        ratios = [m / base for m in ms]
        print(
            f"| {world} | {statistics.median(ms):.4f} | {statistics.median(ms) / base:.3f} "
            f"({min(ratios):.3f}-{max(ratios):.3f}) |"
        )


if __name__ == "__main__":
    main()

"""Recording a model sharded with FSDP2: overhead on the step, LCA cost against its floor, and the
LCA engine's memory per rank against the unsharded engine's.

Launches ``torchrun --standalone --nproc_per_node=W`` (gloo on the CPU, NCCL on GPUs) once; every
rank trains the two-tower example (``examples/fsdp2_two_tower.py``, each tower and the root
sharded) and measures, interleaved, per repeat:

* ``step``: the FSDP2 training step alone (forward, backward, AdamW) against the same step with
  a Tracker recording gradient norms (``tracker``: per-tensor local norms, one all-reduce of the
  row per step, plus the update norms);
* ``lca``: one Simpson LCA measurement (2 gradient passes over E through the FSDP module, the
  chord written into the local shards, everything restored) against its floor, 2 plain forward
  and backward passes over the same batches of E through the same FSDP module;
* the bytes the engine holds between intervals (its snapshot and endpoint gradient, local
  shards) on each rank, against an engine built on the same model unsharded.

    python benchmarks/fsdp2_recording.py --width 512 --depth 4 --steps 10 --repeats 5
    python benchmarks/fsdp2_recording.py --smoke    # one rank in this process, seconds (make test)

With GPUs it starts one rank per GPU (NCCL); on the CPU, 2 gloo ranks.

Prints one Markdown table, one row per measurement (``| measured | result | against, how |``,
the rows ``make gpu-bench`` collects): the slowest rank's medians, ratios with min-max over
repeats.
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


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def worker(a: argparse.Namespace) -> None:
    import torch
    import torch.distributed as dist

    sys.path.insert(0, str(ROOT / "examples"))
    from fsdp2_two_tower import GROUPS, TwoTower, make_batches, per_sample_loss
    from torch.distributed.fsdp import fully_shard

    from lca_toolkit import Tracker, distributed
    from lca_toolkit.groups import ParamGroups
    from lca_toolkit.lca import LcaConfig, LcaEngine

    with distributed.process_group():
        rank, world = distributed.rank(), distributed.world_size()
        torch.set_num_threads(a.threads)
        device = torch.device(
            f"cuda:{distributed.local_rank()}" if torch.cuda.is_available() else "cpu"
        )

        def build() -> torch.nn.Module:
            torch.manual_seed(0)
            return TwoTower(width=a.width, depth=a.depth).to(device)

        unsharded = build()
        plain_engine = LcaEngine(
            unsharded, ParamGroups.from_prefixes(unsharded, GROUPS), per_sample_loss, [],
            LcaConfig(every=1),
        )  # fmt: skip
        unsharded_bytes = 2 * sum(t.numel() * t.element_size() for t in plain_engine._snap)
        del plain_engine, unsharded

        model = build()
        for tower in (model.image, model.text):
            fully_shard(tower)
        fully_shard(model)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        n_params = sum(p.numel() for p in model.parameters())
        batches = [
            {k: v.to(device) for k, v in b.items()}
            for b in make_batches(a.steps * a.batch, a.batch, 0)
        ]
        eval_batches = [
            {k: v.to(device) for k, v in b.items()}
            for b in make_batches(a.eval_batches * a.batch, a.batch, 1)
        ]

        def step(tracker=None) -> None:
            batch = distributed.shard_batch(batches[0], rank, world)
            opt.zero_grad(set_to_none=True)
            loss = per_sample_loss(model, batch).mean()
            loss.backward()
            if tracker is not None:
                tracker.after_backward(loss)
            opt.step()
            if tracker is not None:
                tracker.after_step()

        def time_steps(tracker=None) -> float:
            _sync(device)
            start = time.perf_counter()
            for _ in range(a.steps):
                step(tracker)
            _sync(device)
            return (time.perf_counter() - start) / a.steps

        def floor_passes() -> float:
            """2 plain forward+backward passes over this rank's share of E through FSDP."""
            mine = eval_batches[rank::world]
            _sync(device)
            start = time.perf_counter()
            for _ in range(2):
                for batch in mine:
                    per_sample_loss(model, batch).sum().backward()
            opt.zero_grad(set_to_none=True)
            _sync(device)
            return time.perf_counter() - start

        tracker = Tracker(
            model,
            GROUPS,
            optimizer=opt,
            loss_fn=per_sample_loss,
            eval_batches=eval_batches,
            lca_every=10**9,
            transfer_every=64,
        )
        step(tracker)
        step()
        tracker.measure_lca()  # warm-up, and the first interval's extra left-endpoint pass
        rows = {"plain": [], "tracker": [], "lca": [], "floor": []}
        for _ in range(a.repeats):
            rows["plain"].append(time_steps())
            rows["tracker"].append(time_steps(tracker))
            rows["floor"].append(floor_passes())
            _sync(device)
            start = time.perf_counter()
            tracker.measure_lca()
            _sync(device)
            rows["lca"].append(time.perf_counter() - start)
        engine = tracker.engine
        held = sum(t.numel() * t.element_size() for t in engine._snap + engine._g_prev)
        tracker.close()
        out = torch.tensor([[statistics.median(v) for v in rows.values()]], dtype=torch.float64)
        gathered = [torch.zeros_like(out) for _ in range(world)]
        dist.all_gather(gathered, out)  # gloo: CPU tensors
        held_all = [0] * world
        dist.all_gather_object(held_all, held)
        if rank == 0:
            slowest = torch.cat(gathered).max(dim=0).values.tolist()
            Path(a.out).write_text(
                json.dumps(
                    {
                        "medians": dict(zip(rows, slowest, strict=True)),
                        "ratios": {
                            "tracker": [
                                t / p for t, p in zip(rows["tracker"], rows["plain"], strict=True)
                            ],
                            "lca": [t / f for t, f in zip(rows["lca"], rows["floor"], strict=True)],
                        },
                        "held": held_all,
                        "unsharded": unsharded_bytes,
                        "params": n_params,
                        "world": world,
                        "device": str(device),
                    }
                )
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--ranks", type=int, default=None, help="processes (default: the GPUs, else 2 on the CPU)"
    )
    parser.add_argument("--smoke", action="store_true", help="seconds on the CPU: every code path")
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--batch", type=int, default=64, help="global training batch")
    parser.add_argument("--eval-batches", type=int, default=4, help="batches of E")
    parser.add_argument("--steps", type=int, default=20, help="steps per timed block")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads per rank")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    a = parser.parse_args()
    if a.worker:
        worker(a)
        return
    if a.smoke:
        a.width, a.depth, a.batch, a.eval_batches, a.steps, a.repeats = 32, 1, 8, 2, 2, 1
    if a.ranks is None:
        import torch

        a.ranks = torch.cuda.device_count() or 2
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        if a.smoke:
            _smoke_in_process(a, out)
            r = json.loads(out.read_text())
        else:
            r = _launch(a, out)
    m, ratios = r["medians"], r["ratios"]

    def spread(values: list[float]) -> str:
        return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"

    mib = 2**20
    what = f"two towers, {r['params']:,} parameters, {r['world']} ranks, {r['device']}"
    held = ", ".join(f"{h / mib:.2f}" for h in r["held"])
    print("| measured | result | against, how |")
    print("| --- | --- | --- |")
    print(
        f"| FSDP2 step recorded by the Tracker ({what}) | {spread(ratios['tracker'])} x the "
        f"step alone | step alone {m['plain'] * 1e3:.1f} ms; median (min-max) over repeats |"
    )
    print(
        f"| one Simpson LCA measurement ({what}) | {spread(ratios['lca'])} x its floor | "
        f"floor: 2 plain passes over E, {m['floor'] * 1e3:.1f} ms; LCA {m['lca'] * 1e3:.1f} ms |"
    )
    print(
        f"| LCA engine memory per rank ({what}) | {held} MiB | the unsharded engine "
        f"{r['unsharded'] / mib:.2f} MiB (snapshot and endpoint gradient) |"
    )


def _smoke_in_process(a: argparse.Namespace, out: Path) -> None:
    """``--smoke``: one rank in this process (a one-rank gloo group), every code path of the
    worker in seconds, without a launcher."""
    import torch.distributed as dist

    dist.init_process_group("gloo", rank=0, world_size=1, store=dist.HashStore())
    try:
        a.out = str(out)
        worker(a)
    finally:
        dist.destroy_process_group()


def _launch(a: argparse.Namespace, out: Path) -> dict:
    """torchrun with ``a.ranks`` processes running :func:`worker`; its result."""
    args = [
        f"--{k.replace('_', '-')}={v}"
        for k, v in vars(a).items()
        if k not in ("worker", "out", "ranks", "smoke")
    ]
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={a.ranks}",
        __file__,
        "--worker",
        f"--out={out}",
        *args,
    ]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(a.threads),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(done.stderr[-3000:])
    return json.loads(out.read_text())


if __name__ == "__main__":
    main()

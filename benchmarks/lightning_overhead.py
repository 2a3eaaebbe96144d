"""Cost of the Lightning ``LcaCallback`` (gradient norms only, LCA off) on a whole ``fit``.

Two fits of the same small two-tower LightningModule on the same data, interleaved A B A B ... in
one process so machine noise hits both alike: ``plain`` (no callback) and ``callback`` (norms,
relative norms and update norms every optimizer step into an in-memory sink). Prints the median
wall time per fit and the ratio ``callback / plain`` with its spread over repeats.

    python benchmarks/lightning_overhead.py --steps 200 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from lightning_two_tower import GROUPS, TwoTower, data  # noqa: E402

from lca_toolkit.integrations.lightning import LcaCallback  # noqa: E402


def fit_seconds(steps: int, batch_size: int, with_callback: bool) -> float:
    torch.manual_seed(0)
    callbacks = [LcaCallback(GROUPS)] if with_callback else []  # store=None: in memory
    trainer = pl.Trainer(
        max_steps=steps, callbacks=callbacks, accelerator="cpu", devices=1, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )
    loader = DataLoader(data(steps * batch_size, seed=0), batch_size=batch_size)
    start = time.perf_counter()
    trainer.fit(TwoTower(), loader)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="optimizer steps per fit")
    parser.add_argument("--batch-size", type=int, default=32, help="samples per step")
    parser.add_argument("--repeats", type=int, default=5, help="fits of each kind")
    args = parser.parse_args(argv)
    fit_seconds(min(args.steps, 5), args.batch_size, True)  # warm-up: imports, first kernels
    times: dict[str, list[float]] = {"plain": [], "callback": []}
    for _ in range(args.repeats):
        for kind in times:
            times[kind].append(fit_seconds(args.steps, args.batch_size, kind == "callback"))
    ratios = [c / p for c, p in zip(times["callback"], times["plain"], strict=True)]
    plain, callback = statistics.median(times["plain"]), statistics.median(times["callback"])
    print(f"plain fit     {plain:8.3f} s  ({args.steps} steps, batch {args.batch_size})")
    print(f"with callback {callback:8.3f} s")
    print(f"ratio         {statistics.median(ratios):8.3f}  (min {min(ratios):.3f}, max {max(ratios):.3f})")
    return {"plain_s": plain, "callback_s": callback, "ratio": statistics.median(ratios)}


if __name__ == "__main__":
    main()

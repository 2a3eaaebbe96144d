"""Cost of gradient-norm recording on the training step, measured side by side.

Three ways to run the same training steps, interleaved A B C A B C ... in one process so machine
noise hits all of them alike:

* ``plain``: the bare training step (the floor);
* ``tracker``: the same step with ``lca_toolkit.Tracker`` recording per-group gradient norms,
  relative norms and update norms (no LCA) into an in-memory sink;
* ``naive``: the usual hand-written way: a Python loop over parameters calling
  ``p.grad.norm().item()`` and summing per group (one host sync per parameter).

Prints the median time per step and the ratio to ``plain`` with its spread (min-max over repeats).

    python benchmarks/recording_overhead.py --steps 50 --repeats 7
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from two_input_model import AudioImageNet, make_batches, per_sample_loss  # noqa: E402

from lca_toolkit import ParamGroups, Tracker  # noqa: E402

GROUPS = {"audio": "audio.", "image": "image.", "head": "head."}


def run_steps(mode: str, model, opt, batches, groups) -> float:
    tracker = Tracker(model, groups, optimizer=opt) if mode == "tracker" else None
    sync = torch.cuda.synchronize if batches[0]["audio"].is_cuda else (lambda: None)
    sync()
    start = time.perf_counter()
    for batch in batches:
        opt.zero_grad(set_to_none=True)
        loss = per_sample_loss(model, batch).mean()
        loss.backward()
        if tracker is not None:
            tracker.after_backward(loss)
        if mode == "naive":
            norms = {g: 0.0 for g in groups.names}
            for g, _, p in groups.named_parameters():
                norms[g] += p.grad.norm().item() ** 2
            _ = {g: v**0.5 for g, v in norms.items()}
        opt.step()
        if tracker is not None:
            tracker.after_step()
    if tracker is not None:
        tracker.close()
    sync()
    return (time.perf_counter() - start) / len(batches)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = AudioImageNet().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    groups = ParamGroups.from_prefixes(model, GROUPS)
    batches = [
        {k: v.to(device) for k, v in b.items()}
        for b in make_batches(args.steps * args.batch_size, args.batch_size, 0)
    ]
    modes = ("plain", "tracker", "naive")
    for mode in modes:  # warm-up
        run_steps(mode, model, opt, batches[:5], groups)
    times = {m: [] for m in modes}
    for _ in range(args.repeats):
        for mode in modes:
            times[mode].append(run_steps(mode, model, opt, batches, groups))
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"model AudioImageNet ({n_params:,} parameters, {len(groups)} groups), batch {args.batch_size}, "
        f"{args.steps} steps x {args.repeats} repeats, device {device}, threads {torch.get_num_threads()}"
    )
    print(f"{'mode':<10}{'ms/step':>10}{'ratio':>10}{'spread':>18}")
    for mode in modes:
        ratios = [t / p for t, p in zip(times[mode], times["plain"], strict=True)]
        print(
            f"{mode:<10}{statistics.median(times[mode]) * 1e3:>10.3f}{statistics.median(ratios):>10.3f}"
            f"{f'{min(ratios):.3f}-{max(ratios):.3f}':>18}"
        )


if __name__ == "__main__":
    main()

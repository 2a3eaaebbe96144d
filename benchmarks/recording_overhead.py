"""Cost of gradient-norm recording on the training step, measured side by side.

Three ways to run the same training steps, interleaved A B C A B C ... in one process so machine
noise hits all of them alike:

* ``plain``: the bare training step (the floor);
* ``tracker``: the same step with ``lca_toolkit.Tracker`` recording per-group gradient norms,
  relative norms and update norms (no LCA) into an in-memory sink;
* ``tracker_no_update``: the same without update norms (``record_update_norm=False``);
* ``naive``: the usual hand-written way: a Python loop over parameters calling
  ``p.grad.norm().item()`` and summing per group (one host sync per parameter).

Prints the median time per step and the ratio to ``plain`` with its spread (min-max over repeats).

    python benchmarks/recording_overhead.py --model two_input --steps 50 --repeats 7
    python benchmarks/recording_overhead.py --model joint --batch-size 4 --steps 20 --repeats 5
    python benchmarks/recording_overhead.py --full-res --device cuda --steps 20 --repeats 5

``--full-res`` is the paper's resolution (CC 2677x1942, MLO 2974x1748, batch 4): GPU work.
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


def two_input(steps: int, batch_size: int, device: torch.device):
    model = AudioImageNet().to(device)
    groups = ParamGroups.from_prefixes(model, GROUPS)
    batches = [
        {k: v.to(device) for k, v in b.items()}
        for b in make_batches(steps * batch_size, batch_size, 0)
    ]
    return "AudioImageNet", model, groups, per_sample_loss, batches


def joint(steps: int, batch_size: int, device: torch.device, preset: str = "demo"):
    """Joint ResNet-22 at a preset's window sizes, random images (speed does not depend on them)."""
    import mammo_models as mm
    from mammo_models.data import get_preset

    data = get_preset(preset).data_config()
    model = mm.build_model("joint").to(device)
    g = torch.Generator().manual_seed(0)
    batches = [
        {
            "cc": torch.randn(batch_size, 1, *data.window("CC"), generator=g).to(device),
            "mlo": torch.randn(batch_size, 1, *data.window("MLO"), generator=g).to(device),
            "malignant": (torch.rand(batch_size, generator=g) < 0.5).float().to(device),
            "benign": (torch.rand(batch_size, generator=g) < 0.5).float().to(device),
        }
        for _ in range(steps)
    ]
    name = f"Joint ResNet-22 ({preset} windows)"
    return name, model, mm.param_groups(model), lambda m, b: mm.per_sample_loss(m(b), b), batches


def run_steps(mode: str, model, opt, batches, groups, loss_fn) -> float:
    tracker = None
    if mode.startswith("tracker"):
        tracker = Tracker(model, groups, optimizer=opt, record_update_norm=mode == "tracker")
    first = next(iter(batches[0].values()))
    sync = torch.cuda.synchronize if first.is_cuda else (lambda: None)
    sync()
    start = time.perf_counter()
    for batch in batches:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model, batch).mean()
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


MODES = ("plain", "tracker", "tracker_no_update", "naive")


def measure_modes(model, opt, batches, groups, loss_fn, repeats: int) -> dict[str, list[float]]:
    """Seconds per step of every mode, one list per mode, the modes interleaved per repeat."""
    for mode in MODES:  # warm-up
        run_steps(mode, model, opt, batches[:3], groups, loss_fn)
    times: dict[str, list[float]] = {m: [] for m in MODES}
    for _ in range(repeats):
        for mode in MODES:
            times[mode].append(run_steps(mode, model, opt, batches, groups, loss_fn))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", choices=("two_input", "joint"), default="two_input")
    parser.add_argument("--preset", default="demo", help="window sizes of --model joint")
    parser.add_argument(
        "--full-res",
        action="store_true",
        help="the paper's resolution: --model joint --preset paper --batch-size 4",
    )
    args = parser.parse_args()
    if args.full_res:
        args.model, args.preset, args.batch_size = "joint", "paper", 4
    device = torch.device(args.device)
    torch.manual_seed(0)
    if args.model == "joint":
        name, model, groups, loss_fn, batches = joint(
            args.steps, args.batch_size, device, args.preset
        )
    else:
        name, model, groups, loss_fn, batches = two_input(args.steps, args.batch_size, device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    times = measure_modes(model, opt, batches, groups, loss_fn, args.repeats)
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"model {name} ({n_params:,} parameters, {len(groups)} groups), batch {args.batch_size}, "
        f"{args.steps} steps x {args.repeats} repeats, device {device}, threads {torch.get_num_threads()}"
    )
    print(f"{'mode':<18}{'ms/step':>10}{'ratio':>10}{'spread':>18}")
    for mode in MODES:
        ratios = [t / p for t, p in zip(times[mode], times["plain"], strict=True)]
        print(
            f"{mode:<18}{statistics.median(times[mode]) * 1e3:>10.3f}{statistics.median(ratios):>10.3f}"
            f"{f'{min(ratios):.3f}-{max(ratios):.3f}':>18}"
        )


if __name__ == "__main__":
    main()

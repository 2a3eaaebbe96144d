"""Wall time of one LCA measurement against its floor, measured side by side.

The floor of a rule with endpoint reuse is (gradient passes per interval) x (one plain
forward + backward pass over the evaluation subset E): Simpson 2, trapezoid 1, Lobatto-4 3. This
script times, interleaved in one process:

* ``floor``: one plain pass over E (``loss.sum().backward()`` per batch on the model itself);
* one LCA measurement per rule (Simpson, trapezoid, Lobatto-4, adaptive) on a model that moved
  by a few Adam steps since the last snapshot,

and prints each rule's time divided by (passes x floor), with the median and spread over repeats.

    python benchmarks/lca_cost.py --model joint --preset demo --subset 24 --repeats 5
    python benchmarks/lca_cost.py --model two_input --repeats 5
    python benchmarks/lca_cost.py --full-res --device cuda --subset 24 --repeats 5

``--full-res`` is the paper's resolution (CC 2677x1942, MLO 2974x1748, evaluation batches of 4):
GPU work.
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

from lca_toolkit import ParamGroups  # noqa: E402
from lca_toolkit.lca import LcaConfig, LcaEngine  # noqa: E402

RULES = ("simpson", "trapezoid", "lobatto4", "adaptive")


def joint_problem(preset: str, subset: int, batch: int, device: torch.device):
    import mammo_models as mm
    from mammo_models.data import get_preset

    data = get_preset(preset).data_config()
    torch.manual_seed(0)
    model = mm.build_model("joint").to(device)
    g = torch.Generator().manual_seed(1)
    hw = {v: data.window(v) for v in ("CC", "MLO")}
    batches = []
    for i in range(0, subset, batch):
        n = min(batch, subset - i)
        batches.append(
            {
                "cc": torch.randn(n, 1, *hw["CC"], generator=g).to(device),
                "mlo": torch.randn(n, 1, *hw["MLO"], generator=g).to(device),
                "malignant": (torch.rand(n, generator=g) < 0.5).float().to(device),
                "benign": (torch.rand(n, generator=g) < 0.5).float().to(device),
            }
        )
    return (
        model,
        mm.param_groups(model),
        (lambda m, b: mm.per_sample_loss(m(b), b)),
        batches,
        "joint ResNet-22",
    )


def two_input_problem(device: torch.device):
    from two_input_model import AudioImageNet, make_batches, per_sample_loss

    torch.manual_seed(0)
    model = AudioImageNet().to(device)
    groups = ParamGroups.from_prefixes(
        model, {"audio": "audio.", "image": "image.", "head": "head."}
    )
    batches = [{k: v.to(device) for k, v in b.items()} for b in make_batches(512, 128, 1)]
    return model, groups, per_sample_loss, batches, "AudioImageNet"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(
    model, groups, loss_fn, batches, repeats: int, device: torch.device, rules=RULES
) -> tuple[dict[str, list[float]], dict[str, list[int]]]:
    """Seconds of the floor and of one measurement per rule per repeat, interleaved, and the
    gradient passes of each measurement; the model moves by 3 Adam steps before each repeat."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    model.train()

    def floor_pass() -> float:
        sync(device)
        t = time.perf_counter()
        for b in batches:
            model.zero_grad(set_to_none=True)
            loss_fn(model, b).sum().backward()
        sync(device)
        return time.perf_counter() - t

    engines = {
        r: LcaEngine(model, groups, loss_fn, batches, LcaConfig(1, r, bn_policy="train"))
        for r in rules
    }
    for e in engines.values():  # first interval computes its left endpoint too: not what we time
        e.measure(0)
    floor_pass()
    times: dict[str, list[float]] = {k: [] for k in ("floor", *rules)}
    passes: dict[str, list[int]] = {r: [] for r in rules}
    for rep in range(repeats):
        for _ in range(3):  # move the model so every interval has a real chord
            opt.zero_grad()
            loss_fn(model, batches[0]).mean().backward()
            opt.step()
        times["floor"].append(floor_pass())
        for r, engine in engines.items():
            sync(device)
            t = time.perf_counter()
            result = engine.measure(rep + 1)
            sync(device)
            times[r].append(time.perf_counter() - t)
            passes[r].append(result.passes)
    return times, passes


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", choices=("joint", "two_input"), default="joint")
    p.add_argument("--preset", default="demo")
    p.add_argument("--subset", type=int, default=24, help="breasts in E (joint)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--full-res",
        action="store_true",
        help="the paper's resolution: --model joint --preset paper --batch 4",
    )
    a = p.parse_args()
    if a.full_res:
        a.model, a.preset, a.batch = "joint", "paper", 4
    device = torch.device(a.device)
    if a.model == "joint":
        model, groups, loss_fn, batches, name = joint_problem(a.preset, a.subset, a.batch, device)
    else:
        model, groups, loss_fn, batches, name = two_input_problem(device)
    times, passes = measure(model, groups, loss_fn, batches, a.repeats, device)
    n_samples = sum(len(b["malignant"] if "malignant" in b else b["label"]) for b in batches)
    print(
        f"{name}, E = {n_samples} samples in {len(batches)} batches, device {device}, "
        f"threads {torch.get_num_threads()}, {a.repeats} repeats"
    )
    print(f"{'rule':<11}{'passes':>8}{'seconds':>10}{'ratio to passes x floor':>26}{'spread':>16}")
    print(f"{'floor':<11}{1:>8}{statistics.median(times['floor']):>10.3f}{1.0:>26.3f}")
    for r in RULES:
        ratios = [t / (p * f) for t, p, f in zip(times[r], passes[r], times["floor"], strict=True)]
        print(
            f"{r:<11}{statistics.mean(passes[r]):>8.1f}{statistics.median(times[r]):>10.3f}"
            f"{statistics.median(ratios):>26.3f}{f'{min(ratios):.3f}-{max(ratios):.3f}':>16}"
        )


if __name__ == "__main__":
    main()

"""Peak extra memory of one LCA measurement over plain training, in parameter-bytes units.

``P`` is the bytes of the model's parameters (float32: 4 x parameters). The script measures, on
the Joint ResNet-22 at a preset's window sizes (random images: memory does not depend on them):

* **engine buffers** (exact, CPU or CUDA): the tensors the :class:`~lca_toolkit.lca.LcaEngine`
  itself holds. Between intervals: the snapshot and the endpoint gradient. During a measurement,
  at the start of every gradient pass: snapshot/chord direction, accumulator, node parameters,
  the gradients it has kept from earlier passes (the new endpoint gradient) and the BN scratch
  buffers; plus the node gradient the pass produces (same size as the node). Activations are
  not in this count.
* **process memory** (CPU): the rise of the resident set's high-water mark (``VmHWM`` in
  ``/proc/self/status``, reset through ``/proc/self/clear_refs``) during one plain training step
  (batch 4, Adam), during one forward + backward over one evaluation batch, and during one LCA
  measurement (Simpson, endpoint reuse), each from the same resting state (freed heap memory
  handed back to the OS first with glibc's ``malloc_trim``). This includes
  activations and the allocator's own behaviour, so it is coarser than the count above.
* **device memory** (CUDA): the same three rises measured with ``torch.cuda.max_memory_allocated``.

Extra memory of LCA over plain training = the engine's buffers kept between intervals + the rise
during a measurement - the rise during a training step (both rises start from a resting state that
already holds the model, Adam's state and the engine's buffers). Target: <= 4 P + one evaluation batch of activations (the forward + backward rise minus
its parameter gradients, P).

    python benchmarks/lca_memory.py --preset demo
    python benchmarks/lca_memory.py --full-res --device cuda
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import weakref
from collections.abc import Callable
from pathlib import Path

import torch

import mammo_models as mm
from lca_toolkit.lca import LcaConfig, LcaEngine
from mammo_models.data import get_preset
from mammo_models.training.config import TRAIN_PRESETS

CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")


def rss_bytes() -> int:
    """Resident set size from /proc/self/statm (pages x page size)."""
    import os

    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def _malloc_trim() -> None:
    """Give freed heap memory back to the OS (glibc), so the resident set is memory in use."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def peak_rise(fn: Callable[[], object], device: torch.device) -> int:
    """Bytes by which memory rose above its resting level while ``fn`` ran.

    CPU: resident set high-water mark after a reset, minus the resident set before. CUDA: peak
    allocated bytes minus allocated bytes before.
    """
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    _malloc_trim()
    before = rss_bytes()
    CLEAR_REFS.write_text("5")  # resets VmHWM to the current resident set
    fn()
    return _status_kb("VmHWM") * 1024 - before


def nbytes(tensors) -> int:
    """Bytes of distinct storages among ``tensors`` (None entries ignored)."""
    seen, total = set(), 0
    for t in tensors:
        if t is None:
            continue
        key = (t.untyped_storage().data_ptr(), t.device)
        if key not in seen:
            seen.add(key)
            total += t.untyped_storage().nbytes()
    return total


class BufferCounter:
    """Wraps ``engine._gradient_pass`` to count the engine's own tensors at every pass."""

    def __init__(self, engine: LcaEngine) -> None:
        self.engine = engine
        self.kept: list[weakref.ref] = []  # gradients returned by earlier passes
        self.peak = 0
        self._inner = engine._gradient_pass
        engine._gradient_pass = self._pass

    def _pass(self, node, consts):
        e = self.engine
        alive = [r() for r in self.kept]
        held = [*e._snap, *(e._g_prev or []), *node, *consts.values()]
        held += [t for t in alive if t is not None]
        node_grads = sum(t.untyped_storage().nbytes() for t in node if t.requires_grad)
        self.peak = max(self.peak, nbytes(held) + node_grads)
        total, grads = self._inner(node, consts)
        self.kept = [r for r in self.kept if r() is not None]
        self.kept += [weakref.ref(g) for g in grads]
        return total, grads


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--preset", default="demo", choices=tuple(TRAIN_PRESETS))
    p.add_argument("--full-res", action="store_true", help="paper windows, batch 4")
    p.add_argument("--subset", type=int, default=None, help="breasts in E (default: preset's)")
    p.add_argument("--quadrature", default="simpson")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    preset = "paper" if a.full_res else a.preset
    device = torch.device(a.device)
    if device.type == "cpu" and not CLEAR_REFS.exists():
        p.error("CPU peak memory needs /proc/self/clear_refs (Linux)")
    tp = TRAIN_PRESETS[preset]
    subset = a.subset or tp.lca_subset
    if a.subset is None and preset == "paper" and device.type == "cpu":
        subset = 2 * tp.eval_batch_size  # 970 full-resolution breasts per pass is GPU work
    data = get_preset(preset).data_config()
    hw = {v: data.window(v) for v in ("CC", "MLO")}
    g = torch.Generator().manual_seed(0)

    def batch(n: int) -> dict[str, torch.Tensor]:
        return {
            "cc": torch.randn(n, 1, *hw["CC"], generator=g).to(device),
            "mlo": torch.randn(n, 1, *hw["MLO"], generator=g).to(device),
            "malignant": (torch.rand(n, generator=g) < 0.5).float().to(device),
            "benign": (torch.rand(n, generator=g) < 0.5).float().to(device),
        }

    torch.manual_seed(0)
    model = mm.build_model("joint").to(device)
    groups = mm.param_groups(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    train_batch = batch(4)
    eval_batches = [
        batch(min(tp.eval_batch_size, subset - i)) for i in range(0, subset, tp.eval_batch_size)
    ]
    P = sum(t.numel() * t.element_size() for t in model.parameters())

    def loss_fn(m, b):
        return mm.per_sample_loss(m(b), b)

    def train_step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(model, train_batch).mean().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def eval_fwd_bwd() -> None:
        model.zero_grad(set_to_none=True)
        loss_fn(model, eval_batches[0]).sum().backward()
        model.zero_grad(set_to_none=True)

    engine = LcaEngine(
        model, groups, loss_fn, eval_batches, LcaConfig(1, a.quadrature, bn_policy="train")
    )
    counter = BufferCounter(engine)
    model.train()
    train_step()  # Adam state exists from here on: part of plain training
    engine.measure(1)  # first interval: also its left endpoint, and the engine's buffers exist
    between = nbytes([*engine._snap, *(engine._g_prev or [])])
    rises: dict[str, list[int]] = {"train": [], "eval": [], "lca": []}
    for rep in range(a.repeats):
        rises["train"].append(peak_rise(train_step, device))
        rises["eval"].append(peak_rise(eval_fwd_bwd, device))
        counter.peak = 0
        rises["lca"].append(peak_rise(lambda step=rep + 2: engine.measure(step), device))
    med = {k: sorted(v)[len(v) // 2] for k, v in rises.items()}
    extra = between + med["lca"] - med["train"]
    activations = max(med["eval"] - P, 0)
    target = 4 * P + activations
    kind = "device (max_memory_allocated)" if device.type == "cuda" else "process (VmHWM rise)"
    n_params = P // 4
    print(
        f"Joint ResNet-22, {n_params:,} float32 parameters, P = {P / 2**20:.1f} MiB; preset "
        f"{preset} (CC {hw['CC']}, MLO {hw['MLO']}), train batch 4, E = {subset} breasts in "
        f"batches of {tp.eval_batch_size}, {a.quadrature}, device {device}, {a.repeats} repeats"
    )
    print()
    print("| quantity | MiB | in units of P |")
    print("| --- | --- | --- |")
    rows = [
        ("engine buffers between intervals (snapshot, endpoint gradient)", between),
        ("engine buffers at their peak during a measurement", counter.peak),
        (f"{kind}: rise during one training step", med["train"]),
        (f"{kind}: rise during forward + backward of one eval batch", med["eval"]),
        (f"{kind}: rise during one LCA measurement", med["lca"]),
        ("extra of LCA over plain training (buffers between + LCA rise - training rise)", extra),
        ("target: 4 P + one eval batch of activations (eval rise - P)", target),
    ]
    for label, value in rows:
        print(f"| {label} | {value / 2**20:.1f} | {value / P:.2f} |")
    print()
    print(
        f"verdict: extra {extra / P:.2f} P vs target {target / P:.2f} P: "
        f"{'met' if extra <= target else 'missed'}"
    )


if __name__ == "__main__":
    main()

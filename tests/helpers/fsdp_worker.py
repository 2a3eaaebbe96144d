"""Recorded training runs of a two-tower model sharded with FSDP2, started by the tests under
torchrun (2 gloo ranks on the CPU; NCCL with one GPU per rank where there are 2 GPUs).

``python -m torch.distributed.run --standalone --nproc_per_node=2 fsdp_worker.py OUT_DIR`` runs,
in one process group, every scenario the FSDP2 tests compare with one unsharded process:

* ``fsdp``: :class:`problems.SmoothMLP` (float64; ``audio`` and ``image`` towers and the root
  sharded with ``fully_shard``, so the 1-row head has an empty shard on rank 1) trained with Adam
  on fixed global batches split across the ranks, recorded into ``OUT_DIR/fsdp.zarr`` with
  adaptive LCA every 2 steps on an E of 5 batches (3 on rank 0, 2 on rank 1);
* ``hsdp_2x1`` and ``hsdp_1x2``: the same with Simpson on a 2-D mesh (replicate x shard);
* ``resumed``: the ``fsdp`` run checkpointed at step 5 (model and optimizer with
  ``torch.distributed.checkpoint``, the Tracker per rank with ``torch.save``), run on to step 6,
  closed as interrupted, then resumed from the checkpoint into the same store;
* ``accumulated``: the ``fsdp`` run with each rank's batch in 2 micro-batches, the first without
  gradient sync (``set_requires_gradient_sync(False)``): norms read at the optimizer step only;
* ``off``: the ``fsdp`` run without a Tracker, whose weights must be the recorded run's, bit for bit;
* ``bf16``: float32 towers under ``MixedPrecisionPolicy(param_dtype=bfloat16)``;
* refusals: a ``Partial`` parameter and FSDP1, each refused with one line.

Rank 0 saves what it found to ``OUT_DIR/results.pt``. :func:`train` with no process group is the
unsharded reference over the same global batches.
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from problems import SmoothMLP, mlp_batches, mlp_loss

from lca_toolkit import Tracker, distributed

GROUPS = {"audio": "audio.", "image": "image.", "head": "head."}
STEPS = 8
GLOBAL_BATCH = 4
CHECKPOINT_AT = 5


def device() -> torch.device:
    """One GPU per rank where there are enough (NCCL), else the CPU (gloo)."""
    if torch.cuda.device_count() >= distributed.world_size() > 1:
        return torch.device(f"cuda:{distributed.local_rank()}")
    return torch.device("cpu")


def build(mesh: Any = None, dtype: torch.dtype = torch.float64, mp: Any = None) -> SmoothMLP:
    """The model, sharded per tower and at the root when a process group is up."""
    model = SmoothMLP(seed=0).to(device=device(), dtype=dtype)
    if distributed.world_size() > 1:
        from torch.distributed.fsdp import fully_shard

        options = {"mesh": mesh} if mesh is not None else {}
        if mp is not None:
            options["mp_policy"] = mp
        fully_shard(model.audio, **options)
        fully_shard(model.image, **options)
        fully_shard(model, **options)
    return model


def _batches(dtype: torch.dtype, n: int, batch_size: int, seed: int) -> list[dict]:
    return [
        {k: v.to(device=device(), dtype=dtype) for k, v in b.items()}
        for b in mlp_batches(n, batch_size, seed)
    ]


def train(
    store: Any,
    *,
    mesh: Any = None,
    quadrature: str = "adaptive",
    record: bool = True,
    dtype: torch.dtype = torch.float64,
    mp: Any = None,
    steps: range = range(1, STEPS + 1),
    resume_from: Path | None = None,
    checkpoint_to: Path | None = None,
    micro_batches: int = 1,
) -> dict[str, Any]:
    """Train the given steps; returns the LCA rows this rank saw and the final full weights."""
    world, rank = distributed.world_size(), distributed.rank()
    model = build(mesh, dtype, mp)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    train_batches = _batches(dtype, STEPS * GLOBAL_BATCH, GLOBAL_BATCH, 3)
    tracker = None
    if record:
        tracker = Tracker(
            model,
            GROUPS,
            optimizer=optimizer,
            store=store,
            store_mode="resume" if resume_from else "create",
            loss_fn=mlp_loss,
            eval_batches=_batches(dtype, 22, 5, 1),
            lca_every=2,
            quadrature=quadrature,
            transfer_every=3,
        )
    if resume_from is not None:
        _load(resume_from, model, optimizer, tracker)
    lca = []
    for step in steps:
        batch = distributed.shard_batch(train_batches[step - 1], rank, world)
        optimizer.zero_grad(set_to_none=True)
        for i, micro in enumerate(
            distributed.shard_batch(batch, m, micro_batches) for m in range(micro_batches)
        ):
            last = i == micro_batches - 1
            if micro_batches > 1:  # accumulate without reducing until the last micro-batch
                model.set_requires_gradient_sync(last)
            loss = mlp_loss(model, micro).mean()
            (loss / micro_batches).backward()
            if tracker is not None:
                tracker.after_backward(loss)
        optimizer.step()
        if tracker is not None:
            result = tracker.after_step()
            if result is not None:
                lca.append(result.by_group.cpu().tolist())
        if checkpoint_to is not None and step == CHECKPOINT_AT:
            _save(checkpoint_to, model, optimizer, tracker)
    if tracker is not None:
        tracker.close("interrupted" if checkpoint_to is not None else "finished")
    weights = {
        n: (p.full_tensor() if hasattr(p, "full_tensor") else p).detach().cpu().clone()
        for n, p in model.named_parameters()
    }
    return {"lca": lca, "weights": weights}


def _save(folder: Path, model, optimizer, tracker) -> None:
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    model_state, optim_state = get_state_dict(model, optimizer)
    dcp.save({"model": model_state, "optim": optim_state}, checkpoint_id=str(folder))
    torch.save(tracker.state_dict(), folder / f"tracker_rank{distributed.rank()}.pt")


def _load(folder: Path, model, optimizer, tracker) -> None:
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    model_state, optim_state = get_state_dict(model, optimizer)
    state = {"model": model_state, "optim": optim_state}
    dcp.load(state, checkpoint_id=str(folder))
    set_state_dict(
        model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"]
    )
    tracker.load_state_dict(torch.load(folder / f"tracker_rank{distributed.rank()}.pt"))


@contextlib.contextmanager
def _functional_call_forbidden():
    """The engine must never evaluate an FSDP module through functional_call: make it fail."""
    import lca_toolkit.lca as lca_module

    def forbidden(*args, **kwargs):
        raise AssertionError("functional_call used on an FSDP2 model")

    saved = lca_module.functional_call
    lca_module.functional_call = forbidden
    try:
        yield
    finally:
        lca_module.functional_call = saved


def _functional_call_grads() -> list[bool]:
    """Whether functional_call on an FSDP2 module gives the swapped-in tensors a gradient."""
    from torch.func import functional_call

    model = build()
    swapped = {n: p.detach().clone().requires_grad_(True) for n, p in model.named_parameters()}
    batch = distributed.shard_batch(_batches(torch.float64, 4, 4, 3)[0], distributed.rank(), 2)
    functional_call(model, swapped, (batch,)).sum().backward()
    return [t.grad is not None for t in swapped.values()]


def _refusals() -> dict[str, str]:
    """The one-line errors for a Partial parameter and for FSDP1."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import DTensor, Partial

    out = {}
    mesh = init_device_mesh(device().type, (distributed.world_size(),))
    partial = torch.nn.Linear(2, 1).to(device())
    local = torch.ones(1, 2, device=device())
    partial.weight = torch.nn.Parameter(DTensor.from_local(local, mesh, [Partial()]))
    try:
        Tracker(partial, {"all": ""})
    except Exception as e:  # the test checks the type and the message
        out["partial"] = f"{type(e).__name__}: {e}"
    try:
        from torch.distributed.fsdp import FullyShardedDataParallel

        wrapped = FullyShardedDataParallel(torch.nn.Linear(4, 2))
        Tracker(wrapped, None)
    except Exception as e:
        out["fsdp1"] = f"{type(e).__name__}: {e}"
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out_dir", type=Path)
    out_dir = parser.parse_args().out_dir
    created = distributed.init_from_env()
    try:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import MixedPrecisionPolicy

        results: dict[str, Any] = {"world": dist.get_world_size()}
        results["functional_call_grads"] = _functional_call_grads()
        with _functional_call_forbidden():
            results["fsdp"] = train(out_dir / "fsdp.zarr")
        results["off"] = train(None, record=False)
        results["accumulated"] = train(out_dir / "accumulated.zarr", micro_batches=2)
        for shape in ((2, 1), (1, 2)):
            mesh = init_device_mesh(device().type, shape, mesh_dim_names=("replicate", "shard"))
            name = f"hsdp_{shape[0]}x{shape[1]}"
            results[name] = train(out_dir / f"{name}.zarr", mesh=mesh, quadrature="simpson")
        checkpoint = out_dir / "checkpoint"
        checkpoint.mkdir(exist_ok=True)
        store = out_dir / "resumed.zarr"
        train(store, steps=range(1, CHECKPOINT_AT + 2), checkpoint_to=checkpoint)
        results["resumed"] = train(
            store, steps=range(CHECKPOINT_AT + 1, STEPS + 1), resume_from=checkpoint
        )
        mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16)
        results["bf16"] = train(out_dir / "bf16.zarr", dtype=torch.float32, mp=mp)
        results["refusals"] = _refusals()
        if distributed.rank() == 0:
            torch.save(results, out_dir / "results.pt")
    finally:
        if created:
            distributed.destroy()


if __name__ == "__main__":
    main()

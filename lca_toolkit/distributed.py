"""A small view of ``torch.distributed`` for the recorder: who am I, sum these, unwrap that.

Every function is a no-op (or returns the single-process answer) when no process group is
initialised or the world has one process, so the single-process path costs nothing: no
collective, no copy, no import of backend code.

The recorder's distributed contract (see the README section "Distributed training"):

* gradient norms are read from the gradients DDP has already averaged across ranks (DDP reduces
  them inside ``backward``, before ``optimizer.step()`` and its pre-hook);
* the LCA subset E is sharded by batch index (rank ``r`` of ``W`` evaluates batches
  ``r, r + W, ...``) and ONE all-reduce per gradient pass sums the shards' gradients, losses and
  sample counts, so every rank holds the same LCA numbers;
* the training-loss column is averaged across ranks once per transfer of rows to the host;
* only rank 0 writes the store (the others use a :class:`~lca_toolkit.sinks.NullSink`).
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from .errors import LcaToolkitError

TIMEOUT_ENV = "LCA_DIST_TIMEOUT_S"
"""Environment variable: seconds a collective may wait for the other ranks (default 1800)."""

DEFAULT_TIMEOUT_S = 1800.0


class DistributedError(LcaToolkitError, RuntimeError):
    """The distributed setup is unusable (bad environment, batch not divisible by the world)."""


# ----------------------------------------------------------------------------- who am I
def is_distributed() -> bool:
    """True inside an initialised process group with more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Processes in the group (1 without a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's global rank (0 without a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def local_rank() -> int:
    """This process's rank on its host, from torchrun's ``LOCAL_RANK`` (0 when not set)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    """Rank 0: the process that writes stores, checkpoints and figures and prints."""
    return rank() == 0


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside ``DistributedDataParallel`` / ``DataParallel`` (else ``model`` itself).

    LCA passes evaluate the unwrapped module: DDP's forward would fire its reducer hooks and
    buffer broadcasts, which are collectives the other ranks are not taking part in.
    """
    while isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        model = model.module
    return model


# ----------------------------------------------------------------------------- collectives
def all_reduce_sum_(tensors: Sequence[Tensor]) -> None:
    """Sum ``tensors`` across ranks, in place, with one flattened all-reduce per dtype.

    A float64 model's gradients plus the float64 loss and count go in a single call; a float32
    model's need two (the float32 gradients and a small float64 vector), so no value is
    summed in a lower precision than its own. No-op in a single process.
    """
    if not is_distributed() or not tensors:
        return
    by_dtype: dict[torch.dtype, list[Tensor]] = {}
    for t in tensors:
        by_dtype.setdefault(t.dtype, []).append(t)
    for group in by_dtype.values():
        flat = torch.cat([t.reshape(-1) for t in group])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        offset = 0
        for t in group:
            n = t.numel()
            t.copy_(flat[offset : offset + n].view_as(t))
            offset += n


def all_reduce_mean_(tensor: Tensor) -> Tensor:
    """Average ``tensor`` across ranks in place (one all-reduce) and return it."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor /= dist.get_world_size()
    return tensor


def all_gather_cat(tensor: Tensor) -> Tensor:
    """Concatenate every rank's ``tensor`` along dim 0 in rank order (shapes may differ in dim 0).

    Two collectives: the row counts, then the padded rows. Returns ``tensor`` in one process.
    """
    if not is_distributed():
        return tensor
    n = torch.tensor([tensor.shape[0]], dtype=torch.int64, device=tensor.device)
    counts = [torch.zeros_like(n) for _ in range(dist.get_world_size())]
    dist.all_gather(counts, n)
    sizes = [int(c) for c in counts]
    padded = tensor.new_zeros((max(sizes), *tensor.shape[1:]))
    padded[: tensor.shape[0]] = tensor
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([p[:s] for p, s in zip(parts, sizes, strict=True)])


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    if is_distributed():
        dist.barrier()


# ----------------------------------------------------------------------------- batches
def my_batches(batches: Iterable[Any]) -> Iterable[Any]:
    """This rank's shard of E: batches ``rank, rank + world, ...`` (all of E in one process).

    A ``Sequence`` is indexed; any other iterable is read in full and the other ranks' batches
    skipped.
    """
    if not is_distributed():
        return batches
    world, rank_ = world_size(), rank()
    if isinstance(batches, Sequence):
        return (batches[i] for i in range(rank_, len(batches), world))
    return (b for i, b in enumerate(batches) if i % world == rank_)


def shard_batch(batch: Any, rank_: int, world: int, *, where: str = "batch") -> Any:
    """Rank ``rank_``'s contiguous ``1/world`` slice (along dim 0) of every tensor in ``batch``.

    Mappings, lists and tuples are rebuilt; non-tensor leaves (and 0-d tensors) are kept whole.

    Raises:
        DistributedError: a tensor's first dimension is not divisible by ``world``.
    """
    if world == 1:
        return batch
    if isinstance(batch, Tensor):
        if batch.dim() == 0:
            return batch
        size = batch.shape[0]
        if size % world:
            raise DistributedError(
                f"{where}: {size} samples cannot be split evenly across {world} ranks; "
                f"use a batch size divisible by the number of processes ({world})"
            )
        per = size // world
        return batch[rank_ * per : (rank_ + 1) * per]
    if isinstance(batch, Mapping):
        return type(batch)((k, shard_batch(v, rank_, world, where=where)) for k, v in batch.items())
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(shard_batch(v, rank_, world, where=where) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(shard_batch(v, rank_, world, where=where) for v in batch)
    return batch


def per_rank_batch_size(batch_size: int) -> int:
    """``batch_size / world_size``: each rank's share of one global batch.

    Raises:
        DistributedError: ``batch_size`` is not divisible by the world size.
    """
    world = world_size()
    if batch_size % world:
        raise DistributedError(
            f"--batch-size {batch_size} is not divisible by the {world} processes; each global "
            f"batch is split evenly across ranks, so use a multiple of {world}"
        )
    return batch_size // world


SMALL_BN_BATCH = 8
"""Below this many samples per rank, per-rank BatchNorm statistics are too noisy to go unnoticed."""


class SmallBatchNormWarning(UserWarning):
    """BatchNorm under DDP normalises over each rank's share of the batch, and that share is small."""


def warn_small_batchnorm(model: nn.Module, per_rank_batch: int, *, synced: bool = False) -> bool:
    """Warn once when BatchNorm layers train on fewer than 8 samples per rank (and are not synced).

    Under DDP each rank normalises with the statistics of its own share of the global batch, so
    N ranks at per-rank batch b do not train the model one process trains at batch N*b: with b = 2
    the recorded gradient norms were 30-70x those of one process on the same global batch.
    ``SyncBatchNorm`` (``--sync-bn``) pools the statistics across ranks. Returns whether it warned.
    """
    if synced or world_size() < 2 or per_rank_batch >= SMALL_BN_BATCH:
        return False
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return False
    import warnings

    warnings.warn(
        f"BatchNorm under DDP with {per_rank_batch} sample(s) per rank ({world_size()} ranks): "
        "each rank normalises over its own share of the batch, so training (and the recorded "
        "gradient norms) differ from one process at the same global batch; use --sync-bn on "
        f"CUDA or a per-rank batch of at least {SMALL_BN_BATCH}",
        SmallBatchNormWarning,
        stacklevel=2,
    )
    return True


def convert_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """``torch.nn.SyncBatchNorm.convert_sync_batchnorm`` on CUDA; a clear error elsewhere.

    The converted modules keep the same parameter and buffer tensors and names, so optimizers,
    groups and checkpoints see the same model. The LCA engine still normalises each of its
    batches on its own (see :func:`lca_toolkit.lca_batchnorm.plain_sync_batchnorm`).
    """
    if device.type != "cuda":
        raise DistributedError(
            f"--sync-bn needs CUDA: torch's SyncBatchNorm trains only on GPUs (device is {device})"
        )
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


# ----------------------------------------------------------------------------- process group
def timeout_s() -> float:
    """The collective timeout: ``$LCA_DIST_TIMEOUT_S`` or 30 minutes."""
    raw = os.environ.get(TIMEOUT_ENV)
    if raw is None:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise DistributedError(f"{TIMEOUT_ENV}={raw!r}: expected a positive number of seconds")
    return value


def init_from_env() -> bool:
    """Join the process group torchrun describes (``WORLD_SIZE`` > 1), else do nothing.

    gloo on the CPU, NCCL when CUDA is available (each rank then uses ``cuda:LOCAL_RANK``). A
    timeout (:func:`timeout_s`) on every collective means a rank that died or hangs makes the
    others fail with an error instead of waiting forever.

    Returns:
        True when this call initialised a process group (the caller destroys it).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or (dist.is_available() and dist.is_initialized()):
        return False
    if not dist.is_available():
        raise DistributedError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise DistributedError(
            f"WORLD_SIZE={world} but {', '.join(missing)} not set; start the job with torchrun"
        )
    use_cuda = torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local_rank())
    dist.init_process_group(
        backend="nccl" if use_cuda else "gloo",
        timeout=datetime.timedelta(seconds=timeout_s()),
    )
    return True


def destroy() -> None:
    """Leave the process group (no-op when none is initialised)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def process_group() -> Iterator[bool]:
    """:func:`init_from_env` for the duration of a ``with`` block, destroyed at its end.

    Yields:
        True when a multi-process group was initialised by this block.
    """
    created = init_from_env()
    try:
        yield created
    except BaseException:
        if created:
            destroy()
        raise
    if created:
        # Every rank done with its collectives before any tears its group down, and the work
        # objects of the block (FSDP's modules, their pending reductions) freed while the
        # interpreter is whole: a rank destroying gloo's group while another is still in a
        # collective, or tensors released from gloo's threads at exit, abort the process
        # ("terminate called without an active exception").
        dist.barrier()
        gc.collect()
        destroy()


def wrap(model: nn.Module, **ddp_kwargs: Any) -> nn.Module:
    """``DistributedDataParallel(model)`` in a multi-process group, else ``model`` unchanged.

    CUDA models use ``device_ids=[their device]``; CPU models none (gloo).
    """
    if not is_distributed():
        return model
    device = next(model.parameters()).device
    if device.type == "cuda":
        ddp_kwargs.setdefault("device_ids", [device.index])
        ddp_kwargs.setdefault("output_device", device.index)
    return nn.parallel.DistributedDataParallel(model, **ddp_kwargs)

"""Sharded parameters (FSDP2, ``torch.distributed.fsdp.fully_shard``): what each rank holds and how
per-tensor numbers add up across ranks.

Under FSDP2 every parameter is a ``DTensor``: each rank holds one shard (``to_local()``, possibly
empty when a dimension is shorter than the mesh) and ``.grad`` is a sharded ``DTensor`` after the
reduce-scatter. A per-tensor quantity that is a *sum over elements* (a squared norm, ``<D, g>``, a
count of negative entries) is the sum of the shards' local values over the mesh dimensions on
which the tensor is *sharded*, and must never be summed over the dimensions on which it is
*replicated* (HSDP's 2-D mesh, replicate x shard), or it would be counted once per replica.

:class:`ShardLayout` holds, per mesh dimension to reduce over, a 0/1 weight per tensor: 1 where the
tensor is sharded on that dimension, and for a tensor replicated on it, 1 only on the rank whose
coordinate on that dimension is 0. Multiplying a row of per-tensor local values by the weights
before an all-reduce over that dimension's process group gives every rank the exact global value
of every tensor with one collective per dimension (one in all for FSDP2's usual 1-D mesh),
whatever mix of placements the tensors have. Plain tensors (not sharded at all: a module left out
of ``fully_shard`` that every rank holds whole) are treated as replicated everywhere.

A placement the module does not handle (``Partial``: a pending reduction, whose local values are
not shards of anything) is refused with one line naming the parameter, and so are wrappers whose
parameters are not ``DTensor``\\ s although they are sharded (FSDP1's flat parameters, DeepSpeed
ZeRO): the numbers would be wrong without an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn

from .errors import LcaToolkitError

try:  # torch >= 2.4 exposes DTensor publicly
    from torch.distributed.tensor import DTensor, Partial, Replicate, Shard
except ImportError:  # pragma: no cover - older torch, no FSDP2 either
    DTensor = Partial = Replicate = Shard = None  # type: ignore[assignment,misc]


class ShardingError(LcaToolkitError, ValueError):
    """A sharding the recorder cannot measure exactly (refused rather than measured wrong)."""


FSDP1_MESSAGE = (
    "FullyShardedDataParallel (FSDP1) flattens parameters into per-rank flat shards whose "
    "per-tensor norms and LCA cannot be recovered exactly; shard the model with FSDP2 "
    "(torch.distributed.fsdp.fully_shard) instead, which the recorder supports"
)
DEEPSPEED_MESSAGE = (
    "DeepSpeed engines partition parameters and gradients outside torch.distributed.tensor, so "
    "the recorder cannot read exact per-group norms or LCA from them; train with FSDP2 "
    "(torch.distributed.fsdp.fully_shard) or DDP instead"
)


def refuse_unsupported(model: nn.Module) -> None:
    """Raise :class:`ShardingError` for a wrapper whose shards the recorder cannot read exactly.

    FSDP1 (``FullyShardedDataParallel``, anywhere in the module tree) and DeepSpeed engines are
    refused at construction with one line saying what to use instead.
    """
    try:
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP1
    except ImportError:  # pragma: no cover - torch without distributed
        FSDP1 = None
    for m in model.modules():
        if FSDP1 is not None and isinstance(m, FSDP1):
            raise ShardingError(FSDP1_MESSAGE)
        if type(m).__module__.split(".")[0] == "deepspeed":
            raise ShardingError(DEEPSPEED_MESSAGE)


def is_dtensor(t: object) -> bool:
    """``t`` is a ``torch.distributed.tensor.DTensor``."""
    return DTensor is not None and isinstance(t, DTensor)


def local(t: Tensor) -> Tensor:
    """This rank's shard of ``t`` (a plain tensor is returned as it is). Never a copy."""
    return t.to_local() if is_dtensor(t) else t


def is_fsdp2(model: nn.Module) -> bool:
    """True when any parameter of ``model`` is a ``DTensor`` (``fully_shard`` was applied)."""
    return any(is_dtensor(p) for p in model.parameters())


def uses_fsdp2_module(model: nn.Module) -> bool:
    """True when ``model`` or a submodule was passed to ``fully_shard``."""
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:  # pragma: no cover
        return False
    return any(isinstance(m, FSDPModule) for m in model.modules())


def model_class_name(model: nn.Module) -> str:
    """The model's own class name: ``fully_shard`` swaps in a subclass named ``FSDP<Name>``."""
    cls = type(model)
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:  # pragma: no cover
        return cls.__name__
    if issubclass(cls, FSDPModule):
        cls = next(c for c in cls.__mro__[1:] if not issubclass(c, FSDPModule))
    return cls.__name__


@dataclass
class ShardLayout:
    """How to add per-tensor local values across ranks into global ones (see the module docstring).

    Attributes:
        names: the tensors' names, for error messages.
        steps: per mesh dimension to reduce over, its process group and the (T,) 0/1 weights.
        dp_size: the number of ranks FSDP averages gradients over (the whole mesh).
    """

    names: list[str]
    steps: list[tuple[dist.ProcessGroup, Tensor]]
    dp_size: int

    @classmethod
    def of(
        cls, named: Sequence[tuple[str, Tensor]], device: torch.device, *, extra: int = 0
    ) -> ShardLayout | None:
        """The layout of ``named`` tensors (``None`` when none of them is a ``DTensor``).

        Args:
            named: (name, tensor) pairs; ``DTensor`` parameters and plain tensors.
            device: where the weights live (the tensors' device).
            extra: plain (replicated) tensors appended after ``named`` in every row reduced, e.g.
                BatchNorm running statistics, which FSDP2 leaves whole on every rank.

        Raises:
            ShardingError: a ``Partial`` placement, or tensors on different device meshes.
        """
        dtensors = [(n, t) for n, t in named if is_dtensor(t)]
        if not dtensors:
            return None
        mesh = dtensors[0][1].device_mesh
        for name, t in dtensors:
            if t.device_mesh != mesh:
                raise ShardingError(
                    f"parameter {name!r} lives on another device mesh than {dtensors[0][0]!r}; "
                    "the recorder needs every sharded parameter on one mesh"
                )
            for placement in t.placements:
                if not (placement.is_shard() or placement.is_replicate()):
                    raise ShardingError(
                        f"parameter {name!r} has placement {placement}: only Shard and Replicate "
                        "placements have local values that add up to the tensor's norm; "
                        "redistribute it (or record before the reduction)"
                    )
        coords = mesh.get_coordinate()
        if coords is None:
            raise ShardingError("this rank is not part of the parameters' device mesh")
        steps = []
        for dim in range(mesh.ndim):
            sharded = [is_dtensor(t) and t.placements[dim].is_shard() for _, t in named] + [
                False
            ] * extra
            if not any(sharded):
                continue  # replicated everywhere on this dimension: nothing to add
            owner = float(coords[dim] == 0)
            weights = torch.tensor(
                [1.0 if s else owner for s in sharded], dtype=torch.float64, device=device
            )
            steps.append((mesh.get_group(dim), weights))
        return cls(names=[n for n, _ in named], steps=steps, dp_size=mesh.size())

    def sum_(self, values: Tensor) -> Tensor:
        """Replace (..., T) per-tensor local values with their global values, in place.

        One all-reduce per sharded mesh dimension. ``values`` may be of any floating dtype; the
        weights are cast to it (0 and 1 are exact in every dtype).
        """
        for group, weights in self.steps:
            values.mul_(weights.to(values.dtype))
            dist.all_reduce(values, op=dist.ReduceOp.SUM, group=group)
        return values

    def sum_squares_(self, norms: Tensor) -> Tensor:
        """Local per-tensor norms -> global norms: square, :meth:`sum_`, square root (in place).

        ``norms`` is (..., T) or a concatenation of several (T,) rows (e.g. gradient norms then
        parameter norms), see :meth:`repeat`.
        """
        norms.square_()
        self.sum_(norms)
        return norms.sqrt_()

    def repeat(self, times: int) -> ShardLayout:
        """The same layout for a row that holds ``times`` values per tensor, block after block."""
        return ShardLayout(
            names=self.names * times,
            steps=[(g, w.repeat(times)) for g, w in self.steps],
            dp_size=self.dp_size,
        )

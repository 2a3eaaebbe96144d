"""Shard a user's model with FSDP2 by its parameter groups: ``lca-run job --fsdp``.

The job function stays the one that runs unsharded: it builds the model and its optimizer as
usual, and :func:`shard_job_model` shards the model afterwards and rebuilds the optimizer over the
sharded parameters, keeping every parameter group's settings. That way the same job runs with and
without ``--fsdp``, in one process or under torchrun, and nothing in it names a mesh. (The other
design, handing the job function a mesh to shard itself, makes every job carry two code paths.)

Which modules get their own ``fully_shard``: each group's *top modules*, the largest modules whose
parameters all belong to that one group (``audio`` for a group ``audio.``; every block of a group
given by a regular expression over several blocks), then the root, which takes what is left. So
each group's all-gather is its own, and no collective mixes two groups.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .errors import LcaToolkitError
from .groups import ParamGroups


class FsdpError(LcaToolkitError, ValueError):
    """The job cannot be sharded as asked (already wrapped, an optimizer that cannot be rebuilt)."""


def top_modules(model: nn.Module, groups: ParamGroups) -> dict[str, list[str]]:
    """Per group, the names of its top modules (see the module docstring), in model order."""
    group_of = {name: g for g, names in groups.members.items() for name in names}
    out: dict[str, list[str]] = {g: [] for g in groups.names}
    covered: list[str] = []
    for name, module in model.named_modules():
        if not name or any(name.startswith(c + ".") for c in covered):
            continue
        names = [f"{name}.{n}" for n, p in module.named_parameters() if p.requires_grad]
        owners = {group_of.get(n) for n in names}
        if names and len(owners) == 1 and None not in owners:
            out[owners.pop()].append(name)
            covered.append(name)
    return out


def shard_job_model(
    model: nn.Module, optimizer: torch.optim.Optimizer, groups: ParamGroups, **fsdp_options: Any
) -> torch.optim.Optimizer:
    """``fully_shard`` each group's top modules and the root; the optimizer rebuilt over the shards.

    Args:
        model: the job's model, not yet sharded (on the device it trains on).
        optimizer: the job's optimizer over ``model``'s parameters, with no state yet.
        groups: the job's parameter groups.
        fsdp_options: passed to every ``fully_shard`` call (``mesh=``, ``mp_policy=``...).

    Returns:
        An optimizer of the same class over the sharded parameters: each of its parameter groups
        holds the same parameters (by name) with the same settings.
    """
    from torch.distributed.fsdp import FSDPModule, fully_shard

    if any(isinstance(m, FSDPModule) for m in model.modules()):
        raise FsdpError("--fsdp: the job's model is already sharded; drop --fsdp")
    if optimizer.state:
        raise FsdpError("--fsdp: the job's optimizer has state already; return a fresh one")
    names = {id(p): n for n, p in model.named_parameters()}
    param_groups = []
    for group in optimizer.param_groups:
        missing = [p for p in group["params"] if id(p) not in names]
        if missing:
            raise FsdpError(
                f"--fsdp: the optimizer holds {len(missing)} tensor(s) that are not parameters "
                "of the job's model, so it cannot be rebuilt over the sharded model"
            )
        settings = {k: v for k, v in group.items() if k != "params"}
        param_groups.append(([names[id(p)] for p in group["params"]], settings))
    for module_names in top_modules(model, groups).values():
        for name in module_names:
            fully_shard(model.get_submodule(name), **fsdp_options)
    fully_shard(model, **fsdp_options)
    sharded: Mapping[str, nn.Parameter] = dict(model.named_parameters())
    cls = type(optimizer)
    # Every group carries all its settings; the constructor gets the defaults it accepts (some
    # optimizers keep keys in ``defaults`` that their constructor does not take).
    accepted = inspect.signature(cls.__init__).parameters
    defaults = {k: v for k, v in optimizer.defaults.items() if k in accepted}
    try:
        rebuilt = cls(
            [{"params": [sharded[n] for n in ps], **settings} for ps, settings in param_groups],
            **defaults,
        )
        rebuilt.defaults = dict(optimizer.defaults)
        return rebuilt
    except TypeError as exc:
        raise FsdpError(
            f"--fsdp: cannot rebuild {type(optimizer).__name__} over the sharded parameters "
            f"({exc}); build the optimizer inside the job after sharding the model yourself"
        ) from None


def full_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """The model's and optimizer's full (unsharded) state dicts on the CPU: a collective.

    Every rank calls it; the dicts are what one unsharded process would save, so a checkpoint
    written from a sharded run loads in one process too.
    """
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_state_dict(model, optimizer, options=options)


def load_full_state(
    model: nn.Module, optimizer: torch.optim.Optimizer, model_state: dict, optim_state: dict
) -> None:
    """Load :func:`full_state`'s dicts (read by every rank) into the sharded model and optimizer."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

    set_state_dict(
        model,
        optimizer,
        model_state_dict=model_state,
        optim_state_dict=optim_state,
        options=StateDictOptions(full_state_dict=True),
    )

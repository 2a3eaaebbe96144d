"""The context every measurement pass beside training runs in (LCA's and input ablation's).

Such a pass must leave training exactly as it found it: modules in eval mode during the pass and
their train flags restored after, autocast off (the pass picks its own precision), the global RNG
forked so dropout masks or random augmentations of the next training step are the same with the
measurement on or off.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import torch
from torch import nn


@contextlib.contextmanager
def side_pass(
    model: nn.Module, device: torch.device, *, grad: bool, train_modules: Iterable[nn.Module] = ()
) -> Iterator[None]:
    """Eval mode (``train_modules`` in train mode), autocast off, autograd on or off as asked,
    the RNG forked; every module's train flag restored after."""
    flags = [(m, m.training) for m in model.modules()]
    devices = [device] if device.type == "cuda" else []
    try:
        with (
            torch.random.fork_rng(devices=devices),
            torch.set_grad_enabled(grad),
            torch.autocast(device.type, enabled=False),
        ):
            model.eval()
            for m in train_modules:
                m.training = True
            yield
    finally:
        for m, flag in flags:
            m.training = flag

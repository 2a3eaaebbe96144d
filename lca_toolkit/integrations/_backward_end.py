"""Run a function once at the end of every backward pass that reaches some parameters.

A trainer that clips gradients right after the last backward of a step, with no callback in
between (the Hugging Face ``Trainer``), leaves no public place to read the raw gradients. Autograd
does: a parameter's post-accumulate-grad hook fires once its ``.grad`` is updated, and from there a
callback can be queued to run when the whole backward pass has finished (the mechanism DDP and
FSDP use to finish their gradient reduction). The callback re-queues itself once, so it runs after
every callback queued during the pass, DDP's gradient averaging included.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from torch import Tensor
from torch.autograd import Variable
from torch.utils.hooks import RemovableHandle


class BackwardEnd:
    """Calls ``fn()`` once after each backward pass that accumulates into any of ``params``."""

    def __init__(self, params: Iterable[Tensor], fn: Callable[[], None]) -> None:
        self._fn = fn
        self._queued = False
        self._handles: list[RemovableHandle] = [
            p.register_post_accumulate_grad_hook(self._on_grad) for p in params if p.requires_grad
        ]

    def _on_grad(self, param: Tensor) -> None:
        if not self._queued:
            self._queued = True
            Variable._execution_engine.queue_callback(self._requeue)

    def _requeue(self) -> None:
        Variable._execution_engine.queue_callback(self._run)

    def _run(self) -> None:
        self._queued = False
        self._fn()

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

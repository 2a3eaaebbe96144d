"""``LcaCallback``: gradient norms and LCA recorded from a Hugging Face ``transformers.Trainer``.

::

    from lca_toolkit.integrations.transformers import LcaCallback

    heads = ["visual_projection.", "text_projection.", "logit_scale"]
    callback = LcaCallback({"vision": "vision_model.", "text": "text_model.", "heads": heads},
                           store="runs/x.zarr", loss_fn=per_sample_loss,
                           eval_batches=eval_batches, lca_every=50)
    transformers.Trainer(model=model, args=args, train_dataset=data, callbacks=[callback]).train()

Where the callback attaches, and why there:

* gradient norms at the end of every backward pass (an autograd hook; the last pass before the
  optimizer step wins, so under ``gradient_accumulation_steps`` the accumulated gradient is read).
  The Trainer clips (``max_grad_norm=1.0`` by default) right after the last backward with no
  callback in between, and ``on_pre_optimizer_step`` comes after clipping: reading at the end of
  the backward gives the raw norm before clipping, the same quantity as
  :meth:`lca_toolkit.Tracker.before_clip` in a hand-written loop and the Lightning callback. Under
  fp16 the gradients are still scaled there; the norms are divided by the GradScaler's scale.
  A step the scaler skips is recorded with ``skipped=True`` and NaN norms.
* the row in ``on_step_end``: one per optimizer step. The loss column is the mean over the step's
  micro-batches of the model output's ``loss`` (NaN when the model returns none, e.g. with a custom
  ``compute_loss``).
* LCA every ``lca_every`` optimizer steps, in ``on_step_end``, outside autocast.
* the Tracker's state in ``on_save`` as ``lca_tracker.pt`` inside the checkpoint folder
  (``checkpoint-<step>``); ``trainer.train(resume_from_checkpoint=...)`` reads it from the folder of
  the step the Trainer resumes at, reopens the same store and continues it with no gap and no
  duplicate step.
* under DDP every rank runs the Tracker, only rank 0 writes the store and the state file.

A run that raises is left with status ``running`` (the Trainer has no exception event).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .._batches import move_to
from .._extras import require_for_integration
from ..errors import TrackerError
from ..groups import ParamGroups
from ..lca import LossFn
from ..records import Sink
from ..rundir import load_checkpoint
from ..tracker import Tracker
from ._backward_end import BackwardEnd
from ._options import tracker_options

_transformers = require_for_integration(
    "transformers", integration="transformers", library="transformers", extra="transformers"
)

__all__ = ["STATE_FILE", "LcaCallback"]

STATE_FILE = "lca_tracker.pt"
"""Name of the Tracker's state inside each ``checkpoint-<step>`` folder."""


class LcaCallback(_transformers.TrainerCallback):
    """Record per-group gradient norms and step-k LCA of a ``transformers.Trainer`` run.

    Args:
        groups: group name -> parameter-name prefixes relative to the model given to the Trainer
            (e.g. ``{"vision": "vision_model.", "text": "text_model."}``), a
            :class:`~lca_toolkit.ParamGroups`, or ``None`` for one group per top-level child.
        store: path of the zarr run store (created when training starts; reopened on resume), a
            sink, or ``None`` to keep the rows in memory.
        loss_fn: ``loss_fn(model, batch)`` -> 1-D tensor of per-sample losses on E. Needed for LCA.
        eval_batches: the fixed evaluation subset E (a list of batches, e.g. dicts of tensors);
            moved to the model's device when training starts. Needed for LCA.
        lca_every: k, LCA every k optimizer steps; ``None`` records gradient norms only.
        **tracker_options: any other :class:`~lca_toolkit.Tracker` keyword, except ``model`` and
            ``optimizer`` which come from the Trainer.

    Attributes:
        tracker: the :class:`~lca_toolkit.Tracker`, from ``on_train_begin`` (``None`` before).
    """

    def __init__(
        self,
        groups: ParamGroups | Mapping[str, Any] | None = None,
        *,
        store: str | os.PathLike[str] | Sink | None = None,
        loss_fn: LossFn | None = None,
        eval_batches: Iterable[Any] | None = None,
        lca_every: int | None = None,
        **tracker_options_: Any,
    ) -> None:
        self.groups = groups
        self.store = store
        self.loss_fn = loss_fn
        self.eval_batches = eval_batches
        self.lca_every = lca_every
        self.options = tracker_options(tracker_options_, where="LcaCallback")
        self.tracker: Tracker | None = None
        self._scaler: torch.amp.GradScaler | None = None
        self._loss: Tensor | None = None
        self._hooks: list[Any] = []

    # ----------------------------------------------------------------------------- train
    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs) -> None:
        """Build the Tracker on the model and the torch optimizer inside the Trainer's wrapper."""
        if model is None or optimizer is None:
            raise TrackerError("LcaCallback: the Trainer gave no model or optimizer")
        self._close_tracker("finished")
        resume = self._resume_state(args, state)
        options = dict(self.options)
        if resume is not None:
            options["store_mode"] = "resume"
        eval_batches = self.eval_batches
        if eval_batches is not None:
            device = next(model.parameters()).device
            eval_batches = [move_to(b, device) for b in eval_batches]
        # accelerate wraps the optimizer (and owns the fp16 GradScaler): hooks go on the torch one.
        self._scaler = getattr(optimizer, "scaler", None)
        self.tracker = Tracker(
            model,
            self.groups,
            store=self.store,
            optimizer=getattr(optimizer, "optimizer", optimizer),
            loss_fn=self.loss_fn,
            eval_batches=eval_batches,
            lca_every=self.lca_every,
            **options,
        )
        if self.tracker.sharded:
            self._close_tracker("failed")
            raise TrackerError(
                "LcaCallback (Hugging Face) does not record FSDP2-sharded models: accelerate's "
                "FSDP2 needs GPUs and its gradient reduction ends after the hook this callback "
                "reads raw norms in; use lca_toolkit.Tracker in your own loop, or the Lightning "
                "callback under ModelParallelStrategy"
            )
        if resume is not None:
            self.tracker.load_state_dict(resume)
        if self.tracker.step != state.global_step:
            raise TrackerError(
                f"LcaCallback: the tracker is at step {self.tracker.step} but the Trainer at "
                f"global_step {state.global_step}"
            )
        params = [p for _, _, p in self.tracker.groups.named_parameters()]
        self._hooks = [
            BackwardEnd(params, self._on_backward_end),
            model.register_forward_hook(self._on_forward),
        ]

    def _on_forward(self, module: nn.Module, args: Any, output: Any) -> None:
        """Keep the training forward's ``loss`` output for the step's loss column."""
        if not (module.training and torch.is_grad_enabled()):
            return
        loss = output.get("loss") if isinstance(output, Mapping) else getattr(output, "loss", None)
        if isinstance(loss, Tensor):
            self._loss = loss.detach()

    def _on_backward_end(self) -> None:
        """Raw norms of the gradients accumulated so far (still scaled under fp16)."""
        tracker = self.tracker
        if tracker is None:
            return
        tracker.after_backward(self._loss)
        self._loss = None
        scaler = self._scaler
        scale = scaler._scale if scaler is not None and scaler.is_enabled() else None
        tracker.before_clip(grad_scale=scale)

    def on_step_end(self, args, state, control, **kwargs) -> None:
        """The optimizer step's row, and LCA when an interval ends."""
        if self.tracker is not None:
            self.tracker.after_step()

    def on_train_end(self, args, state, control, **kwargs) -> None:
        self._close_tracker("finished")

    def _close_tracker(self, status: str) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
        if self.tracker is not None:
            self.tracker.close(status)

    # ----------------------------------------------------------------------------- checkpoints
    def on_save(self, args, state, control, **kwargs) -> None:
        """The Tracker's state beside the checkpoint the Trainer just wrote (store flushed first)."""
        if self.tracker is None or self.tracker._closed:
            return
        tracker_state = self.tracker.state_dict()  # every rank: flushing averages the loss column
        if state.is_world_process_zero:
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            folder.mkdir(parents=True, exist_ok=True)
            torch.save(tracker_state, folder / STATE_FILE)

    def _resume_state(self, args, state) -> Mapping[str, Any] | None:
        """The state saved with the checkpoint the Trainer resumed from (``None`` at step 0)."""
        if state.global_step == 0:
            return None
        candidates = [Path(args.output_dir) / f"checkpoint-{state.global_step}" / STATE_FILE]
        if isinstance(args.resume_from_checkpoint, (str, os.PathLike)):
            candidates.insert(0, Path(args.resume_from_checkpoint) / STATE_FILE)
        for path in candidates:
            if path.is_file():
                return load_checkpoint(path)
        raise TrackerError(
            f"LcaCallback: the Trainer resumes at step {state.global_step} but no tracker state "
            f"was found (looked for {', '.join(str(p) for p in candidates)}); resume from a "
            "checkpoint written with this callback attached"
        )

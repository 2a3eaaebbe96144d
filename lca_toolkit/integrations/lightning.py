"""``LcaCallback``: gradient norms and LCA recorded from a ``lightning.pytorch.Trainer`` fit.

::

    from lca_toolkit.integrations.lightning import LcaCallback

    callback = LcaCallback({"a": "net.a.", "b": "net.b.", "head": "head."}, store="runs/x.zarr",
                           loss_fn=per_sample_loss, eval_batches=eval_batches, lca_every=50)
    lightning.pytorch.Trainer(callbacks=[callback], ...).fit(module, train_loader)

Where the callback attaches, and why there:

* gradient norms in ``on_before_optimizer_step``, which Lightning calls once per optimizer step,
  after the last backward of the accumulation window, after the GradScaler unscaled the gradients
  (``precision="16-mixed"``) and *before* ``gradient_clip_val`` clips them: the recorded
  ``grad_norm/<group>`` is the raw, unscaled norm before clipping, as with
  :meth:`lca_toolkit.Tracker.before_clip` in a hand-written loop. A step the GradScaler skips is
  recorded with ``skipped=True`` and NaN norms.
* the row in ``on_train_batch_end`` of the batch whose optimizer step advanced
  ``trainer.global_step``: one row per optimizer step under ``accumulate_grad_batches``; the loss
  column is the mean over the step's micro-batches of the ``training_step`` loss.
* LCA every ``lca_every`` optimizer steps in the same place, outside Lightning's autocast.
* the Tracker's state in the callback's ``state_dict`` (saved in every Lightning checkpoint):
  ``trainer.fit(..., ckpt_path=...)`` reopens the same store, drops rows written after the
  checkpoint and continues it with no gap and no duplicate step.
* under DDP every rank runs the Tracker (norms from the averaged gradients, E sharded across ranks)
  and only rank 0 writes the store.
* under ``ModelParallelStrategy`` with a module sharded by ``fully_shard`` in ``configure_model``
  (FSDP2), the same, each rank holding its shards; Lightning keeps callback states of rank 0 only,
  so each rank writes its shard of the Tracker's state to ``<store>.ckpt/lightning-step<N>.rank<r>.pt``
  and the checkpoint holds where to find it.

Automatic optimization only: under manual optimization Lightning does not know where a step's
accumulation window ends, so the callback raises a :class:`~lca_toolkit.errors.TrackerError` at the
start of the fit; attach a :class:`~lca_toolkit.Tracker` inside ``training_step`` instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .. import distributed
from .._batches import move_to
from .._extras import require_for_integration
from ..checkpoint import save_atomic
from ..errors import TrackerError
from ..groups import ParamGroups
from ..lca import LossFn
from ..records import Sink
from ..rundir import RunDir, load_checkpoint
from ..tracker import Tracker
from ._options import tracker_options

_pl = require_for_integration(
    "lightning.pytorch", integration="lightning", library="Lightning", extra="lightning"
)

__all__ = ["LcaCallback"]


class LcaCallback(_pl.Callback):
    """Record per-group gradient norms and step-k LCA of a LightningModule during ``fit``.

    Args:
        groups: group name -> parameter-name prefixes relative to the LightningModule (e.g.
            ``{"a": "net.a.", "b": "net.b."}``), a :class:`~lca_toolkit.ParamGroups`, or ``None``
            for one group per top-level child module.
        store: path of the zarr run store (created at the start of the fit; reopened when the fit
            resumes from a checkpoint), a sink, or ``None`` to keep the rows in memory.
        loss_fn: ``loss_fn(module, batch)`` -> 1-D tensor of per-sample losses on E; ``module`` is
            the LightningModule. Needed for LCA.
        eval_batches: the fixed evaluation subset E (a list of batches); moved to the module's
            device when the fit starts. Needed for LCA.
        lca_every: k, LCA every k optimizer steps; ``None`` records gradient norms only.
        **tracker_options: any other :class:`~lca_toolkit.Tracker` keyword (``lca=``,
            ``quadrature=``, ``config=``, ``store_mode=``...), except ``model`` and ``optimizer``
            which come from the trainer. ``on_nonfinite`` must stay ``record``: with a closure
            Lightning runs the backward inside ``optimizer.step()``, after its pre-hook.

    Attributes:
        tracker: the :class:`~lca_toolkit.Tracker`, from the start of training (``None`` before).
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
        options = tracker_options(tracker_options_, where="LcaCallback")
        if options.get("on_nonfinite", "record") != "record":
            raise TrackerError(
                "LcaCallback (Lightning): on_nonfinite must be 'record' (Lightning runs the "
                f"backward inside optimizer.step()), got {options['on_nonfinite']!r}"
            )
        self.groups = groups
        self.store = store
        self.loss_fn = loss_fn
        self.eval_batches = eval_batches
        self.lca_every = lca_every
        self.options = options
        self.tracker: Tracker | None = None
        self._resume: Mapping[str, Any] | None = None

    @property
    def state_key(self) -> str:
        # Two callbacks writing two stores keep two states in one checkpoint.
        return self._generate_state_key(store=str(self.store))

    # ----------------------------------------------------------------------------- fit
    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        """Check the module's optimization before anything runs."""
        if not pl_module.automatic_optimization:
            raise TrackerError(
                "LcaCallback needs automatic optimization (the LightningModule sets "
                "automatic_optimization = False); with manual optimization call a "
                "lca_toolkit.Tracker yourself in training_step (after_backward, before_clip, "
                "after_step)"
            )
        if len(trainer.optimizers) != 1:
            raise TrackerError(
                f"LcaCallback records one optimizer, the module configured {len(trainer.optimizers)}"
            )

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        """Build the Tracker (and load a restored state): the optimizer exists and, under every
        strategy, a checkpoint's callback states are restored by now (``ModelParallelStrategy``
        restores them after ``on_fit_start``). Then check that the tracker and the trainer count
        the same steps."""
        if self.tracker is not None:  # a second fit with the same callback: a new run
            self.tracker.close()
        options = dict(self.options)
        if self._resume is not None:
            options["store_mode"] = "resume"
        eval_batches = self.eval_batches
        if eval_batches is not None:
            eval_batches = [move_to(b, pl_module.device) for b in eval_batches]
        self.tracker = Tracker(
            pl_module,
            self.groups,
            store=self.store,
            optimizer=trainer.optimizers[0],
            loss_fn=self.loss_fn,
            eval_batches=eval_batches,
            lca_every=self.lca_every,
            **options,
        )
        if self._resume is not None:
            self.tracker.load_state_dict(self._resume)
            self._resume = None
        if self.tracker.step != trainer.global_step:
            raise TrackerError(
                f"LcaCallback: the tracker is at step {self.tracker.step} but the trainer at "
                f"global_step {trainer.global_step}; resume from a checkpoint written with this "
                "callback attached"
            )

    def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        """Raw gradient norms: after accumulation and unscaling, before clipping."""
        self._require_tracker().before_clip()

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """The micro-batch's loss; the step's row (and LCA) when its optimizer step ran."""
        tracker = self._require_tracker()
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if loss is not None:  # Lightning divided it by accumulate_grad_batches for backward
            loss = loss.detach() * trainer.accumulate_grad_batches
        tracker.after_backward(loss)
        if trainer.global_step > tracker.step:
            tracker.after_step()

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        if self.tracker is not None:
            self.tracker.close("finished")

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        if self.tracker is None:
            return
        if isinstance(exception, KeyboardInterrupt):
            self.tracker.close("interrupted", reason="KeyboardInterrupt")
        else:
            self.tracker.close("failed", reason=f"{type(exception).__name__}: {exception}")

    # ----------------------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """The Tracker's state (the store is flushed first, so it agrees with the checkpoint)."""
        if self.tracker is None or self.tracker._closed:
            return {}
        state = self.tracker.state_dict()
        if not self.tracker.sharded:
            return {"tracker": state}
        step = self.tracker.step
        save_atomic(state, self._rank_file(step, distributed.rank()))  # every rank its shards
        return {"tracker_per_rank_at": step}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Keep the state until ``on_train_start`` builds the Tracker (Lightning restores callbacks
        before it sets up the optimizer, or after ``on_fit_start`` under ModelParallelStrategy)."""
        step = state_dict.get("tracker_per_rank_at")
        if step is None:
            self._resume = state_dict.get("tracker")
            return
        path = self._rank_file(step, distributed.rank())
        if not path.is_file():
            raise TrackerError(f"LcaCallback: this rank's tracker state {path} is missing")
        self._resume = load_checkpoint(path)

    def _rank_file(self, step: int, rank: int) -> Path:
        if not isinstance(self.store, (str, os.PathLike)):
            raise TrackerError(
                "LcaCallback: a sharded (FSDP2) run keeps each rank's tracker state beside its "
                "store; pass store= a path"
            )
        return RunDir(Path(self.store)).checkpoint_dir / f"lightning-step{step}.rank{rank}.pt"

    def _require_tracker(self) -> Tracker:
        if self.tracker is None:
            raise TrackerError("LcaCallback: the fit has not started (no tracker yet)")
        return self.tracker

"""The Tracker: attach gradient-norm and LCA recording to an existing training loop.

Five lines::

    tracker = Tracker(model, groups, optimizer=opt, store="runs/x.zarr",
                      loss_fn=per_sample_loss, eval_batches=eval_batches, lca_every=60)
    ...
        loss.backward()
        tracker.after_backward(loss)      # after every backward (every micro-batch)
        opt.step()
        tracker.after_step()              # once per optimizer step, after it
    tracker.close()                       # or use the tracker as a context manager

Step numbering: ``step`` counts optimizer steps; the row with ``step = t`` describes the t-th
optimizer step (1-based), and the LCA interval ``(start_step, end_step]`` covers the rows with
``start_step < step <= end_step``: it allocates ``L_E(after end_step steps) - L_E(after start_step
steps)``. Intervals are k steps long, counted from the start of the current one; an interval
closed early by :meth:`Tracker.set_eval_batches` (a new evaluation subset E) is shorter, and the
next ones count k steps from its end. :meth:`Tracker.stop_lca` ends LCA recording for the rest of
the run (closing the open interval the same way) while gradient norms go on every step.

Where the gradient norms are read (inside ``optimizer.step()`` with ``optimizer=``, the
recommended way; in ``after_backward`` without), what a step a GradScaler skips records, and the
learning rates recorded: :mod:`lca_toolkit.quantities.step_norms`.

Gradient clipping: ``grad_norm/<group>`` is always the raw norm of the accumulated gradient before
clipping (unscaled under AMP), the quantity of the paper, in a hand-written loop as in the
Lightning and Hugging Face callbacks (:mod:`lca_toolkit.integrations`). A loop that clips calls
:meth:`Tracker.before_clip` between unscaling and clipping, which reads the norms there; without
it the pre-hook would read the clipped gradients::

        scaler.scale(loss).backward()
        tracker.after_backward(loss)
        scaler.unscale_(opt)
        tracker.before_clip()             # raw norms, before clipping
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(opt); scaler.update()
        tracker.after_step()

``update_norm/<group>`` records the change the clipped step made to the weights.

Non-finite numbers (``on_nonfinite``): ``record`` (default) stores a NaN or Inf as it is,
``stop`` records the row and raises :class:`~lca_toolkit.errors.NonFiniteError`, ``skip`` leaves
the weights untouched and counts the step (:mod:`lca_toolkit.quantities.step_norms`).

The Tracker only schedules and stores: each measurement is a quantity with its own schedule
(:mod:`lca_toolkit.quantities`: the per-step rows every step, LCA every k steps until
:meth:`Tracker.stop_lca`, the epoch metrics at epoch ends, and any quantity passed in
``quantities=``), each emits its records once, and one :class:`~lca_toolkit.output.Output` routes
them to the store and the mirror. The math lives in :mod:`lca_toolkit.grad_norms` and
:mod:`lca_toolkit.lca`. Values stay on the model's device and reach the host in batches of rows.

Distributed (DDP under torchrun): pass the ``DistributedDataParallel`` model as it is and the same
E on every rank; groups and LCA use the unwrapped module (names without ``module.``). Norms come
from DDP's averaged gradients, E is sharded across ranks by batch index (see
:mod:`lca_toolkit.distributed`), the loss column is averaged across ranks once per transfer of rows,
and only rank 0 opens the store: every rank must make the same calls in the same order.

Live mirror (``mirror=``, :mod:`lca_toolkit.mirrors`): rank 0 hands every stored record to it
too; the store stays the source of truth, and a mirror that raises warns once and is switched off.

LCA settings: one :class:`~lca_toolkit.lca.LcaConfig` (``lca=``). ``lca_every=k`` and the flat
keywords beside it are a shorthand for the common case (``lca_every=50``), resolved into that one
``LcaConfig`` by :func:`~lca_toolkit.lca_config.lca_config_from` before anything else sees them;
``tracker.lca`` is the config that runs either way.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from . import distributed
from .errors import TrackerError
from .groups import ParamGroups
from .lca import BN_GROUP, LcaConfig, LcaEngine, LcaResult, LossFn
from .lca_config import lca_config_from
from .mirrors import GuardedMirror, Mirror
from .output import Output
from .quantities import EpochLog, LcaIntervals, Quantities, Quantity, StepNorms
from .quantities._registry import check_added
from .quantities.input_ablation import input_ablation
from .quantities.step_norms import NONFINITE_POLICIES
from .records import Attrs, Sink, Table
from .sharding import refuse_unsupported

__all__ = ["NONFINITE_POLICIES", "Tracker"]

_LCA_OFF = "LCA is off: construct the Tracker with lca_every=, loss_fn=, eval_batches="


class Tracker:
    """Records per-group gradient norms every optimizer step and step-k LCA every k steps.

    Args:
        model: the model being trained (never modified by the Tracker).
        groups: a :class:`ParamGroups`, a mapping of group name -> parameter-name prefixes, or
            ``None`` for one group per top-level child module.
        store: path of the zarr run store to create, a ready ``RunWriter``/sink, or ``None`` to keep
            the records in memory (``tracker.sink``).
        optimizer: the optimizer, so norms are read inside its step and learning rates recorded.
        loss_fn: ``loss_fn(model, batch)`` -> 1-D tensor of per-sample losses (``reduction='none'``).
            Needed for LCA.
        eval_batches: the fixed evaluation subset E as a re-iterable collection of batches (same
            order every time, no augmentation). Needed for LCA. :meth:`set_eval_batches` changes
            it between intervals (e.g. the samples of each epoch).
        lca: how LCA is measured, as one :class:`LcaConfig` (its ``every`` is k); ``None`` (and
            no ``lca_every``) turns LCA off. Stored whole in the store's config
            (``tracker.lca``, :meth:`LcaConfig.as_record`).
        lca_every: k, a shorthand for ``lca=LcaConfig(every=k, ...)`` built from the keywords
            below, which are ignored without it. Giving ``lca`` and any of these keywords is an
            error.
        quadrature, rel_tol, abs_tol, max_panels, bn_policy, per_tensor, cumulative: shorthand
            for the :class:`LcaConfig` fields of those names (``None``: its default).
        record_update_norm: record ``||theta_after - theta_before||`` per group (keeps one
            parameter-sized buffer; needs ``optimizer``).
        config: extra run configuration stored in the store's attrs (JSON-serialisable).
        store_mode: ``create`` | ``resume`` | ``overwrite`` when ``store`` is a path.
        transfer_every: rows kept on the device before one batched move to the host.
        flush_every: rows the store writer queues before writing.
        on_nonfinite: ``record`` (default) | ``stop`` | ``skip``; see the module docstring.
            ``stop`` and ``skip`` need ``optimizer``.
        mirror: ``"tensorboard:DIR"`` to also write the recorded scalars as TensorBoard events
            in ``DIR`` while the run goes (needs ``lca-toolkit[tensorboard]``), an object
            implementing :class:`~lca_toolkit.mirrors.Mirror`, or ``None`` (default). Rank 0
            only; a failing mirror warns once and is switched off (``tracker.mirror``).
        quantities: more measurements, each a :class:`~lca_toolkit.quantities.Quantity` with its
            own schedule, measured after the built-in ones (see :meth:`add_quantity`).
        modalities: input ablation: modality name -> how to remove it from a batch of E
            (:class:`~lca_toolkit.ablation.Modality`: where it is in the batch, and ``"zeros"``,
            ``"mean"`` over E or a function). Every ``ablation_every`` steps the loss on E with
            each subset of modalities removed gives each one's Shapley contribution (leave-one-out
            beyond 4 modalities), stored as the table ``ablation``; needs ``loss_fn`` and E.
        ablation_every: K, optimizer steps between input-ablation measurements.
        ablation_metric: ``metric(model, batch)`` -> per-sample scores (accuracy...) also
            measured with each subset removed.

    Attributes:
        lca: the :class:`LcaConfig` LCA runs with, however it was given (``None``: LCA off).
        quantities: every quantity measured, in the order they are measured.
    """

    def __init__(
        self,
        model: nn.Module,
        groups: ParamGroups | Mapping[str, Any] | None = None,
        *,
        store: str | os.PathLike[str] | Sink | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        loss_fn: LossFn | None = None,
        eval_batches: Iterable[Any] | None = None,
        lca: LcaConfig | None = None,
        lca_every: int | None = None,
        quadrature: str | None = None,
        rel_tol: float | None = None,
        abs_tol: float | None = None,
        max_panels: int | None = None,
        bn_policy: str | None = None,
        per_tensor: bool | None = None,
        cumulative: bool | None = None,
        record_update_norm: bool = True,
        config: Mapping[str, Any] | None = None,
        store_mode: str = "create",
        transfer_every: int = 64,
        flush_every: int = 256,
        on_nonfinite: str = "record",
        mirror: str | os.PathLike[str] | Mirror | None = None,
        quantities: Sequence[Quantity] = (),
        modalities: Mapping[str, Any] | None = None,
        ablation_every: int | None = None,
        ablation_metric: Callable[[nn.Module, Any], Tensor] | None = None,
    ) -> None:
        inner = distributed.unwrap(model)
        if isinstance(groups, ParamGroups) and inner is not model:  # built on the DDP wrapper
            strip = {g: [n.removeprefix("module.") for n in m] for g, m in groups.members.items()}
            groups = ParamGroups(inner, strip)
        model = inner
        refuse_unsupported(model)
        if groups is None:
            groups = ParamGroups.from_children(model)
        elif not isinstance(groups, ParamGroups):
            groups = ParamGroups.from_prefixes(model, groups)
        StepNorms.check_options(optimizer, on_nonfinite, transfer_every)  # before any store
        check_added(quantities)
        self.model = model
        self.groups = groups
        self.optimizer = optimizer
        self.on_nonfinite = on_nonfinite

        self.lca: LcaConfig | None = None
        engine: LcaEngine | None = None
        if lca is not None or lca_every is not None:
            if loss_fn is None or eval_batches is None:
                asked = "lca_every" if lca is None else "lca"
                raise TrackerError(f"{asked} needs loss_fn= and eval_batches= (the subset E)")
            self.lca = lca_config_from(
                lca,
                lca_every=lca_every,
                quadrature=quadrature,
                rel_tol=rel_tol,
                abs_tol=abs_tol,
                max_panels=max_panels,
                bn_policy=bn_policy,
                per_tensor=per_tensor,
                cumulative=cumulative,
            )
            engine = LcaEngine(model, groups, loss_fn, eval_batches, self.lca)
        self.group_names = engine.group_names if engine else groups.names
        members = groups.members
        if engine and BN_GROUP in self.group_names:
            members[BN_GROUP] = engine.buffer_names
        # Every option is checked before a store exists: a refused call leaves nothing behind.
        self._ablation = input_ablation(
            model, loss_fn, eval_batches, modalities, ablation_every, ablation_metric
        )
        self.out = Output.open(
            store,
            mirror,
            groups=groups,
            group_names=self.group_names,
            members=members,
            model=model,
            optimizer=optimizer,
            lca=self.lca,
            tensor_names=engine.tensor_names if engine and engine.config.per_tensor else None,
            config=config,
            store_mode=store_mode,
            flush_every=flush_every,
        )
        self._norms = StepNorms(
            groups,
            len(self.group_names),
            self.out,
            optimizer=optimizer,
            record_update_norm=record_update_norm,
            on_nonfinite=on_nonfinite,
            transfer_every=transfer_every,
        )
        self._lca = None if engine is None else LcaIntervals(engine)
        self.quantities = Quantities(self._norms, self._lca, EpochLog())
        self._closed = False
        for quantity in [*([self._ablation] if self._ablation else []), *quantities]:
            self.add_quantity(quantity)

    def add_quantity(self, quantity: Quantity) -> None:
        """Measure ``quantity`` too, on its own schedule, after the built-in quantities.

        Its records go the way of every record (store, mirror, rank 0 only), its
        :meth:`~lca_toolkit.quantities.Quantity.state_dict` is saved under
        ``state["quantities"][quantity.name]``. Only before the first step.
        """
        self._check_open()
        if self.step:
            raise TrackerError(
                f"add_quantity({getattr(quantity, 'name', quantity)!r}) at step {self.step}: add "
                "quantities before the first step"
            )
        self.quantities.add(quantity)

    # ----------------------------------------------------------------------------- views
    @property
    def step(self) -> int:
        """Optimizer steps taken (the row with ``step = t`` describes the t-th)."""
        return self._norms.step

    @property
    def sink(self) -> Sink:
        """Where the records are stored (a ``RunWriter``, memory, or nothing on rank > 0)."""
        return self.out.sink

    @property
    def mirror(self) -> GuardedMirror | None:
        """The live mirror (rank 0 only), or ``None``."""
        return self.out.mirror

    @property
    def engine(self) -> LcaEngine | None:
        """The LCA engine; ``None`` when LCA is off or stopped."""
        return None if self._lca is None else self._lca.engine

    @property
    def nonfinite_skipped(self) -> int:
        """Steps ``on_nonfinite='skip'`` did not apply."""
        return self._norms.nonfinite_skipped

    @property
    def last_skipped(self) -> bool:
        """The last step was not applied (non-finite, or skipped by the GradScaler)."""
        return self._norms.last_skipped

    @property
    def sharded(self) -> bool:
        """The model is sharded with FSDP2: :meth:`state_dict` holds this rank's shards only, so
        every rank saves its own (``torch.save(state, f"tracker_rank{rank}.pt")``)."""
        return self._norms.sharded

    @property
    def lca_active(self) -> bool:
        """LCA is recorded from here on (built with LCA and :meth:`stop_lca` not called)."""
        return self.engine is not None

    @property
    def lca_stopped_at(self) -> int | None:
        """The step :meth:`stop_lca` ended LCA recording at (``None``: not stopped)."""
        return None if self._lca is None else self._lca.stopped_at

    # ----------------------------------------------------------------------------- training loop
    def after_backward(self, loss: Tensor | None = None) -> None:
        """Call after every ``loss.backward()``; records the loss (mean over the calls of a step).

        Without an optimizer this is also where gradient norms are read.
        """
        self._check_open()
        if loss is not None:
            self._norms.add_loss(loss)
        self._norms.after_backward()

    def before_clip(self, grad_scale: Tensor | float | None = None) -> None:
        """Read this step's gradient norms now, before any gradient clipping changes them.

        Call once per optimizer step, after the last backward of the step (after
        ``scaler.unscale_(optimizer)`` under a GradScaler) and before clipping and
        ``optimizer.step()``; the norms read here are the ones recorded for the step (the last call
        before :meth:`after_step` wins). Needed only when the loop clips gradients: the paper's
        quantity is the raw gradient norm, and without this call the norms are read inside
        ``optimizer.step()``, after clipping. A step the GradScaler then skips is still recorded
        as skipped, with NaN norms.

        Args:
            grad_scale: the factor the gradients are still multiplied by, when they are read before
                a GradScaler unscaled them (its current scale, a 0-d or 1-element tensor or a
                float); the recorded norms are divided by it. ``None``: already unscaled.
        """
        self._check_open()
        self._norms.before_clip(grad_scale)

    def after_step(self) -> LcaResult | None:
        """Call once after every optimizer step. Returns the LCA result when an interval ended.

        Every quantity due at this step is measured, in order: the step's row first, then LCA
        when an interval ends (k steps after it started: ``step % k == 0`` as long as no
        interval was closed early by :meth:`set_eval_batches`), then the added quantities.
        """
        self._check_open()
        return self.quantities.at_step(self._norms.tick(), self.out)

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """Store per-epoch metrics (train/val AUC, losses...) in ``epochs/``; quantities due at
        epoch ends are measured after them."""
        self._check_open()
        self.quantities.at_epoch_end(epoch, self.step, self.out, metrics)

    # ----------------------------------------------------------------------------- LCA
    def set_eval_batches(self, eval_batches: Iterable[Any]) -> LcaResult | None:
        """Switch the evaluation subset E, e.g. to the samples of a new epoch.

        An LCA interval never spans two E's, or its loss change would mix two different losses.
        An interval with steps in it is closed now on the old E (a shorter interval ending at
        this step) and its result returned; the next interval starts here, its left end
        evaluated on the new E (one extra gradient pass), and later intervals count k steps from
        here. After :meth:`stop_lca` this does nothing.

        Resume: E is data, not part of :meth:`state_dict`. The caller constructs the resumed
        Tracker with the E that was in force when the checkpoint was written, then calls
        :meth:`load_state_dict`, and switches again only at the next boundary. Distributed: every
        rank calls this at the same step with the same E.
        """
        self._check_open()
        if self._ablation is not None:
            self._ablation.set_eval_batches(eval_batches)
        if self._lca is None:
            if self._ablation is not None:
                return None
            raise TrackerError(
                "set_eval_batches: LCA is off; construct the Tracker with lca_every=, loss_fn=, "
                "eval_batches="
            )
        return self._lca.set_eval_batches(eval_batches, self.step, self.out)

    def stop_lca(self) -> LcaResult | None:
        """End LCA recording for the rest of the run; gradient norms go on every step.

        For runs that measure LCA over their first part only (LCA costs several gradient passes
        over E per interval, norms cost nothing extra): an interval with steps in it is closed
        now, on the current E, exactly as :meth:`set_eval_batches` closes one, and its result
        returned, so the stored intervals end at this step. Then the LCA engine is released: no
        further LCA pass runs, :meth:`set_eval_batches` does nothing, and the engine's
        parameter-sized buffers are freed. The step is stored in the ``lca_stopped_at`` attribute
        and in :meth:`state_dict`, so a run resumed after it stays stopped.

        Calling it again, or on a Tracker without LCA, does nothing and returns ``None``.
        Distributed: every rank calls it at the same step (the closing measurement is collective).
        """
        self._check_open()
        return None if self._lca is None else self._lca.stop(self.step, self.out)

    def measure_lca(self) -> LcaResult:
        """Measure LCA from the last snapshot to now (called by :meth:`after_step` every k steps,
        by :meth:`set_eval_batches`, :meth:`stop_lca` and :meth:`measure_open_interval`).

        An interval whose residual exceeds ``LcaConfig.residual_tol`` of its loss change is
        warned about (:class:`~lca_toolkit.residual_check.LcaResidualWarning`, once per run).
        """
        if self._lca is None:
            raise TrackerError(_LCA_OFF)
        return self._lca.measure(self.step, self.out)

    def measure_open_interval(self) -> LcaResult | None:
        """Measure the interval since the last snapshot if it has steps, e.g. at the end of a run.

        ``close()`` with status ``finished`` (also the context manager leaving without an
        exception) calls it, so the last ``step % k`` steps are not dropped; call it earlier
        when the run's summary must include that last interval (the Tracker then finds nothing
        open at ``close()``). Returns ``None`` when LCA is off or stopped, or no step was taken
        since the last snapshot. Distributed: collective, every rank calls it.
        """
        self._check_open()
        return None if self._lca is None else self._lca.measure_open(self.step, self.out)

    # ----------------------------------------------------------------------------- storage
    def flush(self) -> None:
        """Move pending rows to the store and wait until they are on disk."""
        self._norms.transfer_rows()
        self.out.flush()

    def update_attrs(self, **attrs: Any) -> None:
        """Store run-level attributes (JSON-serialisable) beside the records, e.g. the results."""
        self.out.emit(Attrs(attrs))

    def write_table(self, name: str, columns: Mapping[str, np.ndarray]) -> None:
        """Store a table of the run (one 1-D array per column), e.g. the test predictions."""
        self.out.emit(Table(name, columns))

    def restart(self) -> None:
        """Start an unfinished run again at step 0: drop the rows an earlier attempt stored.

        For a resumed store that has no checkpoint to continue from; only before the first step.
        """
        self._check_open()
        if self.step:
            raise TrackerError(f"restart() is for a tracker at step 0, this one is at {self.step}")
        self.sink.truncate(last_step=0, last_epoch=-1)

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs; flushes the store so it agrees with the checkpoint.

        One flat dict, the keys checkpoints have always had; an added quantity's state is under
        ``"quantities"``, by name (:class:`~lca_toolkit.quantities.Quantities`).
        """
        self._check_open()
        self.flush()
        return {"group_names": list(self.group_names), **self.quantities.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from a checkpoint: restores the step and LCA state, trims the store after it.

        A checkpoint written after :meth:`stop_lca` is loaded by a Tracker built with LCA (as the
        run was), which then stops LCA too, without measuring anything.
        """
        self._check_open()
        if list(state["group_names"]) != self.group_names:
            raise TrackerError(
                f"checkpoint groups {state['group_names']} differ from this tracker's {self.group_names}"
            )
        self.quantities.load_state_dict(state, self.out)
        # No epoch logged before the checkpoint: epoch rows written after it are dropped too.
        last_epoch = self.quantities.epochs.last_epoch
        last_epoch = -1 if last_epoch is None else last_epoch
        engine = self.engine
        if engine is not None and engine.start_step < self.step:
            # An interval measured when that run ended (close()) is open again here.
            self.out.truncate(
                last_step=self.step, last_epoch=last_epoch, last_lca_end=engine.start_step
            )
        else:
            self.out.truncate(last_step=self.step, last_epoch=last_epoch)

    def close(self, status: str = "finished", reason: str | None = None) -> None:
        """Measure what is still open (``finished`` only), flush everything, remove the
        optimizer hooks and mark the run's status.

        A run that ends with status ``finished`` measures the steps since the last snapshot as
        a last interval (:meth:`measure_open_interval`), and every quantity finishes; a failed or
        interrupted one does not (its weights may be anything, and a resume continues the open
        interval instead).
        """
        if self._closed:
            return
        try:
            if status == "finished":
                try:
                    self.quantities.finish(self.step, self.out)
                except BaseException as exc:  # the store still closes, as failed
                    status, reason = "failed", f"{type(exc).__name__}: {exc}"
                    raise
            if status == "finished" or self._norms.pending_rows:
                self._norms.transfer_rows(reduce=status == "finished")
        finally:
            self._norms.remove_hooks()
            self._closed = True
            self.out.close(status, reason)

    def _check_open(self) -> None:
        if self._closed:
            raise TrackerError("the tracker is closed")

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close("finished")
        elif issubclass(exc_type, KeyboardInterrupt):
            self.close("interrupted", reason="KeyboardInterrupt")
        else:
            self.close("failed", reason=f"{exc_type.__name__}: {exc}")

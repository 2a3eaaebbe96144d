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

Where the gradient norms come from: with ``optimizer=`` given (recommended) the Tracker reads the
gradients inside ``optimizer.step()`` through a step pre-hook, i.e. after gradient accumulation is
complete and after a ``torch.amp.GradScaler`` has unscaled them. A step the scaler skips (inf/NaN
gradients) never reaches ``optimizer.step()``; it is recorded with ``skipped=True`` and NaN norms,
not as a huge norm. Without an optimizer the norms are read in ``after_backward`` (the last call
before ``after_step`` wins), learning rates are NaN and nothing is flagged as skipped. The learning
rates recorded are the ones ``optimizer.step()`` ran with (read in the same pre-hook), so a
scheduler stepped before ``after_step`` does not shift them by one step.

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

Non-finite numbers (``on_nonfinite``): by default (``record``) a NaN or Inf loss or gradient is
stored as it is and training goes on unchanged. ``stop`` and ``skip`` check the step's loss and
total gradient norm inside ``optimizer.step()``, before the weights change (one host sync per
step): ``stop`` records the row, then raises :class:`NonFiniteError` naming the step, the loss and
the groups whose gradient norm is not finite (the context manager closes the store as ``failed``
with that reason); ``skip`` drops the step's gradients so the optimizer leaves weights and state
untouched, flags the row ``skipped=True`` and counts it in the store attribute
``nonfinite_skipped``.

The Tracker only schedules and stores: the math lives in :mod:`lca_toolkit.grad_norms` and
:mod:`lca_toolkit.lca`. Values stay on the model's device and reach the host in batches of rows.

Distributed (DDP under torchrun): pass the ``DistributedDataParallel`` model as it is and the same
E on every rank; groups and LCA use the unwrapped module (names without ``module.``). Norms come
from DDP's averaged gradients, E is sharded across ranks by batch index (see
:mod:`lca_toolkit.distributed`), the loss column is averaged across ranks once per transfer of rows,
and only rank 0 opens the store: every rank must make the same calls in the same order.

Live mirror (``mirror=``, :mod:`lca_toolkit.mirrors`): rank 0 hands every stored record to it
too; the store stays the source of truth, and a mirror that raises warns once and is switched off.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from . import distributed, grad_norms
from ._tracker_lca import LcaSchedule
from .errors import NonFiniteError, TrackerError
from .groups import ParamGroups
from .lca import BN_GROUP, LcaConfig, LcaEngine, LcaResult, LossFn
from .lca_config import lca_config_from
from .mirrors import Mirror, open_mirror
from .records import Sink, StepBlock
from .sharding import ShardLayout, local, refuse_unsupported
from .sinks import open_sink

NONFINITE_POLICIES: tuple[str, ...] = ("record", "stop", "skip")
"""What the Tracker does with a NaN/Inf loss or gradient (``Tracker(on_nonfinite=...)``)."""


class Tracker(LcaSchedule):
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
        quadrature, rel_tol, abs_tol, max_panels, bn_policy, per_tensor, cumulative: the
            :class:`LcaConfig` fields of those names (``None``: its default).
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
        if transfer_every < 1:
            raise TrackerError(f"transfer_every must be >= 1, got {transfer_every}")
        if on_nonfinite not in NONFINITE_POLICIES:
            raise TrackerError(
                f"on_nonfinite must be one of {', '.join(NONFINITE_POLICIES)}, got {on_nonfinite!r}"
            )
        if on_nonfinite != "record" and optimizer is None:
            raise TrackerError(
                f"on_nonfinite={on_nonfinite!r} checks inside optimizer.step(): pass optimizer="
            )
        self.on_nonfinite = on_nonfinite
        self.nonfinite_skipped = 0
        self.last_skipped = False  # the last step was not applied (non-finite or GradScaler)
        self._skip_pending = False
        self._norms_early = False  # before_clip() read this step's norms: the pre-hook keeps them
        self._stepped = False  # optimizer.step() ran for this step (its pre-hook fired)
        self._step_lrs: list[float] | None = None  # learning rates optimizer.step() ran with
        self.model = model
        self.groups = groups
        self.optimizer = optimizer
        self.step = 0
        self._params = [p for _, _, p in groups.named_parameters()]
        self._device = self._params[0].device
        # FSDP2: norms of the local shards, added across ranks (a row of grad then param norms).
        layout = ShardLayout.of([(n, p) for _, n, p in groups.named_parameters()], self._device)
        self._layout = layout
        self._row_layout = None if layout is None else layout.repeat(2)
        self._n_param_groups = len(groups)
        group_index = groups.group_index().numpy()
        self._members = [np.flatnonzero(group_index == j) for j in range(self._n_param_groups)]

        self.engine: LcaEngine | None = None
        if lca is not None or lca_every is not None:
            if loss_fn is None or eval_batches is None:
                asked = "lca_every" if lca is None else "lca"
                raise TrackerError(f"{asked} needs loss_fn= and eval_batches= (the subset E)")
            lca_config = lca_config_from(
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
            self.engine = LcaEngine(model, groups, loss_fn, eval_batches, lca_config)
        self.group_names = self.engine.group_names if self.engine else groups.names
        self._lca_stopped_at: int | None = None  # the step stop_lca() released the engine at

        members = groups.members
        if self.engine and BN_GROUP in self.group_names:
            members[BN_GROUP] = self.engine.buffer_names
        # Checked on every rank (a bad spec or a missing extra fails everywhere, before a store
        # exists); kept on rank 0 only. Its writer opens at the first record.
        self.mirror = open_mirror(mirror)
        if not distributed.is_main():
            self.mirror = None
        self.sink: Sink = open_sink(
            store,
            groups=groups,
            group_names=self.group_names,
            members=members,
            model=model,
            optimizer=optimizer,
            lca=self.engine.config if self.engine else None,
            tensor_names=self.engine.tensor_names
            if self.engine and self.engine.config.per_tensor
            else None,
            config=config,
            store_mode=store_mode,
            flush_every=flush_every,
        )
        if self.mirror is not None:
            self.mirror.start(self.group_names)

        # Per-step state (device tensors, never synced in the hot path).
        self._record_update = record_update_norm and optimizer is not None
        self._before: list[Tensor] | None = None
        self._have_norms = False  # this step's norms are in the row buffer
        self._have_update = False  # and its update norms
        self._loss_sum: Tensor | None = None
        self._loss_count = 0
        self._hooks = []
        if optimizer is not None:
            self._hooks.append(optimizer.register_step_pre_hook(self._pre_step_hook))
            if self._record_update:
                self._hooks.append(optimizer.register_step_post_hook(self._post_step_hook))
        # Rows of per-tensor norms waiting for one batched move to the host, where they are
        # grouped (grad_norms.group_rows): [grad norms | parameter norms | update norms].
        acc = grad_norms.accumulation_dtype(self._params[0].dtype)
        n_tensors = len(self._params)
        self._raw = torch.zeros((transfer_every, 3 * n_tensors), dtype=acc, device=self._device)
        # Views of each row's two parts, made once: indexing a tensor every step costs dispatch.
        self._norm_slots = [r[: 2 * n_tensors] for r in self._raw]
        self._update_slots = [r[2 * n_tensors :] for r in self._raw]
        self._zero = torch.zeros((), dtype=acc, device=self._device)
        self._nan_loss = torch.full((), math.nan, dtype=torch.float64, device=self._device)
        self._row_steps: list[int] = []
        self._row_lrs: list[list[float]] = []
        self._row_losses: list[tuple[Tensor | None, int]] = []  # (sum over calls, calls)
        self._row_flags: list[tuple[bool, bool, bool]] = []  # (norms, update, skipped)
        self._last_epoch: int | None = None
        self._closed = False

    # ----------------------------------------------------------------------------- hooks
    def _write_norms(self) -> None:
        """Per-tensor norms of this step into its row of the buffer (no host sync)."""
        out = self._norm_slots[len(self._row_steps)]
        grad_norms.write_norm_row(self._params, out, self._zero, self._row_layout)
        self._have_norms = True

    def _pre_step_hook(self, optimizer, args, kwargs) -> None:
        self._stepped = True
        self._step_lrs = [float(g["lr"]) for g in optimizer.param_groups]
        if not self._norms_early:
            self._write_norms()
        if self.on_nonfinite != "record":
            self._check_finite(optimizer)
        if self._record_update:
            if self._before is None:
                self._before = [local(p).detach().clone() for p in self._params]
            else:
                with torch.no_grad():
                    torch._foreach_copy_(self._before, self._local_params())

    def _local_params(self) -> list[Tensor]:
        """The parameters, or this rank's shards of them under FSDP2."""
        return self._params if self._layout is None else [local(p) for p in self._params]

    def _check_finite(self, optimizer) -> None:
        """Stop or skip a step whose loss or gradients are not finite (one host sync)."""
        loss = None if self._loss_sum is None else self._loss_sum / self._loss_count
        norms = self._norm_slots[len(self._row_steps)]
        finite = torch.isfinite(norms[: len(self._params)]).all()
        if loss is not None:
            finite &= torch.isfinite(loss)
        if bool(finite):
            return
        if self.on_nonfinite == "skip":
            # Without gradients the optimizer skips every parameter: weights and state unchanged.
            for group in optimizer.param_groups:
                for p in group["params"]:
                    p.grad = None
            self._skip_pending = True
            return
        row = grad_norms.group_rows(
            self._raw[len(self._row_steps)][None].cpu().numpy(), self._members
        )
        names = self.groups.names
        bad = [g for g, v in zip(names, row.grad_norm[0], strict=True) if not math.isfinite(v)]
        shown = "not recorded" if loss is None else f"{float(loss)!r}"
        self._append_row()
        self._transfer_rows()
        raise NonFiniteError(
            f"non-finite numbers at step {self.step}: loss {shown}, gradient norm not finite in "
            f"group(s) {', '.join(bad) if bad else '(none)'}; the step was recorded and not "
            "applied (on_nonfinite='skip' skips such steps instead)"
        )

    def _post_step_hook(self, optimizer, args, kwargs) -> None:
        if not self._have_norms or self._before is None:
            return
        out = self._update_slots[len(self._row_steps)]
        grad_norms.write_update_row(self._before, self._params, out, self._layout)
        self._have_update = True

    # ----------------------------------------------------------------------------- training loop
    def after_backward(self, loss: Tensor | None = None) -> None:
        """Call after every ``loss.backward()``; records the loss (mean over the calls of a step).

        Without an optimizer this is also where gradient norms are read.
        """
        self._check_open()
        if loss is not None:
            value = loss.detach()
            value = (value.mean() if value.dim() else value).to(torch.float64)
            self._loss_sum = value if self._loss_sum is None else self._loss_sum + value
            self._loss_count += 1
        if self.optimizer is None and not self._norms_early:
            self._write_norms()

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
        self._write_norms()
        if grad_scale is not None:
            grad_part = self._norm_slots[len(self._row_steps)][: len(self._params)]
            with torch.no_grad():
                grad_part.div_(torch.as_tensor(grad_scale).to(grad_part).reshape(()))
        self._norms_early = True

    def after_step(self) -> LcaResult | None:
        """Call once after every optimizer step. Returns the LCA result when an interval ended.

        An interval ends k steps after it started (``step % k == 0`` as long as no interval was
        closed early by :meth:`set_eval_batches`).
        """
        self._check_open()
        self._append_row()
        engine = self.engine
        if engine is not None and self.step - engine.start_step >= engine.config.every:
            return self.measure_lca()
        return None

    @property
    def sharded(self) -> bool:
        """The model is sharded with FSDP2: :meth:`state_dict` holds this rank's shards only, so
        every rank saves its own (``torch.save(state, f"tracker_rank{rank}.pt")``)."""
        return self._layout is not None

    def _append_row(self) -> None:
        """Close the row of the step that just ended (its norms are already in the buffer)."""
        self.step += 1
        # With an optimizer, a step whose pre-hook never fired was skipped by the GradScaler; its
        # norms (read early by before_clip, or not at all) are not recorded.
        skipped = self.optimizer is not None and not self._stepped
        if skipped:
            self._have_norms = self._have_update = False
        if self._skip_pending:
            skipped, self._skip_pending = True, False
            self.nonfinite_skipped += 1
            self.sink.update_attrs(nonfinite_skipped=self.nonfinite_skipped)
        self.last_skipped = skipped
        self._row_flags.append((self._have_norms, self._have_update, skipped))
        self._row_losses.append((self._loss_sum, self._loss_count))
        self._row_steps.append(self.step)
        if self.optimizer is None:
            lrs = [math.nan]
        elif self._step_lrs is not None:
            lrs = self._step_lrs
        else:  # a skipped step: the rates it would have used
            lrs = [float(g["lr"]) for g in self.optimizer.param_groups]
        self._row_lrs.append(lrs)
        self._have_norms = self._have_update = False
        self._norms_early = self._stepped = False
        self._step_lrs = None
        self._loss_sum, self._loss_count = None, 0
        if len(self._row_steps) == self._raw.shape[0]:
            self._transfer_rows()

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """Store per-epoch metrics (train/val AUC, losses...) in ``epochs/``."""
        self._check_open()
        values = {k: float(v) for k, v in metrics.items()}
        self.sink.append_epoch(epoch, values)
        if self.mirror is not None:
            self.mirror.append_epoch(epoch, values, self.step)
        self._last_epoch = epoch

    # ----------------------------------------------------------------------------- storage
    def _transfer_rows(self, reduce: bool = True) -> None:
        """One device-to-host copy for every row recorded since the last transfer, then grouping.

        Distributed: one all-reduce averages the rows' losses across ranks first; without
        ``reduce`` (a failing run, whose other ranks may not reach this point) they become NaN.
        """
        n_rows = len(self._row_steps)
        if n_rows == 0:
            return
        sums = torch.stack([self._nan_loss if s is None else s for s, _ in self._row_losses])
        counts = np.array([max(c, 1) for _, c in self._row_losses], dtype=np.float64)
        if distributed.is_distributed():
            if reduce:
                sums = distributed.all_reduce_mean_(sums / torch.from_numpy(counts).to(sums))
            else:
                sums = torch.full_like(sums, math.nan)
            counts[:] = 1.0
        loss = sums.cpu().numpy() / counts
        rows = grad_norms.group_rows(self._raw[:n_rows].cpu().numpy(), self._members)
        flags = np.array(self._row_flags, dtype=bool)  # (rows, 3)
        have_norms, have_update, skipped = flags[:, 0], flags[:, 1], flags[:, 2]
        gn, total, rel = rows.grad_norm, rows.grad_norm_total, rows.rel_sq_norm
        upd, pn = rows.update_norm, rows.param_norm  # pn: ||theta|| where the gradient was taken
        gn[~have_norms] = total[~have_norms] = rel[~have_norms] = pn[~have_norms] = math.nan
        if self._record_update:
            upd[~have_norms] = 0.0  # a step the optimizer skipped changed nothing
            upd[have_norms & ~have_update] = math.nan
        else:
            upd[:] = math.nan
        pad = np.full((n_rows, len(self.group_names) - self._n_param_groups), math.nan)
        block = StepBlock(
            step=np.asarray(self._row_steps, dtype=np.int64),
            loss=loss,
            grad_norm_total=total,
            grad_norm=np.hstack([gn, pad]),
            rel_sq_norm=np.hstack([rel, pad]),
            update_norm=np.hstack([upd, pad]),
            skipped=skipped,
            lr=np.asarray(self._row_lrs, dtype=np.float64),
            param_norm=np.hstack([pn, pad]),
        )
        self.sink.append_steps(block)
        if self.mirror is not None:
            self.mirror.append_steps(block)
        self._clear_rows()

    def _clear_rows(self) -> None:
        """Forget the rows waiting for a transfer (after it, or when a checkpoint is loaded)."""
        self._row_steps, self._row_lrs, self._row_losses, self._row_flags = [], [], [], []

    def flush(self) -> None:
        """Move pending rows to the store and wait until they are on disk."""
        self._transfer_rows()
        self.sink.flush()
        if self.mirror is not None:
            self.mirror.flush()

    def update_attrs(self, **attrs: Any) -> None:
        """Store run-level attributes (JSON-serialisable) beside the records, e.g. the results."""
        self.sink.update_attrs(**attrs)

    def write_table(self, name: str, columns: Mapping[str, np.ndarray]) -> None:
        """Store a table of the run (one 1-D array per column), e.g. the test predictions."""
        self.sink.write_table(name, columns)

    def restart(self) -> None:
        """Start an unfinished run again at step 0: drop the rows an earlier attempt stored.

        For a resumed store that has no checkpoint to continue from; only before the first step.
        """
        self._check_open()
        if self.step:
            raise TrackerError(f"restart() is for a tracker at step 0, this one is at {self.step}")
        self.sink.truncate(last_step=0, last_epoch=-1)

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs; flushes the store so it agrees with the checkpoint."""
        self._check_open()
        self.flush()
        return {
            "step": self.step,
            "group_names": list(self.group_names),
            "last_epoch": self._last_epoch,
            "nonfinite_skipped": self.nonfinite_skipped,
            "engine": None if self.engine is None else self.engine.state_dict(),
            "lca_stopped_at": self._lca_stopped_at,
        }

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
        stopped_at = state.get("lca_stopped_at")  # absent from checkpoints older than stop_lca
        saved_lca = state["engine"] is not None or stopped_at is not None
        if saved_lca != (self.engine is not None or self._lca_stopped_at is not None):
            raise TrackerError("checkpoint and tracker disagree on whether LCA is recorded")
        if state["engine"] is not None and self.engine is None:
            raise TrackerError(
                f"the checkpoint goes on recording LCA, but stop_lca() was called on this tracker "
                f"at step {self._lca_stopped_at}"
            )
        self.step = int(state["step"])
        self._last_epoch = state["last_epoch"]
        self.nonfinite_skipped = int(state.get("nonfinite_skipped", 0))
        if self.nonfinite_skipped:
            self.sink.update_attrs(nonfinite_skipped=self.nonfinite_skipped)
        if stopped_at is not None:
            self._release_lca(stopped_at)
        elif self.engine is not None:
            self.engine.load_state_dict(state["engine"])
        self._clear_rows()
        # No epoch logged before the checkpoint: epoch rows written after it are dropped too.
        last_epoch = -1 if self._last_epoch is None else self._last_epoch
        if self.engine is not None and self.engine.start_step < self.step:
            # An interval measured when that run ended (close()) is open again here.
            self.sink.truncate(
                last_step=self.step, last_epoch=last_epoch, last_lca_end=self.engine.start_step
            )
        else:
            self.sink.truncate(last_step=self.step, last_epoch=last_epoch)
        if self.mirror is not None:
            self.mirror.truncate(last_step=self.step)

    def close(self, status: str = "finished", reason: str | None = None) -> None:
        """Measure the open LCA interval (``finished`` only), flush everything, remove the
        optimizer hooks and mark the run's status.

        A run that ends with status ``finished`` measures the steps since the last snapshot as
        a last interval (:meth:`measure_open_interval`); a failed or interrupted one does not
        (its weights may be anything, and a resume continues the open interval instead).
        """
        if self._closed:
            return
        try:
            if status == "finished":
                try:
                    self.measure_open_interval()
                except BaseException as exc:  # the store still closes, as failed
                    status, reason = "failed", f"{type(exc).__name__}: {exc}"
                    raise
            if status == "finished" or self._row_steps:
                self._transfer_rows(reduce=status == "finished")
        finally:
            for h in self._hooks:
                h.remove()
            self._hooks = []
            self._closed = True
            try:
                self.sink.close(status=status, reason=reason)
            finally:
                if self.mirror is not None:
                    self.mirror.close()

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

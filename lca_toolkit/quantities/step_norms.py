"""The per-step rows: gradient, relative and update norms per group, the loss and learning rates.

Measured every optimizer step (:meth:`Schedule.every_step`), this is also the Tracker's clock: it
counts the optimizer steps its rows are numbered by.

Where the gradient norms come from: with ``optimizer=`` given (recommended) the norms are read from
the gradients inside ``optimizer.step()`` through a step pre-hook, i.e. after gradient accumulation
is complete and after a ``torch.amp.GradScaler`` has unscaled them. A step the scaler skips (inf/NaN
gradients) never reaches ``optimizer.step()``; it is recorded with ``skipped=True`` and NaN norms,
not as a huge norm. Without an optimizer the norms are read in ``after_backward`` (the last call
before ``after_step`` wins), learning rates are NaN and nothing is flagged as skipped. The learning
rates recorded are the ones ``optimizer.step()`` ran with (read in the same pre-hook), so a
scheduler stepped before ``after_step`` does not shift them by one step.

Gradient clipping: a loop that clips calls ``Tracker.before_clip`` between unscaling and clipping
(:mod:`lca_toolkit.tracker`), so ``grad_norm/<group>`` stays the raw norm; ``update_norm/<group>``
records the change the clipped step made to the weights.

Non-finite numbers (``on_nonfinite``): by default (``record``) a NaN or Inf loss or gradient is
stored as it is and training goes on unchanged. ``stop`` and ``skip`` check the step's loss and
total gradient norm inside ``optimizer.step()``, before the weights change (one host sync per step):
``stop`` records the row, then raises :class:`~lca_toolkit.errors.NonFiniteError` naming the step,
the loss and the groups whose gradient norm is not finite (the context manager closes the store as
``failed`` with that reason); ``skip`` drops the step's gradients so the optimizer leaves weights
and state untouched, flags the row ``skipped=True`` and counts it in the store attribute
``nonfinite_skipped``.

Values stay on the model's device in a buffer of ``transfer_every`` rows and reach the host in one
copy per buffer (:meth:`StepNorms.transfer_rows`), where they are grouped
(:func:`~lca_toolkit.grad_norms.group_rows`) and emitted as one :class:`StepBlock`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from .. import distributed, grad_norms
from ..errors import NonFiniteError, TrackerError
from ..groups import ParamGroups
from ..records import Attrs, StepBlock
from ..schedules import Schedule
from ..sharding import ShardLayout, local
from ._base import Quantity

NONFINITE_POLICIES: tuple[str, ...] = ("record", "stop", "skip")
"""What the Tracker does with a NaN/Inf loss or gradient (``Tracker(on_nonfinite=...)``)."""

if TYPE_CHECKING:
    from ..output import Output


class StepNorms(Quantity):
    """Per-group gradient norms (and the step's row) every optimizer step.

    Args:
        groups: the parameter groups (of the unwrapped model).
        n_columns: columns of the per-group arrays (the groups, plus LCA's BatchNorm-buffer group
            when it has one; NaN there).
        out: where the rows go.
        optimizer: the optimizer whose step hooks read the norms, or ``None``.
        record_update_norm: record ``||theta_after - theta_before||`` (needs ``optimizer``).
        on_nonfinite: ``record`` | ``stop`` | ``skip`` (checked by the Tracker).
        transfer_every: rows kept on the device before one batched move to the host.

    Attributes:
        step: optimizer steps taken (the Tracker's ``step``).
        nonfinite_skipped: steps ``on_nonfinite='skip'`` dropped.
        last_skipped: the last step was not applied (non-finite or GradScaler).
        sharded: the parameters are FSDP2 shards (norms are added across ranks).
    """

    name = "step_norms"

    def __init__(
        self,
        groups: ParamGroups,
        n_columns: int,
        out: Output,
        *,
        optimizer: torch.optim.Optimizer | None,
        record_update_norm: bool,
        on_nonfinite: str,
        transfer_every: int,
    ) -> None:
        super().__init__(Schedule.every_step())
        self.groups = groups
        self.optimizer = optimizer
        self.on_nonfinite = on_nonfinite
        self._out = out
        self.step = 0
        self.nonfinite_skipped = 0
        self.last_skipped = False  # the last step was not applied (non-finite or GradScaler)
        self._skip_pending = False
        self._norms_early = False  # before_clip() read this step's norms: the pre-hook keeps them
        self._stepped = False  # optimizer.step() ran for this step (its pre-hook fired)
        self._step_lrs: list[float] | None = None  # learning rates optimizer.step() ran with
        self._params = [p for _, _, p in groups.named_parameters()]
        self._device = self._params[0].device
        # FSDP2: norms of the local shards, added across ranks (a row of grad then param norms).
        layout = ShardLayout.of([(n, p) for _, n, p in groups.named_parameters()], self._device)
        self._layout = layout
        self._row_layout = None if layout is None else layout.repeat(2)
        self._n_param_groups = len(groups)
        self._n_columns = n_columns
        group_index = groups.group_index().numpy()
        self._members = [np.flatnonzero(group_index == j) for j in range(self._n_param_groups)]

        # Per-step state (device tensors, never synced in the hot path).
        self._record_update = record_update_norm and optimizer is not None
        self._before: list[Tensor] | None = None
        self._have_norms = False  # this step's norms are in the row buffer
        self._have_update = False  # and its update norms
        self._loss_sum: Tensor | None = None
        self._loss_count = 0
        self._hooks: list[Any] = []
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
        self._clear_rows()

    @staticmethod
    def check_options(optimizer: object, on_nonfinite: str, transfer_every: int) -> None:
        """Refuse bad options before the Tracker opens a store."""
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

    @property
    def sharded(self) -> bool:
        """The parameters are FSDP2 shards."""
        return self._layout is not None

    @property
    def pending_rows(self) -> int:
        """Rows recorded but not yet moved to the host."""
        return len(self._row_steps)

    def tick(self) -> int:
        """Count one more optimizer step; returns its number (1-based)."""
        self.step += 1
        return self.step

    def remove_hooks(self) -> None:
        """Detach from the optimizer (the run is closing)."""
        for h in self._hooks:
            h.remove()
        self._hooks = []

    # ----------------------------------------------------------------------------- reading
    def add_loss(self, loss: Tensor) -> None:
        """One backward's loss (the row keeps the mean over the calls of a step)."""
        value = loss.detach()
        value = (value.mean() if value.dim() else value).to(torch.float64)
        self._loss_sum = value if self._loss_sum is None else self._loss_sum + value
        self._loss_count += 1

    def after_backward(self) -> None:
        """Without an optimizer, norms are read after every backward (the last one wins)."""
        if self.optimizer is None and not self._norms_early:
            self._write_norms()

    def before_clip(self, grad_scale: Tensor | float | None) -> None:
        """Read this step's norms now (see ``Tracker.before_clip``)."""
        self._write_norms()
        if grad_scale is not None:
            grad_part = self._norm_slots[len(self._row_steps)][: len(self._params)]
            with torch.no_grad():
                grad_part.div_(torch.as_tensor(grad_scale).to(grad_part).reshape(()))
        self._norms_early = True

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
        self.at_step(self.tick(), self._out)
        self.transfer_rows()
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

    # ----------------------------------------------------------------------------- rows
    def at_step(self, step: int, out: Output) -> None:
        """Close the row of the step that just ended (its norms are already in the buffer)."""
        # With an optimizer, a step whose pre-hook never fired was skipped by the GradScaler; its
        # norms (read early by before_clip, or not at all) are not recorded.
        skipped = self.optimizer is not None and not self._stepped
        if skipped:
            self._have_norms = self._have_update = False
        if self._skip_pending:
            skipped, self._skip_pending = True, False
            self.nonfinite_skipped += 1
            out.emit(Attrs(self.run_attrs()))
        self.last_skipped = skipped
        self._row_flags.append((self._have_norms, self._have_update, skipped))
        self._row_losses.append((self._loss_sum, self._loss_count))
        self._row_steps.append(step)
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
            self.transfer_rows()

    def transfer_rows(self, reduce: bool = True) -> None:
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
        pad = np.full((n_rows, self._n_columns - self._n_param_groups), math.nan)
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
        self._out.emit(block)
        self._clear_rows()

    def _clear_rows(self) -> None:
        """Forget the rows waiting for a transfer (after it, or when a checkpoint is loaded)."""
        self._row_steps: list[int] = []
        self._row_lrs: list[list[float]] = []
        self._row_losses: list[tuple[Tensor | None, int]] = []  # (sum over calls, calls)
        self._row_flags: list[tuple[bool, bool, bool]] = []  # (norms, update, skipped)

    # ----------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "nonfinite_skipped": self.nonfinite_skipped}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue at the checkpoint's step; rows recorded since are dropped."""
        self.step = int(state["step"])
        self.nonfinite_skipped = int(state.get("nonfinite_skipped", 0))
        self._clear_rows()

    def run_attrs(self) -> dict[str, Any]:
        return {"nonfinite_skipped": self.nonfinite_skipped} if self.nonfinite_skipped else {}

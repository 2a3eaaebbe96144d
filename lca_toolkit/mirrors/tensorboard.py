"""TensorBoard scalars of a run, written live beside its store (``mirror="tensorboard:DIR"``).

Tags (``<group>`` in the store's group order; the x axis is always the optimizer step):

- every step, not decimated: ``loss``, ``grad_norm_total``, ``grad_norm/<group>``, and ``lr``
  (``lr/0, lr/1, ...`` with several optimizer param groups);
- every LCA interval, at its ``end_step``: ``lca/<group>`` (negative = the group helped),
  ``lca_error/<group>`` (the estimated quadrature error), ``lca/residual`` and
  ``lca/loss_change`` (``L_E(end) - L_E(start)`` = sum of ``lca/<group>`` + residual);
- every epoch, at the step the epoch ended: ``epoch`` and ``epoch/<metric>``.

NaN means "not measured" in the store (a step the GradScaler skipped, the norms of the
``bn_buffers`` group); such points are left out. TensorBoard keeps float32, the store float64.
Steps reach the mirror in the Tracker's batches of ``transfer_every`` rows, and the writer flushes
every ``flush_secs`` seconds, so TensorBoard lags the run by a few seconds to a batch of rows.
On resume the writer is opened with ``purge_step`` just after the checkpoint, so TensorBoard
hides the points a crashed run wrote after it, as the store drops its rows.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .._extras import require
from ..records import LcaRecord, StepBlock

INTERVAL_TAGS: tuple[str, ...] = ("residual", "loss_change")
"""Names under ``lca/`` taken by whole-interval scalars; no group may be called so."""


class TensorBoardMirror:
    """Writes the Tracker's records as TensorBoard scalars with ``SummaryWriter``.

    Args:
        log_dir: directory of the event files (``tensorboard --logdir`` it, or a parent).
        flush_secs: seconds between the writer's flushes to disk (TensorBoard's default is 120;
            shorter shows a live run sooner).

    Raises:
        MissingExtraError: the ``tensorboard`` package is not installed.
    """

    def __init__(self, log_dir: str | os.PathLike[str], *, flush_secs: int = 10) -> None:
        self._tb = require(
            "torch.utils.tensorboard",
            package="tensorboard",
            extra="tensorboard",
            feature="mirror='tensorboard:DIR'",
        )
        self.log_dir = Path(log_dir)
        self.name = f"tensorboard:{self.log_dir}"
        self.flush_secs = flush_secs
        self.groups: list[str] = []
        self._writer: Any = None  # opened at the first record, after a resume's truncate
        self._purge_step: int | None = None

    def start(self, groups: Sequence[str]) -> None:
        clash = [g for g in groups if g in INTERVAL_TAGS]
        if clash:
            raise ValueError(
                f"group name(s) {clash} would share the tag lca/<name> with the interval's "
                f"{', '.join(INTERVAL_TAGS)}; rename the group(s)"
            )
        self.groups = list(groups)

    def _writer_open(self) -> Any:
        if self._writer is None:
            self._writer = self._tb.SummaryWriter(
                log_dir=str(self.log_dir), flush_secs=self.flush_secs, purge_step=self._purge_step
            )
        return self._writer

    def _add(self, tag: str, value: float, step: int) -> None:
        value = float(value)
        if not math.isnan(value):
            self._writer.add_scalar(tag, value, step)

    def append_steps(self, block: StepBlock) -> None:
        self._writer_open()
        lr_tags = (
            ["lr"] if block.n_lr_groups == 1 else [f"lr/{j}" for j in range(block.n_lr_groups)]
        )
        norm_tags = [f"grad_norm/{g}" for g in self.groups]
        for i, step in enumerate(block.step.tolist()):
            self._add("loss", block.loss[i], step)
            self._add("grad_norm_total", block.grad_norm_total[i], step)
            for tag, value in zip(norm_tags, block.grad_norm[i].tolist(), strict=True):
                self._add(tag, value, step)
            for tag, value in zip(lr_tags, block.lr[i].tolist(), strict=True):
                self._add(tag, value, step)

    def append_lca(self, record: LcaRecord) -> None:
        self._writer_open()
        step = record.end_step
        error = record.error_by_group
        for j, group in enumerate(self.groups):
            self._add(f"lca/{group}", record.by_group[j], step)
            if error is not None:
                self._add(f"lca_error/{group}", error[j], step)
        self._add("lca/residual", record.residual, step)
        self._add("lca/loss_change", record.loss_change, step)

    def append_epoch(self, epoch: int, metrics: Mapping[str, float], step: int) -> None:
        self._writer_open()
        self._add("epoch", epoch, step)
        for name, value in metrics.items():
            self._add(f"epoch/{name}", value, step)

    def truncate(self, *, last_step: int) -> None:
        """Resume: hide what an earlier writer logged after ``last_step`` (``purge_step``)."""
        self.close()
        self._purge_step = last_step + 1

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()

"""Input ablation on the evaluation subset E: which modality the model uses, and by how much.

Every measurement evaluates the mean loss over E (and a per-sample metric, when given) with each
subset of modalities removed (:mod:`lca_toolkit._modality` says how an input is removed), and turns
them into each modality's contribution:

* up to 4 modalities, the exact **Shapley value** over all ``2**M`` subsets, with the coalition
  value ``v(S) = -L_E(model that sees only the modalities in S)``;
* beyond 4, **leave-one-out**: ``phi_m = L_E(m removed) - L_E(nothing removed)`` (``2M + 2``
  subsets: none removed, each one removed, each one alone, all removed). The record says which
  (``exact``).

Example (a batch ``{"cc": (B, 1, H, W), "mlo": (B, 1, H, W), "malignant": (B,), ...}``, as the
mammography models take; a tuple batch ``((x_cc, x_mlo), y)`` would say ``at=(0, 0)``/``(0, 1)``)::

    probe = AblationProbe(model, loss_fn, eval_batches,
                          {"cc": Modality("cc", mute="mean"), "mlo": Modality("mlo", mute="mean")})
    record = probe.measure(step)           # every K steps, between optimizer steps
    record.contribution["mlo"]             # loss reduction due to the MLO view (Shapley)
    tracker.write_table("ablation", ablation_columns(records))

Sign convention: **a positive contribution means the modality lowers the loss** (the model uses
it); 0 means removing it changes nothing. Exact Shapley values add up to
``L_E(all removed) - L_E(nothing removed)`` (float64 sums; equal up to rounding). Metric
contributions use ``v(S) = metric`` (higher is better), so a positive one means the modality
raises the metric. Unimodal numbers are the loss and metric with only that modality present.

Non-interference, as for LCA: the model is evaluated through ``torch.func.functional_call`` on
copies of its parameters and buffers (float32 at least, autocast off), in eval mode, under
``torch.no_grad()`` with the global RNG forked; every module's train/eval flag is restored and
``requires_grad``, ``.grad``, the optimizer and the BatchNorm statistics are never touched, so
training with and without ablation gives bit-identical weights.

Cost: one forward per subset per batch of E (the floor; each batch is moved to the device once and
muted ``subsets`` times), plus one more forward per subset per batch when a metric is given (it
calls the model itself), plus one data pass (no forward) the first time E is used when a modality
is muted with its mean. Memory: one copy of the parameters and buffers during a measurement.

In a process group every rank evaluates the whole of E (no collective), so every rank holds the
same record. Models sharded with FSDP2 are not supported.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call

from . import distributed
from ._batches import move_to, per_sample_losses
from ._modality import Modality, as_modalities, get_input, input_means, remove
from ._passes import side_pass
from .ablation_result import AblationResult, ablation_columns, ablation_frame, subset_label
from .errors import AblationError
from .lca import LossFn, _LossCall
from .shapley import EXACT_UP_TO, coalitions, contributions
from .sharding import is_dtensor

__all__ = ["AblationProbe", "AblationResult", "Modality", "ablation_columns", "ablation_frame"]

MetricFn = Callable[[nn.Module, Any], Tensor]


class AblationProbe:
    """Measures input ablation on a fixed evaluation subset E (see the module docstring).

    Args:
        model: the model being trained (read only; a DDP wrapper is unwrapped).
        loss_fn: ``loss_fn(model, batch)`` -> 1-D tensor of per-sample losses (as for LCA).
        eval_batches: E: a re-iterable collection of batches, the same every pass.
        modalities: ``name -> Modality`` (or a shorthand, see :func:`~lca_toolkit._modality.as_modalities`).
        metric: optional ``metric(model, batch)`` -> 1-D per-sample scores (e.g. 1.0 where the
            prediction is right), higher is better.
        exact_up_to: the most modalities for which all ``2**M`` subsets are evaluated.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        eval_batches: Iterable[Any],
        modalities: Mapping[str, Modality | Any],
        *,
        metric: MetricFn | None = None,
        exact_up_to: int = EXACT_UP_TO,
    ) -> None:
        model = distributed.unwrap(model)
        if any(is_dtensor(p) for p in model.parameters()):
            raise AblationError("input ablation does not support models sharded with FSDP2")
        devices = {t.device for t in list(model.parameters()) + list(model.buffers())}
        if len(devices) > 1:
            raise AblationError(
                f"input ablation needs the model on one device, found {sorted(map(str, devices))}"
            )
        self.model = model
        self.device = devices.pop() if devices else torch.device("cpu")
        self.modalities = as_modalities(modalities)
        self.names = tuple(self.modalities)
        m = len(self.names)
        self.exact = m <= exact_up_to
        self._masks = coalitions(m, exact_up_to)
        self.subsets: tuple[tuple[str, ...], ...] = tuple(
            tuple(n for i, n in enumerate(self.names) if mask >> i & 1) for mask in self._masks
        )
        self._loss = _LossCall(model, loss_fn)
        self._metric = None if metric is None else _LossCall(model, metric)
        self._low_precision = any(
            t.is_floating_point() and t.dtype.itemsize < 4
            for t in list(model.parameters()) + list(model.buffers())
        )
        self.reset_eval(eval_batches)

    def reset_eval(self, eval_batches: Iterable[Any]) -> None:
        """Measure on a new subset E from now on (its means are computed at the next measurement)."""
        if isinstance(eval_batches, Iterator):
            raise AblationError(
                "eval_batches is a one-shot iterator; pass a re-iterable collection (a list of "
                "batches or a DataLoader without shuffling) so every pass sees the same subset"
            )
        self._check_paths(eval_batches)
        self.eval_batches = eval_batches
        self._means: dict[str, Tensor] | None = None

    def _check_paths(self, eval_batches: Iterable[Any]) -> None:
        """Every modality's input is found in the first batch of E, now rather than at the first
        measurement (which may be hours into training)."""
        first = next(iter(eval_batches), None)
        if first is None:
            raise AblationError("eval_batches is empty: input ablation needs the subset E")
        for name, modality in self.modalities.items():
            if modality.path is not None:
                get_input(first, name, modality.path)

    def _prepare(self, batch: Any) -> Any:
        return move_to(batch, self.device, self._low_precision)

    def _pass_context(self) -> contextlib.AbstractContextManager[None]:
        """Eval mode, no autograd, autocast off, the RNG forked; train flags restored after."""
        return side_pass(self.model, self.device, grad=False)

    def _copies(self) -> dict[str, Tensor]:
        """Copies of every parameter and buffer, floating ones in at least float32."""
        out: dict[str, Tensor] = {}
        for name, t in list(self.model.named_parameters()) + list(self.model.named_buffers()):
            dtype = (
                torch.promote_types(t.dtype, torch.float32) if t.is_floating_point() else t.dtype
            )
            out[f"model.{name}"] = t.detach().to(dtype=dtype, copy=True)
        return out

    def measure(self, step: int) -> AblationResult:
        """Evaluate every subset on E with the model's current parameters.

        Raises:
            AblationError: E is empty, a modality does not fit the batches, or the metric does
                not return one score per sample.
        """
        with self._pass_context():
            if self._means is None:
                self._means = input_means(self.modalities, self.eval_batches, self._prepare)
            params = self._copies()
            n_sub = len(self.subsets)
            loss_sums = torch.zeros(n_sub, dtype=torch.float64, device=self.device)
            metric_sums = torch.zeros_like(loss_sums)
            count = 0
            for batch in self.eval_batches:
                batch = self._prepare(batch)
                n = None
                for j, removed in enumerate(self.subsets):
                    muted = remove(batch, removed, self.modalities, self._means)
                    losses = per_sample_losses(functional_call(self._loss, params, (muted,)))
                    if n is not None and losses.shape[0] != n:
                        raise AblationError(
                            f"removing {subset_label(removed)} changed the number of per-sample "
                            f"losses of an evaluation batch ({n} -> {losses.shape[0]}); a mute "
                            "must keep every sample"
                        )
                    n = losses.shape[0]
                    loss_sums[j] += losses.sum(dtype=torch.float64)
                    if self._metric is not None:
                        scores = functional_call(self._metric, params, (muted,))
                        metric_sums[j] += _checked_scores(scores, n).sum(dtype=torch.float64)
                count += n
            del params
        if count == 0:
            raise AblationError("eval_batches is empty: ablation needs at least one sample")
        losses = (loss_sums / count).cpu().numpy()  # the one transfer to the host
        metrics = (metric_sums / count).cpu().numpy() if self._metric is not None else None
        return self._result(step, count, losses, metrics)

    def _result(
        self, step: int, count: int, losses: np.ndarray, metrics: np.ndarray | None
    ) -> AblationResult:
        m = len(self.names)
        full = (1 << m) - 1

        def summarise(values: np.ndarray, sign: float) -> tuple[dict, dict, dict]:
            by_subset = {s: float(v) for s, v in zip(self.subsets, values, strict=True)}
            by_mask = {mask: sign * float(v) for mask, v in zip(self._masks, values, strict=True)}
            phi = contributions(by_mask, m, self.exact)
            alone = {n: sign * by_mask[full ^ (1 << i)] for i, n in enumerate(self.names)}
            return by_subset, dict(zip(self.names, map(float, phi), strict=True)), alone

        loss, contribution, unimodal_loss = summarise(losses, -1.0)
        metric = metric_contribution = unimodal_metric = None
        if metrics is not None:
            metric, metric_contribution, unimodal_metric = summarise(metrics, 1.0)
        return AblationResult(
            step=step,
            modalities=self.names,
            exact=self.exact,
            n_eval=count,
            loss=loss,
            metric=metric,
            contribution=contribution,
            metric_contribution=metric_contribution,
            unimodal_loss=unimodal_loss,
            unimodal_metric=unimodal_metric,
        )


def _checked_scores(scores: Any, n: int) -> Tensor:
    """The metric's per-sample scores, checked to be one per sample."""
    if not isinstance(scores, Tensor) or scores.dim() != 1 or scores.shape[0] != n:
        got = tuple(scores.shape) if isinstance(scores, Tensor) else type(scores).__name__
        raise AblationError(
            f"metric must return a 1-D tensor of per-sample scores ({n} for this batch); got {got}"
        )
    return scores

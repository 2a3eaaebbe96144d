"""Step-k Loss Change Allocation (Lan et al., NeurIPS 2019; step-k variant of Wu et al., MIDL 2020).

For an interval between snapshots ``theta_start`` and ``theta_end`` (k optimizer steps apart) with
``D = theta_end - theta_start``, the LCA of scalar parameter ``i`` is::

    LCA_i = D_i * integral_0^1 dL_E/dtheta_i(theta_start + s D) ds

where ``L_E`` is the MEAN per-sample loss over a fixed evaluation subset E: the sum of every
per-sample loss over E's batches divided by |E| (exact for an uneven last batch). Sign convention:
**negative LCA means the parameter helped** (its movement lowered the loss). By the fundamental
theorem of calculus the LCAs sum to ``L_E(theta_end) - L_E(theta_start)``; what the quadrature
misses is the residual ``loss_end - loss_start - sum(LCA)``, recorded for every interval.

The quadrature itself is a set of pure functions (:mod:`lca_toolkit.chord`) that ask a callback
for the gradient at a node of the chord; this module owns the buffers, the gradient passes over E
and the per-group sums.

Error estimate (``error_by_group``, per interval and group, at no extra pass): see
:mod:`lca_toolkit.chord`.

Caveat: step-k LCA integrates along the straight chord between two snapshots, not along the path
the optimizer actually took. Per-interval totals equal the loss change exactly (up to the residual);
per-parameter shares can differ from per-step LCA.

Non-interference: the engine evaluates the model through ``torch.func.functional_call`` on its own
copies of the parameters, never touches ``.grad``, optimizer state, BatchNorm running statistics or
the global RNG, and restores every module's train/eval flag, so training with and without LCA gives
bit-identical weights. A model sharded with FSDP2 is evaluated in place instead, and everything
restored (:mod:`lca_toolkit.lca_sharded`).

BatchNorm policies: see :mod:`lca_toolkit.lca_batchnorm`.

Distributed (a process group with more than one rank): every rank passes the same E; rank ``r`` of
``W`` evaluates the batches at positions ``r, r + W, ...`` (a ``Sequence`` is indexed, any other
iterable is read in full and the other ranks' batches skipped), and one all-reduce per gradient
pass sums the shards' gradient sums, loss sums and sample counts, so every rank holds the same
snapshot gradients and LCA numbers. The engine evaluates the unwrapped module, never DDP's forward.
Results equal one process up to the order of floating-point summation.

Precision: passes run in the parameters' own dtype but never below float32 (a bf16/fp16 model is
evaluated on float32 copies), with autocast disabled; group sums are float64.

Memory: between intervals the engine holds 2 parameter-sized buffers (snapshot, endpoint gradient).
During a measurement it holds about 5 (chord direction, weighted-gradient accumulator, node
parameters, their gradient, the new endpoint gradient) plus one evaluation batch of activations;
the adaptive rule one more. The direction and the accumulator are made in place in the snapshot's
and the endpoint gradient's buffers (:meth:`LcaEngine._interval_buffers`). It never keeps a
per-step history of parameters.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from . import distributed
from ._batches import move_to, per_sample_losses
from ._passes import side_pass
from .chord import ChordIntegral, integrate
from .errors import LcaError
from .groups import ParamGroups
from .lca_batchnorm import plain_sync_batchnorm, running_stat_grad
from .lca_config import BN_POLICIES, BnPolicy, LcaConfig
from .lca_result import LcaResult, reduce_lca
from .lca_sharded import borrowed_state, sharded_gradient_pass
from .sharding import ShardingError, ShardLayout, local, refuse_unsupported

__all__ = [
    "BN_GROUP",
    "BN_POLICIES",
    "BnPolicy",
    "LcaConfig",
    "LcaEngine",
    "LcaResult",
    "LossFn",
]

BN_GROUP = "bn_buffers"

LossFn = Callable[[nn.Module, Any], Tensor]


@dataclass(frozen=True)
class _Entry:
    """One tensor whose movement gets LCA: a trainable parameter or an interpolated BN buffer."""

    name: str  # full name inside the model
    group: int  # position in LcaEngine.group_names
    is_param: bool
    module: nn.Module | None = None  # the BN module, for buffers
    attr: str = ""  # 'running_mean' | 'running_var', for buffers


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.promote_types(dtype, torch.float32)


class _LossCall(nn.Module):
    """Wraps ``loss_fn(model, batch)`` so functional_call can swap the model's tensors."""

    def __init__(self, model: nn.Module, loss_fn: LossFn) -> None:
        super().__init__()
        self.model = model
        self._loss_fn = loss_fn

    def forward(self, batch: Any) -> Tensor:
        return self._loss_fn(self.model, batch)


class LcaEngine:
    """Measures step-k LCA between successive snapshots of a model.

    The engine is pure machinery: the :class:`~lca_toolkit.Tracker` decides when to call
    :meth:`measure`. Each call allocates the loss change between the previous snapshot and the
    model's current state, then makes the current state the next snapshot, reusing its gradient as
    the next interval's left endpoint.

    Args:
        model: the model being trained (read only).
        groups: the parameter groups; LCA is reported per group (plus ``bn_buffers`` when running
            statistics are interpolated).
        loss_fn: ``loss_fn(model, batch)`` -> 1-D tensor of per-sample losses.
        eval_batches: the fixed evaluation subset E: a re-iterable collection of batches, iterated
            in the same order every pass, with no augmentation.
        config: rule, BN policy and record options.
        step: the optimizer step the first snapshot belongs to.
    """

    def __init__(
        self,
        model: nn.Module,
        groups: ParamGroups,
        loss_fn: LossFn,
        eval_batches: Iterable[Any],
        config: LcaConfig,
        step: int = 0,
    ) -> None:
        if isinstance(eval_batches, Iterator):
            raise LcaError(
                "eval_batches is a one-shot iterator; pass a re-iterable collection (a list of "
                "batches or a DataLoader without shuffling) so every pass sees the same subset"
            )
        model = distributed.unwrap(model)
        refuse_unsupported(model)
        self.model = model
        self.config = config
        self.loss_fn = loss_fn
        self.eval_batches = eval_batches
        self._call = _LossCall(model, loss_fn)
        devices = {p.device for p in model.parameters()}
        if len(devices) != 1:
            raise LcaError(
                f"LCA needs all parameters on one device, found {sorted(map(str, devices))}"
            )
        self.device = devices.pop()

        self._bn_modules = [
            (name, m)
            for name, m in model.named_modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None
        ]
        self.group_names = list(groups.names)
        entries = [
            _Entry(name, groups.names.index(g), True) for g, name, _ in groups.named_parameters()
        ]
        self._params = [p for _, _, p in groups.named_parameters()]
        self._bn_aux: dict[str, Tensor] = {}  # names of BN affine params needed for the chain rule
        if config.bn_policy == "interpolate" and self._bn_modules:
            if BN_GROUP in self.group_names:
                raise LcaError(f"group name {BN_GROUP!r} is reserved for interpolated BN buffers")
            self.group_names.append(BN_GROUP)
            bn_group = len(self.group_names) - 1
            for name, m in self._bn_modules:
                if m.weight is None or m.bias is None:
                    raise LcaError(
                        f"BatchNorm module {name!r} is not affine; bn_policy='interpolate' needs "
                        "affine BN (its running-statistics gradient comes from weight and bias "
                        "gradients); use bn_policy='train' for this model"
                    )
                for attr in ("running_mean", "running_var"):
                    entries.append(
                        _Entry(f"{name}.{attr}" if name else attr, bn_group, False, m, attr)
                    )
        self._entries = entries
        self.tensor_names = [e.name for e in entries]
        # FSDP2: every entry is this rank's shard; per-tensor sums are added across ranks.
        self._layout = ShardLayout.of(
            [(e.name, p) for e, p in zip(entries[: len(self._params)], self._params, strict=True)],
            self.device,
            extra=len(entries) - len(self._params),
        )
        if self._layout is not None and config.cumulative:
            raise ShardingError(
                "cumulative=True is per parameter, and FSDP2 ranks hold shards: "
                "record per-tensor sums instead (per_tensor=True)"
            )
        if self._layout is not None and len(entries) > len(self._params):
            raise ShardingError(
                "bn_policy='interpolate' is not available for a sharded (FSDP2) model with "
                "BatchNorm; use bn_policy='train' (batch statistics on E) or 'none'"
            )
        self._group_index = torch.tensor(
            [e.group for e in entries], dtype=torch.int64, device=self.device
        )
        self._param_names_by_id = {id(p): n for n, p in model.named_parameters()}
        self._low_precision = any(
            t.is_floating_point() and t.dtype.itemsize < 4
            for t in list(model.parameters()) + list(model.buffers())
        )
        # State carried from interval to interval.
        self._snap: list[Tensor] = [
            t.detach().to(_compute_dtype(t.dtype), copy=True) for t in self._current()
        ]
        self._g_prev: list[Tensor] | None = None  # SUM (not mean) gradient over E at the snapshot
        self._loss_prev: Tensor | None = None  # mean loss over E at the snapshot (float64)
        self._n_eval: int | None = None
        self.start_step = step
        self._cumulative: list[Tensor] | None = (
            [torch.zeros_like(s, dtype=torch.float64) for s in self._snap]
            if config.cumulative
            else None
        )

    @property
    def buffer_names(self) -> list[str]:
        """Names of the interpolated BN running statistics (the ``bn_buffers`` group)."""
        return [e.name for e in self._entries if not e.is_param]

    def reset_eval(self, eval_batches: Iterable[Any]) -> None:
        """Evaluate the intervals from now on on a new subset E.

        The snapshot stays; its loss and gradient on the old E (and |E|) are forgotten, so the
        next :meth:`measure` evaluates its left end on the new E: one extra gradient pass. The
        caller closes any open interval first, or it would be allocated on an E that did not
        exist at its start.
        """
        if isinstance(eval_batches, Iterator):
            raise LcaError(
                "eval_batches is a one-shot iterator; pass a re-iterable collection (a list of "
                "batches or a DataLoader without shuffling) so every pass sees the same subset"
            )
        self.eval_batches = eval_batches
        self._g_prev = None
        self._loss_prev = None
        self._n_eval = None

    # ----------------------------------------------------------------------------- tensors
    @property
    def sharded(self) -> bool:
        """The model is sharded with FSDP2: the engine holds and evaluates local shards only."""
        return self._layout is not None

    def _current(self) -> list[Tensor]:
        """The model's live tensors for every entry (no copies; local shards under FSDP2)."""
        params = [local(p).detach() for p in self._params]
        return params + [getattr(e.module, e.attr) for e in self._entries[len(params) :]]

    def _constants(self) -> dict[str, Tensor]:
        """Tensors passed unchanged to every pass: upcast copies of frozen params and buffers for
        a low-precision model, scratch BN buffers for the ``train`` policy."""
        consts: dict[str, Tensor] = {}
        entry_names = set(self.tensor_names)
        if self._low_precision:
            for name, t in list(self.model.named_parameters()) + list(self.model.named_buffers()):
                if name not in entry_names and t.is_floating_point() and t.dtype.itemsize < 4:
                    consts[name] = t.detach().float()
        if self.config.bn_policy == "train":
            for name, m in self._bn_modules:
                prefix = f"{name}." if name else ""
                for attr in ("running_mean", "running_var", "num_batches_tracked"):
                    buf = getattr(m, attr)
                    if buf is not None:
                        consts[prefix + attr] = buf.detach().to(
                            _compute_dtype(buf.dtype) if buf.is_floating_point() else buf.dtype,
                            copy=True,
                        )
        return consts

    @contextlib.contextmanager
    def _pass_context(self) -> Iterator[None]:
        """Eval mode (BN in train mode for the ``train`` policy), autocast off, grad on, RNG forked."""
        bn_train = [m for _, m in self._bn_modules] if self.config.bn_policy == "train" else []
        with side_pass(self.model, self.device, grad=True, train_modules=bn_train):
            with plain_sync_batchnorm(self.model), self._borrowed():
                yield

    def _borrowed(self) -> contextlib.AbstractContextManager[None]:
        """Under FSDP2, the training gradients, buffers and reduction settings set aside."""
        if self._layout is None:
            return contextlib.nullcontext()
        return borrowed_state(self.model, self._params)

    def _sharded_pass(self, node: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """:meth:`_gradient_pass` of an FSDP2 model, whose ``node`` is its parameters' shards."""
        move = lambda b: move_to(b, self.device, False)  # noqa: E731
        total, count, grads = sharded_gradient_pass(
            self.model, self._params, self.loss_fn, self.eval_batches, move, node
        )
        return self._check_count(total, count, grads)

    def _check_count(
        self, total: Tensor, count: int, grads: list[Tensor]
    ) -> tuple[Tensor, list[Tensor]]:
        """Remember |E| at the first pass and insist it stays the same."""
        if count == 0:
            raise LcaError("eval_batches is empty: LCA needs at least one evaluation sample")
        if self._n_eval is None:
            self._n_eval = count
        elif count != self._n_eval:
            raise LcaError(
                f"eval_batches changed size between passes ({self._n_eval} then {count} samples); "
                "the evaluation subset must be fixed"
            )
        return total, grads

    def _gradient_pass(
        self, node: list[Tensor], consts: dict[str, Tensor]
    ) -> tuple[Tensor, list[Tensor]]:
        """Sum of per-sample losses over E (float64, 0-d) and its gradient for every entry.

        ``node`` holds the entries' values at the evaluation point; its parameter tensors are
        leaves requiring grad (under FSDP2: the parameters' local shards, written in place).
        Returns SUMS over E; callers divide by |E|.
        """
        if self._layout is not None:
            return self._sharded_pass(node)
        mapping: dict[str, Tensor] = {f"model.{k}": v for k, v in consts.items()}
        aux: dict[str, Tensor] = {}
        for e, t in zip(self._entries, node, strict=True):
            mapping[f"model.{e.name}"] = t
            if e.is_param:
                t.grad = None
        if self._bn_modules and self.config.bn_policy == "interpolate":
            for _, m in self._bn_modules:
                for attr in ("weight", "bias"):
                    p = getattr(m, attr)
                    key = f"model.{self._param_names_by_id[id(p)]}"
                    if key not in mapping or not mapping[key].requires_grad:
                        leaf = (
                            p.detach().to(_compute_dtype(p.dtype), copy=True).requires_grad_(True)
                        )
                        mapping[key] = aux[key] = leaf
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        count = 0
        for batch in distributed.my_batches(self.eval_batches):
            losses = functional_call(
                self._call, mapping, (move_to(batch, self.device, self._low_precision),)
            )
            losses = per_sample_losses(losses)
            batch_sum = losses.sum()
            batch_sum.backward()
            total += batch_sum.detach().to(torch.float64)
            count += losses.shape[0]
        # Buffer gradients first: they are derived from the BN weight/bias gradients.
        grads = [None if e.is_param else self._bn_buffer_grad(e, mapping) for e in self._entries]
        for i, (e, t) in enumerate(zip(self._entries, node, strict=True)):
            if e.is_param:
                grads[i] = t.grad if t.grad is not None else torch.zeros_like(t)
                t.grad = None
        if distributed.is_distributed():  # ONE all-reduce (per dtype) sums the ranks' shards
            counts = torch.tensor(float(count), dtype=torch.float64, device=self.device)
            distributed.all_reduce_sum_([*grads, total, counts])
            count = int(counts)
        return self._check_count(total, count, grads)

    def _bn_buffer_grad(self, e: _Entry, mapping: dict[str, Tensor]) -> Tensor:
        """Gradient of the loss w.r.t. an eval-mode BN running statistic, by the chain rule."""
        m = e.module
        prefix = "model." + e.name.rsplit(".", 1)[0] + "." if "." in e.name else "model."
        w = mapping[f"model.{self._param_names_by_id[id(m.weight)]}"]
        b = mapping[f"model.{self._param_names_by_id[id(m.bias)]}"]
        return running_stat_grad(e.attr, w, b, mapping[prefix + "running_var"], m.eps)

    def _fill_node(
        self, node: list[Tensor], base: list[Tensor], direction: list[Tensor] | None, back: float
    ) -> None:
        """node := base - back * direction (in place; ``direction`` None means node := base)."""
        with torch.no_grad():
            torch._foreach_copy_(node, base)
            if direction is not None and back != 0.0:
                torch._foreach_add_(node, direction, alpha=-back)

    def _new_node(self) -> list[Tensor]:
        if self._layout is not None:  # FSDP2 evaluates its own parameters: write into them
            return self._current()
        return [
            torch.empty_like(s).requires_grad_(e.is_param)
            for e, s in zip(self._entries, self._snap, strict=True)
        ]

    # ----------------------------------------------------------------------------- measure
    def measure(self, end_step: int) -> LcaResult:
        """Allocate the loss change from the last snapshot to the model's current state.

        The current state becomes the next snapshot and its gradient the next left endpoint.
        """
        with self._pass_context():
            # Under FSDP2 the passes overwrite the model's shards: theta_end is copied first and
            # written back whatever happens (it then becomes the next snapshot).
            current = [
                t.detach().to(s.dtype, copy=self.sharded)
                for t, s in zip(self._current(), self._snap, strict=True)
            ]
            try:
                return self._measure(end_step, current)
            finally:
                if self.sharded:
                    with torch.no_grad():
                        torch._foreach_copy_(self._current(), current)

    def _measure(self, end_step: int, current: list[Tensor]) -> LcaResult:
        consts = self._constants()
        node = self._new_node()
        passes = 0
        if self._g_prev is None:
            self._fill_node(node, self._snap, None, 0.0)
            loss_sum, self._g_prev = self._gradient_pass(node, consts)
            self._loss_prev = loss_sum / self._n_eval
            passes += 1
        n = float(self._n_eval)
        loss_start = self._loss_prev
        direction, g_start = self._interval_buffers(current)
        evaluated: list[float] = []

        def grad_at(s: float) -> tuple[Tensor, list[Tensor]]:
            """Loss and gradient sums over E at theta_end - (1 - s) D, in the node buffer."""
            self._fill_node(node, current, direction, 1.0 - s)
            evaluated.append(s)
            return self._gradient_pass(node, consts)

        reduce = None if self._layout is None else self._layout.sum_
        integral = integrate(
            self.config.quadrature,
            self.config.adaptive,
            direction,
            g_start,
            grad_at,
            n,
            loss_start,
            reduce=reduce,
        )
        passes += integral.passes
        with torch.no_grad():
            lca = integral.weighted
            torch._foreach_mul_(lca, direction)  # LCA_i = D_i * integral (times scale), in place
            result = self._reduce(lca, integral, loss_start, end_step, passes)
            if self._cumulative is not None:
                torch._foreach_add_(
                    self._cumulative, [t.to(torch.float64) for t in lca], alpha=integral.scale
                )
            if self.sharded:  # the copy of theta_end (written back by measure) is the snapshot
                next_snap = current
            elif evaluated[-1] == 1.0:  # the node holds theta_end: it becomes the snapshot as is
                next_snap = [t.detach() for t in node]
            else:  # the snapshot's own buffers (D until now) take theta_end
                torch._foreach_copy_(direction, current)
                next_snap = direction
        self._snap = next_snap
        self._g_prev = integral.g_end
        self._loss_prev = integral.loss_end
        self.start_step = end_step
        return result

    def _interval_buffers(self, current: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """The chord direction D and the left-endpoint gradient the rule starts its sum from.

        Memory reuse, named here once: D = theta_end - theta_start is formed in place in the
        snapshot's buffers (every node is built as ``theta_end - (1 - s) D``, so theta_start is
        not needed again), and the rule accumulates its weighted gradient in place in the
        endpoint gradient's buffers (``g(0)`` is the first term of its sum), which are then
        multiplied by D to give the per-parameter LCA. Fresh buffers would raise the peak by two
        parameter copies. ``_snap`` and ``_g_prev`` keep referring to these buffers until
        :meth:`_measure` replaces them with the next interval's.
        """
        direction = self._snap
        with torch.no_grad():
            torch._foreach_sub_(direction, current)
            torch._foreach_neg_(direction)
        return direction, self._g_prev

    def _reduce(
        self,
        lca: list[Tensor],
        integral: ChordIntegral,
        loss_start: Tensor,
        end_step: int,
        passes: int,
    ) -> LcaResult:
        """The interval's :class:`LcaResult` from its per-parameter LCA (see :func:`reduce_lca`)."""
        return reduce_lca(
            lca,
            integral,
            self._group_index,
            len(self.group_names),
            start_step=self.start_step,
            end_step=end_step,
            loss_start=loss_start,
            passes=passes,
            per_tensor=self.config.per_tensor,
            reduce=None if self._layout is None else self._layout.sum_,
        )

    # ----------------------------------------------------------------------------- state
    def cumulative(self) -> dict[str, Tensor]:
        """Per-tensor float64 running sums of LCA since the start (only with ``cumulative=True``)."""
        if self._cumulative is None:
            raise LcaError("cumulative LCA was not asked for (LcaConfig(cumulative=True))")
        return dict(zip(self.tensor_names, self._cumulative, strict=True))

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs to continue the same intervals (tensors are copies)."""

        def clone(ts: list[Tensor] | None) -> list[Tensor] | None:
            return None if ts is None else [t.detach().clone() for t in ts]

        return {
            "tensor_names": list(self.tensor_names),
            "group_names": list(self.group_names),
            "start_step": self.start_step,
            "n_eval": self._n_eval,
            "snapshot": clone(self._snap),
            "g_prev": clone(self._g_prev),
            "loss_prev": None if self._loss_prev is None else float(self._loss_prev),
            "cumulative": clone(self._cumulative),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output; tensor names must match this engine's."""
        if state["tensor_names"] != self.tensor_names:
            theirs, ours = set(state["tensor_names"]), set(self.tensor_names)
            diff = sorted(theirs ^ ours)[:8] or ["(same names, different order)"]
            raise LcaError(f"LCA state does not match the model: differing tensors {diff}")

        def load(ts: list[Tensor] | None, like: list[Tensor]) -> list[Tensor] | None:
            return (
                None
                if ts is None
                else [t.to(device=x.device, dtype=x.dtype) for t, x in zip(ts, like, strict=True)]
            )

        self._snap = load(state["snapshot"], self._snap)
        self._g_prev = load(state["g_prev"], self._snap)
        self._loss_prev = (
            None
            if state["loss_prev"] is None
            else torch.tensor(state["loss_prev"], dtype=torch.float64, device=self.device)
        )
        self._n_eval = state["n_eval"]
        self.start_step = int(state["start_step"])
        if self._cumulative is not None and state["cumulative"] is not None:
            self._cumulative = load(state["cumulative"], self._cumulative)

    def gradient_at_snapshot(self) -> tuple[Tensor, list[Tensor]]:
        """Fresh mean loss and mean gradient over E at the current snapshot (for checks)."""
        with self._pass_context():
            node = self._new_node()
            kept = [t.clone() for t in node] if self.sharded else None
            self._fill_node(node, self._snap, None, 0.0)
            try:
                total, grads = self._gradient_pass(node, self._constants())
            finally:
                if kept is not None:
                    with torch.no_grad():
                        torch._foreach_copy_(node, kept)
        n = float(self._n_eval)
        return total / n, [g / n for g in grads]

    def stored_endpoint_gradient(self) -> list[Tensor] | None:
        """The reused left-endpoint gradient (mean over E) the next interval will start from."""
        if self._g_prev is None:
            return None
        return [g / float(self._n_eval) for g in self._g_prev]

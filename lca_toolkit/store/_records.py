"""The rows a run store accepts: a block of optimizer steps and one LCA interval.

Both are frozen dataclasses that own read-only float64/int64/bool copies of their arrays, so a
record queued for the background writer cannot change under it (a CPU tensor's ``.numpy()`` view
keeps changing while training goes on). Shapes are checked on construction and every error names
the field at fault; the store checks the widths (number of groups, learning-rate groups, tensors)
against its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import RecordError


def _owned(value: Any, dtype: str, where: str) -> np.ndarray:
    """Read-only copy of ``value`` cast to ``dtype`` without silently changing any value.

    Integer and bool fields accept integer arrays, bools, and floats that hold whole numbers;
    float fields accept any real numeric array.
    """
    arr = np.asarray(value)
    kind = arr.dtype.kind
    if dtype == "float64":
        if kind not in "fiub":
            raise RecordError(f"{where} must be real numbers, got dtype {arr.dtype}")
    elif kind == "f":
        if arr.size and not np.all(np.isfinite(arr) & (arr == np.round(arr))):
            raise RecordError(f"{where} must hold whole numbers, got {arr.ravel()[:5].tolist()}")
    elif kind not in "iub":
        raise RecordError(f"{where} must be integers, got dtype {arr.dtype}")
    if dtype == "bool" and kind != "b" and arr.size and not np.isin(arr, (0, 1)).all():
        raise RecordError(f"{where} must be booleans (or 0/1), got {arr.ravel()[:5].tolist()}")
    out = np.array(arr, dtype=dtype, copy=True)
    out.flags.writeable = False
    return out


def _int(value: Any, where: str) -> int:
    if isinstance(value, (bool, np.bool_)):
        raise RecordError(f"{where} must be an integer, got {value!r}")
    if isinstance(value, (float, np.floating)) and not float(value).is_integer():
        raise RecordError(f"{where} must be an integer, got {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise RecordError(f"{where} must be an integer, got {value!r}") from exc


def _float(value: Any, where: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise RecordError(f"{where} must be a real number, got {value!r}") from exc


_STEP_FIELDS: tuple[tuple[str, str, int], ...] = (
    ("step", "int64", 1),
    ("loss", "float64", 1),
    ("grad_norm", "float64", 2),
    ("grad_norm_total", "float64", 1),
    ("rel_sq_norm", "float64", 2),
    ("update_norm", "float64", 2),
    ("skipped", "bool", 1),
    ("lr", "float64", 2),
    ("param_norm", "float64", 2),
)
"""(field, dtype, ndim) of every StepBlock array, in declaration order."""


@dataclass(frozen=True, eq=False)
class StepBlock:
    """``n >= 1`` consecutive optimizer steps, already on the host.

    Attributes:
        step: int64 ``(n,)`` optimizer steps, consecutive (``step[i + 1] == step[i] + 1``).
        loss: float64 ``(n,)`` training loss; NaN where the loop did not give one.
        grad_norm: float64 ``(n, G)`` L2 norm of each group's gradient.
        grad_norm_total: float64 ``(n,)`` L2 norm of the whole gradient.
        rel_sq_norm: float64 ``(n, G)`` sum over the group of ``||g||^2 / ||theta||^2``.
        update_norm: float64 ``(n, G)`` ``||theta_after - theta_before||`` per group.
        skipped: bool ``(n,)`` the GradScaler skipped the step (inf/NaN gradients).
        lr: float64 ``(n, L)`` learning rate of each optimizer param group.
        param_norm: float64 ``(n, G)`` L2 norm of each group's parameters at the step (where
            the gradient was taken, before the optimizer step); ``None`` (the default, for
            producers that do not record it) becomes NaN, "not recorded".
    """

    step: np.ndarray
    loss: np.ndarray
    grad_norm: np.ndarray
    grad_norm_total: np.ndarray
    rel_sq_norm: np.ndarray
    update_norm: np.ndarray
    skipped: np.ndarray
    lr: np.ndarray
    param_norm: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.param_norm is None:
            shape = np.shape(self.grad_norm)
            object.__setattr__(self, "param_norm", np.full(shape, np.nan))
        for name, dtype, ndim in _STEP_FIELDS:
            arr = _owned(getattr(self, name), dtype, f"StepBlock.{name}")
            if arr.ndim != ndim:
                raise RecordError(
                    f"StepBlock.{name} must be {ndim}-D "
                    f"({'(n, width)' if ndim == 2 else '(n,)'}), got shape {arr.shape}"
                )
            object.__setattr__(self, name, arr)
        n = self.step.shape[0]
        if n < 1:
            raise RecordError("StepBlock.step is empty; a block holds at least one step")
        for name, _, _ in _STEP_FIELDS:
            rows = getattr(self, name).shape[0]
            if rows != n:
                raise RecordError(f"StepBlock.{name} has {rows} rows but step has {n}")
        width = self.grad_norm.shape[1]
        for name in ("rel_sq_norm", "update_norm", "param_norm"):
            if getattr(self, name).shape[1] != width:
                raise RecordError(
                    f"StepBlock.{name} has {getattr(self, name).shape[1]} group columns but "
                    f"grad_norm has {width}"
                )
        if n > 1 and not ((self.step[1:] - self.step[:-1]) == 1).all():
            raise RecordError(
                f"StepBlock.step must be consecutive steps, got {self.step[:8].tolist()}"
                f"{' ...' if n > 8 else ''}"
            )

    def __len__(self) -> int:
        return int(self.step.shape[0])

    @property
    def n_groups(self) -> int:
        """``G``, the width of the per-group arrays."""
        return int(self.grad_norm.shape[1])

    @property
    def n_lr_groups(self) -> int:
        """``L``, the width of ``lr``."""
        return int(self.lr.shape[1])


@dataclass(frozen=True, eq=False)
class LcaRecord:
    """One LCA interval: the steps ``start_step < step <= end_step``.

    Sign convention: LCA of a parameter is its share of ``loss_end - loss_start``, so a negative
    value means the parameter helped (lowered the loss on the evaluation subset E).

    Attributes:
        start_step: step of the snapshot at the interval's start.
        end_step: step of the snapshot at its end (``> start_step``).
        by_group: float64 ``(G,)`` sum of LCA over each group's parameters.
        abs_by_group: float64 ``(G,)`` sum of ``|LCA|`` over each group.
        helped: int64 ``(G,)`` number of parameters with LCA < 0.
        hurt: int64 ``(G,)`` number of parameters with LCA > 0.
        loss_start: ``L_E`` at ``start_step``.
        loss_end: ``L_E`` at ``end_step``.
        residual: ``loss_end - loss_start - by_group.sum()``, the quadrature error.
        passes: gradient passes over E used for the interval.
        by_tensor: optional float64 ``(T,)`` LCA summed per parameter tensor.
        error_by_group: float64 ``(G,)`` estimated quadrature error of each group's LCA (``>= 0``,
            see :mod:`lca_toolkit.lca`); ``None`` when not estimated, stored as NaN.
    """

    start_step: int
    end_step: int
    by_group: np.ndarray
    abs_by_group: np.ndarray
    helped: np.ndarray
    hurt: np.ndarray
    loss_start: float
    loss_end: float
    residual: float
    passes: int
    by_tensor: np.ndarray | None = None
    error_by_group: np.ndarray | None = None

    def __post_init__(self) -> None:
        for name in ("start_step", "end_step", "passes"):
            object.__setattr__(self, name, _int(getattr(self, name), f"LcaRecord.{name}"))
        for name in ("loss_start", "loss_end", "residual"):
            object.__setattr__(self, name, _float(getattr(self, name), f"LcaRecord.{name}"))
        if self.end_step <= self.start_step:
            raise RecordError(
                f"LcaRecord.end_step ({self.end_step}) must be greater than start_step "
                f"({self.start_step})"
            )
        if self.passes < 0:
            raise RecordError(f"LcaRecord.passes must be >= 0, got {self.passes}")
        vectors = {"by_group": "float64", "abs_by_group": "float64", "helped": "int64"}
        vectors["hurt"] = "int64"
        for name in ("by_tensor", "error_by_group"):
            if getattr(self, name) is not None:
                vectors[name] = "float64"
        for name, dtype in vectors.items():
            arr = _owned(getattr(self, name), dtype, f"LcaRecord.{name}")
            if arr.ndim != 1:
                raise RecordError(f"LcaRecord.{name} must be 1-D, got shape {arr.shape}")
            object.__setattr__(self, name, arr)
        if self.error_by_group is not None and bool((self.error_by_group < 0).any()):
            raise RecordError(
                "LcaRecord.error_by_group must be >= 0 (an absolute error) or NaN, got "
                f"{self.error_by_group.tolist()}"
            )
        g = self.by_group.shape[0]
        for name in ("abs_by_group", "helped", "hurt", "error_by_group"):
            if getattr(self, name) is not None and getattr(self, name).shape[0] != g:
                raise RecordError(
                    f"LcaRecord.{name} has {getattr(self, name).shape[0]} groups but by_group "
                    f"has {g}"
                )

    @property
    def n_groups(self) -> int:
        """``G``, the length of the per-group vectors."""
        return int(self.by_group.shape[0])

    @property
    def loss_change(self) -> float:
        """``loss_end - loss_start``: what the interval's LCA allocates."""
        return self.loss_end - self.loss_start

    def completeness_gap(self) -> float:
        """``loss_change - by_group.sum() - residual``; zero to float64 rounding when consistent."""
        if not (math.isfinite(self.loss_start) and math.isfinite(self.loss_end)):
            return math.nan
        return self.loss_change - float(self.by_group.sum()) - self.residual

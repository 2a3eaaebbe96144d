"""Names, dtypes and layout of a run store (schema version 1).

One zarr v3 group per run::

    <run>.zarr/
      zarr.json                 root attrs: schema_version, groups, group_members, config, ...
      steps/step                int64   (n_steps,)
      steps/loss                float64 (n_steps,)
      steps/grad_norm           float64 (n_steps, n_groups)
      steps/grad_norm_total     float64 (n_steps,)
      steps/rel_sq_norm         float64 (n_steps, n_groups)
      steps/update_norm         float64 (n_steps, n_groups)
      steps/skipped             bool    (n_steps,)
      steps/lr                  float64 (n_steps, n_lr_groups)
      steps/param_norm          float64 (n_steps, n_groups); only in stores created to hold it
      lca/start_step ... lca/passes
      lca/error_by_group        float64 (n_intervals, n_groups); absent in stores written before it
      lca/by_tensor             float64 (n_intervals, n_tensors), optional
      epochs/epoch              int64   (n_epochs,) plus one float64 array per metric
      lca_cumulative/<param>    float64, the parameter's shape (optional, overwritten)

Every array of a section has the same number of rows; the number a reader may trust is the
committed count in the root attribute ``rows`` (``{"steps": n, "lca": m, "epochs": e}``), which
the writer updates only after the data of those rows is on disk.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import RecordError

SCHEMA_VERSION: int = 1
"""Version of the layout below; readers refuse stores with a newer or missing version."""

SECTIONS: tuple[str, ...] = ("steps", "lca", "epochs")

CUMULATIVE_GROUP = "lca_cumulative"
TABLES_GROUP = "tables"
"""Sub-group holding the optional cumulative per-parameter LCA arrays."""

STATUSES: tuple[str, ...] = ("running", "finished", "failed", "interrupted")

ROW_DIM: dict[str, str] = {"steps": "step", "lca": "interval", "epochs": "epoch"}
"""Name of the first (time) dimension of every array in a section."""

CHUNK_ROWS: dict[str, int] = {"steps": 4096, "lca": 256, "epochs": 256}
"""Rows per chunk along time: big enough to compress well, small enough to rewrite cheaply."""

ROOT_ATTR_KEYS: frozenset[str] = frozenset(
    {
        "schema_version",
        "groups",
        "group_members",
        "lr_groups",
        "tensor_names",
        "config",
        "model_summary",
        "library_versions",
        "created",
        "resumed",
        "status",
        "status_reason",
        "rows",
        "epoch_metrics",
        "generation",
        "lca_cumulative_at_step",
    }
)
"""Root attributes owned by the store; ``RunWriter.update_attrs`` may not overwrite them."""


@dataclass(frozen=True)
class ArraySpec:
    """One array of a section.

    Attributes:
        name: array name inside the section (``steps/<name>``).
        dtype: numpy dtype name.
        columns: name of the second dimension (``group``, ``lr_group``, ``tensor``) or ``None``
            for a 1-D array.
        description: stored as the array's ``description`` attribute.
    """

    name: str
    dtype: str
    columns: str | None
    description: str

    @property
    def fill_value(self) -> int | float | bool:
        """A value no real row has, so an unwritten row never looks plausible."""
        return {"int64": -1, "float64": math.nan, "bool": False}[self.dtype]


STEP_ARRAYS: tuple[ArraySpec, ...] = (
    ArraySpec("step", "int64", None, "optimizer step of the row"),
    ArraySpec("loss", "float64", None, "training loss of the step (NaN when not given)"),
    ArraySpec("grad_norm", "float64", "group", "L2 norm of the group's gradient"),
    ArraySpec("grad_norm_total", "float64", None, "L2 norm of the whole gradient"),
    ArraySpec(
        "rel_sq_norm", "float64", "group", "sum over the group of ||g||^2 / ||theta||^2 per tensor"
    ),
    ArraySpec("update_norm", "float64", "group", "||theta_after - theta_before|| of the group"),
    ArraySpec("skipped", "bool", None, "step skipped by a GradScaler (inf/NaN gradients)"),
    ArraySpec("lr", "float64", "lr_group", "learning rate of each optimizer param group"),
)

LCA_ARRAYS: tuple[ArraySpec, ...] = (
    ArraySpec("start_step", "int64", None, "interval covers steps start_step < step <= end_step"),
    ArraySpec("end_step", "int64", None, "last optimizer step of the interval"),
    ArraySpec("by_group", "float64", "group", "sum of LCA over the group (negative = helped)"),
    ArraySpec("abs_by_group", "float64", "group", "sum of |LCA| over the group"),
    ArraySpec("helped", "int64", "group", "parameters with LCA < 0"),
    ArraySpec("hurt", "int64", "group", "parameters with LCA > 0"),
    ArraySpec("loss_start", "float64", None, "L_E at start_step"),
    ArraySpec("loss_end", "float64", None, "L_E at end_step"),
    ArraySpec("residual", "float64", None, "loss_end - loss_start - sum of by_group"),
    ArraySpec("passes", "int64", None, "gradient passes over E used for the interval"),
)

PARAM_NORM = ArraySpec(
    "param_norm",
    "float64",
    "group",
    "L2 norm of the group's parameters at the step, before the optimizer step; NaN when not "
    "recorded",
)
"""Kept apart from ``STEP_ARRAYS``: a store has it when created with ``param_norm=True`` (the
Tracker's stores) or resumed by a writer that records it (earlier rows NaN). Stores written
before it existed lack it and still open, so the schema version stays 1: an array a reader may
find absent changes nothing a version-1 reader relies on, as with ``lca/error_by_group``."""

BY_TENSOR = ArraySpec("by_tensor", "float64", "tensor", "LCA summed per parameter tensor")

ERROR_BY_GROUP = ArraySpec(
    "error_by_group",
    "float64",
    "group",
    "estimated quadrature error of the group's LCA, |rule - cruder rule on the same nodes|; "
    "NaN when not estimated",
)
"""Kept apart from ``LCA_ARRAYS``: stores written before it existed lack it and still open."""

EPOCH_INDEX = ArraySpec("epoch", "int64", None, "epoch number of the row")


def metric_spec(name: str) -> ArraySpec:
    """The float64 array of one per-epoch metric."""
    return ArraySpec(name, "float64", None, f"per-epoch metric {name!r}")


def section_specs(section: str, *, with_by_tensor: bool = False) -> tuple[ArraySpec, ...]:
    """Fixed arrays of ``steps`` or ``lca`` (epoch metrics are dynamic, see ``metric_spec``)."""
    if section == "steps":
        return STEP_ARRAYS
    if section == "lca":
        return LCA_ARRAYS + (ERROR_BY_GROUP,) + ((BY_TENSOR,) if with_by_tensor else ())
    if section == "epochs":
        return (EPOCH_INDEX,)
    raise KeyError(f"unknown store section {section!r}; expected one of {SECTIONS}")


def check_node_name(name: str, what: str) -> str:
    """Refuse names zarr would misread as a path or reserve for itself.

    Args:
        name: proposed array name (a metric or parameter name).
        what: how the error should call it, e.g. ``"epoch metric"``.

    Returns:
        ``name`` unchanged.

    Raises:
        RecordError: empty, not a string, containing ``/``, ``.``/``..``, or starting with ``__``.
    """
    if not isinstance(name, str) or not name:
        raise RecordError(f"{what} name must be a non-empty string, got {name!r}")
    if "/" in name or name in (".", "..") or name.startswith("__"):
        raise RecordError(
            f"{what} name {name!r} cannot be stored as a zarr array name (no '/', not '.' or '..', "
            f"no leading '__'); rename it, e.g. {name.replace('/', '_').lstrip('_') or 'x'!r}"
        )
    return name


def empty_rows(spec: ArraySpec, n_columns: int | None) -> np.ndarray:
    """A zero-row array of the spec's dtype and width (what a store with no rows reads as)."""
    shape = (0,) if spec.columns is None else (0, int(n_columns or 0))
    return np.empty(shape, dtype=spec.dtype)


def check_names(names: Sequence[str], what: str) -> list[str]:
    """``names`` as a list of unique non-empty strings (group or tensor names)."""
    if isinstance(names, str):
        raise RecordError(f"{what} must be a sequence of names, got the single string {names!r}")
    out = list(names)
    bad = [n for n in out if not isinstance(n, str) or not n]
    if bad:
        raise RecordError(f"{what} must be non-empty strings, got {bad}")
    dupes = sorted(n for n, count in Counter(out).items() if count > 1)
    if dupes:
        raise RecordError(f"{what} must be unique, got {dupes} more than once")
    if what == "groups" and not out:
        raise RecordError("groups must name at least one group")
    return out


def check_members(members: Mapping[str, Sequence[str]], groups: list[str]) -> dict[str, list[str]]:
    """``group_members`` with exactly one list of names per group, in group order."""
    missing = [g for g in groups if g not in members]
    extra = [g for g in members if g not in groups]
    if missing or extra:
        raise RecordError(
            f"group_members must have one entry per group {groups}; missing {missing}, "
            f"unknown {extra}"
        )
    out: dict[str, list[str]] = {}
    for g in groups:
        m = members[g]
        if isinstance(m, str):
            raise RecordError(f"group_members[{g!r}] must be a list of names, got {m!r}")
        out[g] = [str(x) for x in m]
    return out


def jsonable(value: Any, where: str) -> Any:
    """A JSON-ready copy: numpy scalars/arrays to Python, tuples to lists, paths to strings."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist(), where)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise RecordError(f"{where} has a key {k!r} that is not a string (JSON needs one)")
            out[k] = jsonable(v, f"{where}[{k!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise RecordError(
        f"{where} is a {type(value).__name__}, which cannot be stored as JSON; store its name or "
        "settings (numbers, strings, lists, dicts) instead"
    )

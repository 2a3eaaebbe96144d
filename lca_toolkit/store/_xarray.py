"""A run store as one labelled ``xarray.Dataset`` (``open_run(PATH).to_xarray()``).

The pandas frames flatten the group axis into ``grad_norm/<group>`` columns; a Dataset keeps it
as a dimension, so ``ds.grad_norm.sel(group="cc")``, ``ds.by_group.cumsum("interval")`` or
``ds.grad_norm.rolling(step=50).mean()`` work without reshaping. Variables keep the store's
array names (``steps/<name>`` and ``lca/<name>``, which do not collide); each carries the store
array it came from and its description as attributes. Needs ``lca-toolkit[xarray]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from .._extras import require
from ._schema import BY_TENSOR, EPOCH_INDEX, ROW_DIM, ArraySpec, metric_spec

if TYPE_CHECKING:
    import xarray

    from ._reader import Run

EPOCH_PREFIX = "epoch_"
"""Per-epoch metrics become ``epoch_<metric>`` along ``epoch`` (a metric may share a step
array's name, e.g. ``loss``)."""

LCA_START = "the interval covers steps start_step < step <= end_step"


def flatten_config(config: Mapping[str, Any], prefix: str = "config.") -> dict[str, Any]:
    """Nested config dicts as flat ``{"config.a.b": value}`` attributes (xarray attrs are flat)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            out.update(flatten_config(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def run_dataset(run: Run) -> xarray.Dataset:
    """The run's committed rows as a Dataset; see :meth:`Run.to_xarray` for the layout."""
    xr = require("xarray", package="xarray", extra="xarray", feature="Run.to_xarray()")
    step_specs = run._step_specs()
    steps, _ = run._read_section("steps", step_specs)
    lca_specs = run._lca_specs() + ((BY_TENSOR,) if run.tensor_names is not None else ())
    lca, _ = run._read_section("lca", lca_specs)
    metrics = list(run.attrs.get("epoch_metrics", []))
    epochs, epoch_attrs = run._read_section(
        "epochs", [EPOCH_INDEX, *(metric_spec(m) for m in metrics)]
    )
    metrics = [m for m in epoch_attrs.get("epoch_metrics", []) if m in epochs]

    variables: dict[str, Any] = {}
    for section, data, specs in (("steps", steps, step_specs), ("lca", lca, lca_specs)):
        for spec in specs:
            if spec.name in ("step", "start_step", "end_step"):
                continue  # coordinates
            variables[spec.name] = _variable(section, spec, data[spec.name])
    lr = variables["lr"]
    if lr[1].shape[1] == 1:  # one optimizer param group: lr(step), as in the wide frame
        variables["lr"] = (("step",), lr[1][:, 0], lr[2])
    variables["loss_change"] = (
        ("interval",),
        lca["loss_end"] - lca["loss_start"],
        {"description": "loss_end - loss_start = sum of by_group + residual"},
    )
    for m in metrics:
        variables[f"{EPOCH_PREFIX}{m}"] = _variable("epochs", metric_spec(m), epochs[m])

    groups = list(run.groups)
    coords: dict[str, Any] = {
        "step": ("step", steps["step"], {"description": "optimizer step of the row (1-based)"}),
        "group": ("group", np.asarray(groups, dtype=object)),
        "interval": ("interval", np.arange(len(lca["end_step"]), dtype=np.int64)),
        "start_step": ("interval", lca["start_step"], {"description": LCA_START}),
        "end_step": ("interval", lca["end_step"], {"description": "last step of the interval"}),
        "epoch": ("epoch", epochs["epoch"]),
        "lr_group": ("lr_group", np.arange(run.n_lr_groups, dtype=np.int64)),
    }
    if run.tensor_names is not None:
        coords["tensor"] = ("tensor", np.asarray(run.tensor_names, dtype=object))
    numel = run.model_summary.get("numel")
    if isinstance(numel, Mapping):
        coords["numel"] = ("group", np.array([int(numel.get(g, 0)) for g in groups]))
    attrs = {
        "path": str(run.path),
        "status": run.status,
        "schema_version": int(run.attrs["schema_version"]),
        **flatten_config(run.config),
    }
    return xr.Dataset(variables, coords=coords, attrs=attrs)


def _variable(section: str, spec: ArraySpec, values: np.ndarray) -> tuple:
    """``(dims, values, attrs)`` of one store array."""
    dims = (ROW_DIM[section],) if spec.columns is None else (ROW_DIM[section], spec.columns)
    return dims, values, {"store_array": f"{section}/{spec.name}", "description": spec.description}

"""Checks of what a caller hands the writer, made on the caller's thread before queueing.

Each function refuses a record that does not fit the store's layout (wrong widths, names zarr
cannot store, values that are not numbers) and returns owned copies, so that nothing queued for
the background thread can change under it. Order (steps after steps, epochs after epochs) is the
writer's own job: it depends on what was queued before.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import RecordError
from ._layout import StoreLayout
from ._records import LcaRecord, StepBlock
from ._schema import EPOCH_INDEX, ROOT_ATTR_KEYS, check_node_name, jsonable


def check_step_block(block: StepBlock, layout: StoreLayout, path: Path) -> None:
    """Refuse a block that is not a :class:`StepBlock` or has other widths than the store."""
    if not isinstance(block, StepBlock):
        raise RecordError(f"append_steps needs a StepBlock, got {type(block).__name__}")
    if block.n_groups != len(layout.groups):
        raise RecordError(
            f"StepBlock has {block.n_groups} group columns but '{path}' has "
            f"{len(layout.groups)} groups {layout.groups}"
        )
    if block.n_lr_groups != layout.lr_groups:
        raise RecordError(
            f"StepBlock.lr has {block.n_lr_groups} columns but '{path}' was opened with "
            f"lr_groups={layout.lr_groups}"
        )
    if not layout.param_norm and not np.isnan(block.param_norm).all():
        raise RecordError(
            f"StepBlock.param_norm has values but '{path}' has no steps/param_norm; open the "
            "writer with param_norm=True to store them"
        )


def check_lca_record(record: LcaRecord, layout: StoreLayout, path: Path) -> None:
    """Refuse a record that is not an :class:`LcaRecord` or does not fit the store's columns."""
    if not isinstance(record, LcaRecord):
        raise RecordError(f"append_lca needs an LcaRecord, got {type(record).__name__}")
    if record.n_groups != len(layout.groups):
        raise RecordError(
            f"LcaRecord has {record.n_groups} groups but '{path}' has "
            f"{len(layout.groups)} groups {layout.groups}"
        )
    tensors = layout.tensor_names
    if tensors is None:
        if record.by_tensor is not None:
            raise RecordError(
                f"LcaRecord.by_tensor given but '{path}' was opened without "
                "tensor_names; pass tensor_names= to the RunWriter to store it"
            )
    elif record.by_tensor is None or record.by_tensor.shape[0] != len(tensors):
        got = None if record.by_tensor is None else record.by_tensor.shape[0]
        raise RecordError(
            f"LcaRecord.by_tensor must have {len(tensors)} values (one per "
            f"tensor name of '{path}'), got {got}"
        )


def epoch_row(epoch: int, metrics: Mapping[str, float]) -> tuple[int, dict[str, float]]:
    """``(epoch, metrics)`` as an int and a dict of floats, each name a storable array name."""
    if isinstance(epoch, (bool, np.bool_)) or not isinstance(epoch, (int, np.integer)):
        raise RecordError(f"epoch must be an integer, got {epoch!r}")
    epoch = int(epoch)
    row: dict[str, float] = {}
    for name, value in metrics.items():
        check_node_name(name, "epoch metric")
        if name == EPOCH_INDEX.name:
            raise RecordError("an epoch metric cannot be called 'epoch' (the row index)")
        try:
            row[name] = float(value)
        except (TypeError, ValueError) as exc:
            raise RecordError(
                f"epoch {epoch} metric {name!r} must be a number, got {value!r}"
            ) from exc
    return epoch, row


def owned_cumulative(
    arrays: Mapping[str, np.ndarray], at_step: int
) -> tuple[dict[str, np.ndarray], int]:
    """float64 copies of cumulative LCA arrays and ``at_step`` as an int."""
    owned: dict[str, np.ndarray] = {}
    for name, value in arrays.items():
        check_node_name(name, "cumulative LCA parameter")
        arr = np.asarray(value)
        if arr.dtype.kind not in "fiub":
            raise RecordError(f"cumulative LCA of {name!r} must be numbers, got {arr.dtype}")
        owned[name] = np.array(arr, dtype=np.float64, copy=True)
    if isinstance(at_step, bool) or not isinstance(at_step, (int, np.integer)):
        raise RecordError(f"at_step must be an integer, got {at_step!r}")
    return owned, int(at_step)


def owned_table(name: str, columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Copies of a table's columns: 1-D numeric or boolean arrays of one length."""
    check_node_name(name, "table")
    owned: dict[str, np.ndarray] = {}
    for col, value in columns.items():
        check_node_name(col, f"column of table {name!r}")
        arr = np.array(value, copy=True)
        if arr.ndim != 1 or arr.dtype.kind not in "fiub":
            raise RecordError(
                f"table {name!r}: column {col!r} must be a 1-D numeric array, got "
                f"shape {arr.shape} dtype {arr.dtype}"
            )
        owned[col] = arr
    lengths = {c: len(a) for c, a in owned.items()}
    if len(set(lengths.values())) > 1:
        raise RecordError(f"table {name!r}: columns have different lengths {lengths}")
    return owned


def owned_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """JSON-ready copies of extra root attributes, none of them a key the store owns."""
    taken = sorted(set(attrs) & ROOT_ATTR_KEYS)
    if taken:
        raise RecordError(
            f"update_attrs cannot set {taken}: the store owns these attributes; use other names"
        )
    return {k: jsonable(v, f"attrs[{k!r}]") for k, v in attrs.items()}

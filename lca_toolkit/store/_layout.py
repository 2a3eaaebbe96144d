"""The fixed shape of one run store: its groups, members, learning-rate groups and tensors.

Everything the writer must agree on with an existing store before it appends to it, and the
arrays that follow from it (which arrays a section has, how wide each is, how it is chunked).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zarr

from ..errors import RecordError, RunMismatchError
from ._schema import (
    BY_TENSOR,
    CHUNK_ROWS,
    EPOCH_INDEX,
    ERROR_BY_GROUP,
    LCA_ARRAYS,
    PARAM_NORM,
    ROW_DIM,
    STEP_ARRAYS,
    ArraySpec,
    check_members,
    check_names,
    metric_spec,
)


@dataclass(frozen=True)
class StoreLayout:
    """Column names of a run store; a resumed store must have exactly these.

    Attributes:
        groups: ordered group names; the column order of every ``n_groups`` axis.
        members: group name -> its parameter (or buffer) names, in group order.
        lr_groups: number of optimizer param groups (width of ``steps/lr``).
        tensor_names: names of the ``lca/by_tensor`` columns, or ``None`` to not store it.
        param_norm: whether the store has ``steps/param_norm``.
    """

    groups: list[str]
    members: dict[str, list[str]]
    lr_groups: int = 1
    tensor_names: list[str] | None = None
    param_norm: bool = False

    @classmethod
    def checked(
        cls,
        groups: Sequence[str],
        group_members: Mapping[str, Sequence[str]],
        lr_groups: int = 1,
        tensor_names: Sequence[str] | None = None,
        param_norm: bool = False,
    ) -> StoreLayout:
        """A layout from caller arguments, refusing duplicate names and missing members.

        Raises:
            RecordError: naming the argument at fault.
        """
        checked_groups = check_names(groups, "groups")
        members = check_members(group_members, checked_groups)
        if isinstance(lr_groups, bool) or not isinstance(lr_groups, int) or lr_groups < 1:
            raise RecordError(f"lr_groups must be an integer >= 1, got {lr_groups!r}")
        tensors = None if tensor_names is None else check_names(tensor_names, "tensor_names")
        return cls(checked_groups, members, lr_groups, tensors, bool(param_norm))

    def fixed_specs(self, section: str) -> tuple[ArraySpec, ...]:
        """The arrays every store of this layout has in ``section``."""
        if section == "steps":
            return STEP_ARRAYS + ((PARAM_NORM,) if self.param_norm else ())
        if section == "lca":
            by_tensor = (BY_TENSOR,) if self.tensor_names is not None else ()
            return LCA_ARRAYS + (ERROR_BY_GROUP,) + by_tensor
        return (EPOCH_INDEX,)

    def section_specs(self, section: str, epoch_metrics: Sequence[str]) -> tuple[ArraySpec, ...]:
        """The fixed arrays of ``section`` plus, for ``epochs``, one per committed metric."""
        specs = self.fixed_specs(section)
        if section == "epochs":
            specs += tuple(metric_spec(m) for m in epoch_metrics)
        return specs

    def width(self, spec: ArraySpec) -> int | None:
        """Columns of ``spec``'s second axis, or ``None`` for a 1-D array."""
        return {
            None: None,
            "group": len(self.groups),
            "lr_group": self.lr_groups,
            "tensor": len(self.tensor_names or []),
        }[spec.columns]

    def create_array(self, grp: zarr.Group, section: str, spec: ArraySpec, rows: int) -> zarr.Array:
        """Create ``spec`` in ``grp`` with ``rows`` rows of its fill value."""
        width = self.width(spec)
        chunk = CHUNK_ROWS[section]
        shape: tuple[int, ...] = (rows,) if width is None else (rows, width)
        chunks: tuple[int, ...] = (chunk,) if width is None else (chunk, max(width, 1))
        dims = [ROW_DIM[section]] if width is None else [ROW_DIM[section], spec.columns]
        return grp.create_array(
            spec.name,
            shape=shape,
            dtype=spec.dtype,
            chunks=chunks,
            fill_value=spec.fill_value,
            dimension_names=dims,
            attributes={"description": spec.description},
        )

    def check_matches(self, attrs: Mapping[str, Any], path: Path) -> None:
        """Refuse to resume the store at ``path`` (root ``attrs``) unless it has this layout.

        Raises:
            RunMismatchError: naming what differs, with the store's and this run's values.
        """
        where = f"cannot resume '{path}'"
        if list(attrs.get("groups", [])) != self.groups:
            raise RunMismatchError(
                f"{where}: the store has groups {attrs.get('groups')} but this run has "
                f"{self.groups}"
            )
        stored_members = {k: list(v) for k, v in dict(attrs.get("group_members") or {}).items()}
        for g in self.groups:
            if stored_members.get(g) != self.members[g]:
                raise RunMismatchError(
                    f"{where}: group {g!r} has members {stored_members.get(g)} in the store but "
                    f"{self.members[g]} in this run"
                )
        if int(attrs.get("lr_groups", 1)) != self.lr_groups:
            raise RunMismatchError(
                f"{where}: the store has lr_groups={attrs.get('lr_groups')} but this run has "
                f"{self.lr_groups} optimizer param groups"
            )
        stored_tensors = attrs.get("tensor_names")
        if (None if stored_tensors is None else list(stored_tensors)) != self.tensor_names:
            raise RunMismatchError(
                f"{where}: the store has tensor_names {stored_tensors} but this run has "
                f"{self.tensor_names}"
            )

"""Where the Tracker sends its rows: the zarr ``RunWriter`` or an in-memory sink.

All implement :class:`~lca_toolkit.records.Sink` (also importable from here). The in-memory sink
keeps everything in Python lists, for notebooks and tests that do not need a store on disk; the
null sink keeps nothing (ranks other than 0 of a distributed run, which must make the same calls
as rank 0 but never write).
"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from . import distributed
from .groups import ParamGroups
from .lca_config import LcaConfig
from .records import LcaRecord, Sink, StepBlock
from .sharding import is_fsdp2, model_class_name

__all__ = ["MemorySink", "NullSink", "Sink", "open_sink"]


@dataclass
class MemorySink:
    """Keeps a run's records in memory (``Tracker(store=None)``)."""

    groups: list[str]
    steps: list[StepBlock] = field(default_factory=list)
    lca: list[LcaRecord] = field(default_factory=list)
    epochs: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    cumulative: dict[str, np.ndarray] = field(default_factory=dict)
    tables: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    status: str = "running"
    status_reason: str | None = None

    def append_steps(self, block: StepBlock) -> None:
        self.steps.append(block)

    def append_lca(self, record: LcaRecord) -> None:
        self.lca.append(record)

    def append_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        self.epochs.append((epoch, dict(metrics)))

    def write_cumulative_lca(self, arrays: Mapping[str, np.ndarray], at_step: int) -> None:
        self.cumulative = {k: np.array(v) for k, v in arrays.items()}

    def write_table(self, name: str, columns: Mapping[str, np.ndarray]) -> None:
        self.tables[name] = {k: np.array(v) for k, v in columns.items()}

    def update_attrs(self, **attrs: Any) -> None:
        self.attrs.update(attrs)

    def flush(self) -> None:
        pass

    def truncate(
        self, *, last_step: int, last_epoch: int | None = None, last_lca_end: int | None = None
    ) -> None:
        kept = []
        for b in self.steps:
            keep = b.step <= last_step
            if keep.any():
                kept.append(_take_rows(b, keep))
        self.steps = kept
        lca_cut = last_step if last_lca_end is None else min(last_lca_end, last_step)
        self.lca = [r for r in self.lca if r.end_step <= lca_cut]
        if last_epoch is not None:
            self.epochs = [(e, m) for e, m in self.epochs if e <= last_epoch]

    def close(self, status: str = "finished", reason: str | None = None) -> None:
        self.status, self.status_reason = status, reason

    def step_array(self, name: str) -> np.ndarray:
        """All rows of one step field concatenated (e.g. ``"grad_norm"`` -> (n, G))."""
        return np.concatenate([getattr(b, name) for b in self.steps])


@dataclass
class NullSink:
    """Accepts every :class:`Sink` call and keeps nothing but the run status.

    The Tracker of a distributed rank other than 0 writes here: it makes the same calls as rank 0
    (so collectives stay in step) while only rank 0 opens and writes the store.
    """

    groups: list[str]
    path: None = None
    status: str = "running"
    status_reason: str | None = None

    def append_steps(self, block: StepBlock) -> None:
        pass

    def append_lca(self, record: LcaRecord) -> None:
        pass

    def append_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        pass

    def write_cumulative_lca(self, arrays: Mapping[str, np.ndarray], at_step: int) -> None:
        pass

    def write_table(self, name: str, columns: Mapping[str, np.ndarray]) -> None:
        pass

    def update_attrs(self, **attrs: Any) -> None:
        pass

    def flush(self) -> None:
        pass

    def truncate(
        self, *, last_step: int, last_epoch: int | None = None, last_lca_end: int | None = None
    ) -> None:
        pass

    def close(self, status: str = "finished", reason: str | None = None) -> None:
        self.status, self.status_reason = status, reason


def _take_rows(block: StepBlock, mask: np.ndarray) -> StepBlock:
    fields: dict[str, Any] = {k: v[mask] for k, v in vars(block).items()}
    return StepBlock(**fields)


def _library_versions() -> dict[str, str]:
    return {
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def open_sink(
    store: Any,
    *,
    groups: ParamGroups,
    group_names: list[str],
    members: Mapping[str, Any],
    model: Any,
    optimizer: Any,
    lca: LcaConfig | None,
    tensor_names: list[str] | None,
    config: Mapping[str, Any] | None,
    store_mode: str,
    flush_every: int,
) -> Sink:
    """Where a Tracker's records go: memory (``store=None``), nowhere (ranks other than 0), a
    user's own :class:`Sink`, or a zarr store at a path, with the run's provenance."""
    if store is None:
        return MemorySink(group_names)
    if not distributed.is_main():  # only rank 0 writes the store
        return NullSink(group_names)
    if not isinstance(store, (str, os.PathLike)):
        return store
    lca_cfg = None if lca is None else lca.as_record()
    run_config = {
        "tracker": {
            "lca": lca_cfg,
            "world_size": distributed.world_size(),
            "sharding": "fsdp2" if is_fsdp2(model) else None,
        },
        **dict(config or {}),
    }
    numel = groups.numel()
    summary = {
        "numel": {g: numel.get(g, 0) for g in group_names},
        "trainable": sum(numel.values()),
        "model": model_class_name(model),
        "libraries": _library_versions(),
    }
    from .store import RunWriter  # the zarr writer is only needed for a store on disk

    lr_groups = len(optimizer.param_groups) if optimizer is not None else 1
    return RunWriter(
        store,
        groups=group_names,
        group_members=members,
        lr_groups=lr_groups,
        tensor_names=tensor_names,
        param_norm=True,
        config=run_config,
        model_summary=summary,
        mode=store_mode,
        flush_every=flush_every,
    )

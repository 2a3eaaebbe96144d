"""Small run stores written with RunWriter for the plot and CLI tests."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lca_toolkit.store import LcaRecord, RunWriter, StepBlock

GROUPS = ("cc", "mlo", "shared", "bn_buffers")


def write_store(
    path: Path,
    *,
    groups: Sequence[str] = GROUPS,
    n_steps: int = 24,
    lca_every: int | None = 6,
    n_epochs: int = 4,
    epoch_metrics: Sequence[str] = ("train_loss", "train_auc", "val_loss", "val_auc"),
    config: Mapping[str, Any] | None = None,
    results: Mapping[str, float] | None = None,
    tables: Mapping[str, Mapping[str, np.ndarray]] | None = None,
    seed: int = 0,
    epoch_values: Mapping[str, Sequence[float]] | None = None,
    param_norm: bool = False,
) -> Path:
    """A finished run: random norms (``bn_buffers`` all NaN), consistent LCA, epoch metrics
    (random, or ``epoch_values[metric][epoch - 1]`` where given), and the given stored results
    and tables; with ``param_norm``, random group parameter norms too (else the store has none,
    as those written before it was recorded)."""
    rng = np.random.default_rng(seed)
    g = len(groups)
    grad = rng.lognormal(size=(n_steps, g))
    for j, name in enumerate(groups):
        if name == "bn_buffers":
            grad[:, j] = np.nan
    with RunWriter(
        path,
        groups=list(groups),
        group_members={name: [f"{name}.weight"] for name in groups},
        config=dict(config or {}),
        flush_interval=None,
        param_norm=param_norm,
    ) as w:
        if n_steps:
            w.append_steps(
                StepBlock(
                    step=np.arange(1, n_steps + 1),
                    loss=rng.random(n_steps),
                    grad_norm=grad,
                    grad_norm_total=np.sqrt(np.nansum(grad**2, axis=1)),
                    rel_sq_norm=rng.random((n_steps, g)),
                    update_norm=rng.random((n_steps, g)),
                    skipped=np.zeros(n_steps, dtype=bool),
                    lr=np.full((n_steps, 1), 1e-3),
                    param_norm=rng.lognormal(size=(n_steps, g)) if param_norm else None,
                )
            )
        loss = 2.0
        for start in range(0, n_steps - (lca_every or n_steps) + 1, lca_every or n_steps + 1):
            if lca_every is None:
                break
            by_group = -rng.random(g) * 0.05
            end_loss = loss + by_group.sum() + rng.normal() * 1e-3
            w.append_lca(
                LcaRecord(
                    start_step=start,
                    end_step=start + lca_every,
                    by_group=by_group,
                    abs_by_group=np.abs(by_group),
                    helped=rng.integers(0, 9, g),
                    hurt=rng.integers(0, 9, g),
                    loss_start=loss,
                    loss_end=end_loss,
                    residual=end_loss - loss - by_group.sum(),
                    passes=2,
                )
            )
            loss = end_loss
        for epoch in range(1, n_epochs + 1):
            values = {m: float(rng.random()) for m in epoch_metrics}
            values.update({m: float(v[epoch - 1]) for m, v in (epoch_values or {}).items()})
            w.append_epoch(epoch, values)
        if results is not None:
            w.update_attrs(results=dict(results))
        for name, columns in (tables or {}).items():
            w.write_table(name, columns)
    return path


def set_schema_version(path: Path, version: int) -> None:
    """Rewrite a store's ``schema_version`` (to fake an older or newer writer)."""
    meta = path / "zarr.json"
    doc = json.loads(meta.read_text())
    doc["attributes"]["schema_version"] = version
    meta.write_text(json.dumps(doc))

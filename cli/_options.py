"""Click options shared by several ``lca-run`` commands (``mammo``, ``sweep``, ``job``, ``recipe``).

The options of a mammography run are generated from the declarations on its config dataclasses
(:mod:`cli._declared`); the few here are command settings that are not part of a run's config.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from mammo_models.training import ExperimentConfig, RecordConfig

from ._declared import declared_option, declared_options

on_nonfinite_option = declared_option(RecordConfig, "on_nonfinite")
"""``--on-nonfinite``, as ``lca-run mammo`` declares it, for ``lca-run job``."""

quiet_option = click.option("--quiet", is_flag=True, help="No progress bar.")

tensorboard_option = click.option(
    "--tensorboard",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also write the recorded scalars (gradient norms, LCA, residual) as TensorBoard events "
    "here while the run goes (needs lca-toolkit[tensorboard]); the store stays the record.",
)
"""``--tensorboard DIR``, shared by ``lca-run mammo`` and ``job``: ``Tracker(mirror=...)``."""


def mirror_spec(tensorboard: Path | None) -> str | None:
    """The Tracker's ``mirror=`` for ``--tensorboard DIR``."""
    return None if tensorboard is None else f"tensorboard:{tensorboard}"


def training_options(
    skip: tuple[str, ...] = (),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Every option of a mammography run (``lca-run mammo``; ``sweep`` skips ``seed``), and
    ``--quiet``."""
    generated = declared_options(ExperimentConfig, skip=skip)

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        return generated(quiet_option(fn))

    return decorate

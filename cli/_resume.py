"""``lca-run mammo --resume``: the run's own settings, checked against the options of the command.

Users run the very command that started a run again with ``--resume`` added. Every option that
only repeats the stored setting is accepted; one that differs would mix two experiments in one
store, so it is refused, naming the option and both values, before anything on disk changes.
Device, workers, feed, max-steps and checkpoint-every may change (:data:`RESUME_OPTIONS`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from lca_toolkit import open_run
from mammo_models.training import ExperimentConfig

RESUME_OPTIONS = {
    "device": "device",
    "workers": "num_workers",
    "max_steps": "max_steps",
    "checkpoint_every": "checkpoint_every",
    "feed": "feed",
}
"""Options a resumed run may change: option name -> ExperimentConfig field."""

FLAG_NAMES = {"variant": "model", "data_kind": "data"}
"""Parameter names whose command-line option is spelled differently."""


def stored_options(config: ExperimentConfig) -> dict[str, Any]:
    """The option values that describe ``config``: the inverse of the command line's build_config.

    Values have the types click gives them (paths as ``Path``, ``nargs`` options as tuples,
    ``--max-panels`` as a string), so an option is compared with the stored setting as ``==``.
    """
    data, record, regs = config.data, config.record, config.regularizers
    alphas = regs.split_lr_alphas
    pretrained = regs.pretrained or (None, None)
    return {
        "variant": config.variant,
        "regularizer": config.regularizer,
        "data_kind": data.kind,
        "manifest": data.manifest,
        "data_root": data.data_root,
        "synthetic_root": data.synthetic_root,
        "testbed": data.testbed,
        "heatmaps": data.heatmaps,
        "skip_bad_images": data.skip_bad_images,
        "preset": config.preset,
        "lr": config.lr,
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "lca_every": record.lca_every,
        "lca_subset": record.lca_subset,
        "lca_set": record.lca_set,
        "no_lca": not record.lca,
        "quadrature": record.quadrature,
        "rel_tol": record.rel_tol,
        "max_panels": str(record.max_panels),
        "bn_policy": record.bn_policy,
        "on_nonfinite": record.on_nonfinite,
        "lca_epochs": record.lca_epochs,
        "epoch_breasts": config.epoch_breasts,
        "dropout": _tuple(regs.modality_dropout),
        "dropout_scaling": regs.dropout_scaling,
        "alphas": None if alphas is None else tuple(alphas[k] for k in ("cc", "mlo", "shared")),
        "pretrained_cc": pretrained[0],
        "pretrained_mlo": pretrained[1],
        "blend_weights": _tuple(regs.blend_weights),
        "blend_metric": regs.blend_metric,
        "seed": config.seed,
        "device": config.device,
        "workers": config.num_workers,
        "max_steps": config.max_steps,
        "checkpoint_every": config.checkpoint_every,
        "feed": config.feed,
        "sync_bn": config.sync_bn,
    }


def _tuple(value: Any) -> tuple[Any, ...] | None:
    return None if value is None else tuple(value)


def _flag(name: str) -> str:
    return "--" + FLAG_NAMES.get(name, name).replace("_", "-")


def _show(flag: str, value: Any) -> str:
    """An option's value as the command line writes it (``--heatmaps`` for a set flag)."""
    if value is True:
        return flag
    if isinstance(value, tuple):
        return " ".join(str(v) for v in value)
    return str(value)


def difference(name: str, out: Path, stored: Any, given: Any) -> str:
    """``--lr: the run at OUT was trained with 0.0001, this command says 0.001``."""
    flag = _flag(name)
    trained = (
        f"without {flag}" if stored is None or stored is False else f"with {_show(flag, stored)}"
    )
    return f"{flag}: the run at {out} was trained {trained}, this command says {_show(flag, given)}"


def resumed_config(out: Path, options: dict[str, Any]) -> ExperimentConfig:
    """The run's own settings, read from its store; only the options of
    :data:`RESUME_OPTIONS` (device, workers, max-steps, checkpoint-every, feed) may be given
    with other values.

    Args:
        out: the run store.
        options: the command's options, ``seed`` included.

    Raises:
        click.BadParameter: the store was not written by ``lca-run mammo``, or an option given on
            the command line differs from the run's setting (all of them named, with both values).
    """
    ctx = click.get_current_context()
    given = [
        name
        for name in options
        if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE
    ]
    stored = open_run(out).config.get("experiment")
    if not stored:
        raise click.BadParameter(f"{out} was not written by lca-run mammo", param_hint="--out")
    config = ExperimentConfig.from_dict(stored)
    own = stored_options(config)
    options = dict(options)
    if (
        options.get("manifest") is not None
    ):  # as build_config reads it: a manifest means --data manifest
        options["data_kind"] = "manifest"
    differing = [
        name
        for name in given
        if name not in RESUME_OPTIONS and (name not in own or own[name] != options[name])
    ]
    if differing:
        reasons = "; ".join(
            difference(name, out, own.get(name), options[name]) for name in differing
        )
        raise click.BadParameter(
            f"--resume continues the run with its own settings; do not pass {reasons}",
            param_hint="--resume",
        )
    changes = {field: options[name] for name, field in RESUME_OPTIONS.items() if name in given}
    return replace(config, out=out, **changes)

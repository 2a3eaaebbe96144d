"""``lca-run mammo --resume``: the run's own settings, checked against the options of the command.

Users run the very command that started a run again with ``--resume`` added. Every option that
only repeats the stored setting is accepted; one that differs would mix two experiments in one
store, so it is refused, naming the option and both values, before anything on disk changes.
The options declared ``resumable`` (device, workers, feed, max-steps, checkpoint-every) may
change. What the store holds is read back as option values by the same declarations that made
the options (:func:`lca_toolkit.options.flag_values`), so no option is spelled twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from lca_toolkit import open_run
from lca_toolkit.options import build, declarations, flag_values
from mammo_models.training import ExperimentConfig
from mammo_models.training.config import RESUMABLE

RESUMABLE_FLAGS: tuple[str, ...] = tuple(
    d.flag.flag for d in declarations(ExperimentConfig) if d.name in RESUMABLE
)
"""The flags a resumed run may change, in the order ``--help`` lists them."""

_FLAGS = {d.name: d.flag for d in declarations(ExperimentConfig)}


def _show(name: str, value: Any) -> str:
    """An option's value as the command line writes it (``--heatmaps`` for a set flag)."""
    flag = _FLAGS[name]
    if isinstance(value, bool):
        return flag.flag if value else (flag.off_flag or f"no {flag.flag}")
    if isinstance(value, tuple):
        return " ".join(str(v) for v in value)
    return str(value)


def difference(name: str, out: Path, stored: Any, given: Any) -> str:
    """``--lr: the run at OUT was trained with 0.0001, this command says 0.001``."""
    flag = _FLAGS[name].flag
    if stored is None or stored is False:
        trained = f"without {flag}"
    elif stored is True:
        trained = f"with {flag}"
    else:
        trained = f"with {_show(name, stored)}"
    return f"{flag}: the run at {out} was trained {trained}, this command says {_show(name, given)}"


def resumed_config(out: Path, options: Mapping[str, Any]) -> ExperimentConfig:
    """The run's own settings, read from its store; only the options declared ``resumable``
    may be given with other values.

    Args:
        out: the run store.
        options: the command's option values (parameter name -> value).

    Raises:
        click.BadParameter: the store was not written by ``lca-run mammo``, or an option given on
            the command line differs from the run's setting (all of them named, with both values).
    """
    ctx = click.get_current_context()
    given = [
        name
        for name in options
        if name in _FLAGS
        and ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE
    ]
    stored = open_run(out).config.get("experiment")
    if not stored:
        raise click.BadParameter(f"{out} was not written by lca-run mammo", param_hint="--out")
    own = flag_values(ExperimentConfig.from_dict(stored).resolved())
    asked = flag_values(build(ExperimentConfig, options, out=out))  # as the run reads them
    differing = [n for n in given if n not in RESUMABLE and own[n] != asked[n]]
    if differing:
        reasons = "; ".join(difference(n, out, own[n], asked[n]) for n in differing)
        raise click.BadParameter(
            f"--resume continues the run with its own settings; do not pass {reasons}",
            param_hint="--resume",
        )
    changes = {n: options[n] for n in given if n in RESUMABLE}
    return build(ExperimentConfig, {**own, **changes}, out=out)

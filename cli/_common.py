"""What every ``lca-run`` command shares: clear errors, torchrun's process group, rank-0 output.

Kept apart from the commands so that ``cli/run.py`` and ``cli/recipe.py`` both import it and
neither imports the other's helpers.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import click

from lca_toolkit import LcaToolkitError, distributed
from lca_toolkit.job import JobError
from mammo_models import CheckpointError
from mammo_models.data import MammoDataError
from mammo_models.training import ConfigError, ResumeError

from ._errors import describe, describe_user_error

EXPECTED_ERRORS = (
    ConfigError,
    ResumeError,
    LcaToolkitError,
    MammoDataError,
    CheckpointError,
    JobError,
    ValueError,
    OSError,
)

WORKER_DATA_ERRORS = ("ImageReadError", "ImageNotFoundError", "DataConfigError", "ManifestError")
"""Data errors that torch re-raises from a DataLoader worker as a RuntimeError."""


def fail_cleanly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the expected errors into a clear message and exit code 1 (no traceback).

    The toolkit's own errors keep every reason and row they give (:func:`cli._errors.describe`);
    an exception raised in the user's code (a job function, its ``loss_fn``, its model), of any
    type, is shown with its place there and none of the toolkit's frames
    (:func:`cli._errors.describe_user_error`).
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except click.ClickException:
            raise
        except KeyboardInterrupt:
            click.echo("interrupted; continue with --resume", err=True)
            sys.exit(130)
        except Exception as exc:  # noqa: BLE001 - sorted below; the rest is re-raised
            in_user_code = describe_user_error(exc)
            if in_user_code is not None:
                raise click.ClickException(in_user_code) from None
            if isinstance(exc, EXPECTED_ERRORS):
                raise click.ClickException(describe(exc)) from None
            if isinstance(exc, RuntimeError):  # a data error re-raised from a DataLoader worker
                last = str(exc).strip().splitlines()[-1] if str(exc).strip() else ""
                kind, _, message = last.partition(": ")
                if str(exc).startswith("Caught ") and kind.endswith(WORKER_DATA_ERRORS) and message:
                    raise click.ClickException(message) from None
            raise

    return wrapper


def in_process_group(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run the command inside torchrun's process group (if any); only rank 0 prints.

    Under ``torchrun --nproc_per_node=N --no-python lca-run ...`` every rank runs the command;
    the group is joined before and destroyed after it (also when it fails).
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with distributed.process_group():
            return fn(*args, **kwargs)

    return wrapper


def echo(message: str = "", **kwargs: Any) -> None:
    """``click.echo`` on rank 0 only (every rank of a distributed run executes the command)."""
    if distributed.is_main():
        click.echo(message, **kwargs)

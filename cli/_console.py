"""What ``lca-run`` prints while it works: one progress style and one-line warnings.

Every command shows the same kind of bar (tqdm, the library ``lca-run mammo``'s training loop
already draws with): steps for one run, runs done / total for sweeps and recipes, each with its
rate and ETA; ``--quiet`` turns bars off. Lines printed while a bar is drawn go above it
(:meth:`Bar.echo`), so the bar stays one line.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import click
from tqdm.auto import tqdm

import lca_toolkit
import mammo_models

OUR_PACKAGES = tuple(
    str(Path(p.__file__).resolve().parent) + os.sep for p in (lca_toolkit, mammo_models)
)
"""Warnings raised from these folders are the toolkit's own: printed as one line."""


class Bar:
    """A progress bar in the one style of ``lca-run`` (off with ``quiet``), and an ``echo``
    that prints above it."""

    def __init__(self, total: int | None, *, desc: str, unit: str, quiet: bool) -> None:
        self.quiet = quiet
        self._bar = tqdm(
            total=total,
            desc=desc,
            unit=unit,
            disable=quiet,
            dynamic_ncols=True,
            file=sys.stderr,
        )

    def echo(self, message: str = "") -> None:
        """Print a line above the bar (plainly when there is none)."""
        if self.quiet:
            click.echo(message)
        else:
            self._bar.write(message, file=sys.stdout)

    def update(self, n: int = 1, **postfix: Any) -> None:
        """Count ``n`` more done, showing ``postfix`` (``loss=0.31``) after the bar."""
        if postfix:
            self._bar.set_postfix(postfix, refresh=False)
        self._bar.update(n)

    def set(self, done: int) -> None:
        """Set how many are done (a resumed run's steps)."""
        self._bar.n = done
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TickingBatches:
    """Training batches that move a bar one step per batch, for jobs that report per epoch.

    Re-iterable like the batches it wraps; ``len`` is theirs when they have one.
    """

    def __init__(self, batches: Iterable[Any], bar: Bar) -> None:
        self.batches = batches
        self.bar = bar

    def __iter__(self) -> Iterator[Any]:
        for batch in self.batches:
            yield batch
            self.bar.update(1)

    def __len__(self) -> int:
        return len(self.batches)  # type: ignore[arg-type]


def one_line_warnings() -> None:
    """Print the toolkit's own warnings as ``warning: <message>``, without the source line a
    Python warning shows (``auc_benign=auc(`` means nothing to a user); warnings from other
    code (torch, the user's) keep Python's format, which says where they come from. Every
    warning is printed above a progress bar, not through it."""
    default = warnings.formatwarning

    def formatwarning(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        line: str | None = None,
    ) -> str:
        if str(Path(filename).resolve()).startswith(OUR_PACKAGES):
            return f"warning: {' '.join(str(message).split())}\n"
        return default(message, category, filename, lineno, line)

    def showwarning(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: Any = None,
        line: str | None = None,
    ) -> None:  # above any progress bar, which is then redrawn whole
        text = warnings.formatwarning(message, category, filename, lineno, line)
        tqdm.write(text.rstrip("\n"), file=file or sys.stderr)

    if getattr(warnings.formatwarning, "__module__", None) != __name__:
        warnings.formatwarning = formatwarning
        warnings.showwarning = showwarning

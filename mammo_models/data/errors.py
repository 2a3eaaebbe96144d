"""One exception class per failure mode of the mammography data pipeline.

Messages start with the place at fault (manifest row, image file, option name), say what was
expected and echo what was found, so that the input can be fixed without reading a traceback.

Manifest row numbers are **1-based data rows**: the first row under the header is row 1. In a
CSV with a one-line header (and no quoted line breaks) row ``N`` is file line ``N + 1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from os import PathLike

DEFAULT_MAX_LISTED = 20
"""How many problems a :class:`ManifestError` message lists before summarising the rest."""


class MammoDataError(Exception):
    """Base class of every error raised on purpose by :mod:`mammo_models.data`."""


@dataclass(frozen=True)
class ManifestProblem:
    """One thing wrong with a manifest.

    Attributes:
        row: 1-based data row (header not counted), or ``None`` for a file-level problem such as
            a missing column.
        reason: what is wrong and what was expected, without the row prefix.
        column: the column at fault, when there is one.
    """

    row: int | None
    reason: str
    column: str | None = None

    def __str__(self) -> str:
        where = "manifest" if self.row is None else f"row {self.row}"
        return f"{where}: {self.reason}"


class ManifestError(MammoDataError, ValueError):
    """A manifest has one or more bad rows; all of them are collected before raising.

    Attributes:
        problems: every problem found, ordered by row (file-level problems first).
        source: the manifest file (or a description of the DataFrame) the rows came from.
    """

    def __init__(
        self,
        problems: Sequence[ManifestProblem],
        source: str | PathLike[str] | None = None,
        *,
        max_listed: int = DEFAULT_MAX_LISTED,
    ) -> None:
        self.problems: list[ManifestProblem] = sorted(
            problems, key=lambda p: -1 if p.row is None else p.row
        )
        self.source = None if source is None else str(source)
        n = len(self.problems)
        head = f"{self.source or 'manifest'}: {n} problem{'s' if n != 1 else ''}"
        head += " (rows are 1-based data rows, header not counted; CSV line = row + 1)"
        lines = [f"  {p}" for p in self.problems[:max_listed]]
        if n > max_listed:
            lines.append(f"  ... and {n - max_listed} more (see ManifestError.problems)")
        super().__init__("\n".join([head, *lines]))

    @property
    def rows(self) -> list[int]:
        """Sorted unique data rows that have at least one problem."""
        return sorted({p.row for p in self.problems if p.row is not None})


class ImageReadError(MammoDataError, OSError):
    """An image or heatmap file exists but cannot be decoded into a 2-D array.

    Attributes:
        path: the file at fault.
        reason: what went wrong and, when known, how to fix it.
    """

    def __init__(self, path: str | PathLike[str], reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):  # picklable across DataLoader workers despite the custom signature
        return (type(self), (self.path, self.reason))


class ImageNotFoundError(ImageReadError, FileNotFoundError):
    """An image or heatmap file named by the manifest does not exist."""


class DataConfigError(MammoDataError, ValueError):
    """A data option (preset, window size, split fractions, sampler input...) is invalid."""


class SyntheticDataError(MammoDataError, OSError):
    """The synthetic data directory cannot be created, reused or replaced."""

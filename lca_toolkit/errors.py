"""Every failure mode of lca_toolkit has its own exception class.

Messages name the parameter, group, file or option at fault, say what was expected and echo what
was received, so that a user can fix the input without reading a traceback.
"""

from __future__ import annotations


class LcaToolkitError(Exception):
    """Base class of every error raised on purpose by lca_toolkit."""


class GroupError(LcaToolkitError, ValueError):
    """Parameter groups are not a partition of the model's trainable parameters, or a group
    asked for by name does not exist."""


class TrackerError(LcaToolkitError, RuntimeError):
    """The Tracker was used out of order or with inconsistent inputs."""


class LcaError(LcaToolkitError, ValueError):
    """Bad LCA options (unknown rule, bad tolerance) or evaluation batches."""


class StatisticError(LcaToolkitError, ValueError):
    """A statistic cannot be formed honestly: runs without the error estimate it needs, a
    negative or non-finite error term, AUC labels of a single class."""


class DatasetError(LcaToolkitError, OSError):
    """A public data set cannot be obtained or its files fail their checks (download failed,
    SHA-256 mismatch, malformed file); the message names the file and the manual step."""


class NonFiniteError(LcaToolkitError, FloatingPointError):
    """A loss or gradient was NaN or infinite where a finite number was required."""


class StoreError(LcaToolkitError, OSError):
    """A run store cannot be created, written or read."""


class StoreNotFoundError(StoreError, FileNotFoundError):
    """The path does not exist or is not an lca-toolkit run store."""


class StoreExistsError(StoreError, FileExistsError):
    """A store already exists at the path and neither resume nor overwrite was asked for."""


class SchemaVersionError(StoreError):
    """The store was written with a schema version this reader does not understand."""


class RunMismatchError(StoreError):
    """Several runs read together do not agree (for example different group names)."""


class RecordError(StoreError, ValueError):
    """A row, name or attribute handed to a run store has the wrong shape, type or order.

    A step that repeats or goes back behind the last stored step is one of these: a duplicate
    would corrupt the series.
    """


class RunStateError(LcaToolkitError, OSError):
    """The resumable state of a run (``<store>.ckpt/last.pt``) is missing or cannot be read."""


class MissingExtraError(LcaToolkitError, ImportError):
    """An optional feature was asked for but the package it needs is not installed; the message
    names the ``lca-toolkit[extra]`` that installs it."""


class AblationError(LcaToolkitError, ValueError):
    """A modality to ablate is badly specified (name, path into the batch, how to remove it) or
    asked for by a name the measurement does not have."""

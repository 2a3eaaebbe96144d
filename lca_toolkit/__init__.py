"""lca_toolkit: which part of a network is doing the learning.

Per-parameter-group gradient norms every optimizer step and step-k Loss Change Allocation (LCA)
every k steps, for any PyTorch model, stored in a zarr run store and read back as pandas frames.
"""

from .ablation import AblationProbe, AblationResult, Modality, ablation_frame
from .analysis import (
    GroupComparison,
    compare_groups,
    group_totals,
    learning_speed,
    learning_speed_ratio,
)
from .errors import (
    AblationError,
    GroupError,
    LcaError,
    LcaToolkitError,
    MissingExtraError,
    NonFiniteError,
    RecordError,
    RunMismatchError,
    RunStateError,
    SchemaVersionError,
    StatisticError,
    StoreError,
    StoreExistsError,
    StoreNotFoundError,
    TrackerError,
)
from .groups import ParamGroups
from .lca import LcaConfig, LcaEngine, LcaResult
from .quadrature import AdaptiveOptions
from .records import LcaRecord, Sink, StepBlock
from .residual_check import LcaResidualWarning
from .rundir import RunDir, RunState
from .stats import AucCovariance, Interval, delong, t_interval
from .store import Run, Runs, RunWriter, open_run, open_runs
from .tracker import Tracker

__version__ = "0.1.0"

RunWriter.default_library_version = __version__  # recorded in every store's library_versions

__all__ = [
    "AblationError",
    "AblationProbe",
    "AblationResult",
    "AdaptiveOptions",
    "AucCovariance",
    "Interval",
    "GroupComparison",
    "LcaConfig",
    "LcaEngine",
    "LcaResult",
    "LcaRecord",
    "LcaResidualWarning",
    "Modality",
    "Run",
    "RunDir",
    "RunState",
    "RunWriter",
    "Runs",
    "Sink",
    "StepBlock",
    "Tracker",
    "ablation_frame",
    "compare_groups",
    "delong",
    "t_interval",
    "group_totals",
    "learning_speed",
    "learning_speed_ratio",
    "open_run",
    "open_runs",
    "GroupError",
    "LcaError",
    "LcaToolkitError",
    "MissingExtraError",
    "NonFiniteError",
    "ParamGroups",
    "RecordError",
    "RunMismatchError",
    "RunStateError",
    "SchemaVersionError",
    "StatisticError",
    "StoreError",
    "StoreExistsError",
    "StoreNotFoundError",
    "TrackerError",
    "__version__",
]

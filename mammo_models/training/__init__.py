"""The paper's training recipe with recording: experiments, sweeps and Gradient Blending estimation."""

from .config import (
    LCA_SETS,
    REGULARIZERS,
    TRAIN_PRESETS,
    ConfigError,
    DataSource,
    ExperimentConfig,
    RecordConfig,
    RegularizerConfig,
    TrainPreset,
)
from .experiment import (
    Experiment,
    ResumeError,
    RunResult,
    resolve_device,
    run_experiment,
    summary_lines,
)

__all__ = [
    "LCA_SETS",
    "REGULARIZERS",
    "TRAIN_PRESETS",
    "ConfigError",
    "DataSource",
    "Experiment",
    "ExperimentConfig",
    "RecordConfig",
    "RegularizerConfig",
    "ResumeError",
    "RunResult",
    "TrainPreset",
    "resolve_device",
    "run_experiment",
    "summary_lines",
]

"""What the Tracker measures, each a :class:`Quantity` with its own :class:`Schedule`.

The built-in ones: :class:`StepNorms` (per-group norms, loss and learning rates, every step),
:class:`LcaIntervals` (step-k LCA, every k steps until a stop) and :class:`EpochLog` (the
metrics logged at epoch ends). A new measurement is a :class:`Quantity` subclass registered with
``Tracker(..., quantities=[...])``; it emits records (:mod:`lca_toolkit.records`) through the
Tracker's one :class:`~lca_toolkit.output.Output`.
"""

from ..schedules import Schedule
from ._base import Quantity
from ._registry import Quantities
from .epoch_log import EpochLog
from .input_ablation import InputAblation
from .lca_intervals import LcaIntervals
from .step_norms import StepNorms

__all__ = [
    "EpochLog",
    "InputAblation",
    "LcaIntervals",
    "Quantities",
    "Quantity",
    "Schedule",
    "StepNorms",
]

"""Live mirrors of what the Tracker records, beside the run store (which stays the source of truth).

``Tracker(..., mirror="tensorboard:runs/tb")`` writes the recorded scalars as TensorBoard events
while the run goes (:class:`TensorBoardMirror`; needs ``lca-toolkit[tensorboard]``). Any object
implementing :class:`Mirror` can be passed instead. A failing mirror never stops training
(:class:`GuardedMirror`).
"""

from ._base import MIRROR_KINDS, GuardedMirror, Mirror, MirrorWarning, open_mirror
from .tensorboard import TensorBoardMirror

__all__ = [
    "MIRROR_KINDS",
    "GuardedMirror",
    "Mirror",
    "MirrorWarning",
    "TensorBoardMirror",
    "open_mirror",
]

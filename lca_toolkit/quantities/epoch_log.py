"""Per-epoch metrics as a quantity: what the loop logs at each epoch end, stored in ``epochs/``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..records import EpochRow
from ..schedules import Schedule
from ._base import Quantity

if TYPE_CHECKING:
    from ..output import Output


class EpochLog(Quantity):
    """The metrics ``Tracker.log_epoch`` is given (train/val AUC, losses...), at epoch ends.

    Attributes:
        last_epoch: the last epoch logged (``None``: none yet); a resumed run drops epoch rows
            stored after the checkpoint's.
    """

    name = "epochs"

    def __init__(self) -> None:
        super().__init__(Schedule.epoch_ends())
        self.last_epoch: int | None = None

    def at_epoch_end(
        self, epoch: int, step: int, out: Output, metrics: Mapping[str, float]
    ) -> None:
        out.emit(EpochRow(epoch, {k: float(v) for k, v in metrics.items()}, step))
        self.last_epoch = epoch

    def state_dict(self) -> dict[str, Any]:
        return {"last_epoch": self.last_epoch}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.last_epoch = state["last_epoch"]

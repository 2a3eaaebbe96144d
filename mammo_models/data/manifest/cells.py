"""The manifest under validation: cell parsers and the table the validation rules share.

The rules of :mod:`.rules`, :mod:`.laterality_view`, :mod:`.consistency` and :mod:`.files` each
read the columns they check from one :class:`Cells` and write back the normalised values of the
columns they own (laterality upper-case, labels as 0/1...), so that later rules and the validated
table see the same values the earlier rules checked.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .schema import _TEXT_COLUMNS


def _text(values: Iterable[Any]) -> list[str]:
    """Cells as stripped strings; missing cells (None, NaN, NA) as ``""``; 12.0 as ``"12"``."""
    out = []
    for v in values:
        if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
            out.append("")
        elif isinstance(v, float) and v.is_integer():
            out.append(str(int(v)))
        else:
            out.append(str(v).strip())
    return out


def _binary(value: Any) -> int | None:
    """0/1 from 0, 1, 0.0, 1.0, True, False, "0", "1", "0.0", "1.0"; else None."""
    if isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, int | np.integer):
        return int(value) if value in (0, 1) else None
    if isinstance(value, float | np.floating):
        return int(value) if value in (0.0, 1.0) else None
    text = str(value).strip().lower()
    return {"0": 0, "1": 1, "0.0": 0, "1.0": 1, "true": 1, "false": 0}.get(text)


def _breast_name(patient: str, exam: str, laterality: str) -> str:
    return f"patient {patient!r}, exam {exam!r}, laterality {laterality}"


@dataclass
class Cells:
    """A manifest frame split into the columns validation reads, as the rules normalise them.

    Attributes:
        frame: the manifest as given (every required column present).
        rows: the 1-based data row of each position (messages name these).
        text: stripped-string cells of the required text columns and, when present, of the
            heatmap paths and ``split``; rules replace a column by its normalised values.
        labels: ``malignant``/``benign`` as 0/1, ``None`` where invalid (set by the label rule).
        scales: ``pixel_scale`` as floats (NaN where invalid), ``None`` without the column.
    """

    frame: pd.DataFrame
    rows: list[int]
    text: dict[str, list[str]]
    labels: dict[str, list[int | None]] = field(default_factory=dict)
    scales: list[float] | None = None

    @classmethod
    def of(cls, frame: pd.DataFrame) -> Cells:
        """The cells of a frame that has every required column, before any rule ran."""
        text = {c: _text(frame[c].tolist()) for c in _TEXT_COLUMNS}
        for c in ("heatmap_benign_path", "heatmap_malignant_path", "split"):
            if c in frame.columns:
                text[c] = _text(frame[c].tolist())
        return cls(frame, list(range(1, len(frame) + 1)), text)

"""What a manifest held and what of it is used: the counts the run log prints."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from .pairing import Pairing
from .schema import IMAGE_DROP_REASONS, SPLITS


@dataclass(frozen=True)
class ManifestSummary:
    """What a manifest held and what of it is used, for the run log.

    Attributes:
        source: the manifest's name.
        n_rows: data rows read.
        n_images_used: images that feed the model.
        images_dropped: unused images by reason (keys of :data:`IMAGE_DROP_REASONS`).
        breasts_dropped: unused breasts by reason.
        views: the views the model reads.
        split_origin: ``"manifest"`` or how splits were assigned.
        per_split: per split name: breasts, patients, malignant, benign, positive, negative.
    """

    source: str
    n_rows: int
    n_images_used: int
    images_dropped: dict[str, int]
    breasts_dropped: dict[str, int]
    views: tuple[str, ...]
    split_origin: str
    per_split: dict[str, dict[str, int]]

    @property
    def n_breasts(self) -> int:
        return sum(s["breasts"] for s in self.per_split.values())

    def __str__(self) -> str:
        lines = [
            f"{self.source}: {self.n_rows} rows -> {self.n_images_used} images used, "
            f"{self.n_breasts} breasts ({' + '.join(self.views)})"
        ]
        if self.images_dropped:
            parts = [f"{n} {IMAGE_DROP_REASONS.get(k, k)}" for k, n in self.images_dropped.items()]
            lines.append("  images not used: " + "; ".join(parts))
        if self.breasts_dropped:
            parts = [f"{n} with {k}" for k, n in self.breasts_dropped.items()]
            lines.append("  breasts dropped: " + "; ".join(parts))
        lines.append(f"  splits: {self.split_origin}")
        header = ("breasts", "patients", "malignant", "benign", "positive", "negative")
        lines.append("  " + f"{'split':<6}" + "".join(f"{h:>10}" for h in header))
        for name, counts in self.per_split.items():
            lines.append("  " + f"{name:<6}" + "".join(f"{counts[h]:>10}" for h in header))
        return "\n".join(lines)


def summarize(
    breasts: pd.DataFrame,
    *,
    source: str,
    n_rows: int,
    pairing: Pairing,
    views: Sequence[str],
    split_origin: str,
) -> ManifestSummary:
    """Counts per split of the breast table, plus what pairing dropped."""
    per_split: dict[str, dict[str, int]] = {}
    names = [s for s in SPLITS if "split" in breasts.columns and (breasts["split"] == s).any()]
    groups = [(s, breasts[breasts["split"] == s]) for s in names] or [("all", breasts)]
    for name, part in groups:
        positive = (part["malignant"] == 1) | (part["benign"] == 1)
        per_split[name] = {
            "breasts": len(part),
            "patients": int(part["patient_id"].nunique()) if len(part) else 0,
            "malignant": int((part["malignant"] == 1).sum()),
            "benign": int((part["benign"] == 1).sum()),
            "positive": int(positive.sum()),
            "negative": int((~positive).sum()),
        }
    return ManifestSummary(
        source=source,
        n_rows=n_rows,
        n_images_used=len(breasts) * len(tuple(views)),
        images_dropped=dict(pairing.images_dropped),
        breasts_dropped=dict(pairing.breasts_dropped),
        views=tuple(views),
        split_origin=split_origin,
        per_split=per_split,
    )

"""The one-call loader: read, validate, split and pair a manifest; and what it returns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import DEFAULT_MAX_LISTED, DataConfigError, ManifestError, ManifestProblem
from .files import find_unreadable_images
from .pairing import pair_breasts
from .reading import read_manifest
from .schema import DEFAULT_SPLIT_FRACTIONS, SPLITS, TWO_VIEWS, PathLike
from .splits import assign_splits
from .summary import ManifestSummary, summarize
from .validate import validate_manifest


@dataclass
class Manifest:
    """A validated manifest: its images, its usable breasts and a summary.

    Attributes:
        images: validated image rows (index = 1-based data row), with a ``split`` column.
        breasts: one row per usable breast (see :func:`pair_breasts`).
        summary: counts for the run log (``print(manifest.summary)``).
        views: the views the breasts were paired for.
        data_root: directory the paths are relative to.
        skipped_images: with ``skip_bad_images``, one problem per image that could not be
            decoded (its row and the reader's reason); those rows are not used.
    """

    images: pd.DataFrame
    breasts: pd.DataFrame
    summary: ManifestSummary
    views: tuple[str, ...]
    data_root: Path | None
    skipped_images: list[ManifestProblem] = field(default_factory=list)

    def split(self, name: str) -> pd.DataFrame:
        """Breasts of one split (``train``, ``val``, ``test``), re-indexed from 0."""
        if name not in SPLITS:
            raise DataConfigError(f"unknown split {name!r}; expected one of {', '.join(SPLITS)}")
        return self.breasts[self.breasts["split"] == name].reset_index(drop=True)


def load_manifest(
    manifest: PathLike | pd.DataFrame,
    data_root: PathLike | None = None,
    *,
    views: Sequence[str] = TWO_VIEWS,
    strict: bool = False,
    split_fractions: Sequence[float] = DEFAULT_SPLIT_FRACTIONS,
    split_seed: int = 0,
    check_files: bool = True,
    check_images: bool = False,
    max_listed: int = DEFAULT_MAX_LISTED,
    skip_bad_images: bool = False,
    heatmaps: bool = False,
) -> Manifest:
    """Read, validate, split and pair a manifest in one call.

    Args:
        manifest: a CSV/Parquet file, or a DataFrame (e.g. from an adapter).
        data_root: directory the manifest's paths are relative to. Defaults to the manifest
            file's directory; ``None`` with a DataFrame skips file checks.
        views: views the model reads (see :func:`pair_breasts`).
        strict: raise on breasts that lack a needed view instead of dropping them.
        split_fractions: train/val/test patient fractions when the manifest has no split.
        split_seed: seed of that assignment.
        check_files: check that images and heatmaps exist.
        check_images: decode every image once (slow; catches corrupt files up front).
        max_listed: problems listed in an error message.
        skip_bad_images: decode every image of a needed view once and leave out those that
            cannot be decoded (their breasts then lack a view and are dropped), counted in the
            summary and listed in ``Manifest.skipped_images``, instead of failing mid-run.
            Missing files stay errors: they usually mean a wrong data root.
        heatmaps: the run reads heatmaps, so ``skip_bad_images`` decodes them too and leaves
            out the image rows whose heatmap cannot be read.

    Raises:
        ManifestError: every problem of the manifest, by row.
    """
    if isinstance(manifest, pd.DataFrame):
        df, source = manifest.reset_index(drop=True), "manifest (DataFrame)"
    else:
        df, source = read_manifest(manifest), str(manifest)
        if data_root is None:
            data_root = Path(manifest).parent
    images = validate_manifest(
        df,
        data_root,
        source=source,
        check_files=check_files,
        check_images=check_images,
        max_listed=max_listed,
    )
    skipped: list[ManifestProblem] = []
    if skip_bad_images and data_root is not None:
        skipped = find_unreadable_images(images, data_root, views, heatmaps=heatmaps)
        images = images.drop(index=[p.row for p in skipped])
    if "split" in images.columns and (images["split"] != "").all():
        split_origin = "from the manifest"
    else:
        counts = ", ".join(f"{f:.2f}" for f in split_fractions)
        split_origin = f"assigned by patient (seed {split_seed}; train/val/test fractions {counts})"
        images = assign_splits(images, split_fractions, split_seed)
    pairing = pair_breasts(images, views, strict=strict, source=source, max_listed=max_listed)
    if skipped:
        pairing.images_dropped["unreadable"] = len(skipped)
    if pairing.breasts.empty:
        dropped = "; ".join(f"{n} with {k}" for k, n in pairing.breasts_dropped.items())
        raise ManifestError(
            [
                ManifestProblem(
                    None,
                    f"no usable breast for views {' + '.join(views)} among {len(df)} rows"
                    + (f" (dropped: {dropped})" if dropped else ""),
                )
            ],
            source,
        )
    summary = summarize(
        pairing.breasts,
        source=source,
        n_rows=len(df),
        pairing=pairing,
        views=views,
        split_origin=split_origin,
    )
    return Manifest(
        images=images,
        breasts=pairing.breasts,
        summary=summary,
        views=tuple(views),
        data_root=None if data_root is None else Path(data_root),
        skipped_images=skipped,
    )

"""Adapters from public mammography datasets' own metadata to our manifest (SPEC section 7).

Each adapter reads the files a dataset is published with and returns a pandas DataFrame with one
row per image: the manifest columns (``REQUIRED_COLUMNS``), ``split`` where the dataset has an
official one, then dataset metadata. Nothing is downloaded; most adapters need only the metadata
files, CMMD and INbreast also the image file names or headers (their metadata lacks views or
patient ids). ``df.attrs["notes"]`` says what a user should know about the conversion (label
proxies, dropped rows, CBIS-DDSM having no normal breasts).

Example::

    from mammo_models.data.adapters import convert, write_manifest

    df = convert("cbis-ddsm", "/data/CBIS-DDSM", val_fraction=0.1, seed=0)
    print(*df.attrs["notes"], sep="\\n")
    write_manifest(df, "manifests/cbis.parquet")

========================  ==============================================  ====================
name                      metadata                                        labels
========================  ==============================================  ====================
``cbis-ddsm``             ``{mass,calc}_case_description_{train,test}``    pathology, per breast
``vindr-mammo``           ``breast-level_annotations.csv``                BI-RADS proxy
``inbreast``              ``INbreast.csv`` + DICOM names                  BI-RADS proxy
``cmmd``                  ``CMMD_clinicaldata_revision.xlsx`` + DICOMs    pathology
``rsna-2023``             ``train.csv``                                   cancer / biopsy
``cdd-cesm``              ``Radiology-manual-annotations.xlsx``           pathology / follow-up
========================  ==============================================  ====================
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from ..errors import DataConfigError
from . import cbis_ddsm, cdd_cesm, cmmd, inbreast, rsna_2023, vindr_mammo
from ._common import (
    LABEL_SOURCES,
    REQUIRED_COLUMNS,
    AdapterError,
    BiradsProxy,
    MetadataNotFoundError,
    split_off_validation,
)
from .cbis_ddsm import kaggle_jpeg_path_map

ADAPTERS: dict[str, Callable[..., pd.DataFrame]] = {
    "cbis-ddsm": cbis_ddsm.convert,
    "vindr-mammo": vindr_mammo.convert,
    "inbreast": inbreast.convert,
    "cmmd": cmmd.convert,
    "rsna-2023": rsna_2023.convert,
    "cdd-cesm": cdd_cesm.convert,
}
"""Registry name -> adapter. Every adapter is ``convert(source, **options) -> DataFrame``."""

MANIFEST_SUFFIXES: tuple[str, ...] = (".csv", ".parquet", ".pq")


def convert(
    name: str,
    source: str | os.PathLike[str] | list[str | os.PathLike[str]],
    *,
    val_fraction: float = 0.0,
    seed: int = 0,
    **options: object,
) -> pd.DataFrame:
    """Convert one dataset's metadata to manifest rows.

    Args:
        name: a key of :data:`ADAPTERS` (``"cbis-ddsm"``, ``"vindr-mammo"``, ``"inbreast"``,
            ``"cmmd"``, ``"rsna-2023"``, ``"cdd-cesm"``).
        source: the dataset folder or its metadata file(s); see each adapter.
        val_fraction: for datasets with an official train/test split (CBIS-DDSM, VinDr-Mammo),
            the share of training patients moved to ``split="val"``, seeded by ``seed``. The
            others publish no split and leave it to the manifest's patient-level splitting.
        seed: seed of that choice.
        **options: passed to the adapter (e.g. ``image_path_map=`` for CBIS-DDSM,
            ``proxy=BiradsProxy(...)`` for VinDr-Mammo and INbreast).

    Returns:
        The manifest rows; ``df.attrs["notes"]`` lists what to know about the conversion.

    Raises:
        AdapterError: unknown ``name``, an option the adapter does not take, or bad metadata
            (naming the file, row and column).
        DataConfigError: ``val_fraction`` outside [0, 1), or given for a dataset without a
            split.
    """
    if name not in ADAPTERS:
        raise AdapterError(
            f"unknown dataset {name!r}; expected one of {sorted(ADAPTERS)}", column="name"
        )
    adapter = ADAPTERS[name]
    module = adapter.__module__
    try:
        frame = adapter(source, **options)
    except TypeError as exc:
        if "unexpected keyword argument" in str(exc):
            raise AdapterError(
                f"{exc}; see help({module}.convert) for the options of {name!r}",
                column="options",
            ) from exc
        raise
    if val_fraction:
        notes = frame.attrs.get("notes", [])
        frame = split_off_validation(frame, val_fraction, seed)
        frame.attrs = {
            "dataset": name,
            "notes": [
                *notes,
                f"{val_fraction:.0%} of the training patients moved to 'val' (seed {seed}).",
            ],
        }
    return frame


def write_manifest(
    frame: pd.DataFrame, path: str | os.PathLike[str], *, overwrite: bool = False
) -> Path:
    """Write manifest rows as CSV (``.csv``) or Parquet (``.parquet``/``.pq``), by suffix.

    Args:
        frame: rows from :func:`convert` (or any frame in manifest layout).
        path: the file to write; missing parent folders are created.
        overwrite: replace an existing file; by default an existing file is an error.

    Returns:
        The path written.

    Raises:
        DataConfigError: the suffix is not one of ``.csv``, ``.parquet``, ``.pq``.
        FileExistsError: ``path`` exists and ``overwrite`` is false.
    """
    path = Path(path).expanduser()
    suffix = path.suffix.lower()
    if suffix not in MANIFEST_SUFFIXES:
        raise DataConfigError(
            f"manifest path {str(path)!r}: expected a suffix in {list(MANIFEST_SUFFIXES)}; got "
            f"{suffix or 'none'!r}"
        )
    if path.exists() and not overwrite:
        raise FileExistsError(f"manifest {str(path)!r} exists; pass overwrite=True to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


__all__ = [
    "ADAPTERS",
    "LABEL_SOURCES",
    "MANIFEST_SUFFIXES",
    "REQUIRED_COLUMNS",
    "AdapterError",
    "BiradsProxy",
    "MetadataNotFoundError",
    "convert",
    "kaggle_jpeg_path_map",
    "write_manifest",
]

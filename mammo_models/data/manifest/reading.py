"""Reading a manifest file as it is, before any validation."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import ManifestError, ManifestProblem
from .schema import PathLike


def read_manifest(path: PathLike) -> pd.DataFrame:
    """Read a manifest file as it is (no validation).

    CSV (``.csv``, ``.csv.gz`` and other pandas compressions, ``.tsv`` tab-separated) is read
    with every cell as a string and empty cells as ``""``; Parquet (``.parquet``, ``.pq``) keeps
    its column types. The index is reset so that position + 1 is the data row number.

    Raises:
        ManifestError: the file does not exist, has an unknown suffix or cannot be parsed.
    """
    p = Path(path)
    if not p.is_file():
        raise ManifestError([ManifestProblem(None, "manifest file does not exist")], p)
    name = p.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            df = pd.read_parquet(p)
        elif any(name.endswith(s) for s in (".csv", ".csv.gz", ".csv.bz2", ".csv.zip", ".csv.xz")):
            df = pd.read_csv(p, dtype=str, keep_default_na=False, na_values=[])
        elif name.endswith((".tsv", ".tsv.gz")):
            df = pd.read_csv(p, sep="\t", dtype=str, keep_default_na=False, na_values=[])
        else:
            raise ManifestError(
                [ManifestProblem(None, "unknown manifest format; expected .csv, .tsv or .parquet")],
                p,
            )
    except ManifestError:
        raise
    except Exception as exc:  # pandas/pyarrow raise many types for malformed files
        raise ManifestError([ManifestProblem(None, f"cannot parse the file: {exc}")], p) from exc
    return df.reset_index(drop=True)

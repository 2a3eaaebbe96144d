"""Shared vocabulary and helpers of the dataset adapters.

Every adapter reads a public dataset's own metadata files and returns a pandas DataFrame in the
manifest layout (one row per image). The pieces they share live here:

* the manifest column names and allowed values (``REQUIRED_COLUMNS``, ``LABEL_SOURCES``...),
  re-exported from :mod:`mammo_models.data.manifest`;
* :class:`AdapterError`, raised for bad metadata with the file, row and column at fault;
* :class:`MetadataTable`, a metadata sheet read as stripped strings that remembers where every
  row came from, so a bad value can be reported as ``file, row 7, column 'view'``;
* the BI-RADS proxy rule shared by VinDr-Mammo and INbreast (:class:`BiradsProxy`);
* :func:`finalize`, which puts the columns in manifest order and checks the invariants every
  adapter promises (labels in {0, 1}, known views and label sources, one row per image).

Row numbers in error messages follow :mod:`mammo_models.data.errors`: they are 1-based data rows,
the header not counted, so row ``N`` is line ``N + 1`` of a CSV and row ``N + 1`` of a spreadsheet
as Excel numbers it.
"""

from __future__ import annotations

import os
import re
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd

from ..errors import DataConfigError, MammoDataError
from ..manifest import BREAST_KEY, LABEL_SOURCES, LATERALITIES, REQUIRED_COLUMNS, SPLITS, VIEWS

# REQUIRED_COLUMNS, VIEWS, LABEL_SOURCES... are owned by mammo_models.data.manifest and
# re-exported here so that adapters and the manifest can never disagree on the vocabulary.

OTHER_VIEW_CODES: frozenset[str] = frozenset(
    {"ML", "LM", "LMO", "AT", "XCCL", "XCCM", "FB", "SIO", "ISO", "CV", "RL", "RM", "TAN"}
)
"""Mammographic view codes (ACR/DICOM abbreviations) that are neither CC nor MLO: mapped to
``"other"`` rather than rejected, because they are real images of the breast."""

VIEW_CODES: dict[str, str] = {"CC": "CC", "MLO": "MLO", **{c: "other" for c in OTHER_VIEW_CODES}}

BIRADS_CATEGORIES: tuple[str, ...] = ("0", "1", "2", "3", "4", "4a", "4b", "4c", "5", "6")
"""BI-RADS assessment categories from least to most suspicious (0, incomplete, ranks lowest)."""

T = TypeVar("T")


class AdapterError(MammoDataError, ValueError):
    """Dataset metadata that cannot be turned into a manifest.

    The message starts with the place at fault (``file, row N, column 'name'``), then says what
    was expected and what was found. The parts are also kept as attributes for callers.

    Attributes:
        file: the metadata or image file at fault, if any.
        row: 1-based data row (the header not counted), if any.
        column: the column (or DICOM tag, or option) at fault, if any.
        reason: the message without the location prefix.
    """

    def __init__(
        self,
        reason: str,
        *,
        file: str | os.PathLike[str] | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        self.file = None if file is None else str(file)
        self.row = row
        self.column = column
        self.reason = reason
        where = []
        if self.file is not None:
            where.append(self.file)
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column!r}")
        super().__init__(f"{', '.join(where)}: {reason}" if where else reason)


class MetadataNotFoundError(AdapterError, FileNotFoundError):
    """A metadata file (or the directory that should hold it) does not exist."""


@dataclass(frozen=True)
class MetadataTable:
    """A metadata sheet as stripped strings, with the file it came from.

    Attributes:
        path: the file that was read.
        frame: one row per data row, every cell a ``str`` stripped of surrounding whitespace,
            empty cells as ``""``; column names stripped too. The index is ``0..n-1``.
    """

    path: Path
    frame: pd.DataFrame

    def __len__(self) -> int:
        return len(self.frame)

    @staticmethod
    def row_number(index: int) -> int:
        """1-based data row of frame index ``index`` (header not counted; CSV line = row + 1)."""
        return int(index) + 1

    def error(self, index: int | None, column: str | None, reason: str) -> AdapterError:
        """An :class:`AdapterError` located at data row ``index`` and ``column`` of this file."""
        row = None if index is None else self.row_number(index)
        return AdapterError(reason, file=self.path, row=row, column=column)

    def require(self, columns: Iterable[str]) -> None:
        """Raise unless every column in ``columns`` is present.

        Raises:
            AdapterError: naming the first missing column and listing the columns found.
        """
        for column in columns:
            if column not in self.frame.columns:
                raise self.error(
                    None,
                    column,
                    f"missing column; found {list(self.frame.columns)}. Is this the right "
                    "file, in its original layout?",
                )

    def pick(self, *aliases: str) -> str:
        """The first of ``aliases`` present as a column (public files differ in spelling).

        Raises:
            AdapterError: none of the spellings is present.
        """
        for alias in aliases:
            if alias in self.frame.columns:
                return alias
        raise self.error(
            None,
            aliases[0],
            f"missing column (also tried {list(aliases[1:])}); found {list(self.frame.columns)}",
        )

    def map_values(self, column: str, mapping: Mapping[str, T]) -> pd.Series:
        """Map every cell of ``column`` through ``mapping``, ignoring case.

        Returns:
            A Series aligned with :attr:`frame`.

        Raises:
            AdapterError: naming the first row whose value is not a key of ``mapping``.
        """
        lookup = {str(k).casefold(): v for k, v in mapping.items()}
        keys = self.frame[column].str.casefold()
        known = keys.isin(list(lookup))
        if not bool(known.all()):
            index = int(np.flatnonzero(~known.to_numpy())[0])
            expected = ", ".join(repr(k) for k in mapping)
            raise self.error(
                index,
                column,
                f"expected one of {expected}; got {self.frame.at[index, column]!r}",
            )
        return keys.map(lookup)

    def parse_flags(self, column: str) -> pd.Series:
        """A 0/1 column (also ``0.0``/``1.0`` and ``True``/``False``) as int64."""
        return self.map_values(column, BINARY_VALUES).astype("int64")

    def require_nonempty(self, column: str) -> None:
        """Raise naming the first row whose ``column`` cell is empty."""
        empty = self.frame[column] == ""
        if bool(empty.any()):
            index = int(np.flatnonzero(empty.to_numpy())[0])
            raise self.error(index, column, "empty cell; every row needs a value here")


BINARY_VALUES: dict[str, int] = {"0": 0, "1": 1, "0.0": 0, "1.0": 1, "false": 0, "true": 1}


def _cell_to_str(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if np.isnan(value):
            return ""
        # Spreadsheets store integer ids as floats; "12.0" must read as "12".
        if value.is_integer():
            return str(int(value))
    return str(value).strip()


def read_table(
    path: str | os.PathLike[str],
    *,
    sep: str = ",",
    sheet: str | int | None = None,
) -> MetadataTable:
    """Read a CSV or Excel metadata file with every cell as a stripped string.

    Reading as strings keeps identifiers exactly as published (leading zeros, hashes); the
    adapters parse numbers and categories themselves so that a bad cell can be reported by row.

    Args:
        path: a ``.csv``/``.txt`` file (read with ``sep``) or an ``.xlsx``/``.xlsm`` sheet.
        sep: the CSV field separator (INbreast uses ``;``).
        sheet: for Excel files, the sheet name or index; ``None`` reads the first sheet.

    Raises:
        MetadataNotFoundError: the file does not exist.
        AdapterError: the file cannot be parsed or has an unsupported suffix.
    """
    path = Path(path)
    if not path.is_file():
        raise MetadataNotFoundError("metadata file not found", file=path)
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".txt", ".tsv"):
            frame = pd.read_csv(
                path, sep=sep, dtype=str, keep_default_na=False, encoding="utf-8-sig"
            )
        elif suffix in (".xlsx", ".xlsm"):
            frame = pd.read_excel(path, sheet_name=0 if sheet is None else sheet, dtype=object)
        else:
            raise AdapterError(
                f"unsupported metadata file type {suffix!r}; expected .csv or .xlsx", file=path
            )
    except AdapterError:
        raise
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise AdapterError(f"cannot read the file: {exc}", file=path) from exc
    frame = frame.rename(columns=lambda c: str(c).strip())
    frame = pd.DataFrame(
        {c: [_cell_to_str(v) for v in frame[c].tolist()] for c in frame.columns},
        index=pd.RangeIndex(len(frame)),
        dtype=str,
    )
    return MetadataTable(path=path, frame=frame)


def find_file(directory: Path, names: Sequence[str], *, what: str) -> Path:
    """The first of ``names`` that exists in ``directory`` (or one level below it).

    Raises:
        MetadataNotFoundError: none of the names is found; the message lists them.
    """
    if not directory.is_dir():
        raise MetadataNotFoundError("directory not found", file=directory)
    for name in names:
        if (directory / name).is_file():
            return directory / name
    for name in names:
        hits = sorted(directory.glob(f"*/{name}"))
        if hits:
            return hits[0]
    raise MetadataNotFoundError(
        f"no {what} found here or one level below; expected one of {list(names)}",
        file=directory,
    )


def template_fields(template: str, allowed: Sequence[str], *, option: str) -> None:
    """Check that a path template such as ``"images/{study_id}/{image_id}.dicom"`` only uses
    ``allowed`` fields, so a typo fails before any row is converted.

    Raises:
        AdapterError: naming ``option``, the unknown field and the allowed ones.
    """
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise AdapterError(f"bad path template {template!r}: {exc}", column=option) from exc
    for field in fields:
        if field not in allowed:
            raise AdapterError(
                f"path template {template!r} uses unknown field {{{field}}}; "
                f"allowed fields are {['{' + a + '}' for a in allowed]}",
                column=option,
            )


def parse_age(values: pd.Series) -> pd.Series:
    """Ages as float64 years, NaN where the dataset withholds or omits them."""
    cleaned = values.astype(str).str.replace(r"[Yy]$", "", regex=True)
    return pd.to_numeric(cleaned, errors="coerce").astype("float64")


def normalize_birads(value: str) -> str | None:
    """``"4A"``, ``"BI-RADS 4a"``, ``" 4a "`` -> ``"4a"``; ``None`` if not a BI-RADS category."""
    match = re.fullmatch(r"(?:BI-?RADS\s*)?([0-6])\s*([ABCabc]?)", value.strip(), re.IGNORECASE)
    if match is None:
        return None
    category = match.group(1) + match.group(2).lower()
    return category if category in BIRADS_CATEGORIES else None


@dataclass(frozen=True)
class BiradsProxy:
    """Labels from a radiologist's BI-RADS assessment where no pathology is published.

    The paper's labels say whether a biopsy found a malignant or benign lesion. VinDr-Mammo and
    INbreast publish BI-RADS assessments instead, so we stand in for them:

    * ``malignant`` (default 4, 4a-4c, 5, 6): suspicious enough that a biopsy is recommended
      (or, for 6, already proven malignant) -- the breasts that would enter the paper's
      positive class;
    * ``benign`` (default 3): a finding judged probably benign and sent to short-interval
      follow-up -- a lesion is present but was not considered suspicious;
    * everything else (0, 1, 2): neither label. BI-RADS 2 findings are certainly benign and are
      not worked up, which is how the paper's screening negatives look.

    Rows labelled this way carry ``label_source="birads_proxy"`` so that results on them are
    never mistaken for results against pathology. The rule is applied per breast to its most
    suspicious category, so the CC and MLO images of one breast always agree.
    """

    malignant: frozenset[str] = frozenset({"4", "4a", "4b", "4c", "5", "6"})
    benign: frozenset[str] = frozenset({"3"})

    def __post_init__(self) -> None:
        for name in ("malignant", "benign"):
            unknown = set(getattr(self, name)) - set(BIRADS_CATEGORIES)
            if unknown:
                raise ValueError(
                    f"BiradsProxy.{name}: unknown categories {sorted(unknown)}; expected a "
                    f"subset of {list(BIRADS_CATEGORIES)}"
                )
        both = set(self.malignant) & set(self.benign)
        if both:
            raise ValueError(
                f"BiradsProxy: categories {sorted(both)} are both malignant and benign; a proxy "
                "must put each category in at most one class"
            )

    def apply(self, frame: pd.DataFrame, category_column: str) -> pd.DataFrame:
        """Set ``malignant``, ``benign`` and ``label_source`` from the breast's worst category.

        Args:
            frame: manifest rows with :data:`BREAST_KEY` columns and ``category_column`` holding
                normalized categories (see :func:`normalize_birads`).
            category_column: the per-image BI-RADS category column.

        Returns:
            A copy of ``frame`` with the three label columns set.
        """
        out = frame.copy()
        rank = out[category_column].map(BIRADS_CATEGORIES.index).astype("int64")
        worst = rank.groupby([out[k] for k in BREAST_KEY]).transform("max")
        category = worst.map(lambda r: BIRADS_CATEGORIES[r])
        out["malignant"] = category.isin(list(self.malignant)).astype("int64")
        out["benign"] = category.isin(list(self.benign)).astype("int64")
        out["label_source"] = "birads_proxy"
        return out


def breast_max(frame: pd.DataFrame, column: str) -> pd.Series:
    """Per-row maximum of ``column`` over the row's breast (see :data:`BREAST_KEY`)."""
    return frame.groupby(list(BREAST_KEY))[column].transform("max")


def split_off_validation(frame: pd.DataFrame, fraction: float, seed: int) -> pd.DataFrame:
    """Move a seeded fraction of the training patients to ``split="val"``.

    Whole patients move, so no patient is in two splits. The official test set is untouched.

    Args:
        frame: manifest rows with a ``split`` column of ``"train"``/``"test"``.
        fraction: share of training patients to move, in [0, 1).
        seed: seed of the NumPy generator that picks them (same seed, same patients).

    Raises:
        DataConfigError: ``fraction`` is outside [0, 1) or ``frame`` has no ``split`` column.
    """
    if not 0.0 <= fraction < 1.0:
        raise DataConfigError(f"val_fraction must be in [0, 1); got {fraction!r}")
    if "split" not in frame.columns:
        raise DataConfigError(
            "val_fraction needs an official train/test split, and this dataset publishes none; "
            "leave split assignment to the manifest (patient-level seeded splits)"
        )
    out = frame.copy()
    patients = np.array(sorted(out.loc[out["split"] == "train", "patient_id"].unique()))
    n_val = int(round(fraction * len(patients)))
    if n_val == 0:
        return out
    chosen = np.random.default_rng(seed).permutation(len(patients))[:n_val]
    out.loc[out["patient_id"].isin(patients[chosen].tolist()), "split"] = "val"
    return out


def finalize(
    frame: pd.DataFrame,
    *,
    dataset: str,
    metadata: Sequence[str] = (),
    notes: Sequence[str] = (),
) -> pd.DataFrame:
    """Put adapter output into manifest layout and check what every adapter promises.

    Args:
        frame: one row per image with every required column except ``dataset``, optionally
            ``split``, and the ``metadata`` columns.
        dataset: the registry name written to the ``dataset`` column.
        metadata: extra columns to keep, in this order, after the manifest columns.
        notes: sentences a user should read about this conversion (kept in
            ``df.attrs["notes"]``; pandas attrs are not written to CSV).

    Returns:
        Rows sorted by breast, view and path; columns ``REQUIRED_COLUMNS``, then ``split`` if
        present, then ``metadata``; labels as int64 and identifiers as strings.

    Raises:
        AdapterError: two rows share an image path (the metadata lists an image twice).
    """
    out = frame.copy()
    out["dataset"] = dataset
    columns = [*REQUIRED_COLUMNS, *(["split"] if "split" in out.columns else []), *metadata]
    out = out[columns].copy()
    for column in ("dataset", "image_path", "patient_id", "exam_id", "laterality", "view"):
        out[column] = out[column].astype(str)
    out["label_source"] = out["label_source"].astype(str)
    for column in ("malignant", "benign"):
        out[column] = out[column].astype("int64")
    # Invariants of the adapters themselves: a failure here is a bug, not bad input.
    assert out["malignant"].isin([0, 1]).all() and out["benign"].isin([0, 1]).all()
    assert out["view"].isin(VIEWS).all(), sorted(set(out["view"]) - set(VIEWS))
    assert out["laterality"].isin(LATERALITIES).all()
    assert out["label_source"].isin(LABEL_SOURCES).all()
    if "split" in out.columns:
        assert out["split"].isin(SPLITS).all()
    duplicated = out["image_path"].duplicated(keep=False)
    if bool(duplicated.any()):
        path = out.loc[duplicated, "image_path"].iloc[0]
        raise AdapterError(
            f"image {path!r} is listed {int((out['image_path'] == path).sum())} times; the "
            "manifest needs one row per image",
            column="image_path",
        )
    out = out.sort_values(
        ["patient_id", "exam_id", "laterality", "view", "image_path"], kind="stable"
    ).reset_index(drop=True)
    out.attrs = {"dataset": dataset, "notes": list(notes)}
    return out


def as_path(value: str | os.PathLike[str]) -> Path:
    """``Path(value)`` with ``~`` expanded."""
    return Path(value).expanduser()


__all__ = [
    "BINARY_VALUES",
    "BIRADS_CATEGORIES",
    "BREAST_KEY",
    "LABEL_SOURCES",
    "LATERALITIES",
    "OTHER_VIEW_CODES",
    "REQUIRED_COLUMNS",
    "SPLITS",
    "VIEWS",
    "VIEW_CODES",
    "AdapterError",
    "BiradsProxy",
    "MetadataNotFoundError",
    "MetadataTable",
    "as_path",
    "breast_max",
    "finalize",
    "find_file",
    "normalize_birads",
    "parse_age",
    "read_table",
    "split_off_validation",
    "template_fields",
]

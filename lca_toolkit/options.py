"""One declaration per option: a config dataclass field that says how it is given on a command line.

A run's settings are frozen dataclasses. A field declared with :func:`option` carries its flag,
help, choices, bounds and whether a resumed run may change it; everything else is derived from
that one place: the command line's options (``lca_toolkit_cli``), building the config from the
given values (:func:`build`), reading a stored config back as the values a command line would give
(:func:`flag_values`, what ``--resume`` compares with), and the options a resume may change
(:func:`resumable`). Adding an option is adding one field.

This module knows nothing of click: a :class:`Flag` is plain data, and the command-line package
turns it into a click option. Nested dataclass fields (``record: RecordConfig``) are walked, so
the options of a run's parts sit on the parts.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "Declared",
    "Flag",
    "build",
    "declarations",
    "flag_values",
    "from_plain",
    "option",
    "resumable",
    "to_plain",
]


@dataclass(frozen=True)
class Flag:
    """How one config field is given on a command line.

    Attributes:
        flag: the option, e.g. ``--lr``; its words joined by ``_`` name the parameter (``lr``).
        help: one or two sentences for ``--help``.
        choices: the values allowed (strings, or numbers shown as strings).
        resumable: ``--resume`` may give another value (device, workers...); every other
            option must repeat the run's own setting.
        metavar: the placeholder in ``--help`` (``N``, ``P_CC P_MLO``).
        nargs: values the option takes (a tuple when more than 1).
        type: the type of each value (``int``, ``float``, ``str``, ``pathlib.Path``); ``None``:
            the type of the field's default.
        min, max, min_open, max_open: bounds of a number.
        path: for a ``Path``: ``"file"`` or ``"dir"``; ``exists`` that it must exist.
        exists: the path must exist when given.
        off_flag: a boolean given as a pair, e.g. ``--lca/--no-lca``.
        default_text: what ``--help`` says the default is, when not the field's default itself
            (``the preset's``).
        to_field: the given value -> the field's value (e.g. three numbers -> a dict).
        to_flag: the field's value -> the value a command line gives (its inverse).
    """

    flag: str
    help: str
    choices: tuple[Any, ...] | None = None
    resumable: bool = False
    metavar: str | None = None
    nargs: int = 1
    type: type | None = None
    min: float | None = None
    max: float | None = None
    min_open: bool = False
    max_open: bool = False
    path: str | None = None
    exists: bool = False
    off_flag: str | None = None
    default_text: str | None = None
    to_field: Callable[[Any], Any] | None = None
    to_flag: Callable[[Any], Any] | None = None

    @property
    def name(self) -> str:
        """The parameter's name: ``--lca-every`` -> ``lca_every``."""
        return self.flag.lstrip("-").replace("-", "_")


def option(default: Any = dataclasses.MISSING, **flag: Any) -> Any:
    """A dataclass field declared as a command-line option (keywords: those of :class:`Flag`)."""
    return dataclasses.field(default=default, metadata={"flag": Flag(**flag)})


@dataclass(frozen=True)
class Declared:
    """One declared option of a config class: its flag and where its field sits.

    Attributes:
        flag: the declaration.
        path: field names from the root config, e.g. ``("record", "lca_every")``.
        default: the field's default value (as the field holds it).
    """

    flag: Flag
    path: tuple[str, ...]
    default: Any

    @property
    def name(self) -> str:
        return self.flag.name

    def given_default(self) -> Any:
        """The default as a command line gives it."""
        return _to_flag(self.flag, self.default)


def declarations(cls: type) -> tuple[Declared, ...]:
    """Every option declared on ``cls`` and on its nested config dataclasses, in field order.

    Raises:
        TypeError: two fields declare the same parameter name.
    """
    found = tuple(_walk(cls, ()))
    names = [d.name for d in found]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise TypeError(f"{cls.__name__}: options declared twice: {', '.join(twice)}")
    return found


def resumable(cls: type) -> frozenset[str]:
    """The parameter names a resumed run may change."""
    return frozenset(d.name for d in declarations(cls) if d.flag.resumable)


def build(cls: type, values: Mapping[str, Any], **fixed: Any) -> Any:
    """The config the given option values describe (absent ones keep their field's default).

    Args:
        cls: the root config class.
        values: parameter name -> value as a command line gives it.
        fixed: root fields that are not options (``out=...``).
    """
    return _build(cls, (), values, fixed)


def flag_values(config: Any) -> dict[str, Any]:
    """The option values that describe ``config``: the inverse of :func:`build`."""
    out = {}
    for d in declarations(type(config)):
        value = config
        for name in d.path:
            value = getattr(value, name)
        out[d.name] = _to_flag(d.flag, value)
    return out


def _to_flag(flag: Flag, value: Any) -> Any:
    if value is None:
        return None
    if flag.to_flag is not None:
        return flag.to_flag(value)
    if flag.nargs > 1:
        return tuple(value)
    return value


def _nested(cls: type) -> dict[str, type]:
    """Fields of ``cls`` whose type is a dataclass (its parts)."""
    hints = typing.get_type_hints(cls)
    return {
        f.name: hints[f.name]
        for f in dataclasses.fields(cls)
        if isinstance(hints[f.name], type) and dataclasses.is_dataclass(hints[f.name])
    }


def _walk(cls: type, prefix: tuple[str, ...]) -> typing.Iterator[Declared]:
    parts = _nested(cls)
    for f in dataclasses.fields(cls):
        if f.name in parts:
            yield from _walk(parts[f.name], (*prefix, f.name))
        elif "flag" in f.metadata:
            yield Declared(f.metadata["flag"], (*prefix, f.name), f.default)


def _build(
    cls: type, prefix: tuple[str, ...], values: Mapping[str, Any], fixed: Mapping[str, Any]
) -> Any:
    parts = _nested(cls)
    kwargs = dict(fixed)
    for f in dataclasses.fields(cls):
        if f.name in parts:
            kwargs[f.name] = _build(parts[f.name], (*prefix, f.name), values, {})
            continue
        flag = f.metadata.get("flag")
        if flag is None or flag.name not in values:
            continue
        value = values[flag.name]
        if value is not None and flag.to_field is not None:
            value = flag.to_field(value)
        elif value is not None and flag.nargs > 1:
            value = tuple(value)
        kwargs[f.name] = value
    return cls(**kwargs)


def to_plain(config: Any) -> dict[str, Any]:
    """A config as JSON-ready plain types (paths as strings, tuples as lists)."""

    def clean(v: Any) -> Any:
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    return clean(dataclasses.asdict(config))


def from_plain(cls: type, values: Mapping[str, Any]) -> Any:
    """The inverse of :func:`to_plain`, led by the field types: ``Path`` fields become paths,
    tuple fields tuples, nested config dicts their dataclasses; keys that are not fields (results
    stored beside a config) are ignored."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in values:
            continue
        hint, value = hints[f.name], values[f.name]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            kwargs[f.name] = from_plain(hint, value or {})
        else:
            kwargs[f.name] = _from_plain_value(hint, value)
    return cls(**kwargs)


def _from_plain_value(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    kinds = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for kind in kinds:
        origin = typing.get_origin(kind) or kind
        if origin is Path:
            return Path(value)
        if origin is tuple:
            inner = typing.get_args(kind)
            if inner and inner[0] is Path:
                return tuple(Path(v) for v in value)
            return tuple(value)
    return value

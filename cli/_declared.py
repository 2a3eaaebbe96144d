"""Click options made from the declarations on the config dataclasses (:mod:`lca_toolkit.options`).

A config field declared with ``option(...)`` becomes one click option here; nothing about a flag
(its spelling, type, choices, bounds, default, help) is written twice. Commands that need an
option with another default or help (the recipes' preset) override just that, from the same
declaration.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import click

from lca_toolkit.options import Declared, declarations

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def _click_type(d: Declared) -> Any:
    f = d.flag
    if f.choices is not None:
        return click.Choice([str(c) for c in f.choices])
    kind = f.type or type(d.default)
    if kind is Path or f.path is not None:
        return click.Path(
            exists=f.exists,
            file_okay=f.path != "dir",
            dir_okay=f.path != "file",
            path_type=Path,
        )
    if kind in (int, float) and (f.min is not None or f.max is not None):
        bounds = {"min": f.min, "max": f.max}
        if kind is float:
            return click.FloatRange(**bounds, min_open=f.min_open, max_open=f.max_open)
        return click.IntRange(**bounds)  # type: ignore[arg-type]
    return kind


def _typed_choice(d: Declared) -> Callable[[Any, Any, Any], Any] | None:
    """Choices of numbers are offered as strings (as click lists them) and read back typed."""
    choices = d.flag.choices
    if not choices or isinstance(choices[0], str):
        return None
    kind = type(choices[0])
    return lambda _ctx, _param, value: None if value is None else kind(value)


def click_option(d: Declared, **overrides: Any) -> Decorator:
    """The click option of one declaration; ``overrides`` replace click keywords (``default``,
    ``help``) for a command that needs another."""
    f = d.flag
    default = d.given_default()
    help_text = f.help
    if f.default_text:
        help_text = f"{f.help.rstrip('.')} [default: {f.default_text}]."
    shown = default is not None and default is not False  # 0 is a default to show (0 == False)
    kwargs: dict[str, Any] = {"help": help_text, "show_default": shown}
    if isinstance(d.default, bool):
        opts = [f"{f.flag}/{f.off_flag}"] if f.off_flag else [f.flag]
        kwargs.update(is_flag=True, default=default)
        kwargs["show_default"] = bool(f.off_flag)  # a pair says which side is the default
    else:
        opts = [f.flag]
        kwargs.update(type=_click_type(d), nargs=f.nargs, metavar=f.metavar)
        if default is not None:
            kwargs["default"] = (
                str(default) if f.choices and not isinstance(default, str) else default
            )
        callback = _typed_choice(d)
        if callback is not None:
            kwargs["callback"] = callback
    kwargs.update(overrides)
    return click.option(*opts, d.name, **kwargs)


def declared_options(cls: type, skip: Iterable[str] = ()) -> Decorator:
    """Every option declared on ``cls`` (and its parts), in field order, but those in ``skip``."""
    skipped = set(skip)
    chosen = [d for d in declarations(cls) if d.name not in skipped]

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        for d in reversed(chosen):
            fn = click_option(d)(fn)
        return fn

    return decorate


def declared_option(cls: type, name: str, **overrides: Any) -> Decorator:
    """The option ``name`` declared on ``cls``, with click keywords overridden for this command."""
    for d in declarations(cls):
        if d.name == name:
            return click_option(d, **overrides)
    raise KeyError(f"{cls.__name__} declares no option {name!r}")

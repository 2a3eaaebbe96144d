"""How one input (a modality) is found in a user-shaped batch and removed from it.

Batches are whatever the user's ``loss_fn`` takes: a dict, a tuple of tuples, a named tuple. A
:class:`Modality` says WHERE its input is (``at``: a key/index path into the batch) and HOW it is
removed (``mute``)::

    {"cc": Modality("cc"), "mlo": Modality("mlo", mute="mean")}        # {"cc": x, "mlo": y, ...}
    {"cc": Modality((0, 0)), "mlo": Modality((0, 1))}                  # ((x_cc, x_mlo), label)
    {"text": Modality(mute=lambda batch: {**batch, "ids": pad_like(batch["ids"])})}

``mute`` is ``"zeros"`` (the input becomes zeros of its shape and dtype), ``"mean"`` (every sample's
input becomes the mean over the evaluation subset E of that input, per feature: one tensor of shape
``x.shape[1:]``, computed once per E), or a function. With ``at`` given, the function takes the input
tensor and returns its replacement (same shape); with ``at=None`` it takes the whole batch and
returns the batch with the modality removed (it must not modify the batch it is given).

Removal never modifies the user's batch: the containers along the path are rebuilt, the other
leaves are shared.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .errors import AblationError

Key = str | int
MuteFn = Callable[[Any], Any]
MUTES: tuple[str, ...] = ("zeros", "mean")
_NAME = re.compile(r"^[A-Za-z0-9_\-]+$")  # no '+': subsets are labelled 'a+b' in stored columns


@dataclass(frozen=True)
class Modality:
    """One removable input of a batch.

    Attributes:
        at: where the input is: a key (``"cc"``), an index (``0``) or a path of them (``(0, 1)``:
            ``batch[0][1]``). Keys index mappings and named-tuple fields, integers index tuples
            and lists. ``None``: ``mute`` is a function of the whole batch.
        mute: ``"zeros"``, ``"mean"`` (the mean over E) or a function (see the module docstring).
    """

    at: Key | tuple[Key, ...] | None = None
    mute: str | MuteFn = "zeros"

    @property
    def path(self) -> tuple[Key, ...] | None:
        """``at`` as a tuple of keys (``None`` for a whole-batch function)."""
        if self.at is None:
            return None
        return self.at if isinstance(self.at, tuple) else (self.at,)


def as_modalities(spec: Mapping[str, Any]) -> dict[str, Modality]:
    """Check a ``name -> Modality`` mapping; shorthands become :class:`Modality`.

    A key, index or path stands for ``Modality(at=path)`` (zeros); a function for
    ``Modality(mute=function)`` (a function of the whole batch).

    Raises:
        AblationError: no modalities, a name that is not a plain word, or an entry that is not
            one of the above (naming the modality).
    """
    if not isinstance(spec, Mapping) or not spec:
        raise AblationError(
            f"modalities must be a non-empty mapping name -> Modality, got {spec!r}"
        )
    out: dict[str, Modality] = {}
    for name, entry in spec.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise AblationError(
                f"modality name {name!r} must be a non-empty word of letters, digits, '_' or '-'"
            )
        if isinstance(entry, Modality):
            mod = entry
        elif callable(entry):
            mod = Modality(mute=entry)
        else:
            mod = Modality(at=tuple(entry) if isinstance(entry, list) else entry)
        out[name] = _checked(name, mod)
    return out


def _checked(name: str, mod: Modality) -> Modality:
    path = mod.path
    if path is not None and (
        not path or not all(isinstance(k, (str, int)) and not isinstance(k, bool) for k in path)
    ):
        raise AblationError(
            f"modality {name!r}: 'at' must be a key, an index or a non-empty tuple of them "
            f"(e.g. 'cc' or (0, 1)), got {mod.at!r}"
        )
    if isinstance(mod.mute, str):
        if mod.mute not in MUTES:
            raise AblationError(
                f"modality {name!r}: mute must be one of {MUTES} or a function, got {mod.mute!r}"
            )
        if path is None:
            raise AblationError(
                f"modality {name!r}: mute={mod.mute!r} needs 'at', the place of the input in "
                "the batch (e.g. Modality(at='cc', mute='mean')); without 'at', mute must be a "
                "function batch -> batch"
            )
    elif not callable(mod.mute):
        raise AblationError(
            f"modality {name!r}: mute must be one of {MUTES} or a function, got {mod.mute!r}"
        )
    return mod


def _describe(node: Any) -> str:
    if isinstance(node, Mapping):
        return f"a mapping with keys {sorted(map(str, node))}"
    if isinstance(node, tuple) and hasattr(node, "_fields"):
        return f"a named tuple with fields {list(node._fields)}"
    if isinstance(node, (list, tuple)):
        return f"a {type(node).__name__} of length {len(node)}"
    return f"a {type(node).__name__}"


def _child(node: Any, key: Key) -> Any | None:
    """``node[key]`` (a named-tuple field for a string key), or ``None`` where there is none."""
    if isinstance(node, Mapping):
        return node[key] if key in node else None
    if isinstance(node, tuple) and hasattr(node, "_fields") and isinstance(key, str):
        return getattr(node, key) if key in node._fields else None
    if isinstance(node, (list, tuple)) and isinstance(key, int):
        return node[key] if -len(node) <= key < len(node) else None
    return None


def get_input(batch: Any, name: str, path: tuple[Key, ...]) -> Tensor:
    """The tensor at ``path`` in ``batch``.

    Raises:
        AblationError: the path does not lead to a tensor (naming the modality, the failing key
            and what the batch holds there).
    """
    node = batch
    for depth, key in enumerate(path):
        child = _child(node, key)
        if child is None:
            where = "batch" + "".join(f"[{k!r}]" for k in path[:depth])
            raise AblationError(
                f"modality {name!r}: {where} has no {key!r} (it is {_describe(node)}); "
                f"fix Modality(at={path!r})"
            )
        node = child
    if not isinstance(node, Tensor):
        raise AblationError(
            f"modality {name!r}: batch{''.join(f'[{k!r}]' for k in path)} is {_describe(node)}, "
            "not a tensor"
        )
    return node


def _replace(node: Any, path: tuple[Key, ...], value: Tensor) -> Any:
    """A copy of ``node`` with the leaf at ``path`` replaced (containers rebuilt, leaves shared)."""
    key, rest = path[0], path[1:]
    new = value if not rest else _replace(_child(node, key), rest, value)
    if isinstance(node, Mapping):
        return type(node)((k, new if k == key else v) for k, v in node.items())
    if isinstance(node, tuple) and hasattr(node, "_fields"):
        field = key if isinstance(key, str) else node._fields[key]
        return node._replace(**{field: new})
    items = list(node)
    items[key] = new
    return type(node)(items)


def input_means(
    modalities: Mapping[str, Modality], batches: Iterable[Any], prepare: Callable[[Any], Any]
) -> dict[str, Tensor]:
    """Per-feature mean over every sample of E of each ``mute="mean"`` input (one data pass).

    Sums in float64; the result (shape ``x.shape[1:]``) keeps float64 and is cast to the input's
    dtype where it is used. ``prepare`` moves a batch where the model is.

    Raises:
        AblationError: a non-floating input, or inputs whose per-sample shapes differ between
            batches (naming the modality and the batch).
    """
    wanted = {n: m.path for n, m in modalities.items() if m.mute == "mean"}
    if not wanted:
        return {}
    sums: dict[str, Tensor] = {}
    counts = dict.fromkeys(wanted, 0)
    for i, batch in enumerate(batches):
        batch = prepare(batch)
        for name, path in wanted.items():
            x = get_input(batch, name, path)
            if not x.is_floating_point() or x.dim() == 0:
                raise AblationError(
                    f"modality {name!r}: mute='mean' needs a floating tensor with a batch "
                    f"dimension, got dtype {x.dtype} shape {tuple(x.shape)}; use 'zeros' or a "
                    "function"
                )
            s = x.to(torch.float64).sum(0)
            if name in sums and sums[name].shape != s.shape:
                raise AblationError(
                    f"modality {name!r}: mute='mean' needs one input shape over E; evaluation "
                    f"batch {i} has per-sample shape {tuple(s.shape)}, earlier batches "
                    f"{tuple(sums[name].shape)}"
                )
            sums[name] = s if name not in sums else sums[name] + s
            counts[name] += x.shape[0]
    return {n: s / counts[n] for n, s in sums.items()}


def remove(
    batch: Any,
    removed: Sequence[str],
    modalities: Mapping[str, Modality],
    means: Mapping[str, Tensor],
) -> Any:
    """``batch`` with every modality in ``removed`` muted, one after the other.

    Raises:
        AblationError: a path that does not fit the batch, or a mute function whose replacement
            is not a tensor of the input's shape (naming the modality).
    """
    for name in removed:
        mod = modalities[name]
        path = mod.path
        if path is None:
            batch = mod.mute(batch)
            continue
        x = get_input(batch, name, path)
        if mod.mute == "zeros":
            fill = torch.zeros_like(x)
        elif mod.mute == "mean":
            fill = means[name].to(x.dtype).expand(x.shape).contiguous()
        else:
            fill = mod.mute(x)
            if not isinstance(fill, Tensor) or fill.shape != x.shape:
                got = tuple(fill.shape) if isinstance(fill, Tensor) else type(fill).__name__
                raise AblationError(
                    f"modality {name!r}: its mute function must return a tensor of the input's "
                    f"shape {tuple(x.shape)}, got {got}"
                )
        batch = _replace(batch, path, fill)
    return batch

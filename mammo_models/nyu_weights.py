"""Loading published NYU column weights (and other foreign state dicts) with strict checks.

The NYU checkpoints of Wu et al. (2019) are ``torch.save``d dicts whose ``"model"`` entry is the
state dict of a four-view model; the CC column lives under ``four_view_resnet.cc.`` and the MLO
column under ``four_view_resnet.mlo.``. Files saved by older PyTorch lack the BatchNorm
``num_batches_tracked`` counters; they are filled with zeros (they only matter for BatchNorm with
``momentum=None``, which the column does not use).

Every key and shape is checked before anything is copied, and all problems are reported in one
:class:`CheckpointError` that names the file, so a wrong file or a wrong ``view`` never loads half
a column.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

NYU_COLUMN_PREFIX = "four_view_resnet.{view}."
VIEWS: tuple[str, ...] = ("cc", "mlo")

PathLike = str | os.PathLike


class CheckpointError(ValueError):
    """A checkpoint cannot initialise a module: wrong layout, missing/unexpected keys or shapes."""


def _shape(t: object) -> tuple[int, ...] | str:
    return tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__


def check_state_dict(
    expected: Mapping[str, torch.Tensor],
    received: Mapping[str, object],
    source: str,
    *,
    fill_num_batches_tracked: bool = False,
) -> dict[str, torch.Tensor]:
    """Compare a received state dict with a module's own, key by key and shape by shape.

    Args:
        expected: the target module's ``state_dict()``.
        received: the candidate state dict (keys already stripped of any prefix).
        source: what to call the origin in messages, e.g. ``"file 'x.pt', prefix 'a.'"``.
        fill_num_batches_tracked: a missing ``*.num_batches_tracked`` key is filled with 0
            instead of being an error (files written by PyTorch < 0.4.1).

    Returns:
        A complete state dict for ``module.load_state_dict(..., strict=True)``.

    Raises:
        CheckpointError: listing every missing key (with the expected shape), every unexpected
            key (with the received shape) and every shape mismatch.
    """
    out: dict[str, torch.Tensor] = {}
    missing, mismatched = [], []
    for key, ref in expected.items():
        if key not in received:
            if fill_num_batches_tracked and key.endswith("num_batches_tracked"):
                out[key] = torch.zeros_like(ref)
            else:
                missing.append(f"  {key}: expected shape {tuple(ref.shape)}")
            continue
        value = received[key]
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != tuple(ref.shape):
            mismatched.append(
                f"  {key}: expected shape {tuple(ref.shape)}, received {_shape(value)}"
            )
            continue
        out[key] = value
    unexpected = [
        f"  {key}: received shape {_shape(received[key])}"
        for key in received
        if key not in expected
    ]
    if missing or unexpected or mismatched:
        parts = [f"{source} does not match the module's state dict:"]
        for title, rows in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches", mismatched),
        ):
            if rows:
                parts.append(f"{len(rows)} {title}:")
                parts.extend(rows)
        raise CheckpointError("\n".join(parts))
    return out


def load_file(path: PathLike, *, weights_only: bool = True) -> object:
    """``torch.load`` onto the CPU with errors that name the file.

    Args:
        path: the file.
        weights_only: refuse arbitrary pickled objects (safe for untrusted files). Set False only
            for a trusted file that needs it; the error says so when that is the case.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file {str(path)!r} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"checkpoint file {str(path)!r} holds objects other than tensors and plain containers "
            f"and was refused by weights_only loading ({exc}); if you trust the file, pass "
            "weights_only=False"
        ) from exc
    except (RuntimeError, EOFError, OSError) as exc:
        raise CheckpointError(
            f"checkpoint file {str(path)!r} cannot be read by torch.load: {exc}"
        ) from exc


def strip_prefix(state: Mapping[str, object], prefix: str) -> dict[str, object]:
    """Entries of ``state`` whose key starts with ``prefix``, with the prefix removed."""
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def _top_level_prefixes(keys: list[str], depth: int = 2) -> list[str]:
    return sorted({".".join(k.split(".")[:depth]) + "." for k in keys})


def load_nyu_column(
    module: nn.Module, path: PathLike, view: str = "cc", *, weights_only: bool = True
) -> nn.Module:
    """Initialise a ResNet-22 column from a NYU four-view checkpoint, in place.

    Args:
        module: a :class:`~mammo_models.resnet22.ResNet22` (or any module with the same names)
            whose input channels match the checkpoint (1 image-only, 3 image + heatmaps).
        path: a ``torch.save``d dict with the four-view state dict under ``"model"``.
        view: ``"cc"`` or ``"mlo"``: which column of the file to take.
        weights_only: passed to ``torch.load``; keep True unless the file is trusted and needs it.

    Returns:
        ``module``, with its parameters and BatchNorm statistics replaced.

    Raises:
        CheckpointError: the file has no ``"model"`` dict, no key under the view's prefix, or
            keys/shapes that differ from ``module`` (all of them listed, with the file path).
        ValueError: ``view`` is not ``"cc"`` or ``"mlo"``.
    """
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
    obj = load_file(path, weights_only=weights_only)
    if not isinstance(obj, Mapping) or not isinstance(obj.get("model"), Mapping):
        got = sorted(obj) if isinstance(obj, Mapping) else type(obj).__name__
        raise CheckpointError(
            f"checkpoint file {str(path)!r}: expected a dict with the state dict under 'model' "
            f"(NYU layout), got {got!r}"
        )
    state = obj["model"]
    prefix = NYU_COLUMN_PREFIX.format(view=view)
    column_state = strip_prefix(state, prefix)
    if not column_state:
        raise CheckpointError(
            f"checkpoint file {str(path)!r}: no key starts with {prefix!r}; the file's keys start "
            f"with {_top_level_prefixes(list(state))}"
        )
    full = check_state_dict(
        module.state_dict(),
        column_state,
        f"checkpoint file {str(path)!r}, prefix {prefix!r},",
        fill_num_batches_tracked=True,
    )
    module.load_state_dict(full, strict=True)
    return module

"""Pretraining (Wu et al. 2020, section 6.2): start from the best uni-view models, train the top only.

Stage 1 trains ``uni_cc`` and ``uni_mlo`` models. Stage 2 builds a Joint ResNet, copies each
uni-view model's column and FC into the matching view, freezes them, and trains only the output
layer (the variant the paper found best; fine-tuning everything is not offered). The output layer
starts from its default initialisation: it reads ``h_cc + h_mlo``, which neither uni-view output
layer was trained on.

Frozen means ``requires_grad=False`` AND eval mode for the frozen modules, kept across
``model.train()`` calls: BatchNorm in a frozen column uses the running statistics of its uni-view
training and never updates them, and the column's input noise is off. The columns are then a fixed
function of the image, which is what "freezing" a feature extractor is meant to give (train-mode
BatchNorm would still change the features and the statistics batch by batch).

A uni-view checkpoint is the ``state_dict()`` of a :class:`~mammo_models.variants.UniViewModel`
(keys ``column.*``, ``fc.*``, ``output_layer.*``), saved as is or under ``"model"`` in a training
checkpoint dict, given as a path or as the dict itself.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from ..nyu_weights import CheckpointError, PathLike, check_state_dict, load_file, strip_prefix

Checkpoint = PathLike | Mapping[str, object]
_UNI_PARTS: dict[str, str] = {"column": "column.", "fc": "fc."}
_UNI_IGNORED: tuple[str, ...] = ("output_layer.",)  # present in uni-view files, not transferred


def _uni_state(checkpoint: Checkpoint, view: str) -> tuple[Mapping[str, object], str]:
    """The uni-view state dict and a description of its origin for error messages."""
    if isinstance(checkpoint, Mapping):
        obj, source = checkpoint, f"{view.upper()} uni-view state dict"
    else:
        obj, source = load_file(checkpoint), f"{view.upper()} uni-view file {str(checkpoint)!r}"
    if isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping):
        obj = obj["model"]
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{source}: expected a state dict, got {type(obj).__name__}")
    return obj, source


def apply_pretraining(
    model: nn.Module, cc_checkpoint: Checkpoint, mlo_checkpoint: Checkpoint
) -> nn.Module:
    """Initialise each view's column + FC from a uni-view model and freeze them, in place.

    Args:
        model: a Joint ResNet (``build_model("joint", ...)``).
        cc_checkpoint: trained ``uni_cc`` model: path or state dict.
        mlo_checkpoint: trained ``uni_mlo`` model: path or state dict.

    Returns:
        ``model``; afterwards ``model.group_prefixes()`` lists only the trainable groups
        (``shared``, plus ``cc``/``mlo`` when Gradient-Blending heads are present).

    Raises:
        CheckpointError: a checkpoint lacks keys, has unexpected keys or wrong shapes (e.g. a
            different number of input channels); all are listed with the file.
        ValueError: the model is not a Joint ResNet.
    """
    targets = model.pretraining_targets()  # raises for variants without per-view columns
    loaded: dict[str, dict[str, dict[str, torch.Tensor]]] = {}
    for view, checkpoint in (("cc", cc_checkpoint), ("mlo", mlo_checkpoint)):
        state, source = _uni_state(checkpoint, view)
        known = tuple(_UNI_PARTS.values()) + _UNI_IGNORED
        stray = [k for k in state if not k.startswith(known)]
        if stray:
            raise CheckpointError(
                f"{source} is not a uni-view model state dict: keys {stray[:8]} start with none "
                f"of {known}"
            )
        loaded[view] = {
            part: check_state_dict(
                targets[view][part].state_dict(),
                strip_prefix(state, prefix),
                f"{source}, prefix {prefix!r},",
            )
            for part, prefix in _UNI_PARTS.items()
        }
    # Copy only after both files passed every check, so a bad file changes nothing.
    for view, parts in loaded.items():
        for part, state in parts.items():
            targets[view][part].load_state_dict(state, strict=True)
    model.freeze([name for name, module in model.named_children() if _is_target(module, targets)])
    return model


def _is_target(module: nn.Module, targets: Mapping[str, Mapping[str, nn.Module]]) -> bool:
    return any(module is m for parts in targets.values() for m in parts.values())

"""The paper's model variants: uni-view CC/MLO, Joint, Shared and Split ResNet, and ``build_model``.

Every model takes a batch dict (``"cc"`` and/or ``"mlo"`` images (B, C, H, W); the two views may
have different H, W) and returns ``{"logits": (B, 2)}``, columns ``[malignant, benign]``.
Per view: ResNet-22 column -> GAP (256) -> FC 256->512 + ReLU -> ``h_view`` (512); two-view models
fuse ``h_cc + h_mlo`` and apply the output layer ``Linear(512, 2)`` (Wu et al. 2020, section 4).

Parameter groups (the paper's theta_CC, theta_MLO, theta_shared) come from ``group_prefixes()``:

========== ===================================================================================
variant    groups (prefixes)
========== ===================================================================================
uni_cc     ``cc`` (column, fc), ``shared`` (output layer)
uni_mlo    ``mlo`` (column, fc), ``shared`` (output layer)
joint      ``cc`` (CC column, CC fc), ``mlo`` (MLO column, MLO fc), ``shared`` (output layer)
shared     ``column`` (the one column), ``cc`` (CC fc), ``mlo`` (MLO fc), ``shared`` (output)
split      ``cc`` (the whole CC model), ``mlo`` (the whole MLO model)
========== ===================================================================================

Gradient-Blending heads on ``h_cc`` / ``h_mlo`` belong to ``cc`` / ``mlo``. Only groups with
trainable parameters are listed, so a pretrained (frozen) Joint ResNet has only ``shared``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from .heads import HIDDEN_DIM, ViewProjection, output_layer
from .regularizers.gradient_blending import blend_weight_tensor, equal_blend_weights
from .regularizers.modality_dropout import ModalityDropout, ModalityDropoutConfig
from .resnet22 import DEFAULT_NOISE_STD, ResNet22

if TYPE_CHECKING:
    from lca_toolkit import ParamGroups

VARIANTS: tuple[str, ...] = ("uni_cc", "uni_mlo", "joint", "shared", "split")
VIEWS: tuple[str, ...] = ("cc", "mlo")
_TWO_VIEW_REGULARISED = ("joint", "shared")  # variants that fuse h_cc + h_mlo


def _view_input(batch: Mapping[str, torch.Tensor], view: str, channels: int) -> torch.Tensor:
    """The (B, C, H, W) image of one view, with an error naming the key when it is wrong."""
    if view not in batch:
        raise KeyError(f"batch has no {view!r} images (keys: {sorted(batch)})")
    x = batch[view]
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != channels:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"batch[{view!r}] must have shape (B, {channels}, H, W), got {got}")
    return x


def _check_same_batch(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"the two views disagree on the batch size: {name_a} has {a.shape[0]} samples "
            f"(shape {tuple(a.shape)}), {name_b} has {b.shape[0]} (shape {tuple(b.shape)})"
        )


def mean_probability_logits(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """``logit((sigmoid(a) + sigmoid(b)) / 2)`` computed in log space, finite for any finite input.

    ``log p = logaddexp(logsigmoid(a), logsigmoid(b)) - log 2`` and likewise ``log(1 - p)`` with
    ``-a, -b``; the ``log 2`` cancels in the difference. (B, 2), (B, 2) -> (B, 2).
    """
    if logits_a.shape != logits_b.shape:
        raise ValueError(
            f"cannot average predictions of shapes {tuple(logits_a.shape)} and "
            f"{tuple(logits_b.shape)}"
        )
    log_p = torch.logaddexp(F.logsigmoid(logits_a), F.logsigmoid(logits_b))
    log_q = torch.logaddexp(F.logsigmoid(-logits_a), F.logsigmoid(-logits_b))
    return log_p - log_q


class MammoModel(nn.Module):
    """Base class: parameter groups and frozen sub-modules shared by every variant."""

    variant: str = ""

    def __init__(self) -> None:
        super().__init__()
        self._frozen: list[str] = []

    def _prefix_candidates(self) -> dict[str, tuple[str, ...]]:
        """Group name -> prefixes before frozen parameters are taken out."""
        raise NotImplementedError

    def group_prefixes(self) -> dict[str, tuple[str, ...]]:
        """Group name -> parameter-name prefixes, covering every trainable parameter once.

        Prefixes (and groups) that match no trainable parameter are left out, so the result
        feeds ``lca_toolkit.ParamGroups.from_prefixes`` directly.
        """
        trainable = [n for n, p in self.named_parameters() if p.requires_grad]
        out: dict[str, tuple[str, ...]] = {}
        for group, prefixes in self._prefix_candidates().items():
            kept = tuple(p for p in prefixes if any(n.startswith(p) for n in trainable))
            if kept:
                out[group] = kept
        return out

    def freeze(self, names: Sequence[str]) -> None:
        """Freeze the named direct sub-modules: no gradients, and eval mode even in ``train()``.

        Eval mode keeps a frozen column a fixed function: its BatchNorm uses (and no longer
        updates) the running statistics it came with, and its input noise is off.
        """
        for name in names:
            module = getattr(self, name, None)
            if not isinstance(module, nn.Module):
                raise ValueError(f"{type(self).__name__} has no sub-module {name!r} to freeze")
            module.requires_grad_(False)
            module.eval()
            if name not in self._frozen:
                self._frozen.append(name)

    @property
    def frozen(self) -> tuple[str, ...]:
        """Names of the frozen sub-modules."""
        return tuple(self._frozen)

    def train(self, mode: bool = True) -> MammoModel:
        super().train(mode)
        for name in self._frozen:
            getattr(self, name).eval()
        return self

    def pretraining_targets(self) -> dict[str, dict[str, nn.Module]]:
        """view -> {"column": module, "fc": module} that Pretraining initialises and freezes."""
        raise ValueError(
            f"Pretraining applies to the joint variant (one column and FC per view); "
            f"this model is {self.variant!r}"
        )


class UniViewModel(MammoModel):
    """One view only: column -> GAP -> FC + ReLU -> output layer. Reads only ``batch[view]``."""

    def __init__(
        self, view: str, input_channels: int = 1, noise_std: float = DEFAULT_NOISE_STD
    ) -> None:
        super().__init__()
        if view not in VIEWS:
            raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
        self.view = view
        self.variant = f"uni_{view}"
        self.input_channels = input_channels
        self.column = ResNet22(input_channels, noise_std)
        self.fc = ViewProjection()
        self.output_layer = output_layer()

    def _prefix_candidates(self) -> dict[str, tuple[str, ...]]:
        return {self.view: ("column.", "fc."), "shared": ("output_layer.",)}

    def forward_hidden(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``h_view`` (B, 512)."""
        x = _view_input(batch, self.view, self.input_channels)  # (B, C, H, W)
        return self.fc(self.column(x))

    def forward(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"logits": self.output_layer(self.forward_hidden(batch))}  # (B, 2)


class _TwoViewModel(MammoModel):
    """Late fusion ``h_cc + h_mlo`` with optional Modality Dropout and Gradient-Blending heads.

    Subclasses pass their columns (attribute name -> column) and implement :meth:`encode`.
    """

    def __init__(
        self,
        columns: Mapping[str, ResNet22],
        input_channels: int,
        modality_dropout: ModalityDropoutConfig | None,
        gradient_blending: bool,
        blend_weights: Mapping[str, float] | None,
    ) -> None:
        super().__init__()
        self.input_channels = input_channels
        for name, column in columns.items():  # registered first: columns lead the state dict
            setattr(self, name, column)
        self.cc_fc = ViewProjection()
        self.mlo_fc = ViewProjection()
        self.output_layer = output_layer()
        self.modality_dropout = (
            ModalityDropout(modality_dropout) if modality_dropout is not None else None
        )
        self.gradient_blending = gradient_blending
        if gradient_blending:
            # Per-view heads on h_cc / h_mlo; they read h before Modality Dropout, so a dropped
            # view does not train its own head on zeros.
            self.cc_head = output_layer(HIDDEN_DIM)
            self.mlo_head = output_layer(HIDDEN_DIM)
            weights = blend_weights if blend_weights is not None else equal_blend_weights()
            # A persistent buffer: checkpoints keep the weights the run was trained with.
            self.register_buffer("blend_weights", blend_weight_tensor(weights))  # (3,)
        elif blend_weights is not None:
            raise ValueError("blend_weights given but gradient_blending is False")

    def encode(self, view: str, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) image of ``view`` -> pooled column features (B, 256)."""
        raise NotImplementedError

    def set_blend_weights(self, weights: Mapping[str, float]) -> None:
        """Replace the fixed Gradient-Blending weights (keys joint, cc, mlo), e.g. after estimation."""
        if not self.gradient_blending:
            raise ValueError("this model was built without gradient_blending; it has no heads")
        self.blend_weights.copy_(blend_weight_tensor(weights))

    def forward(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x_cc = _view_input(batch, "cc", self.input_channels)  # (B, C, Hc, Wc)
        x_mlo = _view_input(batch, "mlo", self.input_channels)  # (B, C, Hm, Wm)
        _check_same_batch("batch['cc']", x_cc, "batch['mlo']", x_mlo)
        h_cc = self.cc_fc(self.encode("cc", x_cc))  # (B, 512)
        h_mlo = self.mlo_fc(self.encode("mlo", x_mlo))  # (B, 512)
        out: dict[str, torch.Tensor] = {}
        if self.gradient_blending:
            B = h_cc.shape[0]
            out["logits_cc"] = self.cc_head(h_cc)  # (B, 2)
            out["logits_mlo"] = self.mlo_head(h_mlo)  # (B, 2)
            out["blend_weights"] = self.blend_weights.expand(B, -1)  # (B, 3): joint, cc, mlo
        if self.modality_dropout is not None:
            h_cc, h_mlo = self.modality_dropout(h_cc, h_mlo)
        if h_cc.shape != h_mlo.shape:
            raise ValueError(f"h_cc {tuple(h_cc.shape)} and h_mlo {tuple(h_mlo.shape)} differ")
        out["logits"] = self.output_layer(h_cc + h_mlo)  # (B, 2)
        return out

    def _head_prefix(self, view: str) -> tuple[str, ...]:
        return (f"{view}_head.",) if self.gradient_blending else ()


class JointModel(_TwoViewModel):
    """Joint ResNet (the paper's baseline): a separate column per view."""

    variant = "joint"

    def __init__(
        self,
        input_channels: int = 1,
        modality_dropout: ModalityDropoutConfig | None = None,
        gradient_blending: bool = False,
        blend_weights: Mapping[str, float] | None = None,
        noise_std: float = DEFAULT_NOISE_STD,
    ) -> None:
        columns = {
            "cc_column": ResNet22(input_channels, noise_std),
            "mlo_column": ResNet22(input_channels, noise_std),
        }
        super().__init__(
            columns, input_channels, modality_dropout, gradient_blending, blend_weights
        )

    def encode(self, view: str, x: torch.Tensor) -> torch.Tensor:
        return (self.cc_column if view == "cc" else self.mlo_column)(x)

    def _prefix_candidates(self) -> dict[str, tuple[str, ...]]:
        return {
            view: (f"{view}_column.", f"{view}_fc.", *self._head_prefix(view)) for view in VIEWS
        } | {"shared": ("output_layer.",)}

    def pretraining_targets(self) -> dict[str, dict[str, nn.Module]]:
        return {
            "cc": {"column": self.cc_column, "fc": self.cc_fc},
            "mlo": {"column": self.mlo_column, "fc": self.mlo_fc},
        }


class SharedModel(_TwoViewModel):
    """Shared ResNet: ONE column object encodes both views; each view keeps its own FC.

    The column runs once per view (the views' sizes differ), so its gradient is the sum of both
    views' contributions and its BatchNorm statistics see both views.
    """

    variant = "shared"

    def __init__(
        self,
        input_channels: int = 1,
        modality_dropout: ModalityDropoutConfig | None = None,
        gradient_blending: bool = False,
        blend_weights: Mapping[str, float] | None = None,
        noise_std: float = DEFAULT_NOISE_STD,
    ) -> None:
        columns = {"column": ResNet22(input_channels, noise_std)}
        super().__init__(
            columns, input_channels, modality_dropout, gradient_blending, blend_weights
        )

    def encode(self, view: str, x: torch.Tensor) -> torch.Tensor:
        return self.column(x)

    def _prefix_candidates(self) -> dict[str, tuple[str, ...]]:
        return (
            {"column": ("column.",)}
            | {view: (f"{view}_fc.", *self._head_prefix(view)) for view in VIEWS}
            | {"shared": ("output_layer.",)}
        )


class SplitModel(MammoModel):
    """Split ResNet: two uni-view models trained together on their averaged prediction.

    ``logits = logit((sigmoid(logits_cc) + sigmoid(logits_mlo)) / 2)`` per task, so the usual
    BCE-with-logits on ``logits`` is exactly the BCE of the averaged probability.
    """

    variant = "split"

    def __init__(self, input_channels: int = 1, noise_std: float = DEFAULT_NOISE_STD) -> None:
        super().__init__()
        self.cc_model = UniViewModel("cc", input_channels, noise_std)
        self.mlo_model = UniViewModel("mlo", input_channels, noise_std)

    def _prefix_candidates(self) -> dict[str, tuple[str, ...]]:
        return {"cc": ("cc_model.",), "mlo": ("mlo_model.",)}

    def forward(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        logits_cc = self.cc_model(batch)["logits"]  # (B, 2)
        logits_mlo = self.mlo_model(batch)["logits"]  # (B, 2)
        _check_same_batch("batch['cc']", logits_cc, "batch['mlo']", logits_mlo)
        return {"logits": mean_probability_logits(logits_cc, logits_mlo)}  # (B, 2)


@dataclass(frozen=True)
class ModelConfig:
    """Everything :func:`build_model_from_config` needs (checkpoint paths excepted).

    Attributes:
        variant: one of ``VARIANTS``.
        input_channels: 1 (image) or 3 (image + benign + malignant heatmaps).
        modality_dropout: per-view drop rates; joint and shared only.
        gradient_blending: add per-view heads and the blended loss; joint and shared only.
        blend_weights: fixed weights {joint, cc, mlo}; default equal thirds.
        noise_std: training-only Gaussian input noise of each column.
    """

    variant: str
    input_channels: int = 1
    modality_dropout: ModalityDropoutConfig | None = None
    gradient_blending: bool = False
    blend_weights: Mapping[str, float] | None = field(default=None)
    noise_std: float = DEFAULT_NOISE_STD

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"model variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.input_channels not in (1, 3):
            raise ValueError(
                f"input_channels must be 1 (image) or 3 (image + heatmaps), got "
                f"{self.input_channels!r}"
            )
        if not (isinstance(self.noise_std, (int, float)) and math.isfinite(self.noise_std)):
            raise ValueError(f"noise_std must be a finite number, got {self.noise_std!r}")
        if self.modality_dropout is not None and self.variant not in _TWO_VIEW_REGULARISED:
            raise ValueError(
                f"modality_dropout needs a fused two-view model {_TWO_VIEW_REGULARISED}, "
                f"got variant {self.variant!r}"
            )
        if self.gradient_blending and self.variant not in _TWO_VIEW_REGULARISED:
            raise ValueError(
                f"gradient_blending needs a fused two-view model {_TWO_VIEW_REGULARISED}, "
                f"got variant {self.variant!r}"
            )


def _as_dropout_config(
    value: ModalityDropoutConfig | Sequence[float] | Mapping[str, object] | None,
) -> ModalityDropoutConfig | None:
    if value is None or isinstance(value, ModalityDropoutConfig):
        return value
    if isinstance(value, Mapping):
        return ModalityDropoutConfig(**value)
    if isinstance(value, Sequence) and len(value) == 2:
        return ModalityDropoutConfig(float(value[0]), float(value[1]))
    raise ValueError(
        "modality_dropout must be a ModalityDropoutConfig, a pair (p_cc, p_mlo) or a mapping "
        f"with p_cc, p_mlo[, scaling]; got {value!r}"
    )


def build_model_from_config(config: ModelConfig) -> MammoModel:
    """Construct the model a :class:`ModelConfig` describes (fresh default initialisation)."""
    c = config
    if c.variant in ("uni_cc", "uni_mlo"):
        return UniViewModel(c.variant[4:], c.input_channels, c.noise_std)
    if c.variant == "split":
        return SplitModel(c.input_channels, c.noise_std)
    cls = JointModel if c.variant == "joint" else SharedModel
    return cls(
        c.input_channels, c.modality_dropout, c.gradient_blending, c.blend_weights, c.noise_std
    )


def build_model(
    variant: str,
    *,
    input_channels: int = 1,
    modality_dropout: ModalityDropoutConfig | Sequence[float] | Mapping[str, object] | None = None,
    gradient_blending: bool = False,
    blend_weights: Mapping[str, float] | None = None,
    pretraining: tuple[object, object] | None = None,
    noise_std: float = DEFAULT_NOISE_STD,
) -> MammoModel:
    """Build one of the paper's models.

    Args:
        variant: ``"uni_cc"``, ``"uni_mlo"``, ``"joint"``, ``"shared"`` or ``"split"``.
        input_channels: 1 (image) or 3 (image + benign + malignant heatmaps).
        modality_dropout: ``ModalityDropoutConfig``, ``(p_cc, p_mlo)`` or a mapping; joint/shared.
        gradient_blending: add heads on ``h_cc`` / ``h_mlo`` and blend the loss; joint/shared.
        blend_weights: ``{"joint": w, "cc": w, "mlo": w}``; default equal thirds.
        pretraining: ``(cc_checkpoint, mlo_checkpoint)`` of trained uni-view models (paths or
            state dicts): initialise and freeze columns + FCs, train only the output layer
            (joint only; see :func:`mammo_models.regularizers.apply_pretraining`).
        noise_std: training-only Gaussian input noise std of each column (0.01).

    Returns:
        A :class:`MammoModel`: ``model(batch) -> {"logits": (B, 2), ...}``.
    """
    config = ModelConfig(
        variant=variant,
        input_channels=input_channels,
        modality_dropout=_as_dropout_config(modality_dropout),
        gradient_blending=gradient_blending,
        blend_weights=blend_weights,
        noise_std=noise_std,
    )
    model = build_model_from_config(config)
    if pretraining is not None:
        from .regularizers.pretraining import apply_pretraining

        if not (isinstance(pretraining, (tuple, list)) and len(pretraining) == 2):
            raise ValueError(
                f"pretraining must be a pair (cc_checkpoint, mlo_checkpoint), got {pretraining!r}"
            )
        apply_pretraining(model, pretraining[0], pretraining[1])
    return model


def param_groups(model: MammoModel) -> ParamGroups:
    """``lca_toolkit.ParamGroups`` of a mammography model, from its ``group_prefixes()``."""
    from lca_toolkit import ParamGroups

    return ParamGroups.from_prefixes(model, model.group_prefixes())

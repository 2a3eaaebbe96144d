"""The paper's regularisers (section 6.2): Pretraining, Modality Dropout, Split LR, Gradient Blending."""

from .gradient_blending import (
    HeadMetrics,
    average_blend_weights,
    blend_weight_tensor,
    equal_blend_weights,
    estimate_blend_weights,
)
from .modality_dropout import ModalityDropout, ModalityDropoutConfig, draw_keep_masks
from .pretraining import apply_pretraining
from .split_lr import sample_split_lr_alphas, split_lr_param_groups

__all__ = [
    "HeadMetrics",
    "ModalityDropout",
    "ModalityDropoutConfig",
    "apply_pretraining",
    "average_blend_weights",
    "blend_weight_tensor",
    "draw_keep_masks",
    "equal_blend_weights",
    "estimate_blend_weights",
    "sample_split_lr_alphas",
    "split_lr_param_groups",
]

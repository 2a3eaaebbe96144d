"""mammo_models: the multi-view mammography models of Wu et al. (MIDL 2020).

ResNet-22 columns compatible with the public NYU weights, the model variants (uni-view CC/MLO,
Joint, Shared and Split ResNet), the regularisers (Pretraining, Modality Dropout, Split Learning
Rates, Gradient Blending) and the per-sample loss the LCA recorder uses::

    model = mammo_models.build_model("joint")
    loss_fn = lambda model, batch: mammo_models.per_sample_loss(model(batch), batch)
    groups = mammo_models.param_groups(model)  # cc, mlo, shared

The data subpackage (``mammo_models.data``) is imported on its own; importing this package does
not load it.
"""

from .heads import HIDDEN_DIM, TASKS, ViewProjection, output_layer
from .losses import BLEND_HEADS, per_sample_loss
from .nyu_weights import CheckpointError, load_nyu_column
from .regularizers import (
    HeadMetrics,
    ModalityDropout,
    ModalityDropoutConfig,
    apply_pretraining,
    average_blend_weights,
    estimate_blend_weights,
    sample_split_lr_alphas,
    split_lr_param_groups,
)
from .resnet22 import FEATURE_DIM, ResNet22, feature_map_size, resnet22
from .variants import (
    VARIANTS,
    JointModel,
    MammoModel,
    ModelConfig,
    SharedModel,
    SplitModel,
    UniViewModel,
    build_model,
    build_model_from_config,
    mean_probability_logits,
    param_groups,
)

__all__ = [
    "BLEND_HEADS",
    "FEATURE_DIM",
    "HIDDEN_DIM",
    "TASKS",
    "VARIANTS",
    "CheckpointError",
    "HeadMetrics",
    "JointModel",
    "MammoModel",
    "ModalityDropout",
    "ModalityDropoutConfig",
    "ModelConfig",
    "ResNet22",
    "SharedModel",
    "SplitModel",
    "UniViewModel",
    "ViewProjection",
    "apply_pretraining",
    "average_blend_weights",
    "build_model",
    "build_model_from_config",
    "estimate_blend_weights",
    "feature_map_size",
    "load_nyu_column",
    "mean_probability_logits",
    "output_layer",
    "param_groups",
    "per_sample_loss",
    "resnet22",
    "sample_split_lr_alphas",
    "split_lr_param_groups",
]

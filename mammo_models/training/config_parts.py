"""The parts of a mammography run's configuration: presets, data source, recording, regularisers.

Each part is a frozen dataclass whose fields are declared as ``lca-run`` options
(:func:`lca_toolkit.options.option`); :class:`~mammo_models.training.config.ExperimentConfig`
composes them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from lca_toolkit.options import option
from lca_toolkit.quadrature import RULE_NAMES

from ..data.synthetic import TESTBEDS

SPLIT_LR_PARTS: tuple[str, ...] = ("cc", "mlo", "shared")
"""The components of Split Learning Rates, in the order ``--alphas`` takes them."""

REGULARIZERS: tuple[str, ...] = (
    "none",
    "pretraining",
    "modality_dropout",
    "split_lr",
    "gradient_blending",
)


LCA_SETS: tuple[str, ...] = ("fixed-train", "epoch", "val")
"""Which breasts form the LCA evaluation subset E (``--lca-set``; see :class:`RecordConfig`)."""
FEEDS: tuple[str, ...] = ("auto", "workers", "device")
"""Where training images are resized, cut and standardised: ``workers`` (float32 on the CPU, the
reference path), ``device`` (workers send integer images, the training device does the rest; see
:mod:`mammo_models.data.prepare`), ``auto`` (``device`` on CUDA without heatmaps, else ``workers``)."""


class ConfigError(ValueError):
    """An experiment option has a bad value; the message names the option."""


def _is_int(value: object) -> bool:
    """A whole number given as an int (not a bool, not a float such as 6.0)."""
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class TrainPreset:
    """Training-side settings of a named preset (the data side lives in ``mammo_models.data``).

    Attributes:
        name: ``tiny``, ``small``, ``demo`` or ``paper``.
        epochs: default epochs (the paper: 100; Modality Dropout 150; Pretraining 50).
        lca_every: k, optimizer steps between LCA snapshots (the paper: 60).
        lca_subset: breasts in the LCA evaluation subset E, drawn with the epoch's prevalence
            (the paper: 970 exams, 10% of an epoch); see :attr:`RecordConfig.lca_set`.
        eval_batch_size: batch size of evaluation and LCA passes.
        tta: test-time augmentations per breast (the paper: 10).
        blend_epochs: epochs of each model of the Gradient Blending estimation phase.
        checkpoint_every: optimizer steps between mid-epoch checkpoints (0: at epoch ends only).
    """

    name: str
    epochs: int
    lca_every: int
    lca_subset: int
    eval_batch_size: int
    tta: int = 10
    blend_epochs: int = 4
    checkpoint_every: int = 0

    def epochs_for(self, regularizer: str) -> int:
        """The paper trains Modality Dropout 1.5x and Pretraining 0.5x as long as the baseline."""
        factor = {"modality_dropout": 1.5, "pretraining": 0.5}.get(regularizer, 1.0)
        return max(1, math.ceil(self.epochs * factor))


TRAIN_PRESETS: dict[str, TrainPreset] = {
    "tiny": TrainPreset(
        "tiny", epochs=2, lca_every=3, lca_subset=8, eval_batch_size=8, tta=2, blend_epochs=2
    ),
    "small": TrainPreset(
        "small", epochs=10, lca_every=15, lca_subset=24, eval_batch_size=16, tta=10, blend_epochs=3
    ),
    "demo": TrainPreset(
        "demo", epochs=8, lca_every=15, lca_subset=24, eval_batch_size=16, tta=10, blend_epochs=4
    ),
    "paper": TrainPreset(
        "paper",
        epochs=100,
        lca_every=60,
        lca_subset=970,
        eval_batch_size=4,
        tta=10,
        blend_epochs=100,
    ),
}


@dataclass(frozen=True)
class DataSource:
    """Where the breasts come from: the bundled synthetic set or a user's manifest.

    A manifest given without ``kind="manifest"`` makes the source the manifest.

    Attributes:
        kind: ``synthetic`` or ``manifest``.
        manifest: CSV/Parquet manifest (``kind == "manifest"``).
        data_root: directory the manifest's paths are relative to (default: the manifest's folder).
        synthetic_root: where the synthetic set is generated and cached.
        heatmaps: feed the benign/malignant heatmap channels (3 input channels).
        testbed: the planted cause of the synthetic set (``cue-mlo``, ``cue-cc``, ``balanced``,
            ``mlo-blind``, ``lesion-mlo``; see :data:`mammo_models.data.TESTBEDS`); ignored for a
            manifest.
        skip_bad_images: decode every image (and, with ``heatmaps``, every heatmap) before
            training and leave out the breasts whose files cannot be decoded (counted, stored in
            the run's attrs) instead of stopping at the first one mid-run.
    """

    kind: str = option(
        "synthetic",
        flag="--data",
        choices=("synthetic", "manifest"),
        help="The bundled synthetic testbed or your --manifest.",
    )
    manifest: Path | None = option(
        None,
        flag="--manifest",
        type=Path,
        path="file",
        exists=True,
        help="CSV/Parquet manifest, one row per image (see README).",
    )
    data_root: Path | None = option(
        None,
        flag="--data-root",
        type=Path,
        path="dir",
        exists=True,
        help="Directory the manifest's image paths are relative to.",
        default_text="the manifest's folder",
    )
    synthetic_root: Path = option(
        Path("data/synthetic"),
        flag="--synthetic-root",
        path="dir",
        help="Cache of the generated synthetic data.",
    )
    heatmaps: bool = option(
        False, flag="--heatmaps", help="Feed the benign/malignant heatmap channels (3 inputs)."
    )
    skip_bad_images: bool = option(
        False,
        flag="--skip-bad-images",
        help="Decode every image (and heatmap, with --heatmaps) first; leave out (and count) "
        "breasts whose files cannot be decoded instead of stopping at the first one.",
    )
    testbed: str = option(
        "cue-mlo",
        flag="--testbed",
        choices=tuple(TESTBEDS),
        help="Planted cause of view imbalance in the synthetic data: a shortcut cue in MLO "
        "(cue-mlo) or CC (cue-cc), none (balanced), an MLO view without lesions (mlo-blind), or "
        "lesions at half contrast in CC in every split (lesion-mlo).",
    )

    def __post_init__(self) -> None:
        if self.manifest is not None and self.kind == "synthetic":
            object.__setattr__(self, "kind", "manifest")


@dataclass(frozen=True)
class RecordConfig:
    """What the Tracker records (``lca_every=None`` and ``lca_subset=None`` take the preset's).

    ``bn_policy`` defaults to ``train`` here, unlike the generic Tracker: with batches of 4 the
    running BatchNorm statistics lag far behind the batch statistics the optimizer trains with, so
    an eval-mode L_E (``interpolate``) is dominated by the drift of those statistics (the
    ``bn_buffers`` group takes most of the loss reduction and a view column can even look
    harmful). Train-mode BN on the fixed LCA batches measures the loss the optimizer actually
    lowers, which is the question the paper asks of the CC and MLO columns.

    ``quadrature`` defaults to the adaptive rule with ``rel_tol`` 1% and at most ``max_panels``
    8 panels: at the learning rates the recipes train with (up to 1e-3), Simpson's fixed two
    passes left residuals of 6-13% of the loss change in the median interval, which would be
    the size of the effects the figures compare; the adaptive rule stops as soon as the
    residual is within 1%, so it pays for accuracy only where the loss is curved
    (BENCHMARKS.md has its passes per interval).

    ``on_nonfinite``: a NaN/Inf loss or gradient ``stop``s the run (the store keeps every row
    and is marked ``failed`` with the step and groups) or the step is ``skip``ped and counted.

    ``lca_set`` chooses the breasts of E, each with centred windows and at most ``lca_subset``
    of them, half with a finding and half without where possible (SPEC 4):

    * ``fixed-train``: a fixed subset of the training set, drawn once (the paper's choice);
    * ``epoch``: the breasts of the current epoch (appendix A), so E changes at every epoch
      boundary; an interval is closed there and the next one starts on the new E (one extra
      gradient pass per epoch). An epoch larger than ``lca_subset`` (the paper's: about 10x) is
      represented by a seeded subset of ``lca_subset`` of its breasts, to bound the cost of a
      pass; shrinking the epochs themselves is a training choice, not a recording one;
    * ``val``: a fixed subset of the validation split: which group lowered the loss on data it
      was not trained on.

    ``lca_epochs`` (``--lca-epochs``): LCA is recorded during the first ``lca_epochs`` epochs
    only, then the LCA engine is released (:meth:`lca_toolkit.Tracker.stop_lca`, which closes
    the open interval at that epoch boundary) while gradient norms go on every step; the paper
    (appendix A) recorded LCA for about six epochs of its shrunk epochs. ``None``: LCA over the
    whole run.
    """

    lca: bool = option(
        True,
        flag="--lca",
        off_flag="--no-lca",
        help="Record LCA beside the gradient norms, or (--no-lca) gradient norms only.",
    )
    lca_every: int | None = option(
        None,
        flag="--lca-every",
        type=int,
        min=1,
        help="Optimizer steps between LCA snapshots.",
        default_text="the preset's",
    )
    lca_subset: int | None = option(
        None,
        flag="--lca-subset",
        type=int,
        min=2,
        help="Breasts in the LCA subset E, at most.",
        default_text="the preset's",
    )
    lca_set: str = option(
        "fixed-train",
        flag="--lca-set",
        choices=LCA_SETS,
        help="Breasts of E: a fixed-train subset drawn once, the current epoch's (E changes at "
        "each epoch; intervals end there), or a fixed val subset (loss on held-out data).",
    )
    quadrature: str = option(
        "adaptive",
        flag="--quadrature",
        choices=RULE_NAMES,
        help="LCA quadrature rule (adaptive: composite Simpson doubling its panels until the "
        "residual is within --rel-tol of the loss change, at most --max-panels panels).",
    )
    rel_tol: float = option(
        0.01,
        flag="--rel-tol",
        min=0,
        help="Adaptive rule: target |residual| / |loss change| per interval.",
    )
    max_panels: int = option(
        8,
        flag="--max-panels",
        choices=(1, 2, 4, 8, 16, 32),
        help="Adaptive rule: most Simpson panels per interval (2 x panels gradient passes).",
    )
    bn_policy: str = option(
        "train",
        flag="--bn-policy",
        choices=("train", "interpolate", "none"),
        help="BatchNorm in LCA passes: train mode on the fixed batches, or eval mode with the "
        "running statistics interpolated (their share goes to a bn_buffers group).",
    )
    on_nonfinite: str = option(
        "stop",
        flag="--on-nonfinite",
        choices=("stop", "skip"),
        help="A NaN/Inf loss or gradient stops the run (naming step and groups) or skips the "
        "step (counted in the store).",
    )
    ablation_every: int | None = option(
        None,
        flag="--ablation-every",
        type=int,
        min=1,
        metavar="K",
        help="Every K steps, each view's Shapley contribution to the loss on E: the loss with "
        "the CC view, the MLO view and both replaced by their mean over E (the store's table "
        "ablation); two-view models.",
        default_text="off",
    )
    lca_epochs: int | None = option(
        None,
        flag="--lca-epochs",
        type=int,
        min=1,
        metavar="N",
        help="Record LCA during the first N epochs only (the open interval is closed at their "
        "end), gradient norms for the whole run; the paper recorded LCA for about 6 epochs "
        "(appendix A).",
        default_text="the whole run",
    )


@dataclass(frozen=True)
class RegularizerConfig:
    """Options of the paper's regularisers (section 6.2, appendices B-C).

    Attributes:
        modality_dropout: ``(p_cc, p_mlo)`` drop rates of the 512-d view representations.
        dropout_scaling: ``none`` (the paper) or ``inverted``.
        split_lr_alphas: ``{"cc": a, "mlo": a, "shared": a}``: each component trains at
            ``lr * 10**a``; ``None`` samples them from U[-1, 1] with the run's seed.
        pretrained_cc, pretrained_mlo: checkpoints of uni-view models (``best.pt`` of
            ``uni_cc`` / ``uni_mlo`` runs) for Pretraining.
        blend_weights: ``(w_joint, w_cc, w_mlo)``; ``None`` estimates them first.
        blend_metric: ``loss`` or ``auc`` for the estimation (appendix C).
    """

    modality_dropout: tuple[float, float] | None = option(
        None,
        flag="--dropout",
        nargs=2,
        type=float,
        min=0,
        max=1,
        max_open=True,
        metavar="P_CC P_MLO",
        help="Modality Dropout rates (with --regularizer modality_dropout).",
    )
    dropout_scaling: str = option(
        "none",
        flag="--dropout-scaling",
        choices=("none", "inverted"),
        help="Scale kept views by 1/keep-rate (inverted) or not (the paper).",
    )
    split_lr_alphas: dict[str, float] | None = option(
        None,
        flag="--alphas",
        nargs=3,
        type=float,
        min=-1,
        max=1,
        metavar="A_CC A_MLO A_SHARED",
        help="Split Learning Rates exponents: lr * 10**alpha.",
        default_text="sampled from U[-1, 1]",
        to_field=lambda a: dict(zip(SPLIT_LR_PARTS, a, strict=True)),
        to_flag=lambda d: tuple(d[k] for k in SPLIT_LR_PARTS),
    )
    pretrained_cc: Path | None = option(
        None,
        flag="--pretrained-cc",
        type=Path,
        path="file",
        exists=True,
        help="best.pt of a uni_cc run (Pretraining).",
    )
    pretrained_mlo: Path | None = option(
        None,
        flag="--pretrained-mlo",
        type=Path,
        path="file",
        exists=True,
        help="best.pt of a uni_mlo run (Pretraining).",
    )
    blend_weights: tuple[float, float, float] | None = option(
        None,
        flag="--blend-weights",
        nargs=3,
        type=float,
        min=0,
        metavar="W_JOINT W_CC W_MLO",
        help="Gradient Blending weights.",
        default_text="estimated first, appendix C",
    )
    blend_metric: str = option(
        "loss",
        flag="--blend-metric",
        choices=("loss", "auc"),
        help="Metric of the Gradient Blending estimation.",
    )

    def __post_init__(self) -> None:
        if (self.pretrained_cc is None) != (self.pretrained_mlo is None):
            raise ConfigError("give both --pretrained-cc and --pretrained-mlo")

    @property
    def pretrained(self) -> tuple[Path, Path] | None:
        """``(cc_checkpoint, mlo_checkpoint)`` for Pretraining, or ``None``."""
        if self.pretrained_cc is None or self.pretrained_mlo is None:
            return None
        return (self.pretrained_cc, self.pretrained_mlo)

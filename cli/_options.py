"""Click options shared by several ``lca-run`` commands (``mammo``, ``sweep``, ``job``, ``recipe``).

One definition per option keeps the choices, defaults and help of a flag the same everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from lca_toolkit.quadrature import RULE_NAMES
from mammo_models import VARIANTS
from mammo_models.data import TESTBEDS
from mammo_models.training import LCA_SETS, REGULARIZERS, TRAIN_PRESETS, RecordConfig

on_nonfinite_option = click.option(
    "--on-nonfinite",
    type=click.Choice(["stop", "skip"]),
    default="stop",
    show_default=True,
    help="A NaN/Inf loss or gradient stops the run (naming step and groups) or skips the step "
    "(counted in the store).",
)
"""``--on-nonfinite``, shared by ``lca-run mammo``, ``sweep`` and ``job``."""

tensorboard_option = click.option(
    "--tensorboard",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also write the recorded scalars (gradient norms, LCA, residual) as TensorBoard events "
    "here while the run goes (needs lca-toolkit[tensorboard]); the store stays the record.",
)
"""``--tensorboard DIR``, shared by ``lca-run mammo`` and ``job``: ``Tracker(mirror=...)``."""


def mirror_spec(tensorboard: Path | None) -> str | None:
    """The Tracker's ``mirror=`` for ``--tensorboard DIR``."""
    return None if tensorboard is None else f"tensorboard:{tensorboard}"


TESTBED_HELP = (
    "Planted cause of view imbalance in the synthetic data: a shortcut cue in MLO "
    "(cue-mlo) or CC (cue-cc), none (balanced), an MLO view without lesions (mlo-blind), or "
    "lesions at half contrast in CC in every split (lesion-mlo)."
)


def testbed_option(help: str = TESTBED_HELP) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--testbed``: one choice list and default for every command; ``help`` says what it does there."""
    return click.option(
        "--testbed",
        type=click.Choice(list(TESTBEDS)),
        default="cue-mlo",
        show_default=True,
        help=help,
    )


def common_training_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by ``lca-run mammo`` and ``lca-run sweep``."""
    options = [
        click.option(
            "--model",
            "variant",
            type=click.Choice(VARIANTS),
            default="joint",
            show_default=True,
            help="Model variant (paper section 4 and 6.1).",
        ),
        click.option(
            "--regularizer",
            type=click.Choice(REGULARIZERS),
            default="none",
            show_default=True,
            help="Regulariser of the Joint ResNet (section 6.2).",
        ),
        click.option(
            "--data",
            "data_kind",
            type=click.Choice(["synthetic", "manifest"]),
            default="synthetic",
            show_default=True,
            help="The bundled synthetic testbed or your --manifest.",
        ),
        click.option(
            "--manifest",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="CSV/Parquet manifest, one row per image (see README).",
        ),
        click.option(
            "--data-root",
            type=click.Path(exists=True, file_okay=False, path_type=Path),
            help="Directory the manifest's image paths are relative to [default: the manifest's folder].",
        ),
        click.option(
            "--synthetic-root",
            type=click.Path(file_okay=False, path_type=Path),
            default=Path("data/synthetic"),
            show_default=True,
            help="Cache of the generated synthetic data.",
        ),
        testbed_option(),
        click.option(
            "--heatmaps",
            is_flag=True,
            help="Feed the benign/malignant heatmap channels (3 inputs).",
        ),
        click.option(
            "--skip-bad-images",
            is_flag=True,
            help="Decode every image (and heatmap, with --heatmaps) first; leave out (and count) "
            "breasts whose files cannot be decoded instead of stopping at the first one.",
        ),
        click.option(
            "--preset",
            type=click.Choice(list(TRAIN_PRESETS)),
            default="demo",
            show_default=True,
            help="What a run takes on 2 CPU cores, measured: tiny (tests: 2 epochs in 10 s on idle "
            "cores, 28-82 s beside other work), small (make figures: 48-54 s a uni-view run, "
            "63-135 s a Joint ResNet with LCA), demo (make demo: 3 min 49 s on idle cores), paper "
            "(full resolution: use a GPU).",
        ),
        click.option(
            "--lr",
            type=click.FloatRange(min=0, min_open=True),
            default=1e-4,
            show_default=True,
            help="Adam learning rate (the base rate for split_lr).",
        ),
        click.option(
            "--epochs", type=click.IntRange(min=1), help="Epochs [default: the preset's]."
        ),
        click.option(
            "--batch-size",
            type=click.IntRange(min=1),
            default=4,
            show_default=True,
            help="Batch size.",
        ),
        click.option(
            "--lca-every",
            type=click.IntRange(min=1),
            help="Optimizer steps between LCA snapshots [default: the preset's].",
        ),
        click.option(
            "--lca-subset",
            type=click.IntRange(min=2),
            help="Breasts in the LCA subset E, at most [default: the preset's].",
        ),
        click.option(
            "--lca-set",
            type=click.Choice(LCA_SETS),
            default="fixed-train",
            show_default=True,
            help="Breasts of E: a fixed-train subset drawn once, the current epoch's (E changes at "
            "each epoch; intervals end there), or a fixed val subset (loss on held-out data).",
        ),
        click.option(
            "--lca-epochs",
            type=click.IntRange(min=1),
            metavar="N",
            help="Record LCA during the first N epochs only (the open interval is closed at "
            "their end), gradient norms for the whole run; the paper recorded LCA for about 6 "
            "epochs (appendix A) [default: the whole run].",
        ),
        click.option(
            "--epoch-breasts",
            type=click.IntRange(min=2),
            metavar="N",
            help="Breasts per epoch, drawn fresh every epoch in a full epoch's proportion of "
            "positives and negatives; the paper's LCA runs used 970 exams, 10% of a full epoch "
            "(appendix A) [default: a full epoch: every positive plus as many negatives].",
        ),
        click.option("--no-lca", is_flag=True, help="Record gradient norms only."),
        click.option(
            "--quadrature",
            type=click.Choice(RULE_NAMES),
            default="adaptive",
            show_default=True,
            help="LCA quadrature rule (adaptive: composite Simpson doubling its panels until the "
            "residual is within --rel-tol of the loss change, at most --max-panels panels).",
        ),
        click.option(
            "--rel-tol",
            type=click.FloatRange(min=0),
            default=RecordConfig.rel_tol,
            show_default=True,
            help="Adaptive rule: target |residual| / |loss change| per interval.",
        ),
        click.option(
            "--max-panels",
            type=click.Choice(["1", "2", "4", "8", "16", "32"]),
            default=str(RecordConfig.max_panels),
            show_default=True,
            help="Adaptive rule: most Simpson panels per interval (2 x panels gradient passes).",
        ),
        click.option(
            "--bn-policy",
            type=click.Choice(["train", "interpolate", "none"]),
            default="train",
            show_default=True,
            help="BatchNorm in LCA passes: train mode on the fixed batches, or eval mode with the "
            "running statistics interpolated (their share goes to a bn_buffers group).",
        ),
        on_nonfinite_option,
        click.option(
            "--dropout",
            nargs=2,
            type=click.FloatRange(0, 1, max_open=True),
            metavar="P_CC P_MLO",
            help="Modality Dropout rates (with --regularizer modality_dropout).",
        ),
        click.option(
            "--dropout-scaling",
            type=click.Choice(["none", "inverted"]),
            default="none",
            show_default=True,
            help="Scale kept views by 1/keep-rate (inverted) or not (the paper).",
        ),
        click.option(
            "--alphas",
            nargs=3,
            type=click.FloatRange(-1, 1),
            metavar="A_CC A_MLO A_SHARED",
            help="Split Learning Rates exponents: lr * 10**alpha [default: sampled from U[-1, 1]].",
        ),
        click.option(
            "--pretrained-cc",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="best.pt of a uni_cc run (Pretraining).",
        ),
        click.option(
            "--pretrained-mlo",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="best.pt of a uni_mlo run (Pretraining).",
        ),
        click.option(
            "--blend-weights",
            nargs=3,
            type=click.FloatRange(min=0),
            metavar="W_JOINT W_CC W_MLO",
            help="Gradient Blending weights [default: estimated first, appendix C].",
        ),
        click.option(
            "--blend-metric",
            type=click.Choice(["loss", "auc"]),
            default="loss",
            show_default=True,
            help="Metric of the Gradient Blending estimation.",
        ),
        click.option(
            "--device", default="auto", show_default=True, help="cpu, cuda, cuda:N or auto."
        ),
        click.option(
            "--workers",
            type=click.IntRange(min=0),
            default=0,
            show_default=True,
            help="DataLoader workers.",
        ),
        click.option(
            "--feed",
            type=click.Choice(["auto", "workers", "device"]),
            default="auto",
            show_default=True,
            help="Where training images are resized and standardised: by the workers (float32 "
            "on the CPU) or on the training device from compact integer images; auto = device "
            "on CUDA.",
        ),
        click.option(
            "--checkpoint-every",
            type=click.IntRange(min=0),
            help="Optimizer steps between mid-epoch checkpoints; 0 = at epoch ends only "
            "[default: the preset's].",
        ),
        click.option(
            "--max-steps",
            type=click.IntRange(min=1),
            help="Stop after N optimizer steps (quick checks).",
        ),
        click.option(
            "--sync-bn",
            is_flag=True,
            help="Under torchrun, train BatchNorm with torch's SyncBatchNorm over the global batch "
            "(CUDA only; LCA passes still normalise each batch on its own).",
        ),
        click.option("--quiet", is_flag=True, help="No progress bar."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn

"""Configuration of one mammography training run, and how a stored run's settings are compared.

One dataclass per concern (:mod:`.config_parts`: presets, data, recording, regularisers), composed
into :class:`ExperimentConfig`. Every field a user sets is declared as its ``lca-run`` option
(:func:`lca_toolkit.options.option`), so the command line, the stored config (JSON in the store's
``config.experiment``) and ``--resume`` all come from these declarations.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lca_toolkit import RunDir
from lca_toolkit.options import flag_values, from_plain, option, resumable, to_plain

from ..data.synthetic import TESTBEDS
from ..variants import VARIANTS
from .config_parts import (
    FEEDS,
    LCA_SETS,
    REGULARIZERS,
    SPLIT_LR_PARTS,
    TRAIN_PRESETS,
    ConfigError,
    DataSource,
    RecordConfig,
    RegularizerConfig,
    TrainPreset,
    _is_int,
)

__all__ = [
    "BLEND_SIDE",
    "FEEDS",
    "LCA_SETS",
    "REGULARIZERS",
    "RESUMABLE",
    "SPLIT_LR_PARTS",
    "TRAIN_PRESETS",
    "ConfigError",
    "DataSource",
    "ExperimentConfig",
    "RecordConfig",
    "RegularizerConfig",
    "TrainPreset",
    "run_dir",
    "run_settings",
    "same_run",
]

BLEND_SIDE = "blend"
"""The side folder ``<out>.blend`` of a run: its Gradient Blending estimation runs."""


def run_dir(out: str | Path) -> RunDir:
    """The files of the mammography run whose store is ``out`` (with its blending side folder)."""
    return RunDir(Path(out), sides=(BLEND_SIDE,))


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything that defines one training run.

    Attributes:
        out: the run store (``.zarr``); checkpoints go to ``<out>.ckpt/``.
        variant: ``uni_cc``, ``uni_mlo``, ``joint``, ``shared`` or ``split``.
        regularizer: one of :data:`REGULARIZERS` (applied to the Joint ResNet in the paper).
        preset: ``tiny``, ``small``, ``demo`` or ``paper``.
        lr: Adam learning rate (the base rate for Split Learning Rates).
        epochs: ``None`` = the preset's (scaled for Modality Dropout and Pretraining).
        batch_size: 4 in the paper.
        seed: seeds the model's initialisation, the epoch sampler, window jitter and the LCA
            subset.
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.
        num_workers: DataLoader worker processes.
        checkpoint_every: optimizer steps between mid-epoch checkpoints (``None``: the preset's;
            0: at epoch ends only).
        max_steps: stop after this many optimizer steps (``None`` = all epochs), then validate
            the partial epoch and test as usual; for quick checks.
        feed: one of :data:`FEEDS`; where training batches are resized and standardised.
        sync_bn: under DDP, train with ``torch.nn.SyncBatchNorm`` (CUDA only), so BatchNorm
            normalises over the global batch rather than each rank's share; LCA passes still
            normalise each of their batches on its own.
        epoch_breasts: breasts per epoch (``--epoch-breasts``), drawn fresh every epoch in a
            full epoch's proportion of positives and negatives: the paper's LCA runs (appendix
            A) used 970 exams, 10% of a full epoch, so that LCA at every 60 iterations covers
            several epochs. ``None``: full epochs (every positive plus as many negatives). At
            most the full epoch size, checked when the data are loaded.
    """

    out: Path
    variant: str = option(
        "joint",
        flag="--model",
        choices=tuple(VARIANTS),
        help="Model variant (paper section 4 and 6.1).",
    )
    regularizer: str = option(
        "none",
        flag="--regularizer",
        choices=REGULARIZERS,
        help="Regulariser of the Joint ResNet (section 6.2).",
    )
    preset: str = option(
        "demo",
        flag="--preset",
        choices=tuple(TRAIN_PRESETS),
        help="What a run takes on 2 CPU cores, measured: tiny (tests: 2 epochs in 10 s on idle "
        "cores, 28-82 s beside other work), small (make figures: 48-54 s a uni-view run, "
        "63-135 s a Joint ResNet with LCA), demo (make demo: 3 min 49 s on idle cores), paper "
        "(full resolution: use a GPU).",
    )
    lr: float = option(
        1e-4,
        flag="--lr",
        min=0,
        min_open=True,
        help="Adam learning rate (the base rate for split_lr).",
    )
    epochs: int | None = option(
        None, flag="--epochs", type=int, min=1, help="Epochs.", default_text="the preset's"
    )
    batch_size: int = option(4, flag="--batch-size", min=1, help="Batch size.")
    seed: int = option(0, flag="--seed", min=0, help="Training seed.")
    device: str = option("auto", flag="--device", resumable=True, help="cpu, cuda, cuda:N or auto.")
    num_workers: int = option(
        0, flag="--workers", min=0, resumable=True, help="DataLoader workers."
    )
    checkpoint_every: int | None = option(
        None,
        flag="--checkpoint-every",
        type=int,
        min=0,
        resumable=True,
        help="Optimizer steps between mid-epoch checkpoints; 0 = at epoch ends only.",
        default_text="the preset's",
    )
    max_steps: int | None = option(
        None,
        flag="--max-steps",
        type=int,
        min=1,
        resumable=True,
        help="Stop after N optimizer steps in all (quick checks).",
    )
    sync_bn: bool = option(
        False,
        flag="--sync-bn",
        help="Under torchrun, train BatchNorm with torch's SyncBatchNorm over the global batch "
        "(CUDA only; LCA passes still normalise each batch on its own).",
    )
    feed: str = option(
        "auto",
        flag="--feed",
        choices=FEEDS,
        resumable=True,
        help="Where training images are resized and standardised: by the workers (float32 "
        "on the CPU) or on the training device from compact integer images; auto = device "
        "on CUDA.",
    )
    epoch_breasts: int | None = option(
        None,
        flag="--epoch-breasts",
        type=int,
        min=2,
        metavar="N",
        help="Breasts per epoch, drawn fresh every epoch in a full epoch's proportion of "
        "positives and negatives; the paper's LCA runs used 970 exams, 10% of a full epoch "
        "(appendix A).",
        default_text="a full epoch: every positive plus as many negatives",
    )
    data: DataSource = field(default_factory=DataSource)
    record: RecordConfig = field(default_factory=RecordConfig)
    regularizers: RegularizerConfig = field(default_factory=RegularizerConfig)

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ConfigError(
                f"--model {self.variant!r} is unknown; expected one of {', '.join(VARIANTS)}"
            )
        if self.regularizer not in REGULARIZERS:
            raise ConfigError(
                f"--regularizer {self.regularizer!r} is unknown; expected one of {', '.join(REGULARIZERS)}"
            )
        if self.regularizer != "none" and self.variant != "joint":
            raise ConfigError(
                f"--regularizer {self.regularizer} applies to the Joint ResNet (as in the paper); "
                f"got --model {self.variant}"
            )
        if self.preset not in TRAIN_PRESETS:
            raise ConfigError(
                f"--preset {self.preset!r} is unknown; expected one of {', '.join(TRAIN_PRESETS)}"
            )
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"--lr must be a positive number, got {self.lr!r}")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.epochs is not None and self.epochs < 1:
            raise ConfigError(f"--epochs must be >= 1, got {self.epochs}")
        if self.data.kind not in ("synthetic", "manifest"):
            raise ConfigError(f"--data must be synthetic or manifest, got {self.data.kind!r}")
        if self.data.testbed not in TESTBEDS:
            raise ConfigError(
                f"--testbed {self.data.testbed!r} is unknown; expected one of {', '.join(TESTBEDS)}"
            )
        if self.record.on_nonfinite not in ("stop", "skip"):
            raise ConfigError(
                f"--on-nonfinite must be stop or skip, got {self.record.on_nonfinite!r}"
            )
        if self.feed not in FEEDS:
            raise ConfigError(
                f"--feed {self.feed!r} is unknown; expected one of {', '.join(FEEDS)}"
            )
        if self.record.lca_set not in LCA_SETS:
            raise ConfigError(
                f"--lca-set {self.record.lca_set!r} is unknown; expected one of {', '.join(LCA_SETS)}"
            )
        self._check_appendix_a()
        if self.record.ablation_every is not None and self.variant in ("uni_cc", "uni_mlo"):
            raise ConfigError(
                f"--ablation-every removes one view at a time; --model {self.variant} sees one view"
            )
        if self.data.kind == "manifest" and self.data.manifest is None:
            raise ConfigError("--data manifest needs --manifest FILE")
        if self.regularizer == "pretraining" and self.regularizers.pretrained is None:
            raise ConfigError(
                "--regularizer pretraining needs --pretrained-cc and --pretrained-mlo "
                "(best.pt of uni_cc and uni_mlo runs)"
            )
        if self.regularizer == "modality_dropout" and self.regularizers.modality_dropout is None:
            raise ConfigError(
                "--regularizer modality_dropout needs --dropout P_CC P_MLO (rates in [0, 1))"
            )

    def _check_appendix_a(self) -> None:
        """``--epoch-breasts`` and ``--lca-epochs`` (the full epoch size is checked with the data)."""
        n = self.epoch_breasts
        if n is not None and (not _is_int(n) or n < 2):
            raise ConfigError(f"--epoch-breasts must be an integer >= 2, got {n!r}")
        n = self.record.lca_epochs
        if n is not None and (not _is_int(n) or n < 1):
            raise ConfigError(f"--lca-epochs must be an integer >= 1, got {n!r}")
        if n is not None and not self.record.lca:
            raise ConfigError(
                f"--lca-epochs {n} limits LCA to the first epochs, but --no-lca records none; "
                "give one of --lca-epochs and --no-lca"
            )

    @property
    def train_preset(self) -> TrainPreset:
        return TRAIN_PRESETS[self.preset]

    @property
    def n_epochs(self) -> int:
        return (
            self.epochs
            if self.epochs is not None
            else self.train_preset.epochs_for(self.regularizer)
        )

    @property
    def run_dir(self) -> RunDir:
        """The run's files: store, checkpoints, blending side folder."""
        return run_dir(self.out)

    @property
    def checkpoint_dir(self) -> Path:
        return self.run_dir.checkpoint_dir

    def with_(self, **changes: Any) -> ExperimentConfig:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def resolved(self) -> ExperimentConfig:
        """This config with the preset's values written in, as a run stores it.

        ``epochs`` (scaled for Modality Dropout and Pretraining), ``checkpoint_every`` and, when
        LCA is recorded, ``record.lca_every`` and ``record.lca_subset`` take the preset's value
        where they are ``None``. A stored config so says what ran, and ``None`` keeps one meaning
        per field: no LCA, no step limit, full epochs, LCA to the end of the run. Idempotent.
        """
        tp, record = self.train_preset, self.record
        if record.lca or record.ablation_every is not None:  # both measure on E
            record = replace(
                record,
                lca_every=(tp.lca_every if record.lca_every is None else record.lca_every)
                if record.lca
                else None,
                lca_subset=tp.lca_subset if record.lca_subset is None else record.lca_subset,
            )
        every = tp.checkpoint_every if self.checkpoint_every is None else self.checkpoint_every
        return replace(self, epochs=self.n_epochs, checkpoint_every=every, record=record)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ExperimentConfig:
        """Rebuild a config from :meth:`to_dict` output (extra keys, such as results, ignored).

        Stores written before Pretraining's checkpoints became two fields keep them as
        ``regularizers.pretrained: [cc, mlo]``; they are read as the two fields.
        """
        d = dict(d)
        regs = dict(d.get("regularizers") or {})
        if regs.get("pretrained"):
            regs["pretrained_cc"], regs["pretrained_mlo"] = regs.pop("pretrained")
        d["regularizers"] = regs
        return from_plain(cls, d)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form stored with the run."""
        return to_plain(self)


RESUMABLE: frozenset[str] = resumable(ExperimentConfig)
"""Options a resumed run may change (declared ``resumable``); every other difference would mix
two experiments in one store."""


def run_settings(config: ExperimentConfig) -> dict[str, Any]:
    """What defines a run: its option values with the preset's written in, resumable ones left
    out. Two configs with equal settings train the same run."""
    values = flag_values(config.resolved())
    return {k: v for k, v in values.items() if k not in RESUMABLE}


def same_run(stored: Mapping[str, Any], config: ExperimentConfig) -> bool:
    """The run stored with settings ``stored`` (a store's ``config.experiment``) is ``config``'s.

    Compared as :func:`run_settings`: the preset's values written in, without what a resume may
    change or ``out`` (a runs folder named another way, relative or absolute, or moved, holds the
    same runs). Gradient Blending stores the weights it estimated: a config that estimates them
    (``blend_weights=None``) accepts any.
    """
    try:  # options added since the run was stored take their defaults
        got = run_settings(ExperimentConfig.from_dict(dict(stored)))
    except (ValueError, TypeError, KeyError):
        return False
    if config.regularizers.blend_weights is None:
        got["blend_weights"] = None
    return got == run_settings(config)

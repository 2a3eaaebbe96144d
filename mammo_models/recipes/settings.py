"""What every recipe shares: where runs and figures go, the data, the preset, the seeds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..training import LCA_SETS, ConfigError, DataSource, ExperimentConfig, RecordConfig

APPENDIX_A_FRACTION = 0.1
"""Appendix A's LCA runs drew 970 exams per epoch, 10% of the positives and of the negatives."""

SEARCHES: tuple[str, ...] = ("fixed", "paper")
"""``--search``: ``fixed`` trains each table row at one setting, ``paper`` runs the paper's
searches and reports the selected setting (:mod:`mammo_models.recipes.search`)."""


@dataclass(frozen=True)
class RecipeSettings:
    """Settings of ``lca-run recipe`` (and ``make figures``).

    The defaults follow the paper wherever its choice is stated, and fix what the paper chose by
    search where a search would not fit in the time ``make figures`` may take on 2 CPU cores
    (about an hour; the measured time is in BENCHMARKS.md; each departure is listed in
    ``figures/README.md``).

    Attributes:
        runs_dir: one run store per run, under ``<runs_dir>/<preset>/`` so presets never mix.
        figures_dir: where figures, tables and ``README.md`` are written.
        preset: ``small`` for ``make figures``; ``paper`` for the paper's scale.
        data: the bundled synthetic set, or a manifest of real data.
        device: ``cpu``, ``cuda`` or ``auto``.
        seeds: repetitions of every table row (3 in the paper).
        n_lr: learning rates per view for Figure 3 (10 in the paper).
        n_split_lr: sampled Split Learning Rates settings for Figure 8.
        lca_lrs: learning rates of the Joint ResNet LCA runs of Figures 4/5, 6 and 7.
        lca_seeds: seeds of every LCA setting (the verdicts need at least 3).
        lca_epochs: epochs with LCA recorded (``None``: the preset's, :attr:`lca_record_epochs`).
            The paper's findings on LCA concern the first 5 epochs; appendix A recorded LCA for
            about the first 6. Below the ``paper`` preset the LCA runs train only that long;
            at ``paper`` they train the whole schedule (the gradient-norm panel's "most of
            training") and record LCA for the first ``lca_epochs``.
        lca_set: E of the LCA runs (``None``: ``epoch`` at the ``paper`` preset, appendix A's
            samples of each epoch; ``fixed-train`` below it).
        epoch_breasts: breasts per epoch of the LCA runs (``None``: at the ``paper`` preset
            :data:`APPENDIX_A_FRACTION` of a full epoch, appendix A's 970 exams; below it full
            epochs).
        controls: testbeds whose Figure 4 runs are trained beside the main one; each planted
            one is contrasted with ``balanced`` in the instrument checks (synthetic data only).
        table_lr: learning rate of every table run under ``search="fixed"`` (the paper picked
            it per setting by search; appendix C trains Gradient Blending at 1e-4).
        dropout: ``(p_cc, p_mlo)`` of the Modality Dropout rows under ``search="fixed"`` (the
            paper took the best of a sweep of rates drawn from U[0, 1) per view).
        epochs: ``None`` for the preset's.
        num_workers: DataLoader workers of each run.
        search: ``fixed`` or ``paper`` (:data:`SEARCHES`); ``paper`` searches every table row:
            ``n_lr`` learning rates (uni-view, variants, Pretraining), ``n_dropout`` Modality
            Dropout rate pairs and ``n_split_lr`` Split Learning Rates sets at each of
            ``search_lrs``, Gradient Blending with each of ``blend_metrics``; all x ``seeds``.
        n_dropout: Modality Dropout rate pairs per base learning rate (10 in the paper).
        search_lrs: base learning rates of the Modality Dropout and Split Learning Rates
            searches (appendix B: 1e-5 and 1e-4).
        blend_metrics: Gradient Blending weight estimates compared by the search (appendix C
            compared the loss and the AUC).
    """

    runs_dir: Path = Path("runs/figures")
    figures_dir: Path = Path("figures")
    preset: str = "small"
    data: DataSource = field(default_factory=DataSource)
    device: str = "auto"
    seeds: tuple[int, ...] = (0, 1, 2)
    n_lr: int = 10
    n_split_lr: int = 10
    lca_lrs: tuple[float, float, float] = (1e-5, 1e-4, 1e-3)
    lca_seeds: tuple[int, ...] = (0, 1, 2)
    lca_epochs: int | None = None
    lca_set: str | None = None
    epoch_breasts: int | None = None
    controls: tuple[str, ...] = ("cue-cc", "balanced", "lesion-mlo")
    table_lr: float = 1e-4
    dropout: tuple[float, float] = (0.25, 0.5)
    epochs: int | None = None
    num_workers: int = 0
    search: str = "fixed"
    n_dropout: int = 10
    search_lrs: tuple[float, ...] = (1e-5, 1e-4)
    blend_metrics: tuple[str, ...] = ("loss", "auc")

    def __post_init__(self) -> None:
        """Bad values are one line naming the ``lca-run recipe`` option."""
        if self.search not in SEARCHES:
            raise ConfigError(
                f"--search {self.search!r} is unknown; expected one of {', '.join(SEARCHES)}"
            )
        if self.epochs is not None and self.epochs < 1:
            raise ConfigError(f"--epochs must be >= 1, got {self.epochs}")
        for option, n, low in (
            ("--lca-epochs", self.lca_epochs, 1),
            ("--epoch-breasts", self.epoch_breasts, 2),
        ):
            if n is not None and n < low:
                raise ConfigError(f"{option} must be >= {low}, got {n}")
        if self.lca_set is not None and self.lca_set not in LCA_SETS:
            raise ConfigError(
                f"--lca-set {self.lca_set!r} is unknown; expected one of {', '.join(LCA_SETS)}"
            )
        if not self.seeds:
            raise ConfigError("--seeds needs at least one seed")
        if not (self.table_lr > 0 and self.table_lr < float("inf")):
            raise ConfigError(f"--lr must be a positive number, got {self.table_lr!r}")
        if len(self.dropout) != 2 or not all(0 <= p < 1 for p in self.dropout):
            raise ConfigError(f"--dropout rates must lie in [0, 1), got {self.dropout}")
        counts = (
            ("--n-lr", self.n_lr),
            ("n_dropout", self.n_dropout),
            ("n_split_lr", self.n_split_lr),
        )
        for option, n in counts:
            if n < 1:
                raise ConfigError(f"{option} must be >= 1, got {n}")

    @property
    def appendix_a(self) -> bool:
        """The LCA runs follow appendix A's schedule (the ``paper`` preset)."""
        return self.preset == "paper"

    @property
    def lca_record_epochs(self) -> int:
        """Epochs with LCA recorded: :attr:`lca_epochs`, else 6 at ``paper`` (appendix A),
        else 5 (the span of the paper's LCA statements)."""
        if self.lca_epochs is not None:
            return self.lca_epochs
        return 6 if self.appendix_a else 5

    @property
    def lca_eval_set(self) -> str:
        """E of the LCA runs: :attr:`lca_set`, else ``epoch`` at ``paper``, else ``fixed-train``."""
        if self.lca_set is not None:
            return self.lca_set
        return "epoch" if self.appendix_a else "fixed-train"

    @property
    def testbed(self) -> str:
        """The main testbed's name, or ``manifest`` for a user's data."""
        return self.data.testbed if self.data.kind == "synthetic" else "manifest"

    @property
    def control_testbeds(self) -> tuple[str, ...]:
        """The controls that apply: none for a user's data or already the main testbed."""
        if self.data.kind != "synthetic":
            return ()
        return tuple(t for t in self.controls if t != self.data.testbed)

    @property
    def root(self) -> Path:
        """Folder of this preset's runs."""
        return Path(self.runs_dir) / self.preset

    def config(self, name: str, **fields: object) -> ExperimentConfig:
        """An :class:`ExperimentConfig` for run ``name`` (``fig3/uni_cc/lr00``) of these settings.

        LCA is off unless ``record=`` says otherwise: only Figures 4-7 need it.
        """
        base = ExperimentConfig(
            out=self.root / f"{name}.zarr",
            preset=self.preset,
            device=self.device,
            epochs=self.epochs,
            num_workers=self.num_workers,
            data=self.data,
            record=RecordConfig(lca=False),
        )
        return replace(base, **fields)  # type: ignore[arg-type]


@dataclass(frozen=True)
class RunSpec:
    """One run a recipe needs.

    Attributes:
        name: path of its store under ``settings.root`` without ``.zarr`` (unique; recipes that
            need the same run name it the same way, and it is trained once).
        build: returns the run's config; called only when every run in ``needs`` has finished,
            so it may read their results (e.g. the best setting of a sweep).
        needs: names of runs that must finish first.
        cost: relative training cost, for scheduling the longest runs first.
        soft_needs: a failed run in ``needs`` does not block this one, it only has to have
            ended: a search's selection leaves a setting with a failed (diverged) seed out and
            still selects among the others.
    """

    name: str
    build: Callable[[], ExperimentConfig]
    needs: tuple[str, ...] = ()
    cost: float = 1.0
    soft_needs: bool = False


COST: dict[str, float] = {
    "uni_cc": 0.5,
    "uni_mlo": 0.5,
    "joint": 1.0,
    "shared": 1.0,
    "split": 1.0,
    "pretraining": 0.6,
    "modality_dropout": 1.5,
    "split_lr": 1.0,
    "gradient_blending": 2.2,
    "lca": 1.6,
}
"""Rough training cost relative to a Joint ResNet run, for scheduling the longest first."""

"""``lca-run recipe mfeat``: the paper's question on real multi-view data (UCI Multiple Features).

Is the view that learns the most (the largest LCA share) the view that is best alone, and
does the weakest view get the smallest share? The runs, per seed:

* one uni-view model per view (``make_job(views=v)``): its test accuracy alone. Gradient norms
  only: a uni-view model has one tower and the head, so its LCA would split the loss change
  between the only view and the head, which answers nothing asked here;
* the six-view model (``make_job(views="all")``) with LCA every :data:`LCA_EVERY` steps (the
  adaptive rule), then input ablation of its final model on the TEST rows (six modalities: the
  probe's leave-one-out; a removed view becomes its mean over the test rows; the metric is
  per-sample accuracy), stored in the run's store as the table :data:`ABLATION`.

The job is the repository's ``examples/multiple_features.py`` (so the recipe runs from a clone),
loaded with :func:`lca_toolkit.job.load_job`. Stores go to ``RUNS/<preset>/mfeat/``; a finished
run with the same job settings is reused, an interrupted one continues from its checkpoint. The
runs are small (seconds each), so they train one after the other in this process.

The verdicts and numbers of ``FIGURES/mfeat/README.md`` are computed from the stores
(:mod:`.mfeat_stats`); the figures are drawn by :mod:`.render_mfeat`;
:mod:`.mfeat_make` does it all.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import mammo_models
from lca_toolkit import open_run
from lca_toolkit.ablation import AblationProbe, Modality, ablation_columns
from lca_toolkit.datasets.multiple_features import VIEWS
from lca_toolkit.job import Job, JobError, load_job, run_job
from lca_toolkit.rundir import RunDir
from lca_toolkit.store import RunWriter

from .settings import RecipeSettings

NAME = "mfeat"
EXAMPLE = Path(mammo_models.__file__).resolve().parents[1] / "examples" / "multiple_features.py"
EPOCHS = 20
"""Epochs of every run unless ``--epochs`` says otherwise (the example job's default)."""
LCA_EVERY = 20
ABLATION = "ablation"
ALL = "all"
MFEAT_OPTIONS = frozenset({"seeds"})
"""The recipe options of :data:`~mammo_models.recipes.catalog.RECIPE_OPTIONS` this recipe reads."""


@dataclass(frozen=True)
class MfeatRun:
    """One run of the study: ``views`` is one view name (a uni-view model) or ``"all"``."""

    views: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.views}_s{self.seed}"

    @property
    def lca(self) -> bool:
        """Only the six-view model records LCA (see the module docstring for why)."""
        return self.views == ALL

    def store(self, s: RecipeSettings) -> Path:
        return folder(s) / f"{self.name}.zarr"


def folder(s: RecipeSettings) -> Path:
    """``RUNS/<preset>/mfeat``."""
    return s.root / NAME


def epochs(s: RecipeSettings) -> int:
    return s.epochs or EPOCHS


def plan(s: RecipeSettings) -> list[MfeatRun]:
    """Every run, uni-view models first (view order of the data set), then the six-view model."""
    return [MfeatRun(v, seed) for v in (*VIEWS, ALL) for seed in s.seeds]


def example_module() -> ModuleType:
    """The example job's module, imported from the repository (a clone) through ``load_job``'s
    search path.

    Raises:
        JobError: the file is absent (an installed package without the repository).
    """
    if not EXAMPLE.is_file():
        raise JobError(
            f"lca-run recipe mfeat trains the job of {EXAMPLE}, which is not there: run it from "
            "a clone of the repository (git clone, then pip install -e .)"
        )
    if str(EXAMPLE.parent) not in sys.path:
        sys.path.insert(0, str(EXAMPLE.parent))
    return importlib.import_module(EXAMPLE.stem)


def build_job(run: MfeatRun, s: RecipeSettings) -> Job:
    """The example's ``make_job`` for this run."""
    example_module()  # the file's absence gets its own message before load_job's
    device = None if s.device == "auto" else s.device
    kwargs: dict[str, Any] = {"epochs": epochs(s), "seed": run.seed, "views": run.views}
    if device is not None:
        kwargs["device"] = device
    return load_job(f"{EXAMPLE.stem}:make_job", kwargs, search_path=EXAMPLE.parent)


def _same_job(job: Job) -> Callable[[Any], bool]:
    """Whether a stored run holds this job (its stored job settings equal the job's)."""
    wanted = json.loads(json.dumps(dict(job.config)))
    return lambda stored: stored.config.get("job") == wanted


def measure_ablation(job: Job, run: MfeatRun, step: int) -> dict:
    """Input ablation of ``job.model`` (its parameters after ``step`` optimizer steps) on the
    test rows: the table's columns."""
    module = example_module()
    batches = module.test_rows_batches(views=run.views, seed=run.seed)
    modalities = {v: Modality(v, mute="mean") for v in job.config["views"]}
    probe = AblationProbe(job.model, job.loss_fn, batches, modalities, metric=module.correct)
    return ablation_columns([probe.measure(step)])


def write_ablation(store: Path, columns: dict) -> None:
    """Add the ablation table to a finished store (reopened by its own writer, then closed
    finished again)."""
    stored = open_run(store)
    writer = RunWriter(
        store,
        groups=stored.groups,
        group_members=stored.attrs["group_members"],
        lr_groups=stored.attrs["lr_groups"],
        param_norm=True,
        mode="resume",
    )
    writer.write_table(ABLATION, columns)
    writer.close("finished")


def train_one(run: MfeatRun, s: RecipeSettings) -> str:
    """Train (or reuse, or continue) one run, then its ablation table; ``trained``/``reused``."""
    job = build_job(run, s)
    store = run.store(s)
    run_dir = RunDir(store)
    state = run_dir.state(_same_job(job))
    status = "reused" if state == "finished" else "trained"
    if state == "stale":
        if not run_dir.removable():
            raise ValueError(f"{store} is in the way of a recipe run and is not a run store")
        run_dir.remove()
    if state != "finished":
        store.parent.mkdir(parents=True, exist_ok=True)
        run_job(job, store, lca_every=LCA_EVERY if run.lca else None, resume=state == "resumable")
    if run.lca and ABLATION not in open_run(store).tables:
        if status == "reused":  # the final model is the last epoch's checkpoint
            job.model.load_state_dict(run_dir.load_resumable(map_location="cpu")["model"])
        steps = int(open_run(store).attrs["rows"]["steps"])
        write_ablation(store, measure_ablation(job, run, steps))
    return status

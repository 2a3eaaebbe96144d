"""Run a user's own training job with recording: the contract behind ``lca-run job MODULE:FUNCTION``.

The function named on the command line takes no arguments (or keyword arguments given with
``--arg key=value``) and returns a :class:`Job`::

    def make_job() -> Job:
        model = MyNet()
        return Job(
            model=model,
            loss_fn=lambda m, batch: F.cross_entropy(m(batch["x"]), batch["y"], reduction="none"),
            optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
            train_batches=train_loader,     # one epoch; iterated once per epoch
            eval_batches=fixed_subset,      # the LCA subset E: same batches, same order, every time
            groups={"encoder": "encoder.", "head": "head."},
            epochs=3,
        )

The runner moves each batch to the model's device, trains with ``loss_fn(model, batch).mean()``,
records gradient norms every step and LCA every ``lca_every`` steps into the store, checkpoints
at every epoch end and resumes from there (``resume=True``).

Under torchrun (a process group with N > 1 ranks) the job function runs on every rank and gives
the same full batches everywhere; the runner wraps the model in ``DistributedDataParallel`` and
hands each rank its contiguous ``1/N`` slice of every training batch (batch sizes must divide by
N), so each optimizer step sees the same global batch as one process. Only rank 0 writes the
store and the checkpoint and reports progress.

With ``fsdp=True`` (``lca-run job --fsdp``) the model is sharded with FSDP2 instead of wrapped
in DDP: each group's top modules and the root get ``fully_shard`` and the optimizer is rebuilt over
the shards (:mod:`lca_toolkit.fsdp`), so the job function is the same as for one process.
``last.pt`` then holds the full model and optimizer state (gathered, as one process would save
it) and every rank writes its own ``rank<r>.pt`` with its shard of the Tracker's LCA state.
"""

from __future__ import annotations

import importlib
import inspect
import math
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from . import distributed
from ._batches import move_to
from .errors import LcaToolkitError
from .fsdp import full_state, load_full_state, shard_job_model
from .groups import ParamGroups
from .lca import LcaConfig
from .rundir import RunDir, restore_rng, rng_states
from .store import open_run
from .tracker import Tracker


class JobError(LcaToolkitError, ValueError):
    """The job function cannot be found or returned something that is not a usable Job."""


@dataclass
class Job:
    """A training job the toolkit can run and record.

    Attributes:
        model: the model (already on the device it should train on).
        loss_fn: ``loss_fn(model, batch)`` -> 1-D tensor of per-sample losses.
        optimizer: any ``torch.optim.Optimizer`` over the model's parameters.
        train_batches: the batches of one epoch (re-iterable: a list or a DataLoader).
        eval_batches: the fixed LCA subset E (re-iterable, same order every pass).
        groups: parameter groups (``ParamGroups``, a name -> prefixes mapping, or ``None`` for
            the model's top-level children).
        epochs: passes over ``train_batches``.
        config: anything JSON-serialisable to store with the run.
        epoch_metrics: ``epoch_metrics(model)`` -> ``{name: number}`` after every epoch (test
            accuracy, validation loss...), called in eval mode without gradients on every rank
            and stored beside ``train_loss_last`` in the store's ``epochs/`` section
            (``open_run(PATH).epochs()``); names must not contain ``/``.
        modalities: the job's inputs for input ablation (``lca-run job --ablation-every K``):
            name -> how to remove it from a batch of E (:class:`~lca_toolkit.ablation.Modality`).
        ablation_metric: ``metric(model, batch)`` -> per-sample scores (accuracy...) also
            measured by input ablation.
    """

    model: nn.Module
    loss_fn: Callable[[nn.Module, Any], Tensor]
    optimizer: torch.optim.Optimizer
    train_batches: Iterable[Any]
    eval_batches: Iterable[Any] | None = None
    groups: ParamGroups | Mapping[str, str | Sequence[str]] | None = None
    epochs: int = 1
    config: Mapping[str, Any] = field(default_factory=dict)
    epoch_metrics: Callable[[nn.Module], Mapping[str, float]] | None = None
    modalities: Mapping[str, Any] | None = None
    ablation_metric: Callable[[nn.Module, Any], Tensor] | None = None


def load_job(
    spec: str, kwargs: Mapping[str, Any] | None = None, search_path: str | os.PathLike | None = None
) -> Job:
    """Import ``module:function`` (the current directory is importable) and call it.

    Raises:
        JobError: bad spec, module or function not found, or the result is not a :class:`Job`.
    """
    module_name, sep, func_name = spec.partition(":")
    if not sep or not module_name or not func_name:
        raise JobError(f"job {spec!r} must look like MODULE:FUNCTION (e.g. my_job:make_job)")
    path = str(Path(search_path or os.getcwd()).resolve())
    if path not in sys.path:
        sys.path.insert(0, path)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise JobError(f"job {spec!r}: cannot import module {module_name!r} ({exc})") from None
    func = getattr(module, func_name, None)
    if not callable(func):
        raise JobError(f"job {spec!r}: module {module_name!r} has no function {func_name!r}")
    kwargs = dict(kwargs or {})
    try:
        inspect.signature(func).bind(**kwargs)
    except TypeError as exc:
        raise JobError(
            f"job {spec!r}: arguments {sorted(kwargs)} do not fit {func_name}{inspect.signature(func)}: {exc}"
        ) from None
    job = func(**kwargs)
    if not isinstance(job, Job):
        raise JobError(f"job {spec!r} returned {type(job).__name__}, expected lca_toolkit.job.Job")
    if not isinstance(job.epochs, int) or job.epochs < 1:
        raise JobError(f"job {spec!r}: epochs must be a positive integer, got {job.epochs!r}")
    return job


@dataclass
class JobResult:
    """Summary of a finished job run."""

    store: Path
    steps: int
    epochs: int
    final_loss: float


def run_job(
    job: Job,
    store: str | os.PathLike[str],
    *,
    lca_every: int | None = None,
    quadrature: str = "adaptive",
    ablation_every: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    on_nonfinite: str = "stop",
    progress: Callable[[int, int, float], None] | None = None,
    mirror: str | None = None,
    fsdp: bool = False,
) -> JobResult:
    """Train ``job`` with a Tracker writing ``store``; checkpoints go to ``<store>.ckpt/last.pt``.

    Args:
        job: the job.
        store: run store path.
        lca_every: k (``None``: gradient norms only). Needs ``job.eval_batches``.
        quadrature: LCA rule.
        ablation_every: K, steps between input-ablation measurements of ``job.modalities`` on E
            (``None``: none).
        resume: continue from the last epoch checkpoint and the existing store.
        overwrite: replace an existing store.
        on_nonfinite: ``stop`` (default: a NaN/Inf loss or gradient ends the run with
            :class:`~lca_toolkit.errors.NonFiniteError`, the store marked failed) or ``skip``
            (the step is not applied and is counted); see :class:`~lca_toolkit.tracker.Tracker`.
        progress: called as ``progress(epoch, step, loss)`` after every epoch.
        mirror: the Tracker's live mirror, e.g. ``"tensorboard:DIR"`` (``None``: none).
        fsdp: shard the model with FSDP2 by its groups (under torchrun) instead of DDP.
    """
    store = Path(store)
    run_dir = RunDir(store)
    ckpt = run_dir.last
    if lca_every is not None and job.eval_batches is None:
        raise JobError("--lca-every needs the job to provide eval_batches (the fixed subset E)")
    if ablation_every is not None:
        lacking = [
            what
            for what, value in (
                ("modalities (how to remove each input)", job.modalities),
                ("eval_batches (the subset E)", job.eval_batches),
            )
            if value is None
        ]
        if lacking:
            raise JobError(f"--ablation-every needs the job to provide {' and '.join(lacking)}")
    on_e = lca_every is not None or ablation_every is not None
    recording = {"lca_every": lca_every, "quadrature": quadrature, "ablation_every": ablation_every}
    if resume:
        _check_recording(store, recording)
    device = next(job.model.parameters()).device
    mode = "resume" if resume else ("overwrite" if overwrite else "create")
    rank, world = distributed.rank(), distributed.world_size()
    optimizer, groups = job.optimizer, job.groups
    if fsdp:
        if not distributed.is_distributed():
            raise JobError("--fsdp shards the model across processes: start the job with torchrun")
        spec = groups if groups is not None else ParamGroups.from_children(job.model)
        if not isinstance(spec, ParamGroups):
            spec = ParamGroups.from_prefixes(job.model, spec)
        optimizer = shard_job_model(job.model, job.optimizer, spec)
        groups = ParamGroups(job.model, spec.members)  # the same names, the sharded parameters
        model = job.model
    else:
        model = distributed.wrap(job.model)  # DDP in a multi-process group, else the model itself
    tracker = Tracker(
        model,
        groups,
        optimizer=optimizer,
        store=store,
        store_mode=mode,
        loss_fn=job.loss_fn if on_e else None,
        eval_batches=job.eval_batches if on_e else None,
        lca=LcaConfig(lca_every, quadrature) if lca_every else None,
        modalities=job.modalities if ablation_every else None,
        ablation_every=ablation_every,
        ablation_metric=job.ablation_metric if ablation_every else None,
        config={"job": dict(job.config), "recording": recording},
        on_nonfinite=on_nonfinite,
        mirror=mirror,
    )
    start_epoch = 0
    with tracker:
        if resume:
            if not ckpt.is_file():
                raise JobError(f"--resume: no checkpoint at {ckpt}")
            # On the CPU first: RNG states must stay CPU tensors; load_state_dict moves the rest.
            state = run_dir.load_resumable(map_location="cpu")
            try:
                if fsdp:
                    load_full_state(job.model, optimizer, state["model"], state["optimizer"])
                    state["tracker"] = run_dir.load_rank_state(rank)["tracker"]
                else:
                    job.model.load_state_dict(state["model"])
                    optimizer.load_state_dict(state["optimizer"])
                tracker.load_state_dict(state["tracker"])
            except (RuntimeError, KeyError, ValueError) as exc:
                raise JobError(
                    f"--resume: {ckpt} does not fit this job: {str(exc).splitlines()[0]}"
                ) from None
            restore_rng(state["rng"], state.get("rng_cuda"))
            start_epoch = state["epoch"]
        loss_value = math.nan
        for epoch in range(start_epoch, job.epochs):
            job.model.train()
            for i, batch in enumerate(job.train_batches):
                where = f"epoch {epoch}, training batch {i}"
                batch = move_to(distributed.shard_batch(batch, rank, world, where=where), device)
                optimizer.zero_grad(set_to_none=True)
                loss = job.loss_fn(model, batch).mean()
                loss.backward()
                tracker.after_backward(loss)
                optimizer.step()
                tracker.after_step()
            last = torch.tensor(math.nan, dtype=torch.float64, device=device)
            if tracker.step:
                last = loss.detach().double().clone()
            loss_value = float(distributed.all_reduce_mean_(last))
            tracker.log_epoch(epoch, {"train_loss_last": loss_value, **_epoch_metrics(job)})
            if fsdp:  # gathered full state (a collective); the Tracker's shards per rank
                model_state, optim_state = full_state(job.model, optimizer)
                run_dir.save_rank_state(rank, {"tracker": tracker.state_dict()})
                state = {"model": model_state, "optimizer": optim_state, "tracker": None}
            else:
                state = {
                    "model": job.model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "tracker": tracker.state_dict(),
                }
            rng, rng_cuda = rng_states()
            state.update(rng=rng, rng_cuda=rng_cuda, epoch=epoch + 1)
            if distributed.is_main():
                run_dir.save_resumable(state)
            if progress is not None and distributed.is_main():
                progress(epoch, tracker.step, loss_value)
    return JobResult(store=store, steps=tracker.step, epochs=job.epochs, final_loss=loss_value)


def _epoch_metrics(job: Job) -> dict[str, float]:
    """The job's own per-epoch metrics, measured in eval mode without gradients."""
    if job.epoch_metrics is None:
        return {}
    job.model.eval()
    try:
        with torch.no_grad():
            values = job.epoch_metrics(job.model)
    finally:
        job.model.train()
    if not isinstance(values, Mapping) or "train_loss_last" in values:
        raise JobError(
            "epoch_metrics must return a mapping of metric name -> number other than "
            f"'train_loss_last', got {values!r:.200}"
        )
    try:
        return {str(k): float(v) for k, v in values.items()}
    except (TypeError, ValueError):
        raise JobError(
            f"epoch_metrics returned a value that is not a number: {values!r:.200}"
        ) from None


_FLAGS = {
    "lca_every": "--lca-every",
    "quadrature": "--quadrature",
    "ablation_every": "--ablation-every",
}


def _check_recording(store: Path, recording: Mapping[str, Any]) -> None:
    """``--resume`` records what the run recorded: a different ``--lca-every``, ``--quadrature``
    or ``--ablation-every`` would mix two schedules in one store (stores written before these
    were stored are not checked)."""
    if not store.exists():
        return
    stored = open_run(store).config.get("recording")
    if not stored:
        return
    differing = [k for k, flag in _FLAGS.items() if stored.get(k) != recording[k]]
    if differing:
        reasons = "; ".join(
            f"{_FLAGS[k]}: the run at {store} was recorded "
            + (f"with {stored.get(k)}" if stored.get(k) is not None else f"without {_FLAGS[k]}")
            + f", this command says {recording[k] if recording[k] is not None else 'none'}"
            for k in differing
        )
        raise JobError(f"--resume continues the run with its own recording settings; {reasons}")

"""``lca-run``: train with gradient-norm and LCA recording (mammography experiments, your own jobs, sweeps).

Thin on purpose: parse, build the config dataclasses, call ``mammo_models.training`` or
``lca_toolkit.job``, print, exit. Every expected failure becomes one line naming the bad input and
a non-zero exit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from lca_toolkit import StoreError, distributed
from lca_toolkit.job import load_job, run_job
from lca_toolkit.options import build
from lca_toolkit.store import check_writable
from mammo_models.training import Experiment, ExperimentConfig, RecordConfig, summary_lines
from mammo_models.training.config import run_dir as mammo_run_dir
from mammo_models.training.sweep import (
    SWEEP_KINDS,
    SweepSpec,
    parse_seeds,
    plan_sweep,
    run_sweep,
    select_from_index,
    select_sweep,
)

from ._common import echo, fail_cleanly, in_process_group
from ._console import Bar, TickingBatches, one_line_warnings
from ._declared import declared_option
from ._ignored import JOB_RULES, SWEEP_RULES, TRAINING_RULES, refuse_ignored
from ._options import (
    mirror_spec,
    on_nonfinite_option,
    quiet_option,
    tensorboard_option,
    training_options,
)
from ._resume import RESUMABLE_FLAGS, resumed_config
from .recipe import recipe


def _replace_store_on_main(out: Path) -> None:
    """``--overwrite``: rank 0 deletes the old store while the other ranks wait.

    The barrier before it keeps a rank's output check from seeing a half-replaced store.
    """
    distributed.barrier()
    if distributed.is_main():
        _replace_store(out)
    distributed.barrier()


def check_output(path: Path, *, resume: bool, overwrite: bool) -> None:
    """Fail before any training when the output cannot be written or would overwrite a store."""
    if path.exists() and not (resume or overwrite):
        raise click.BadParameter(
            f"{path} already exists; pass --resume to continue it, --overwrite to replace it, "
            "or choose another --out",
            param_hint="--out",
        )
    if resume and not path.exists():
        raise click.BadParameter(f"--resume: no run store at {path}", param_hint="--out")
    try:
        check_writable(path)  # a real probe file: permissions, read-only file systems
    except StoreError as exc:
        raise click.BadParameter(str(exc), param_hint="--out") from None


def build_config(out: Path, options: Mapping[str, Any]) -> ExperimentConfig:
    """The ExperimentConfig the options describe (the preset's values are written in when the
    run starts: :meth:`ExperimentConfig.resolved`)."""
    return build(ExperimentConfig, options, out=out)


def _replace_store(out: Path) -> None:
    run_dir = mammo_run_dir(out)  # the store, its checkpoints and Gradient Blending runs
    if not run_dir.removable():
        raise click.BadParameter(
            f"--overwrite: {out} is not a run store; refusing to delete it", param_hint="--out"
        )
    run_dir.remove()


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="lca-toolkit")
def main() -> None:
    """Train with per-group gradient norms and step-k LCA recorded into a zarr run store.

    Every command shows one kind of progress bar with an ETA (steps of a run, runs done / total
    of a sweep or recipe); --quiet turns it off.

    \b
    Examples:
      lca-run mammo --model joint --preset demo --out runs/joint.zarr
      lca-run job examples/user_job.py:make_job --out runs/job.zarr --lca-every 20
      lca-run sweep --kind lr --model uni_cc --n 10 --out runs/uni_cc_lr
    """
    one_line_warnings()


@main.command("mammo")
@training_options()
@click.option(
    "--out",
    type=click.Path(dir_okay=True, path_type=Path),
    required=True,
    help="Run store to write (.zarr).",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue a stopped run from its last checkpoint with its own settings: options of the "
    "command that started it may be repeated, only " + ", ".join(RESUMABLE_FLAGS) + " may change.",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing run store.")
@click.option(
    "--figures",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also write the run's gradient-norm, cumulative-LCA and residual figures here.",
)
@tensorboard_option
@fail_cleanly
@in_process_group
def mammo(
    out: Path,
    resume: bool,
    overwrite: bool,
    quiet: bool,
    figures: Path | None,
    tensorboard: Path | None,
    **options: Any,
) -> None:
    """Train one of the paper's models on the synthetic testbed or your manifest.

    \b
    Examples:
      lca-run mammo --model joint --preset demo --out runs/joint.zarr
      lca-run mammo --model shared --data manifest --manifest data/manifest.csv --preset paper \\
          --device cuda --out runs/shared.zarr
      lca-run mammo --regularizer modality_dropout --dropout 0.3 0.6 --out runs/md.zarr
      lca-run mammo --out runs/joint.zarr --resume
      lca-run mammo --preset demo --out runs/joint.zarr --tensorboard runs/tb/joint
      torchrun --standalone --nproc_per_node=2 --no-python lca-run mammo --out runs/ddp.zarr
    """
    if resume and overwrite:
        raise click.BadParameter(
            "--resume and --overwrite exclude each other", param_hint="--resume"
        )
    check_output(out, resume=resume, overwrite=overwrite)
    if resume:
        config = resumed_config(out, options)
    else:
        refuse_ignored(options, TRAINING_RULES)
        config = build_config(out, options)
    if overwrite:
        _replace_store_on_main(out)
    distributed.barrier()  # no rank creates the store before every rank checked --out
    main_rank = distributed.is_main()
    result = Experiment(
        config,
        resume=resume,
        progress=not quiet and main_rank,
        echo=echo,
        mirror=mirror_spec(tensorboard),
    ).run()
    if figures is not None and main_rank:
        from lca_toolkit.plots import save_run_figures

        for path in save_run_figures(out, figures):
            click.echo(f"figure: {path}")
    echo("\n".join(summary_lines(result)))


@main.command("job")
@click.argument("job_spec", metavar="MODULE:FUNCTION")
@click.option(
    "--out", type=click.Path(path_type=Path), required=True, help="Run store to write (.zarr)."
)
@click.option(
    "--lca-every",
    type=click.IntRange(min=1),
    help="Optimizer steps between LCA snapshots (off when not given).",
)
@declared_option(
    RecordConfig,
    "quadrature",
    help="LCA quadrature rule (adaptive: Simpson refined until the residual is below 0.1% of "
    "the loss change, at most 16 panels).",
)
@declared_option(
    RecordConfig,
    "ablation_every",
    help="Every K steps, the loss on E with each subset of the job's inputs (Job.modalities) "
    "removed: each input's Shapley contribution, leave-one-out beyond 4 inputs (the store's "
    "table ablation) [default: off].",
)
@click.option(
    "--arg",
    "args",
    multiple=True,
    metavar="KEY=VALUE",
    help="Keyword argument for the job function (repeatable).",
)
@on_nonfinite_option
@click.option("--resume", is_flag=True, help="Continue from the last epoch checkpoint.")
@click.option("--overwrite", is_flag=True, help="Replace an existing run store.")
@click.option(
    "--fsdp",
    is_flag=True,
    help="Under torchrun: shard the model with FSDP2 (each group's top modules and the root) "
    "instead of DDP; the job function stays the same.",
)
@tensorboard_option
@quiet_option
@fail_cleanly
@in_process_group
def job(
    job_spec: str,
    out: Path,
    lca_every: int | None,
    quadrature: str,
    ablation_every: int | None,
    args: tuple[str, ...],
    on_nonfinite: str,
    resume: bool,
    overwrite: bool,
    fsdp: bool,
    tensorboard: Path | None,
    quiet: bool,
) -> None:
    """Run your own training job with recording.

    MODULE:FUNCTION names a function returning an lca_toolkit.job.Job (model, per-sample loss,
    optimizer, training batches, evaluation batches, groups); MODULE may also be a path to a .py file.

    \b
    Example:
      lca-run job examples/user_job.py:make_job --out runs/job.zarr --lca-every 20 --arg epochs=2
      torchrun --standalone --nproc_per_node=2 --no-python lca-run job \\
        examples/fsdp2_two_tower.py:make_job --out runs/fsdp.zarr --lca-every 10 --fsdp
    """
    check_output(out, resume=resume, overwrite=overwrite)
    refuse_ignored({"lca_every": lca_every}, JOB_RULES)
    kwargs = {}
    for item in args:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--arg")
        kwargs[key] = _parse_value(value)
    module, _, func = job_spec.rpartition(":")
    search = None
    if module.endswith(".py"):
        path = Path(module)
        if not path.is_file():
            raise click.BadParameter(f"no file {path}", param_hint="MODULE:FUNCTION")
        search, module = path.parent, path.stem
    loaded = load_job(f"{module}:{func}", kwargs, search_path=search)
    if overwrite:
        _replace_store_on_main(out)
    distributed.barrier()  # no rank creates the store before every rank checked --out

    try:
        total = len(loaded.train_batches) * loaded.epochs  # type: ignore[arg-type]
    except TypeError:  # batches without a length: a bar without an ETA
        total = None
    with Bar(total, desc=out.stem, unit="step", quiet=quiet or not distributed.is_main()) as bar:

        def progress(epoch: int, step: int, loss: float) -> None:
            bar.set(step)  # steps done, also those of the epochs a resumed run skipped
            bar.echo(f"epoch {epoch + 1}/{loaded.epochs}: step {step}, last loss {loss:.4f}")

        result = run_job(
            replace(loaded, train_batches=TickingBatches(loaded.train_batches, bar)),
            out,
            lca_every=lca_every,
            quadrature=quadrature,
            ablation_every=ablation_every,
            resume=resume,
            on_nonfinite=on_nonfinite,
            progress=progress,
            mirror=mirror_spec(tensorboard),
            fsdp=fsdp,
        )
    echo(f"run store: {result.store} ({result.steps} steps, {result.epochs} epochs)")


def _parse_value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


@main.command("sweep")
@training_options(skip=("seed",))
@click.option(
    "--kind",
    type=click.Choice(SWEEP_KINDS),
    help="lr (log-uniform), seed, dropout (Modality Dropout rates), split_lr (alphas); "
    "required unless --select reads an existing sweep folder.",
)
@click.option(
    "--n",
    "n_settings",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Sampled settings.",
)
@click.option(
    "--seeds", default="0", show_default=True, help="Training seeds per setting, e.g. 0,1,2 or 0-2."
)
@click.option(
    "--lr-range",
    nargs=2,
    type=click.FloatRange(min=0, min_open=True),
    metavar="LOW HIGH",
    help="Range of an lr sweep [default: uni-view 1e-5 3e-3, variants 1e-5 1e-3].",
)
@click.option(
    "--sweep-seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Seed of the sampled settings.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory for the run stores and index.csv.",
)
@click.option(
    "--select",
    is_flag=True,
    help="After the sweep, print each setting's mean ± s.e. of the best validation AUC over its "
    "seeds and the selected setting (the paper's rule); without --kind, select on the existing "
    "sweep in --out and train nothing.",
)
@fail_cleanly
def sweep(
    kind: str | None,
    n_settings: int,
    seeds: str,
    lr_range: tuple[float, float] | None,
    sweep_seed: int,
    out: Path,
    select: bool,
    quiet: bool,
    **options: Any,
) -> None:
    """Many runs: learning rates, seeds, Modality Dropout rates or Split Learning Rates.

    Writes OUT/<run>.zarr per run and OUT/index.csv; running the same command again continues an
    interrupted sweep (finished runs are skipped).

    \b
    Examples:
      lca-run sweep --kind lr --model uni_cc --n 10 --out runs/uni_cc_lr
      lca-run sweep --kind seed --model shared --seeds 0-2 --out runs/shared
      lca-run sweep --kind dropout --lr 1e-4 --n 10 --out runs/modality_dropout
      lca-run sweep --kind lr --model joint --seeds 0-2 --select --out runs/joint_lr
      lca-run sweep --select --out runs/joint_lr        # select again, train nothing
    """
    if out.exists() and not out.is_dir():
        raise click.BadParameter(f"{out} is a file, not a directory", param_hint="--out")
    if kind is None:
        if not select:
            raise click.BadParameter(
                "--kind is required (or --select alone to select on an existing sweep in --out)",
                param_hint="--kind",
            )
        click.echo("\n".join(select_from_index(out).lines()))
        return
    given = {"kind": kind, "lr_range": lr_range, "n_settings": n_settings, **options}
    refuse_ignored(given, SWEEP_RULES)
    spec = SweepSpec(
        kind=kind, n=n_settings, seeds=parse_seeds(seeds), lr_range=lr_range, sweep_seed=sweep_seed
    )
    base = build_config(out / "base.zarr", {**options, "seed": spec.seeds[0]})
    total = len(plan_sweep(base, spec, out))
    bar = Bar(total, desc=f"sweep {out.name}", unit="run", quiet=quiet)

    def run_one(config: ExperimentConfig, resume: bool) -> None:
        result = Experiment(config, resume=resume, progress=not quiet, echo=bar.echo).run()
        bar.echo("  " + "\n  ".join(summary_lines(result)))

    with bar:
        index = run_sweep(
            base, spec, out, run_one, echo=bar.echo, on_done=lambda name, _: bar.update(1)
        )
    failed = index[index["status"] != "finished"]
    click.echo(f"sweep index: {out / 'index.csv'} ({len(index)} runs, {len(failed)} not finished)")
    if select:
        click.echo("\n".join(select_sweep(base, spec, out).lines()))
    if len(failed):
        raise click.ClickException(
            f"{len(failed)} run(s) did not finish: {', '.join(failed['run'])}"
        )


main.add_command(recipe)

if __name__ == "__main__":
    main()

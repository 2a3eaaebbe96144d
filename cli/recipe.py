"""``lca-run recipe``: the paper's figures and tables, each trained and drawn by one command."""

from __future__ import annotations

from pathlib import Path

import click

from mammo_models.recipes import RECIPES, RecipeSettings, make_recipes, resolve
from mammo_models.recipes.make import count_lines, run_counts
from mammo_models.recipes.mfeat import MFEAT_OPTIONS, plan
from mammo_models.recipes.mfeat_make import make_mfeat
from mammo_models.recipes.settings import SEARCHES
from mammo_models.training import DataSource, ExperimentConfig
from mammo_models.training.sweep import parse_seeds

from ._common import fail_cleanly
from ._console import Bar
from ._declared import declared_option
from ._ignored import given_options, refuse_unread_recipe_options


@click.command("recipe")
@click.argument(
    "names", nargs=-1, metavar="[NAME]...", type=click.Choice(["all", *RECIPES, "mfeat"])
)
@declared_option(
    ExperimentConfig,
    "preset",
    default="small",
    help="What it takes on 2 CPU cores, measured: tiny (checks the pipeline in minutes, not "
    "seconds: 86 runs for all, a 5-epoch LCA run 81-186 s on busy cores), small (make figures; "
    "its measured time is in BENCHMARKS.md), demo, paper (the paper's scale: use a GPU).",
)
@click.option(
    "--runs",
    "runs_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs/figures"),
    show_default=True,
    help="Run stores go to RUNS/<preset>/; finished ones are reused.",
)
@click.option(
    "--figures",
    "figures_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("figures"),
    show_default=True,
    help="Where the figures, tables and README.md go.",
)
@declared_option(
    ExperimentConfig,
    "manifest",
    help="A manifest of real data instead of the bundled synthetic set.",
)
@declared_option(ExperimentConfig, "data_root")
@declared_option(ExperimentConfig, "synthetic_root")
@declared_option(
    ExperimentConfig,
    "testbed",
    help="Planted cause of the synthetic data (the LCA figures also train the controls).",
)
@click.option("--seeds", default="0,1,2", show_default=True, help="Seeds of every table row.")
@declared_option(ExperimentConfig, "epochs", help="Epochs per run [default: the preset's].")
@click.option(
    "--search",
    type=click.Choice(SEARCHES),
    default="fixed",
    show_default=True,
    help="fixed: every table row at one learning rate (--lr) and dropout pair (--dropout); "
    "paper: the paper's search per row (learning rates, dropout rates, Split Learning Rates, "
    "Gradient Blending weights, each x --seeds), the best mean validation AUC selected.",
)
@declared_option(
    ExperimentConfig,
    "lr",
    default=None,
    show_default=False,
    help="Learning rate of every table run with --search fixed [default: 1e-4].",
)
@declared_option(
    ExperimentConfig,
    "dropout",
    help="Modality Dropout rates of the CC and MLO views with --search fixed [default: 0.25 0.5].",
)
@click.option(
    "--n-lr",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Learning rates per setting searched (--search paper) and per view in Figure 3.",
)
@click.option(
    "--n-split-lr",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Split Learning Rates settings per base rate (--search paper) and in Figure 8.",
)
@declared_option(
    ExperimentConfig,
    "lca_epochs",
    help="Epochs with LCA recorded in Figures 4-7 [default: 5; --preset paper: 6, appendix A].",
)
@declared_option(
    ExperimentConfig,
    "epoch_breasts",
    help="Breasts per epoch of the LCA runs [default: full epochs; --preset paper: 10% of "
    "them, appendix A's 970 exams].",
)
@declared_option(
    ExperimentConfig,
    "lca_set",
    default=None,
    show_default=False,
    help="E of the LCA runs [default: fixed-train; --preset paper: epoch, appendix A].",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print how many runs each recipe needs and exit without training.",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Runs trained at the same time (processes sharing the CPU cores).",
)
@declared_option(ExperimentConfig, "device")
@click.option("--quiet", is_flag=True, help="No progress bar (the per-run lines still print).")
@fail_cleanly
def recipe(
    names: tuple[str, ...],
    preset: str,
    runs_dir: Path,
    figures_dir: Path,
    manifest: Path | None,
    data_root: Path | None,
    synthetic_root: Path,
    testbed: str,
    seeds: str,
    epochs: int | None,
    search: str,
    lr: float | None,
    dropout: tuple[float, float] | None,
    n_lr: int,
    n_split_lr: int,
    lca_epochs: int | None,
    epoch_breasts: int | None,
    lca_set: str | None,
    dry_run: bool,
    jobs: int,
    device: str,
    quiet: bool,
) -> None:
    """Train the runs a figure or table of the paper needs and draw it (NAME: fig3...fig8,
    table1...table5, or all of them, the default; or mfeat, the study on UCI Multiple Features).

    Each run is trained once even when several figures use it, dependencies first (Pretraining
    needs the uni-view runs, Table 2's Split Learning Rates row the Figure 8 sweep); an
    interrupted call continues where it stopped. FIGURES/README.md lists every figure, the
    command that made it and what it shows.

    mfeat is the paper's question on real multi-view data (UCI Multiple Features, fetched
    once): uni-view models per view and the six-view model over --seeds, drawn with its
    verdicts in FIGURES/mfeat/ (runs under RUNS/<preset>/mfeat/; the epochs default to 20). It
    runs from a clone of the repository (it trains examples/multiple_features.py) and is not
    part of all, which stays the paper's figures on the bundled data.

    \b
    Examples:
      lca-run recipe all --jobs 2                      # what make figures runs
      lca-run recipe fig4 fig5                         # one Joint ResNet run with LCA
      lca-run recipe table1 --manifest data/cbis/manifest.csv --preset paper --device cuda
      lca-run recipe table1 --search paper --dry-run   # how many runs the paper's search needs
      lca-run recipe table2 --lr 3e-4 --dropout 0.1 0.6 --seeds 0-4 --epochs 20
      lca-run recipe mfeat                             # the study on UCI Multiple Features
    """
    if data_root is not None and manifest is None:
        raise click.BadParameter("--data-root needs --manifest", param_hint="--data-root")
    mfeat = "mfeat" in names
    paper = [n for n in names if n != "mfeat"] or ([] if mfeat else ["all"])
    if mfeat and not paper:
        refuse_paper_only_options(search)
    refuse_unread_recipe_options(
        [*paper, *(["mfeat"] if mfeat else [])],
        search,
        lambda n, search: MFEAT_OPTIONS if n == "mfeat" else RECIPES[n].reads(search),
    )
    if search == "paper":
        for given, option in ((lr, "--lr"), (dropout, "--dropout")):
            if given:
                raise click.BadParameter(
                    f"{option} fixes what --search paper searches; drop it or use --search fixed",
                    param_hint=option,
                )
    fixed = {"table_lr": lr} if lr is not None else {}
    if dropout:
        fixed["dropout"] = tuple(dropout)
    settings = RecipeSettings(
        runs_dir=runs_dir,
        figures_dir=figures_dir,
        preset=preset,
        data=DataSource(
            kind="manifest" if manifest else "synthetic",
            manifest=manifest,
            data_root=data_root,
            synthetic_root=synthetic_root,
            testbed=testbed,
        ),
        device=device,
        seeds=parse_seeds(seeds),
        epochs=epochs,
        search=search,
        n_lr=n_lr,
        n_split_lr=n_split_lr,
        lca_epochs=lca_epochs,
        epoch_breasts=epoch_breasts,
        lca_set=lca_set,
        **fixed,  # type: ignore[arg-type]
    )
    if dry_run:
        if paper:
            specs = {r.name: r.runs(settings) for r in resolve(paper)}
            click.echo("\n".join(count_lines(specs, settings)))
        if mfeat:
            click.echo(f"mfeat: {len(plan(settings))} runs")
        return
    ok = True
    if mfeat:
        ok = _mfeat(settings, quiet, command_line(settings))
    if paper:
        ok = _paper(paper, settings, jobs, quiet) and ok
    if not ok:
        raise click.ClickException("some runs or figures failed (listed above)")


def command_line(s: RecipeSettings) -> str:
    """The ``lca-run recipe mfeat`` command that makes the study with settings ``s``."""
    parts = ["lca-run recipe mfeat", f"--preset {s.preset}"]
    if s.seeds != RecipeSettings().seeds:
        parts.append(f"--seeds {','.join(map(str, s.seeds))}")
    if s.epochs is not None:
        parts.append(f"--epochs {s.epochs}")
    return " ".join([*parts, f"--runs {s.runs_dir}", f"--figures {s.figures_dir}"])


def _mfeat(settings: RecipeSettings, quiet: bool, command: str) -> bool:
    with Bar(len(plan(settings)), desc="mfeat runs", unit="run", quiet=quiet) as bar:
        report = make_mfeat(
            settings, echo=bar.echo, on_done=lambda name: bar.update(1, last=name), command=command
        )
    if report.ok:
        click.echo(
            f"mfeat: {len(report.files)} figure(s) in {settings.figures_dir / 'mfeat'} in "
            f"{report.seconds / 60:.1f} min; see {report.readme}"
        )
    return report.ok


def _paper(names: list[str], settings: RecipeSettings, jobs: int, quiet: bool) -> bool:
    total = run_counts(names, settings)["total"]
    with Bar(total, desc="recipe runs", unit="run", quiet=quiet) as bar:
        report = make_recipes(
            names,
            settings,
            jobs=jobs,
            echo=bar.echo,
            on_done=lambda outcome: bar.update(1, last=outcome.name),
        )
    trained = sum(o.status == "trained" for o in report.outcomes)
    click.echo(
        f"{len(report.rendered)} figure(s)/table(s) in {settings.figures_dir} ({trained} runs "
        f"trained, {len(report.outcomes) - trained} reused or not run) in "
        f"{report.seconds / 60:.1f} min; see {report.readme}"
    )
    return report.ok


PAPER_ONLY = ("manifest", "data_root", "synthetic_root", "testbed", "search", "jobs")


def refuse_paper_only_options(search: str) -> None:
    """``lca-run recipe mfeat`` alone: an option only the paper's recipes read is an error."""
    given = [name for name in given_options() if name in PAPER_ONLY]
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise click.UsageError(
            f"{flags}: read only by the paper's recipes (all, fig3...table5), not by mfeat: this "
            "command would ignore it; drop it or add a paper recipe"
        )

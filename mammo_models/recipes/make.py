"""``lca-run recipe``: train what the chosen figures and tables need, draw them, write the README."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..data import get_preset
from ..training import TRAIN_PRESETS
from .catalog import RECIPES, Recipe, resolve
from .render import Rendered
from .runner import RunOutcome, run_all
from .settings import RecipeSettings

README = "README.md"


@dataclass
class RecipeReport:
    """Outcome of :func:`make_recipes`."""

    outcomes: list[RunOutcome] = field(default_factory=list)
    rendered: dict[str, Rendered] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    readme: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.failed and all(o.status in ("trained", "reused") for o in self.outcomes)


def make_recipes(
    names: list[str] | tuple[str, ...],
    settings: RecipeSettings,
    *,
    jobs: int = 1,
    echo: Callable[[str], None] = print,
) -> RecipeReport:
    """Train (or reuse) every run the recipes need, then draw each recipe whose runs all finished.

    A recipe whose runs failed is reported and skipped; the others are still drawn.
    """
    recipes = resolve(names)
    t0 = time.perf_counter()
    specs = {r.name: r.runs(settings) for r in recipes}
    report = RecipeReport()
    all_specs = [s for group in specs.values() for s in group]
    n_runs = len({s.name for s in all_specs})
    echo(
        f"{len(recipes)} recipe(s), {n_runs} runs under {settings.root} "
        f"({jobs} at a time); finished runs with the same settings are reused"
    )
    device = "cuda" if settings.device.startswith("cuda") else "cpu"
    report.outcomes = run_all(all_specs, jobs=jobs, echo=echo, device_type=device)
    bad = {o.name for o in report.outcomes if o.status not in ("trained", "reused")}
    settings.figures_dir.mkdir(parents=True, exist_ok=True)
    for recipe in recipes:
        missing = sorted({s.name for s in specs[recipe.name]} & bad)
        if missing:
            report.failed[recipe.name] = f"runs not finished: {', '.join(missing)}"
            continue
        try:
            report.rendered[recipe.name] = recipe.render(settings)
        except Exception as exc:  # noqa: BLE001 - one broken figure does not stop the others
            report.failed[recipe.name] = f"{type(exc).__name__}: {exc}"
    report.seconds = time.perf_counter() - t0
    report.readme = write_readme(recipes, settings, report, jobs)
    for name, why in report.failed.items():
        echo(f"{name}: not made ({why})")
    return report


def command(names: list[str] | tuple[str, ...], s: RecipeSettings, jobs: int) -> str:
    """The ``lca-run recipe`` command line that makes ``names`` with settings ``s``."""
    parts = ["lca-run recipe", *names, f"--preset {s.preset}"]
    if s.data.kind == "manifest":
        parts.append(f"--manifest {s.data.manifest}")
    parts += [f"--runs {s.runs_dir}", f"--figures {s.figures_dir}", f"--jobs {jobs}"]
    return " ".join(parts)


def _settings_lines(s: RecipeSettings) -> list[str]:
    tp, dp = TRAIN_PRESETS[s.preset], get_preset(s.preset)
    (hc, wc), (hm, wm) = dp.windows["CC"], dp.windows["MLO"]
    data = (
        f"the manifest {s.data.manifest}"
        if s.data.kind == "manifest"
        else f"the bundled synthetic set ({dp.synthetic.n_patients * 2} breasts)"
    )
    return [
        f"- Data: {data}; preset `{s.preset}`: crop windows CC {hc}x{wc}, MLO {hm}x{wm} pixels "
        f"(scale {dp.scale:g} of the paper's).",
        f"- Training: Adam, batch 4, {s.epochs or tp.epochs} epochs (Modality Dropout 1.5x, "
        f"Pretraining 0.5x), best validation epoch tested with {tp.tta}x test-time augmentation.",
        f"- LCA (Figures 4-7): every {tp.lca_every} steps on a fixed subset of {tp.lca_subset} "
        "training breasts, Simpson's rule, train-mode BatchNorm.",
        f"- Tables: seeds {', '.join(map(str, s.seeds))} per row, learning rate {s.table_lr:g}; "
        "the ensemble averages the seeds' predicted probabilities.",
    ]


DEPARTURES = [
    "Scale: images, epochs and LCA subset are scaled down so that every figure and table is "
    "made in under 45 minutes on 2 CPU cores (`--preset paper` restores the paper's).",
    "Learning rates of the tables are fixed (the paper searched them per setting); the Modality "
    "Dropout rates are fixed (the paper took the best of a sweep, `lca-run sweep --kind dropout`).",
    "Split Learning Rates: the best of the Figure 8 sweep (validation AUC) is repeated over the "
    "seeds, as in the paper. Gradient Blending estimates its weights per seed from three short "
    "runs (appendix C), with the validation loss as the metric.",
]


def write_readme(recipes: list[Recipe], s: RecipeSettings, report: RecipeReport, jobs: int) -> Path:
    """``figures/README.md``: each figure, the command that made it, and what it shows."""
    names = [r.name for r in recipes]
    full = command(["all"] if len(recipes) == len(RECIPES) else names, s, jobs)
    lines = [
        "# Figures and tables",
        "",
        "Written by `make figures`, which runs",
        "",
        f"    {full}",
        "",
        "It trains every run the paper's Figures 3-8 and Tables 1-3 need, draws them from the run "
        "stores, and writes this page; finished runs are reused, so a second call only redraws.",
    ]
    if s.data.kind == "synthetic":
        lines += [
            "",
            "**The data are the bundled synthetic testbed, not mammograms.** It has a shortcut cue "
            "in the MLO view and fainter MLO lesions, built in so that the view imbalance the "
            "paper studies can be measured on a laptop. The numbers below describe the testbed; "
            "they are not the paper's numbers and say nothing about real mammograms.",
            "",
            "Its heatmaps are blurred, noisy masks of the true lesions, far more informative than "
            "a patch classifier's heatmaps on real mammograms. With them the testbed is close to "
            "solved, so Tables 1 and 2 (image + heatmaps, as in the paper) saturate near AUC 1 "
            "and cannot rank the variants; Table 3 (images only) is the informative table here.",
        ]
    lines += ["", "## Settings", "", *_settings_lines(s), "", "Departures from the paper:", ""]
    lines += [f"- {d}" for d in DEPARTURES]
    for recipe in recipes:
        lines += ["", f"## {recipe.title}", ""]
        rendered = report.rendered.get(recipe.name)
        if rendered is None:
            lines += [f"Not made: {report.failed.get(recipe.name, 'unknown reason')}."]
            continue
        for f in rendered.files:
            if f.suffix == ".png":
                lines += [f"![{recipe.title}]({f.name})", ""]
        if rendered.markdown:
            lines += [rendered.markdown.rstrip(), ""]
            lines += ["Files: " + ", ".join(f"`{f.name}`" for f in rendered.files), ""]
        lines += [f"Made by: `{command([recipe.name], s, jobs)}`", ""]
        lines += [f"In the paper: {recipe.paper}", ""]
        lines += ["Here:", ""] + [f"- {x}" for x in rendered.findings]
    path = s.figures_dir / README
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path

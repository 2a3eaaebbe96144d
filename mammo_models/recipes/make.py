"""``lca-run recipe``: train what the chosen figures and tables need, draw them, write the README."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..data import get_preset, with_testbed
from ..training import TRAIN_PRESETS, RecordConfig
from .catalog import RECIPES, Recipe, resolve
from .render import Rendered
from .runner import RunOutcome, run_all
from .settings import RecipeSettings, RunSpec
from .verdicts import Verdict

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
    for line in count_lines(specs, settings):
        echo(line)
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


def run_counts(names: list[str] | tuple[str, ...], settings: RecipeSettings) -> dict[str, int]:
    """How many runs each recipe needs (each run once), and ``total`` for all of them together
    (runs shared by recipes counted once); plans only, trains and reads nothing."""
    specs = {r.name: r.runs(settings) for r in resolve(names)}
    counts = {name: len({s.name for s in group}) for name, group in specs.items()}
    counts["total"] = len({s.name for group in specs.values() for s in group})
    return counts


def count_lines(specs: dict[str, list[RunSpec]], settings: RecipeSettings) -> list[str]:
    """``table1 --search paper: 150 runs``, one line per recipe, then the total."""
    lines = [
        f"{name} --search {settings.search}: {len({s.name for s in group})} runs"
        for name, group in specs.items()
    ]
    total = len({s.name for group in specs.values() for s in group})
    return [*lines, f"together: {total} runs (runs shared by recipes are trained once)"]


def command(names: list[str] | tuple[str, ...], s: RecipeSettings, jobs: int) -> str:
    """The ``lca-run recipe`` command line that makes ``names`` with settings ``s``."""
    parts = ["lca-run recipe", *names, f"--preset {s.preset}"]
    if s.search != "fixed":
        parts.append(f"--search {s.search}")
    default = RecipeSettings()
    if s.table_lr != default.table_lr:
        parts.append(f"--lr {s.table_lr:g}")
    if s.dropout != default.dropout:
        parts.append(f"--dropout {s.dropout[0]:g} {s.dropout[1]:g}")
    if s.n_lr != default.n_lr:
        parts.append(f"--n-lr {s.n_lr}")
    if s.n_split_lr != default.n_split_lr:
        parts.append(f"--n-split-lr {s.n_split_lr}")
    if s.data.kind == "manifest":
        parts.append(f"--manifest {s.data.manifest}")
    parts += [f"--runs {s.runs_dir}", f"--figures {s.figures_dir}", f"--jobs {jobs}"]
    return " ".join(parts)


def _settings_lines(s: RecipeSettings) -> list[str]:
    tp, dp = TRAIN_PRESETS[s.preset], get_preset(s.preset)
    record = RecordConfig()
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
        f"- LCA (Figures 4-7): Joint ResNet runs of {s.lca_epochs or s.epochs or tp.epochs} "
        f"epochs, seeds {', '.join(map(str, s.lca_seeds))}; LCA every {tp.lca_every} steps on a "
        f"fixed subset of {tp.lca_subset} training breasts, the adaptive rule (composite Simpson, "
        f"panels doubled until |residual| <= {record.rel_tol:g} |loss change|, at most "
        f"{record.max_panels} panels), train-mode BatchNorm, image-only inputs.",
        f"- Tables: seeds {', '.join(map(str, s.seeds))} per row, "
        + (
            f"learning rate {s.table_lr:g}; "
            if s.search == "fixed"
            else f"each row the setting its search selected by mean validation AUC over the "
            f"seeds ({s.n_lr} learning rates, {s.n_dropout} dropout and {s.n_split_lr} Split "
            f"Learning Rates sets per base rate {', '.join(f'{x:g}' for x in s.search_lrs)}); "
        )
        + "the ensemble averages the seeds' predicted probabilities.",
    ]


DEPARTURES = [
    "Scale: images, epochs and LCA subset are scaled down so that every figure and table is "
    "made in under 60 minutes on 2 CPU cores (`--preset paper` restores the paper's).",
    "LCA runs (Figures 4-7) use image-only inputs (the paper's LCA runs used the image + "
    "heatmap model), are trained for the first 5 epochs only (the span of the paper's LCA "
    "statements; appendix A computed LCA over about the first 6 epochs), and measure LCA on one "
    "fixed subset E of training breasts drawn once (appendix A: E = the samples of each "
    "shortened epoch, `--lca-set epoch`).",
    "Learning rates of the tables are fixed (the paper searched them per setting); the Modality "
    "Dropout rates are fixed (the paper took the best of a sweep, `lca-run sweep --kind dropout`).",
    "Split Learning Rates: the best of the Figure 8 sweep (validation AUC) is repeated over the "
    "seeds, as in the paper. Gradient Blending estimates its weights per seed from three short "
    "runs (appendix C), with the validation loss as the metric.",
]


PAPER_DEPARTURES = [
    DEPARTURES[0],
    DEPARTURES[1],
    "Each table row is the setting selected by the paper's search (`--search paper`). Gradient "
    "Blending compares appendix C's four weight sets (validation loss or AUC, averaged over all "
    "estimation epochs or the last 10%), estimated per seed from short estimation runs; the "
    "ablation of Table 5 (10% of the validation set, swapped and equal weights) is not made.",
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
        lines += ["", *_testbed_lines(s)]
    found = [v for r in report.rendered.values() for v in r.verdicts]
    if found:
        lines += ["", "## Verdicts", "", *_verdict_table(found)]
    lines += ["", "## Settings", "", *_settings_lines(s), "", "Departures from the paper:", ""]
    lines += [f"- {d}" for d in (DEPARTURES if s.search == "fixed" else PAPER_DEPARTURES)]
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


def _calibration(s: RecipeSettings, testbed: str, heatmaps: bool) -> dict | None:
    """The ``calibration`` block of the synthetic data set the runs trained on, if generated."""
    config = with_testbed(get_preset(s.preset).synthetic, testbed)
    if heatmaps:
        config = replace(config, heatmaps=True)
    meta = Path(s.data.synthetic_root) / config.hash()[:12] / "synthetic.json"
    try:
        return json.loads(meta.read_text())["calibration"]
    except (OSError, ValueError, KeyError):
        return None


def _testbed_lines(s: RecipeSettings) -> list[str]:
    """What the synthetic testbed plants, with its measured calibration."""
    lines = [
        "**The data are the bundled synthetic testbed, not mammograms.** Each testbed plants one "
        "known cause of view imbalance (`--testbed`): `cue-mlo` (the main one here) has lesions "
        "equally visible in both views and, in the MLO view only, a shortcut (a bright square) "
        "in 90% of the training breasts with a finding and 5% of those without, at one rate "
        "whatever the label in validation and test; `cue-cc` is its mirror image; `balanced` has "
        "no shortcut; `mlo-blind` has no lesion and no shortcut in MLO. The numbers below show "
        "whether the toolkit's measurements follow the planted cause; they are not the paper's "
        "numbers and say nothing about real mammograms.",
    ]
    cal = _calibration(s, s.data.testbed, heatmaps=False)
    if cal and cal["signal"]["cue"] is not None:
        sig, probe = cal["signal"], cal["probe"]
        lines += [
            "",
            f"Calibration of `{s.data.testbed}` (measured by the generator, `synthetic.json`): a "
            f"lesion's integrated signal {sig['lesion']['CC']:.1f} (CC) and "
            f"{sig['lesion']['MLO']:.1f} (MLO), the shortcut's {sig['cue']:.1f} "
            f"({sig['cue_to_lesion']:.2f}x a lesion's); a linear probe on block-averaged pixels "
            f"learns the shortcut with training AUC {probe['train_auc']:.3f} (held-out "
            f"{probe['heldout_auc']:.3f}).",
        ]
    heat = _calibration(s, s.data.testbed, heatmaps=True)
    if heat and heat.get("heatmaps"):
        lines += [
            "",
            "The heatmap channels imitate an imperfect patch classifier (misses, false positives, "
            "benign/malignant cross-talk): the heatmaps alone rank breasts for malignancy with "
            f"AUC {heat['heatmaps']['malignant_auc']:.3f} (largest malignant-heatmap value over "
            "both views).",
        ]
    return lines


def _verdict_table(found: list[Verdict]) -> list[str]:
    """Every verdict of the recipes made, one row each (the rule: ``verdicts`` module)."""
    lines = [
        "Each verdict is computed from the run stores: **reproduced** when the mean of the "
        "statistic lies on the paper's side of the threshold by more than the margin (two "
        "standard errors over runs and, for LCA, at least the quadrature error bound), **not "
        "reproduced** when it lies on the other side by more than the margin, otherwise "
        "**inconclusive**. On the controls the expected outcome differs: on `cue-cc` the "
        "mirror (F2 not reproduced), on `balanced` anything but reproduced.",
        "",
        "| finding | where | statistic | mean ± s.e. (runs) | margin | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for v in found:
        lines.append(
            f"| {v.finding} | {v.where} | {v.statistic} | {v.mean:.3f} ± {v.se:.3f} ({v.n}) "
            f"| {v.margin:.3f} | **{v.verdict}** |"
        )
    return lines

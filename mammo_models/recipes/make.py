"""``lca-run recipe``: train what the chosen figures and tables need, draw them, write the README."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..data import get_preset, with_testbed
from ..training import TRAIN_PRESETS, DataSource, RecordConfig
from .catalog import RECIPES, Recipe, resolve
from .checks import AGAINST, AS_PLANTED, BASELINE, EXPECTED_SIGN, Check
from .render import Rendered
from .runner import RunOutcome, run_all
from .settings import RecipeSettings, RunSpec
from .verdicts import COMBINE_RULE, Verdict, combine

README = "README.md"
MFEAT_LINK = (
    "The paper's question on real multi-view data (UCI Multiple Features: which view does the "
    "learning, with per-view LCA shares, learning speed, input ablation and verdicts) has its "
    "own page, [mfeat/README.md](mfeat/README.md), written by `lca-run recipe mfeat` (`make "
    "figures` runs both)."
)


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
    on_done: Callable[[RunOutcome], None] | None = None,
) -> RecipeReport:
    """Train (or reuse) every run the recipes need, then draw each recipe whose runs all finished.

    A recipe whose runs failed is reported and skipped; the others are still drawn.
    ``on_done`` is called with each run's outcome as it is known (a progress bar's tick).
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
    report.outcomes = run_all(all_specs, jobs=jobs, echo=echo, device_type=device, on_done=on_done)
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
    """The ``lca-run recipe`` command line that makes ``names`` with settings ``s``: every option
    that differs from its default, so that the page names the command that was run."""
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
    for option, value in (
        ("--lca-epochs", s.lca_epochs),
        ("--epoch-breasts", s.epoch_breasts),
        ("--lca-set", s.lca_set),
    ):
        if value is not None:
            parts.append(f"{option} {value}")
    if s.seeds != default.seeds:
        parts.append(f"--seeds {','.join(map(str, s.seeds))}")
    if s.epochs is not None:
        parts.append(f"--epochs {s.epochs}")
    if s.data.kind == "manifest":
        parts.append(f"--manifest {s.data.manifest}")
        if s.data.data_root is not None:
            parts.append(f"--data-root {s.data.data_root}")
    else:
        if s.data.testbed != DataSource().testbed:
            parts.append(f"--testbed {s.data.testbed}")
        if Path(s.data.synthetic_root) != DataSource().synthetic_root:
            parts.append(f"--synthetic-root {s.data.synthetic_root}")
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
        f"- LCA (Figures 4-7): Joint ResNet runs, seeds {', '.join(map(str, s.lca_seeds))}, "
        + (
            f"the whole schedule on epochs of 10% of the breasts, LCA over the first "
            f"{s.lca_record_epochs} of them on each epoch's breasts (`--lca-set "
            f"{s.lca_eval_set}`)"
            if s.appendix_a
            else f"{s.lca_record_epochs} epochs with LCA throughout (`--lca-set {s.lca_eval_set}`,"
            f" at most {tp.lca_subset} breasts)"
        )
        + f"; LCA every {tp.lca_every} steps, the adaptive rule (composite Simpson, "
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


def departures(s: RecipeSettings) -> list[str]:
    """What these settings do differently from the paper's procedure, for ``figures/README.md``."""
    tp = TRAIN_PRESETS[s.preset]
    out = []
    if s.preset != "paper":
        out.append(
            f"Scale: images, epochs ({tp.epochs}) and LCA subset ({tp.lca_subset} breasts) are "
            "scaled down so that every figure and table is made on 2 CPU cores (this page's "
            "header gives the time it took) (`--preset paper` restores the paper's)."
        )
    lca = [
        "LCA runs (Figures 4-7) use image-only inputs (the paper's LCA runs used the image + "
        "heatmap model): the planted causes of the testbed are in the images."
    ]
    if s.appendix_a and s.lca_eval_set == "epoch":
        lca.append(
            "They follow appendix A: epochs shrunk to 10% of the breasts, E = each epoch's "
            f"breasts, LCA recorded for the first {s.lca_record_epochs} epochs only (our reading "
            'of "about six regular training epochs").'
        )
    else:
        lca.append(
            f"They train for the first {s.lca_record_epochs} epochs only, with LCA over the "
            "whole (short) run, so the gradient-norm statement F1 is judged over those epochs "
            "rather than the whole training; epochs are full, not shrunk to 10%, and E is "
            + (
                f"one fixed subset of {tp.lca_subset} training breasts drawn once"
                if s.lca_eval_set == "fixed-train"
                else f"`--lca-set {s.lca_eval_set}`"
            )
            + " (appendix A: E = the samples of each shrunk epoch; `--preset paper` does that)."
        )
    out.append(" ".join(lca))
    if s.search == "fixed":
        out += [
            f"Learning rates of the tables are fixed ({s.table_lr:g}; the paper searched them "
            "per setting) and the Modality Dropout rates are fixed "
            f"({s.dropout[0]:g}, {s.dropout[1]:g}; the paper took the best of 10 pairs drawn "
            "from U[0, 1) at each of 1e-5 and 1e-4). `--search paper` does both searches.",
            f"Figure 3 samples {s.n_lr} learning rates per view and Figure 8 {s.n_split_lr} "
            "Split Learning Rates sets (the paper: 10 each). Split Learning Rates: the best of "
            "the Figure 8 sets (validation AUC, one seed) is repeated over the seeds, at one "
            "base rate (the paper: 10 sets at each of 1e-5 and 1e-4, 3 seeds each).",
            "Gradient Blending: the weights are estimated per seed from three short runs of "
            f"{tp.blend_epochs} epochs (the paper: 100), and Table 2's row uses the validation "
            "loss over all estimation epochs; Table 4 shows the four weight sets estimated, "
            "but only `--search paper` trains each and selects by validation AUC. Table 5's "
            "ablation is trained for one seed (the paper: three).",
            "Pretraining starts from Table 1's uni-view runs of the same seed at the tables' "
            "learning rate (the paper: from the selected uni-view models, with its own "
            "learning-rate search).",
        ]
    else:
        out.append(
            "Each table row is the setting selected by the paper's search (`--search paper`). "
            "Gradient Blending's weights are estimated per seed from three short runs of "
            f"{tp.blend_epochs} epochs, and every weight set of Tables 4 and 5 is derived "
            "from that one estimation."
        )
    return out


def write_readme(recipes: list[Recipe], s: RecipeSettings, report: RecipeReport, jobs: int) -> Path:
    """``figures/README.md``: each figure, the command that made it, and what it shows."""
    names = [r.name for r in recipes]
    everything = len(recipes) == len(RECIPES)
    full = command(["all"] if everything else names, s, jobs)
    made = [n for n in names if n in report.rendered]
    lines = [
        "# Figures and tables",
        "",
        "Written by",
        "",
        f"    {full}",
        "",
        f"which made {', '.join(made) or 'nothing'}"
        + (f" (not made: {', '.join(sorted(report.failed))})" if report.failed else "")
        + f" in {report.seconds / 60:.1f} minutes: it trains the runs "
        + ("every figure and table of the paper needs" if everything else "these recipes need")
        + ", draws them from the run stores, and writes this page; finished runs are reused, so "
        "a second call only redraws."
        + ("" if everything else " The paper's other figures and tables are not on this page."),
        "",
        MFEAT_LINK,
    ]
    if s.data.kind == "synthetic":
        lines += ["", *_testbed_lines(s)]
    found = [v for r in report.rendered.values() for v in r.verdicts]
    if found:
        lines += ["", "## The paper's findings", "", *_verdict_table(found)]
    checked = [c for r in report.rendered.values() for c in r.checks]
    if checked:
        lines += ["", "## Instrument checks", "", *_check_table(checked)]
    lines += ["", "## Settings", "", *_settings_lines(s), "", "Departures from the paper:", ""]
    lines += [f"- {d}" for d in departures(s)]
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
        "no shortcut; `mlo-blind` has no lesion and no shortcut in MLO; `lesion-mlo` has no "
        "shortcut and lesions at half their contrast in CC, in every split. The numbers below show "
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


RULE = (
    "Each verdict is computed from the run stores by one rule (`lca_toolkit.stats`): the 95% "
    "interval of the statistic's mean over runs is mean ± (t(0.975, n-1) × s.e. + q), where q is "
    "the statistic's other error source, added: for LCA statistics the LCA's quadrature error "
    "estimate, for test AUCs the test set's own sampling error (DeLong). **reproduced** when the "
    "interval lies wholly on the paper's side of the threshold, **not reproduced** when wholly on "
    "the other side, otherwise **inconclusive**; fewer than two runs decide nothing. The margin "
    "is the interval's half-width."
)


def _verdict_table(found: list[Verdict]) -> list[str]:
    """Every verdict on the paper's findings, one row each, then each finding combined."""
    lines = [
        RULE,
        "",
        "| finding | where | statistic | mean ± s.e. (runs) | margin | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for v in found:
        lines.append(
            f"| {v.finding} | {v.where} | {v.statistic} | {v.mean:.3f} ± {v.se:.3f} ({v.n}) "
            f"| {v.margin:.3f} | **{v.verdict}** |"
        )
    lines += ["", COMBINE_RULE, "", "| finding | verdicts | combined |", "|---|---|---|"]
    for finding in sorted({v.finding for v in found}):
        parts = [v for v in found if v.finding == finding]
        counts = ", ".join(
            f"{sum(p.verdict == k for p in parts)} {k}"
            for k in ("reproduced", "not reproduced", "inconclusive")
            if any(p.verdict == k for p in parts)
        )
        lines.append(f"| {finding} | {counts} | **{combine(parts)}** |")
    return lines


def _check_table(checked: list[Check]) -> list[str]:
    """The planted causes as contrasts against the testbed without one (``checks`` module)."""
    signs = ", ".join(f"`{t}` {'+' if e > 0 else '-'}" for t, e in EXPECTED_SIGN.items())
    lines = [
        "Whether the measurements follow the cause planted in the testbed: for each planted "
        f"testbed, its statistic minus that of `{BASELINE}` (no planted cause), paired by seed, "
        "judged by the same interval as the findings (95% t over the seed pairs, plus both runs' "
        f"quadrature error estimates for LCA), against the sign the plant predicts ({signs}): "
        f"**{AS_PLANTED}** when the interval lies wholly on that side, **{AGAINST}** when wholly "
        "on the other, otherwise **undecided**. These check the instrument, not the paper.",
        "",
        "| planted | where | statistic | expected sign | mean ± s.e. (pairs) | margin | outcome |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in checked:
        i = c.interval
        lines.append(
            f"| {c.testbed} − {BASELINE} | {c.where} | {c.statistic} | "
            f"{'+' if c.expected > 0 else '−'} | {i.mean:+.3f} ± {i.se:.3f} ({i.n}) | "
            f"{i.margin:.3f} | **{c.outcome}** |"
        )
    return lines

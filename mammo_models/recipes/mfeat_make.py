"""``lca-run recipe mfeat`` from end to end: train every run, draw the figures, write the page."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lca_toolkit.job import JobError

from . import render_mfeat
from .mfeat import NAME, folder, plan, train_one
from .settings import RecipeSettings


@dataclass
class MfeatReport:
    """Outcome of :func:`make_mfeat`."""

    statuses: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    readme: Path | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed


def make_mfeat(
    s: RecipeSettings,
    *,
    echo: Callable[[str], None] = print,
    on_done: Callable[[str], None] | None = None,
    command: str = "lca-run recipe mfeat",
) -> MfeatReport:
    """Train every run of :func:`plan` (reusing finished ones), draw the figures and write
    ``FIGURES/mfeat/README.md``. A failed run is reported and the figures are not drawn."""
    report = MfeatReport()
    t0 = time.perf_counter()
    runs = plan(s)
    echo(f"mfeat: {len(runs)} runs under {folder(s)}; finished runs with the same settings reused")
    for run in runs:
        t1 = time.perf_counter()
        try:
            report.statuses[run.name] = train_one(run, s)
            echo(f"  {run.name}: {report.statuses[run.name]} ({time.perf_counter() - t1:.1f} s)")
        except (JobError, OSError, ValueError) as exc:
            report.failed[run.name] = f"{type(exc).__name__}: {exc}"
            echo(f"  {run.name}: failed ({report.failed[run.name]})")
            if isinstance(exc, JobError):  # the job itself is missing: no run can train
                break
        finally:
            if on_done is not None:
                on_done(run.name)
    if report.failed:
        report.seconds = time.perf_counter() - t0
        return report
    out = s.figures_dir / NAME
    out.mkdir(parents=True, exist_ok=True)
    report.files = render_mfeat.draw(s, out)
    report.seconds = time.perf_counter() - t0
    report.readme = render_mfeat.write_readme(s, out, report.statuses, report.seconds, command)
    return report

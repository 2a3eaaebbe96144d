"""Which LCA rule should the generic Tracker default to? Residual and cost on the examples.

Runs each example script end to end, once per rule, with the example's own model, data, learning
rate and k, and reads its store: per rule the intervals, the median and largest
``|residual| / |loss change|``, the aggregate ``sum |residual| / sum |loss change|``, the mean
gradient passes over E per interval and the wall time of the whole run (training included).
The demo-sized mammography run is measured by ``benchmarks/lca_accuracy.py``.

    python benchmarks/residual_default.py
    python benchmarks/residual_default.py --examples quickstart --rules simpson adaptive
"""

from __future__ import annotations

import argparse
import runpy
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from lca_toolkit import open_run

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _hf_clip(out: Path, rule: str) -> Path:
    return runpy.run_path(str(EXAMPLES / "hf_clip.py"), run_name="bench")["main"](
        out, quadrature=rule
    )


def _lightning(out: Path, rule: str) -> Path:
    main = runpy.run_path(str(EXAMPLES / "lightning_two_tower.py"), run_name="bench")["main"]
    return main(out, quadrature=rule)


def _quickstart(out: Path, rule: str) -> Path:
    train = runpy.run_path(str(EXAMPLES / "quickstart.py"), run_name="bench")["train"]
    train(out / "run.zarr", quadrature=rule)
    return out / "run.zarr"


RUNS: dict[str, Callable[[Path, str], Path]] = {
    "hf_clip": _hf_clip,
    "lightning_two_tower": _lightning,
    "quickstart": _quickstart,
}


def summarise(store: Path) -> dict[str, float]:
    """Residual ratios and passes of one stored run."""
    lca = open_run(store).lca()
    change = lca["loss_change"].abs().to_numpy()
    residual = lca["residual"].abs().to_numpy()
    ratio = residual / np.where(change > 0, change, np.nan)
    return {
        "intervals": len(lca),
        "median": float(np.nanmedian(ratio)),
        "max": float(np.nanmax(ratio)),
        "aggregate": float(residual.sum() / change.sum()),
        "passes": float(lca["passes"].mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", nargs="+", choices=sorted(RUNS), default=sorted(RUNS))
    parser.add_argument("--rules", nargs="+", default=["simpson", "adaptive"])
    args = parser.parse_args()
    print(
        "| example | rule | intervals | median |r|/|dL| | largest | sum|r|/sum|dL| "
        "| passes per interval | wall |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name in args.examples:
        for rule in args.rules:
            with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t0 = time.perf_counter()
                store = RUNS[name](Path(tmp), rule)
                wall = time.perf_counter() - t0
                s = summarise(store)
            print(
                f"| {name} | {rule} | {s['intervals']} | {100 * s['median']:.2f}% "
                f"| {100 * s['max']:.1f}% | {100 * s['aggregate']:.2f}% | {s['passes']:.1f} "
                f"| {wall:.1f} s |",
                flush=True,
            )


if __name__ == "__main__":
    main()

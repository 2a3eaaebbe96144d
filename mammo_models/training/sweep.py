"""Sweeps over learning rates, seeds, Modality Dropout rates and Split Learning Rates (appendix B).

A sweep writes one run store per run under one directory plus ``index.csv``, a row per run with its
settings, status and results. Finished runs are skipped when the same sweep is started again, so an
interrupted sweep continues where it stopped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lca_toolkit import open_run

from ..regularizers import sample_split_lr_alphas
from .config import ConfigError, ExperimentConfig, same_run
from .selection import Selection, select_best

SWEEP_KINDS: tuple[str, ...] = ("lr", "seed", "dropout", "split_lr")
INDEX_NAME = "index.csv"


def default_lr_range(variant: str) -> tuple[float, float]:
    """Appendix B: uni-view models [1e-5, 3e-3], the two-view variants [1e-5, 1e-3]."""
    return (1e-5, 3e-3) if variant.startswith("uni_") else (1e-5, 1e-3)


@dataclass(frozen=True)
class SweepSpec:
    """What varies across the runs of a sweep.

    Attributes:
        kind: ``lr`` (log-uniform learning rates), ``seed`` (repetitions), ``dropout`` (Modality
            Dropout rates ~ U[0, 1) per view), ``split_lr`` (alphas ~ U[-1, 1] per component).
        n: number of sampled settings (``lr``, ``dropout``, ``split_lr``).
        seeds: training seeds; every sampled setting runs once per seed (3 in the paper).
        lr_range: log-uniform range of ``lr`` sweeps (default by variant, appendix B).
        sweep_seed: seed of the sampling of settings.
    """

    kind: str
    n: int = 10
    seeds: tuple[int, ...] = (0,)
    lr_range: tuple[float, float] | None = None
    sweep_seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in SWEEP_KINDS:
            raise ConfigError(
                f"--kind {self.kind!r} is unknown; expected one of {', '.join(SWEEP_KINDS)}"
            )
        if self.n < 1:
            raise ConfigError(f"--n must be >= 1, got {self.n}")
        if not self.seeds:
            raise ConfigError("--seeds needs at least one seed")
        if self.lr_range is not None:
            lo, hi = self.lr_range
            if not (0 < lo <= hi and math.isfinite(hi)):
                raise ConfigError(f"--lr-range must be 0 < LOW <= HIGH, got {lo} {hi}")


def plan_sweep(
    base: ExperimentConfig, spec: SweepSpec, out_dir: Path
) -> list[tuple[str, ExperimentConfig, dict[str, Any]]]:
    """The runs of a sweep: ``(name, config, settings)``, in a fixed order from ``spec.sweep_seed``."""
    rng = np.random.default_rng(spec.sweep_seed)
    settings: list[dict[str, Any]] = []
    if spec.kind == "seed":
        settings = [{}]
    elif spec.kind == "lr":
        lo, hi = spec.lr_range or default_lr_range(base.variant)
        settings = [
            {"lr": float(10 ** rng.uniform(math.log10(lo), math.log10(hi)))} for _ in range(spec.n)
        ]
    elif spec.kind == "dropout":
        settings = [
            {"p_cc": float(rng.uniform(0, 1)), "p_mlo": float(rng.uniform(0, 1))}
            for _ in range(spec.n)
        ]
    else:
        settings = [
            {f"alpha_{k}": v for k, v in sample_split_lr_alphas(rng).items()} for _ in range(spec.n)
        ]
    runs = []
    for i, setting in enumerate(settings):
        for seed in spec.seeds:
            name = f"seed{seed}" if spec.kind == "seed" else f"{spec.kind}{i:02d}_seed{seed}"
            cfg = replace(
                base, out=out_dir / f"{name}.zarr", seed=seed, lr=setting.get("lr", base.lr)
            )
            if spec.kind == "dropout":
                cfg = replace(
                    cfg,
                    regularizer="modality_dropout",
                    regularizers=replace(
                        cfg.regularizers, modality_dropout=(setting["p_cc"], setting["p_mlo"])
                    ),
                )
            elif spec.kind == "split_lr":
                alphas = {k[len("alpha_") :]: v for k, v in setting.items()}
                cfg = replace(
                    cfg,
                    regularizer="split_lr",
                    regularizers=replace(cfg.regularizers, split_lr_alphas=alphas),
                )
            runs.append((name, cfg, {"lr": cfg.lr, "seed": seed, **setting}))
    return runs


def setting_name(run_name: str) -> str:
    """The setting a sweep run belongs to: its name without ``_seed<N>`` (``lr03_seed1`` ->
    ``lr03``; a seed sweep has one setting, ``seeds``)."""
    head, sep, tail = run_name.rpartition("_seed")
    if sep and tail.isdigit():
        return head
    return "seeds" if run_name.startswith("seed") else run_name


def sweep_groups(
    plan: Sequence[tuple[str, ExperimentConfig, dict[str, Any]]],
) -> tuple[dict[str, list[Path]], dict[str, dict[str, Any]]]:
    """Run stores grouped by setting, and each setting's parameters (without the seed)."""
    groups: dict[str, list[Path]] = {}
    params: dict[str, dict[str, Any]] = {}
    for name, cfg, settings in plan:
        key = setting_name(name)
        groups.setdefault(key, []).append(Path(cfg.out))
        params.setdefault(key, {k: v for k, v in settings.items() if k != "seed"})
    return groups, params


def select_from_index(out_dir: Path) -> Selection:
    """Select on a finished (or partly finished) sweep folder from its ``index.csv``, training
    nothing: the stores are ``<out_dir>/<run>.zarr``."""
    out_dir = Path(out_dir)
    index_path = out_dir / INDEX_NAME
    if not index_path.is_file():
        raise ConfigError(f"--out {out_dir}: no {INDEX_NAME}; is it a sweep folder?")
    index = pd.read_csv(index_path)
    skip = {"run", "store", "seed", "status", "best_val_auc", "test_auc"}
    plan = [
        (
            str(row["run"]),
            _Out(out_dir / f"{row['run']}.zarr"),
            {k: v for k, v in row.items() if k not in skip and not pd.isna(v)},
        )
        for _, row in index.iterrows()
    ]
    return select_best(*sweep_groups(plan))  # type: ignore[arg-type]


@dataclass(frozen=True)
class _Out:
    """Stands in for a config where only ``out`` is read."""

    out: Path


def select_sweep(base: ExperimentConfig, spec: SweepSpec, out_dir: Path) -> Selection:
    """Select on the sweep that ``base``/``spec`` plan under ``out_dir`` (reads the stores only)."""
    return select_best(*sweep_groups(plan_sweep(base, spec, Path(out_dir))))


def _status(out: Path) -> str:
    if not out.exists():
        return "pending"
    try:
        return open_run(out).status
    except Exception:  # noqa: BLE001 - anything unreadable is simply not finished
        return "unreadable"


def run_sweep(
    base: ExperimentConfig,
    spec: SweepSpec,
    out_dir: Path,
    run: Callable[[ExperimentConfig, bool], Any],
    echo: Callable[[str], None] = print,
    on_done: Callable[[str, str], None] | None = None,
) -> pd.DataFrame:
    """Run (or continue) a sweep; returns the index, also written to ``out_dir/index.csv``.

    Args:
        run: ``run(config, resume)`` trains one run (an unfinished store with a checkpoint is
            resumed, a finished one skipped).
        on_done: called as ``on_done(run name, status)`` after each run, trained or skipped
            (a progress bar's tick).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = plan_sweep(base, spec, out_dir)
    rows = []
    for i, (name, cfg, settings) in enumerate(plan, 1):
        state = cfg.run_dir.state()
        if state != "missing" and state != "stale" and not same_run(_stored(cfg.out), cfg):
            raise ConfigError(
                f"{cfg.out} holds a run with other settings than this sweep's; continue the sweep "
                "with the options that started it, or choose another --out"
            )
        if state != "finished":
            if state == "stale":
                cfg.run_dir.remove()  # unfinished without a checkpoint, or unreadable: again
            echo(
                f"[{i}/{len(plan)}] {name}: "
                + ", ".join(f"{k}={_fmt(v)}" for k, v in settings.items())
            )
            try:
                run(cfg, state == "resumable")
            except Exception as exc:  # noqa: BLE001 - one failed run does not stop the sweep
                echo(f"[{i}/{len(plan)}] {name} failed: {exc}")
        rows.append({"run": name, "store": str(cfg.out), **settings, **_results(cfg.out)})
        pd.DataFrame(rows).to_csv(out_dir / INDEX_NAME, index=False)
        if on_done is not None:
            on_done(name, rows[-1]["status"])
    return pd.DataFrame(rows)


def _stored(out: Path) -> dict[str, Any]:
    return open_run(out).config.get("experiment", {})


def _results(out: Path) -> dict[str, Any]:
    status = _status(out)
    results = (
        open_run(out).attrs.get("results", {}) if status not in ("pending", "unreadable") else {}
    )
    return {
        "status": status,
        "best_val_auc": results.get("best_val_auc", math.nan),
        "test_auc": results.get("test_auc", math.nan),
    }


def _fmt(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def parse_seeds(text: str | Sequence[int]) -> tuple[int, ...]:
    """``"0,1,2"`` or ``"0-2"`` -> (0, 1, 2)."""
    if not isinstance(text, str):
        return tuple(int(s) for s in text)
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                a, b = (int(x) for x in part.split("-", 1))
                seeds.extend(range(a, b + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise ConfigError(f"--seeds {text!r}: expected integers like 0,1,2 or 0-2") from None
    if not seeds or min(seeds) < 0:
        raise ConfigError(f"--seeds {text!r}: expected non-negative integers like 0,1,2 or 0-2")
    return tuple(seeds)

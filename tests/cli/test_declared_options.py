"""Every ``lca-run mammo`` option, from its one declaration: given, stored, repeated on --resume,
refused when it differs, accepted when it is one a resume may change.

The cases are generated from :func:`lca_toolkit.options.declarations`: an option added to the
config dataclasses is tested here with no change to this file (only an option that needs a
companion, like ``--dropout`` needs ``--regularizer modality_dropout``, names it below).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import pytest
import torch
from click.testing import CliRunner
from lca_toolkit_cli import run as run_cli
from lca_toolkit_cli._declared import declared_options

from lca_toolkit import Tracker, open_run
from lca_toolkit.options import (
    Declared,
    build,
    declarations,
    flag_values,
    option,
    resumable,
)
from mammo_models.training import ExperimentConfig
from mammo_models.training.config import RESUMABLE

DECLARED = {d.name: d for d in declarations(ExperimentConfig)}

NEEDS: dict[str, list[str]] = {
    "manifest": ["--data", "manifest"],
    "data_root": ["--manifest", "{file}"],
    "dropout": ["--regularizer", "modality_dropout"],
    "dropout_scaling": ["--regularizer", "modality_dropout", "--dropout", "0.1", "0.2"],
    "alphas": ["--regularizer", "split_lr"],
    "pretrained_cc": ["--regularizer", "pretraining", "--pretrained-mlo", "{file}"],
    "pretrained_mlo": ["--regularizer", "pretraining", "--pretrained-cc", "{file}"],
    "blend_weights": ["--regularizer", "gradient_blending"],
    "blend_metric": ["--regularizer", "gradient_blending"],
}
"""What an option is used with (the others are used on their own)."""

VALUES: dict[str, tuple[Any, Any]] = {
    "regularizer": ("split_lr", "gradient_blending"),  # the others need companions
    "data": ("manifest", "manifest"),  # with --manifest below, both mean the manifest
    "device": ("cpu", "auto"),
}
"""Two values for options whose type alone does not give two usable ones."""


def two_values(d: Declared, tmp: Path) -> tuple[Any, Any]:
    """Two different values of option ``d``, as a command line gives them, both usable."""
    if d.name in VALUES:
        return VALUES[d.name]
    f = d.flag
    if isinstance(d.default, bool):
        return (not d.default, d.default)
    if f.choices is not None:
        others = [c for c in f.choices if c != d.default]
        return (others[0], others[-1] if len(others) > 1 else d.default)
    if f.path is not None or f.type is Path:
        (tmp / "a").mkdir(exist_ok=True)
        (tmp / "b").mkdir(exist_ok=True)
        if f.path == "dir":
            return (tmp / "a", tmp / "b")
        (tmp / "a.pt").write_text("x")
        (tmp / "b.pt").write_text("x")
        return (tmp / "a.pt", tmp / "b.pt")
    kind = f.type or type(d.default)
    low = f.min if f.min is not None else 0
    if kind is int:
        pair = (int(low) + 2, int(low) + 3)
    else:
        high = f.max if f.max is not None else 1.0
        pair = (low + (high - low) * 0.25, low + (high - low) * 0.5)
    if f.nargs > 1:
        return tuple(tuple(v for _ in range(f.nargs)) for v in pair)  # type: ignore[return-value]
    return pair


def args_of(d: Declared, value: Any) -> list[str]:
    """The command-line words that give ``value`` to option ``d``."""
    if isinstance(value, bool):
        if value:
            return [d.flag.flag]
        return [d.flag.off_flag] if d.flag.off_flag else []
    if isinstance(value, tuple):
        return [d.flag.flag, *(str(v) for v in value)]
    return [d.flag.flag, str(value)]


class Recorded:
    """Stands in for the training run: stores the config the run would store, trains nothing."""

    configs: list[ExperimentConfig] = []

    def __init__(self, config: ExperimentConfig, *, resume: bool, **_: Any) -> None:
        self.config, self.resume = config.resolved(), resume

    def run(self) -> None:
        Recorded.configs.append(self.config)
        if not self.resume:
            model = torch.nn.Linear(2, 1)
            tracker = Tracker(
                model,
                {"all": [""]},
                store=self.config.out,
                config={"experiment": self.config.to_dict()},
            )
            tracker.close()


@pytest.fixture()
def lca_run(monkeypatch):
    monkeypatch.setattr(run_cli, "Experiment", Recorded)
    monkeypatch.setattr(run_cli, "summary_lines", lambda result: ["done"])
    Recorded.configs = []

    def invoke(*args: object) -> tuple[int, str]:
        result = CliRunner().invoke(run_cli.main, ["mammo", "--quiet", *map(str, args)])
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.exit_code, result.output

    return invoke


@pytest.mark.parametrize("name", list(DECLARED))
def test_every_option_round_trips_through_the_store_and_resume(name, lca_run, tmp_path):
    d = DECLARED[name]
    first, other = two_values(d, tmp_path)
    (tmp_path / "m.csv").write_text("x")
    (tmp_path / "a.pt").write_text("x")
    needs = [w.format(file=tmp_path / "a.pt") for w in NEEDS.get(name, [])]
    if name == "data":
        needs = ["--manifest", str(tmp_path / "m.csv")]
    out = tmp_path / "run.zarr"
    command = [*needs, *args_of(d, first), "--out", out]

    # Given: the run stores the value, as the run reads it.
    code, text = lca_run(*command)
    assert code == 0, text
    stored = ExperimentConfig.from_dict(open_run(out).config["experiment"])
    assert flag_values(stored)[name] == flag_values(Recorded.configs[-1])[name]
    assert flag_values(stored)[name] == (first if name != "data" else "manifest"), (
        "the stored setting is the given one"
    )

    # Repeated on --resume: accepted, and the run continues with its own settings.
    code, text = lca_run(*command, "--resume")
    assert code == 0, text
    assert Recorded.configs[-1] == stored

    # Another value on --resume: refused (naming the option) unless a resume may change it.
    if other == first or not args_of(d, other):  # a plain flag cannot be given as "off"
        return
    code, text = lca_run(*needs, *args_of(d, other), "--out", out, "--resume")
    if name in RESUMABLE:
        assert code == 0, text
        assert flag_values(Recorded.configs[-1])[name] == other
    else:
        assert code == 2, text
        assert f"do not pass {d.flag.flag}: the run at {out} was trained" in " ".join(text.split())


def test_the_stored_config_holds_the_presets_values_that_ran(lca_run, tmp_path):
    out = tmp_path / "run.zarr"
    code, text = lca_run("--preset", "tiny", "--out", out)
    assert code == 0, text
    record = open_run(out).config["experiment"]
    assert record["epochs"] == 2 and record["checkpoint_every"] == 0
    assert record["record"]["lca_every"] == 3 and record["record"]["lca_subset"] == 8
    code, text = lca_run("--preset", "tiny", "--no-lca", "--out", tmp_path / "b.zarr")
    assert open_run(tmp_path / "b.zarr").config["experiment"]["record"]["lca_every"] is None


@dataclass(frozen=True)
class Part:
    """A part of a test config: its options are found through the parent."""

    width: int = option(8, flag="--width", min=1, help="Tower width.")
    act: str = option("relu", flag="--act", choices=("relu", "gelu"), help="Activation.")


@dataclass(frozen=True)
class NewConfig:
    out: Path
    rate: float = option(0.1, flag="--rate", min=0, min_open=True, help="A rate.")
    where: str = option("cpu", flag="--where", resumable=True, help="Where it runs.")
    pair: tuple[float, float] | None = option(
        None, flag="--pair", nargs=2, type=float, metavar="A B", help="Two numbers."
    )
    part: Part = field(default_factory=Part)


def test_a_new_option_in_a_dataclass_reaches_the_command_line_with_no_other_change():
    seen: list[NewConfig] = []

    @click.command()
    @declared_options(NewConfig)
    def cmd(**options: Any) -> None:
        seen.append(build(NewConfig, options, out=Path("x")))

    runner = CliRunner()
    help_text = runner.invoke(cmd, ["--help"]).output
    for flag in ("--rate", "--where", "--pair A B", "--width", "--act [relu|gelu]"):
        assert flag in help_text
    res = runner.invoke(cmd, ["--width", "3", "--pair", "1", "2", "--act", "gelu"])
    assert res.exit_code == 0, res.output
    assert seen[-1] == NewConfig(out=Path("x"), pair=(1.0, 2.0), part=Part(width=3, act="gelu"))
    assert flag_values(seen[-1]) == {
        "rate": 0.1,
        "where": "cpu",
        "pair": (1.0, 2.0),
        "width": 3,
        "act": "gelu",
    }
    assert resumable(NewConfig) == {"where"}
    res = runner.invoke(cmd, ["--width", "0"])
    assert res.exit_code == 2 and "--width" in res.output  # the declared bound is checked

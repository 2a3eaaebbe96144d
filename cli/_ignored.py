"""Options a command would ignore are refused, naming what they need.

A user who passes ``--dropout 0.3 0.6`` without ``--regularizer modality_dropout``, or
``--quadrature`` to ``lca-run job`` without ``--lca-every``, believes the option took effect; a
silent no-op would make the run say something it did not do. Each rule names an option, what
it is used with, and a test on the command's options; an option given on the command line whose
test fails stops the command before anything is written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import click
from click.core import ParameterSource

Options = Mapping[str, Any]


@dataclass(frozen=True)
class Rule:
    """``option`` (the click parameter name) is used only ``needs`` (text), i.e. when ``used``."""

    option: str
    needs: str
    used: Callable[[Options], bool]


def _regularizer(o: Options) -> str:
    """The regulariser the runs train with (a dropout or split_lr sweep sets its own)."""
    return {"dropout": "modality_dropout", "split_lr": "split_lr"}.get(
        o.get("kind") or "", o["regularizer"]
    )


def _lca(o: Options) -> bool:
    return bool(o["lca"])


def _on_e(o: Options) -> bool:
    """The subset E is built: for LCA or for input ablation."""
    return _lca(o) or o.get("ablation_every") is not None


LCA_OPTIONS = (
    "lca_every",
    "quadrature",
    "bn_policy",
    "lca_epochs",
)

TRAINING_RULES: tuple[Rule, ...] = (
    *(Rule(name, "when LCA is recorded (not with --no-lca)", _lca) for name in LCA_OPTIONS),
    *(
        Rule(name, "when LCA or --ablation-every measures on E", _on_e)
        for name in ("lca_subset", "lca_set")
    ),
    *(
        Rule(
            name,
            "with --quadrature adaptive and LCA on",
            lambda o: _lca(o) and o["quadrature"] == "adaptive",
        )
        for name in ("rel_tol", "max_panels")
    ),
    Rule(
        "dropout",
        "with --regularizer modality_dropout (a dropout sweep samples its own rates)",
        lambda o: _regularizer(o) == "modality_dropout" and o.get("kind") != "dropout",
    ),
    Rule(
        "dropout_scaling",
        "with --regularizer modality_dropout",
        lambda o: _regularizer(o) == "modality_dropout",
    ),
    Rule(
        "alphas",
        "with --regularizer split_lr (a split_lr sweep samples its own alphas)",
        lambda o: _regularizer(o) == "split_lr" and o.get("kind") != "split_lr",
    ),
    *(
        Rule(name, "with --regularizer pretraining", lambda o: _regularizer(o) == "pretraining")
        for name in ("pretrained_cc", "pretrained_mlo")
    ),
    Rule(
        "blend_weights",
        "with --regularizer gradient_blending",
        lambda o: _regularizer(o) == "gradient_blending",
    ),
    Rule(
        "blend_metric",
        "with --regularizer gradient_blending when the weights are estimated (no --blend-weights)",
        lambda o: _regularizer(o) == "gradient_blending" and not o["blend_weights"],
    ),
)
"""Options of ``lca-run mammo`` and ``sweep`` that only some settings read."""

SWEEP_RULES: tuple[Rule, ...] = (
    *TRAINING_RULES,
    Rule(
        "lr",
        "by sweeps other than --kind lr (which samples the rates)",
        lambda o: o["kind"] != "lr",
    ),
    Rule("lr_range", "with --kind lr", lambda o: o["kind"] == "lr"),
    Rule(
        "n_settings",
        "by sweeps that sample settings (not --kind seed)",
        lambda o: o["kind"] != "seed",
    ),
    Rule(
        "sweep_seed",
        "by sweeps that sample settings (not --kind seed)",
        lambda o: o["kind"] != "seed",
    ),
)
"""Options of ``lca-run sweep`` that only some sweeps read (the training rules included)."""

JOB_RULES: tuple[Rule, ...] = (
    Rule(
        "quadrature",
        "with --lca-every (no LCA is recorded without it)",
        lambda o: o["lca_every"] is not None,
    ),
)
"""Options of ``lca-run job`` that only some runs read."""


def given_options() -> set[str]:
    """The parameters of the current command that were typed on the command line."""
    ctx = click.get_current_context()
    return {
        name for name in ctx.params if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE
    }


def flag(name: str) -> str:
    """The command-line spelling of a parameter (``n_settings`` -> ``--n``)."""
    ctx = click.get_current_context()
    for param in ctx.command.params:
        if param.name == name and param.opts:
            return max(param.opts, key=len)
    return "--" + name.replace("_", "-")


def refuse_ignored(options: Options, rules: Iterable[Rule]) -> None:
    """Stop with one line naming every given option that ``options`` would leave unused.

    Raises:
        click.UsageError: such options, each with what it needs.
    """
    given = given_options()
    unused = [r for r in rules if r.option in given and not r.used(options)]
    if unused:
        reasons = "; ".join(f"{flag(r.option)} is used only {r.needs}" for r in unused)
        what = (
            "it; drop it or add what it needs"
            if len(unused) == 1
            else ("them; drop them or add what they need")
        )
        raise click.UsageError(f"{reasons}: this command would ignore {what}")


def refuse_unread_recipe_options(
    names: Iterable[str], search: str, reads: Callable[[str, str], frozenset[str]]
) -> None:
    """Stop when a recipe option was given that none of the named recipes reads.

    Args:
        names: the recipes asked for (``all`` for every one).
        search: ``fixed`` or ``paper``.
        reads: ``reads(recipe, search)`` -> the options that recipe reads.

    Raises:
        click.UsageError: such options, naming the recipes that would read each.
    """
    from mammo_models.recipes import RECIPES

    asked = list(RECIPES) if "all" in names or not names else list(names)
    read = set().union(*(reads(n, search) for n in asked))
    unread = sorted(
        name
        for name in given_options()
        if name not in read and any(name in reads(n, search) for n in RECIPES)
    )
    if unread:
        reasons = "; ".join(
            f"{flag(name)} is read only by "
            + ", ".join(n for n in RECIPES if name in reads(n, search))
            + f" (with --search {search})"
            for name in unread
        )
        raise click.UsageError(
            f"{reasons}, not by {', '.join(asked)}: this command would ignore it; drop it or "
            "add a recipe that reads it"
        )

"""Which recipe reads which ``lca-run recipe`` option: the catalogue's declaration checked against
the runs each recipe plans (planning trains and reads nothing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mammo_models.recipes import RECIPES, RecipeSettings

CHANGES = {"seeds": {"seeds": (5, 6)}, "n_lr": {"n_lr": 2}, "n_split_lr": {"n_split_lr": 2}}
"""Options whose value shows in the planned run names, and a value other than the default."""


@pytest.mark.parametrize("search", ["fixed", "paper"])
def test_declared_options_are_those_that_change_the_planned_runs(search, tmp_path: Path):
    base = RecipeSettings(runs_dir=tmp_path, search=search)
    for recipe in RECIPES.values():
        planned = sorted(s.name for s in recipe.runs(base))
        for option, change in CHANGES.items():
            other = RecipeSettings(runs_dir=tmp_path, search=search, **change)
            changed = sorted(s.name for s in recipe.runs(other)) != planned
            assert changed == (option in recipe.reads(search)), (recipe.name, search, option)

"""Recipes for the paper's Figures 3-8 and Tables 1-3: the runs each needs, trained once, drawn.

``make figures`` is ``lca-run recipe all --preset small --jobs 2``; ``--manifest`` runs the same
recipes on real data and ``--preset paper`` at the paper's scale.
"""

from .catalog import RECIPES, Recipe, resolve
from .make import RecipeReport, command, make_recipes
from .runner import RunOutcome, run_all, store_state
from .settings import RecipeSettings, RunSpec

__all__ = [
    "RECIPES",
    "Recipe",
    "RecipeReport",
    "RecipeSettings",
    "RunOutcome",
    "RunSpec",
    "command",
    "make_recipes",
    "resolve",
    "run_all",
    "store_state",
]

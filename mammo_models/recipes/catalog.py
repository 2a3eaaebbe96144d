"""One recipe per figure and table of the paper: the runs it needs and how it is drawn."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import plans, render, render_blend
from .settings import RecipeSettings, RunSpec


@dataclass(frozen=True)
class Recipe:
    """A figure or table of the paper.

    Attributes:
        name: what ``lca-run recipe NAME`` takes (``fig4``, ``table2``).
        title: the heading in ``figures/README.md``.
        paper: what the paper's figure or table shows, for comparison.
        runs: the runs it needs.
        render: draws it from the finished runs.
        options: the ``lca-run recipe`` options of :data:`RECIPE_OPTIONS` it reads with
            ``--search fixed`` (``lr`` is ``RecipeSettings.table_lr``), and
        paper_options: those it reads with ``--search paper``; ``lca-run recipe`` refuses
            such an option when none of the recipes asked for reads it.
    """

    name: str
    title: str
    paper: str
    runs: Callable[[RecipeSettings], list[RunSpec]]
    render: Callable[[RecipeSettings], render.Rendered]
    options: frozenset[str] = frozenset()
    paper_options: frozenset[str] = frozenset()

    def reads(self, search: str) -> frozenset[str]:
        """The options of :data:`RECIPE_OPTIONS` this recipe reads under ``search``."""
        return self.paper_options if search == "paper" else self.options


RECIPE_OPTIONS: tuple[str, ...] = (
    "seeds",
    "lr",
    "dropout",
    "n_lr",
    "n_split_lr",
    "lca_epochs",
    "epoch_breasts",
    "lca_set",
)
"""``lca-run recipe`` options that only some recipes read (the others, such as ``--preset`` and
``--epochs``, reach every run)."""

_LCA = frozenset({"lca_epochs", "epoch_breasts", "lca_set"})


def _opts(*names: str) -> frozenset[str]:
    return frozenset(names)


def _lca(i: int) -> Callable[[RecipeSettings], list[RunSpec]]:
    return lambda s: plans.lca_runs(s, s.lca_lrs[i])


def _lca_figure(i: int, stem: str) -> Callable[[RecipeSettings], render.Rendered]:
    return lambda s: render.grad_norm_and_lca(s, s.lca_lrs[i], stem, controls=i == 0)


def _table_runs(name: str) -> Callable[[RecipeSettings], list[RunSpec]]:
    folder, rows, _ = render.TABLES[name]
    return lambda s: plans.table_runs(s, folder, rows)


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe(
            "fig3",
            "Figure 3: learning curves of uni-view CC and MLO models",
            "ten models per view, learning rates log-uniform in [1e-5, 3e-3]: MLO models reach "
            "their best validation AUC earlier and generalise worse (best test AUC 0.864 CC vs "
            "0.789 MLO).",
            plans.fig3_runs,
            render.fig3,
            options=_opts("n_lr"),
            paper_options=_opts("n_lr"),
        ),
        Recipe(
            "fig4",
            "Figure 4: gradient norm and LCA of the CC and MLO columns of the Joint ResNet",
            "the MLO column has the larger gradient norm for most of training and contributes "
            "over 50% of the loss reduction in the first 5 epochs.",
            plans.fig4_runs,
            _lca_figure(0, "fig4_grad_norm_lca"),
            options=_LCA,
            paper_options=_LCA,
        ),
        Recipe(
            "fig5",
            "Figure 5: actual loss change vs summed LCA, and the residual",
            "the error of the LCA estimate per interval for the baseline at learning rate 1e-5 "
            "(LCA every 60 steps on 970 exams).",
            _lca(0),
            render.fig5,
            options=_LCA,
            paper_options=_LCA,
        ),
        Recipe(
            "fig6",
            "Figure 6: gradient norm and LCA at a tenfold learning rate",
            "at learning rate 1e-4 the MLO column still has the higher gradient norm early on and "
            "dominates the LCA.",
            _lca(1),
            _lca_figure(1, "fig6_grad_norm_lca"),
            options=_LCA,
            paper_options=_LCA,
        ),
        Recipe(
            "fig7",
            "Figure 7: gradient norm and LCA at a hundredfold learning rate",
            "at learning rate 1e-3 the same: the MLO column dominates the loss change.",
            _lca(2),
            _lca_figure(2, "fig7_grad_norm_lca"),
            options=_LCA,
            paper_options=_LCA,
        ),
        Recipe(
            "fig8",
            "Figure 8: learning rates sampled for Split Learning Rates",
            "per-component rates eta * 10^alpha, alpha ~ U[-1, 1], spread over 1e-6 to 1e-3.",
            plans.fig8_runs,
            render.fig8,
            options=_opts("n_split_lr", "lr"),
            paper_options=_opts("n_split_lr", "seeds"),
        ),
        Recipe(
            "table1",
            "Table 1: test AUC of uni-view models and model variants",
            "uni-view MLO 0.789, uni-view CC 0.864, Split 0.854, Joint 0.872, Shared 0.879 "
            "(mean of 3 seeds).",
            _table_runs("table1"),
            lambda s: render.table(s, "table1"),
            options=_opts("seeds", "lr"),
            paper_options=_opts("seeds", "n_lr"),
        ),
        Recipe(
            "table2",
            "Table 2: test AUC of the Joint ResNet with each regularizer",
            "Joint 0.872, + Pretraining 0.830, + Split LR 0.864, + Gradient Blending 0.870, "
            "+ Modality Dropout 0.876.",
            _table_runs("table2"),
            lambda s: render.table(s, "table2"),
            options=_opts("seeds", "lr", "dropout", "n_split_lr"),
            paper_options=_opts("seeds", "n_lr", "n_split_lr"),
        ),
        Recipe(
            "table3",
            "Table 3: test AUC without heatmap inputs",
            "Joint 0.694, + Modality Dropout 0.702, Shared 0.713.",
            _table_runs("table3"),
            lambda s: render.table(s, "table3"),
            options=_opts("seeds", "lr", "dropout"),
            paper_options=_opts("seeds", "n_lr"),
        ),
        Recipe(
            "table4",
            "Table 4: estimated Gradient Blending weights (appendix C)",
            "weights (joint, cc, mlo) by validation loss over epochs [0, 100] 0.367, 0.300, "
            "0.333 and [90, 100] 0.373, 0.286, 0.341; by validation AUC 0.319, 0.398, 0.283 and "
            "0.446, 0.498, 0.056; the best of the four by validation AUC is Table 2's row.",
            plans.table4_runs,
            render_blend.table4,
            options=_opts("seeds", "lr"),
            paper_options=_opts("seeds"),
        ),
        Recipe(
            "table5",
            "Table 5: Gradient Blending with other weights (appendix C's ablation)",
            "test AUC with equal weights 0.870; loss on 10% of the validation set 0.853 "
            "(swapped CC/MLO 0.858); AUC on 10% 0.868 (swapped 0.868): no significant "
            "difference, equal weights best.",
            plans.table5_runs,
            render_blend.table5,
            options=_opts("seeds", "lr"),
            paper_options=_opts("seeds"),
        ),
    )
}
"""Every recipe, in the order ``all`` makes them."""


def resolve(names: list[str] | tuple[str, ...]) -> list[Recipe]:
    """Recipes by name (``all`` for every one), in catalogue order; unknown names are an error."""
    wanted = set(names)
    if "all" in wanted:
        return list(RECIPES.values())
    unknown = sorted(wanted - set(RECIPES))
    if unknown:
        raise ValueError(
            f"unknown recipe(s) {', '.join(unknown)}; expected all or {', '.join(RECIPES)}"
        )
    return [r for r in RECIPES.values() if r.name in wanted]

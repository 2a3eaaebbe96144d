"""Shapley contributions of M players from the values of coalitions: pure functions.

A coalition is written by the set of players REMOVED from it, as a bit mask (bit ``i`` set: player
``i`` removed), because that is what an ablation evaluates: mask 0 is everyone present, mask
``2**M - 1`` no one. ``value[mask]`` is the worth of the coalition of the players present (higher is
better: the negative loss, or an accuracy).

Exact Shapley value of player ``i`` over the players present ``S`` (``i`` not in ``S``)::

    phi_i = sum_S |S|! (M - |S| - 1)! / M! * (v(S + i) - v(S))

so ``sum_i phi_i = v(everyone) - v(no one)`` (efficiency). It needs all ``2**M`` coalitions; beyond
``exact_up_to`` players, :func:`coalitions` asks only for everyone, each one removed, each one
alone and no one, and :func:`contributions` gives leave-one-out values
``phi_i = v(everyone) - v(everyone but i)`` (which do not add up to the total in general).
"""

from __future__ import annotations

from collections.abc import Mapping
from math import factorial

import numpy as np

EXACT_UP_TO = 4


def coalitions(m: int, exact_up_to: int = EXACT_UP_TO) -> tuple[int, ...]:
    """Masks of the removed players to evaluate, in a fixed order (everyone present first).

    ``m <= exact_up_to``: all ``2**m`` masks in increasing order. Beyond: everyone present, each
    one removed, all but one removed (each one alone), everyone removed (``2m + 2`` masks).
    """
    if m < 1:
        raise ValueError(f"need at least one player, got {m}")
    full = (1 << m) - 1
    if m <= exact_up_to:
        return tuple(range(full + 1))
    return (0, *(1 << i for i in range(m)), *(full ^ (1 << i) for i in range(m)), full)


def shapley_weight(present: int, m: int) -> float:
    """Weight of a coalition of ``present`` players (not counting the player it is joined by)."""
    return factorial(present) * factorial(m - present - 1) / factorial(m)


def contributions(value: Mapping[int, float], m: int, exact: bool) -> np.ndarray:
    """Per-player contributions (float64, shape (m,)) from the coalition values.

    Args:
        value: worth of each evaluated coalition, keyed by the mask of REMOVED players.
        m: number of players.
        exact: Shapley values over all ``2**m`` coalitions; ``False``: leave-one-out.

    Raises:
        KeyError: a coalition the rule needs is missing from ``value``.
    """
    phi = np.zeros(m, dtype=np.float64)
    full = (1 << m) - 1
    if not exact:
        for i in range(m):
            phi[i] = value[0] - value[1 << i]
        return phi
    for mask in range(full + 1):
        present = m - bin(mask).count("1")
        for i in range(m):
            if mask >> i & 1:  # i is removed from this coalition: joining it adds v(mask - i)
                # coalition S = present players of ``mask`` (i not among them), |S| = present
                phi[i] += shapley_weight(present, m) * (value[mask ^ (1 << i)] - value[mask])
    return phi

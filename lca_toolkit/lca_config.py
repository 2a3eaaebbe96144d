"""How LCA is measured: one frozen dataclass, validated on construction, stored whole in a run.

A run store keeps the configuration in its ``config`` attribute under ``tracker.lca`` as a flat
JSON object (:meth:`LcaConfig.as_record`): the adaptive options are flattened to ``rel_tol``,
``abs_tol`` and ``max_panels`` beside the other fields, the layout readers of older stores
already know. :meth:`LcaConfig.from_record` reads it back, older stores included (they lack
``per_tensor`` and ``cumulative``, which then take their defaults).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import LcaError, TrackerError
from .quadrature import RULE_NAMES, AdaptiveOptions

BnPolicy = Literal["interpolate", "train", "none"]
BN_POLICIES: tuple[str, ...] = ("interpolate", "train", "none")

_ADAPTIVE_FIELDS: tuple[str, ...] = ("rel_tol", "abs_tol", "max_panels")

DEFAULT_RESIDUAL_TOL = 0.1
"""Default ``LcaConfig.residual_tol``: warn about a residual above 10% of the loss change.

Chosen from the measurements in BENCHMARKS.md ("The default rule of the Tracker"): the adaptive
rule kept every interval of the examples below 0.2%, Simpson left 89% on ``examples/hf_clip.py``
and a 90th percentile of 36% on the demo-sized run; 10% is where an interval's per-group split is
off by more than a tenth of what it allocates.
"""


@dataclass(frozen=True)
class LcaConfig:
    """How LCA is measured.

    Attributes:
        every: k, the number of optimizer steps between snapshots.
        quadrature: ``first_order`` | ``trapezoid`` | ``simpson`` | ``lobatto4`` | ``adaptive``.
            The default is ``adaptive``: composite Simpson whose panels double until the
            residual is below ``rel_tol`` of the loss change, so an interval costs 2 gradient
            passes where Simpson is already exact enough and more only where Simpson's numbers
            would not add up (measured in BENCHMARKS.md: Simpson left a residual of 89% of the
            loss change on ``examples/hf_clip.py``, the adaptive rule 0.1% at about twice the
            passes).
        adaptive: tolerances and panel cap of the adaptive rule.
        bn_policy: ``interpolate`` | ``train`` | ``none`` (see :mod:`lca_toolkit.lca`).
        per_tensor: also record the LCA summed per parameter tensor (per layer).
        cumulative: keep float64 per-parameter running sums of LCA (one extra parameter-sized
            float64 buffer) so they can be written to the store.
        residual_tol: an interval whose ``|residual|`` exceeds this fraction of its
            ``|loss change|`` is warned about (:class:`~lca_toolkit.residual_check.LcaResidualWarning`,
            once per run) and marked in the residual plot; ``None`` never warns.
    """

    every: int
    quadrature: str = "adaptive"
    adaptive: AdaptiveOptions = field(default_factory=AdaptiveOptions)
    bn_policy: str = "interpolate"
    per_tensor: bool = False
    cumulative: bool = False
    residual_tol: float | None = DEFAULT_RESIDUAL_TOL

    def __post_init__(self) -> None:
        if not isinstance(self.every, int) or self.every < 1:
            raise LcaError(f"lca_every must be a positive integer, got {self.every!r}")
        if self.quadrature not in RULE_NAMES:
            raise LcaError(
                f"unknown quadrature {self.quadrature!r}; expected one of {', '.join(RULE_NAMES)}"
            )
        if self.residual_tol is not None and not (
            isinstance(self.residual_tol, int | float) and self.residual_tol >= 0
        ):
            raise LcaError(f"residual_tol must be a number >= 0 or None, got {self.residual_tol!r}")
        if self.bn_policy not in BN_POLICIES:
            raise LcaError(
                f"unknown bn_policy {self.bn_policy!r}; expected one of {', '.join(BN_POLICIES)}"
            )

    def as_record(self) -> dict[str, Any]:
        """Every field as a flat JSON-serialisable dict (the adaptive options flattened).

        Flat so that the keys stores have always had (``every``, ``quadrature``, ``rel_tol``,
        ``abs_tol``, ``max_panels``, ``bn_policy``) keep their place and readers keep working.
        """
        return {
            "every": self.every,
            "quadrature": self.quadrature,
            "rel_tol": self.adaptive.rel_tol,
            "abs_tol": self.adaptive.abs_tol,
            "max_panels": self.adaptive.max_panels,
            "bn_policy": self.bn_policy,
            "per_tensor": self.per_tensor,
            "cumulative": self.cumulative,
            "residual_tol": self.residual_tol,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> LcaConfig:
        """The config :meth:`as_record` wrote; missing keys (older stores) take the defaults."""
        unknown = sorted(set(record) - set(cls(1).as_record()))
        if unknown:
            raise LcaError(f"unknown LCA config field(s) {unknown} in {dict(record)!r}")
        adaptive = AdaptiveOptions(**{k: record[k] for k in _ADAPTIVE_FIELDS if k in record})
        rest = {k: v for k, v in record.items() if k not in _ADAPTIVE_FIELDS}
        if "every" not in rest:
            raise LcaError(f"LCA config record has no 'every': {dict(record)!r}")
        return cls(adaptive=adaptive, **rest)


def lca_config_from(lca: LcaConfig | None, *, lca_every: int | None, **options: Any) -> LcaConfig:
    """The run's LCA configuration: ``lca`` as given, or one built from the flat keywords.

    Both at once would leave two sources for one setting, so that is an error naming the flat
    keywords given. A flat option left at ``None`` takes the :class:`LcaConfig` default.
    """
    given = {k: v for k, v in options.items() if v is not None}
    if lca is not None:
        if not isinstance(lca, LcaConfig):
            raise TrackerError(f"lca must be an LcaConfig, got {type(lca).__name__}: {lca!r}")
        flat = (["lca_every"] if lca_every is not None else []) + sorted(given)
        if flat:
            raise TrackerError(
                f"Tracker got lca= and the flat LCA keyword(s) {', '.join(flat)}; give one or "
                "the other: put them into the LcaConfig (e.g. LcaConfig(every=k, "
                "quadrature=..., adaptive=AdaptiveOptions(rel_tol=...)))"
            )
        return lca
    adaptive_keys = ("rel_tol", "abs_tol", "max_panels")
    adaptive = AdaptiveOptions(**{k: given.pop(k) for k in adaptive_keys if k in given})
    return LcaConfig(every=lca_every, adaptive=adaptive, **given)

"""What determines a synthetic data set: :class:`SyntheticConfig` and the testbeds' settings.

The config's hash (with :data:`GENERATOR_VERSION`) names the cached copy on disk
(:mod:`.files`); everything drawn (:mod:`.draw`) follows from it and its one seed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from typing import Any

from ..errors import SyntheticDataError
from ..manifest import DEFAULT_SPLIT_FRACTIONS

GENERATOR_VERSION = 2
"""Bumped whenever the drawing code changes, so cached data sets are regenerated."""


@dataclass(frozen=True)
class SyntheticConfig:
    """Everything that determines the synthetic data set (its hash names the cached copy).

    Attributes:
        n_patients: patients, one exam each, both breasts: ``2 * n_patients`` breasts.
        image_size_cc: stored CC image (H, W) in pixels.
        image_size_mlo: stored MLO image (H, W) in pixels.
        pixel_scale: resolution of the stored images relative to the paper's full-resolution
            images (written to the manifest; 1/16 for images made for the ``demo`` preset).
        prevalence_malignant: probability that a breast has a malignant finding.
        prevalence_benign: probability that a breast has a benign finding (independent).
        conspicuity_cc: lesion contrast multiplier in CC (0 = invisible).
        conspicuity_mlo: lesion contrast multiplier in MLO.
        lesion_size: lesion radius as a fraction of the CC image width (the same number of
            pixels in both views, as one lesion has one physical size).
        cue_view: ``"CC"``, ``"MLO"`` or ``None`` (no cue).
        cue_strength: brightness added by the cue (images span about [0, 1]); 0 disables it.
        cue_size: side of the square cue as a fraction of the image width.
        cue_rate_train: (P(cue | any finding), P(cue | no finding)) for training patients.
        cue_rate_eval: the same for validation and test patients (equal rates: the cue then
            carries no information outside the training split).
        split_fractions: train/val/test fractions of patients (seeded, patient-level). Every
            split gets at least one malignant and one finding-free breast (see
            ``draw._draw_labels``), so a malignant AUC is defined on each.
        heatmaps: also write benign/malignant heatmaps that imitate an imperfect patch
            classifier (see ``draw._draw_heatmaps``), for 3-channel models.
        heatmap_detect: probability that the imitated patch classifier marks a visible finding
            in one view.
        heatmap_false_positives: mean number of false-positive blobs per heatmap.
        testbed: the name of the planted cause these knobs implement (``cue-mlo``, ``cue-cc``,
            ``balanced``, ``mlo-blind``, ``lesion-mlo``; see :data:`TESTBEDS`); recorded, not
            interpreted here.
        seed: the one seed of the data set.
    """

    n_patients: int = 200
    image_size_cc: tuple[int, int] = (192, 139)
    image_size_mlo: tuple[int, int] = (214, 125)
    pixel_scale: float = 0.0625
    prevalence_malignant: float = 0.2
    prevalence_benign: float = 0.2
    conspicuity_cc: float = 1.0
    conspicuity_mlo: float = 1.0
    lesion_size: float = 0.07
    cue_view: str | None = "MLO"
    cue_strength: float = 0.5
    cue_size: float = 0.24
    cue_rate_train: tuple[float, float] = (0.9, 0.05)
    cue_rate_eval: tuple[float, float] = (0.2, 0.2)
    split_fractions: tuple[float, float, float] = DEFAULT_SPLIT_FRACTIONS
    heatmaps: bool = False
    heatmap_detect: float = 0.7
    heatmap_false_positives: float = 0.8
    testbed: str = "cue-mlo"
    seed: int = 0

    def __post_init__(self) -> None:
        def fail(name: str, expected: str) -> None:
            raise SyntheticDataError(
                f"SyntheticConfig.{name} must be {expected}, got {getattr(self, name)!r}"
            )

        if not (isinstance(self.n_patients, int) and self.n_patients >= 1):
            fail("n_patients", "an integer >= 1")
        for name in ("image_size_cc", "image_size_mlo"):
            size = getattr(self, name)
            if len(size) != 2 or min(size) < 16:
                fail(name, "(height, width) with both >= 16")
        if not self.pixel_scale > 0:
            fail("pixel_scale", "> 0")
        for name in ("prevalence_malignant", "prevalence_benign"):
            if not 0 <= getattr(self, name) <= 1:
                fail(name, "in [0, 1]")
        for name in (
            "conspicuity_cc",
            "conspicuity_mlo",
            "cue_strength",
            "heatmap_false_positives",
        ):
            if not getattr(self, name) >= 0:
                fail(name, ">= 0")
        for name in ("cue_size", "heatmap_detect"):
            if not 0 <= getattr(self, name) <= 1:
                fail(name, "in [0, 1]")
        if not 0 < self.lesion_size < 0.5:
            fail("lesion_size", "in (0, 0.5)")
        if self.cue_view not in (None, "CC", "MLO"):
            fail("cue_view", "'CC', 'MLO' or None")
        for name in ("cue_rate_train", "cue_rate_eval"):
            rate = getattr(self, name)
            if len(rate) != 2 or not all(0 <= r <= 1 for r in rate):
                fail(name, "(P(cue | any finding), P(cue | no finding)), both in [0, 1]")
        if len(self.split_fractions) != 3 or abs(sum(self.split_fractions) - 1) > 1e-6:
            fail("split_fractions", "three fractions (train, val, test) summing to 1")
        if not (isinstance(self.seed, int) and self.seed >= 0):
            fail("seed", "an integer >= 0")
        if self.testbed not in TESTBEDS:
            fail("testbed", f"one of {', '.join(TESTBEDS)}")

    @property
    def n_breasts(self) -> int:
        return 2 * self.n_patients

    def image_size(self, view: str) -> tuple[int, int]:
        return tuple(self.image_size_cc if view == "CC" else self.image_size_mlo)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (tuples as lists)."""
        return json.loads(json.dumps(asdict(self)))

    def hash(self) -> str:
        """SHA-256 of the config and the generator version (hex)."""
        payload = {"generator_version": GENERATOR_VERSION, **self.to_dict()}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


TESTBEDS: dict[str, dict[str, Any]] = {
    "cue-mlo": {"cue_view": "MLO", "conspicuity_cc": 1.0, "conspicuity_mlo": 1.0},
    "cue-cc": {"cue_view": "CC", "conspicuity_cc": 1.0, "conspicuity_mlo": 1.0},
    "balanced": {"cue_view": None, "conspicuity_cc": 1.0, "conspicuity_mlo": 1.0},
    "mlo-blind": {"cue_view": None, "conspicuity_cc": 1.0, "conspicuity_mlo": 0.0},
    "lesion-mlo": {"cue_view": None, "conspicuity_cc": 0.5, "conspicuity_mlo": 1.0},
}
"""The planted causes of view imbalance, one per testbed (``--testbed``), as config changes:

* ``cue-mlo`` (default): lesions equally conspicuous in both views; the shortcut cue in MLO;
* ``cue-cc``: its mirror image, the cue in CC;
* ``balanced``: no cue; the two views differ only in anatomy;
* ``mlo-blind``: the MLO image carries neither lesion nor cue (a view that cannot help);
* ``lesion-mlo``: no cue; lesions at half their contrast in CC, in every split (MLO stays the
  more useful view throughout, training and evaluation alike).
"""


def with_testbed(config: SyntheticConfig, name: str) -> SyntheticConfig:
    """``config`` with the planted cause of testbed ``name`` (see :data:`TESTBEDS`).

    Raises:
        SyntheticDataError: unknown name (the message lists the known ones).
    """
    if name not in TESTBEDS:
        raise SyntheticDataError(
            f"--testbed {name!r} is unknown; expected one of {', '.join(TESTBEDS)}"
        )
    return replace(config, testbed=name, **TESTBEDS[name])

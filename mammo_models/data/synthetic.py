"""A deterministic synthetic two-view mammography data set: the bundled default.

What it is for
--------------
A **testbed**. It lets the view imbalance studied by Wu et al. (MIDL 2020) be reproduced, recorded
(gradient norms, LCA) and plotted on a laptop in minutes, and it exercises every step of the real
data path (16-bit PNG files, a manifest, left and right breasts, crop windows placed around the
breast). Numbers measured on it are not the paper's numbers and say nothing about real
mammograms.

What an image looks like
------------------------
Each patient has one exam with a left and a right breast, each imaged in CC and MLO. A breast is
drawn chest wall on the left: a half-ellipse against the left edge in CC; in MLO a taller, slightly
downward-tilted shape with the pectoral muscle as a bright triangle in the upper-left corner. Tissue
is brighter where the breast is thicker, with smooth random fibroglandular texture (its amount set
by a per-breast density) and quantum noise; the background is dark, with a small bright lead
marker in a far corner (so breast-box detection has to ignore it). Right breasts are then stored
mirrored, chest wall on the right, as a DICOM archive would hold them, so the loader's mirroring is
exercised.

Findings are independent per breast: a malignant one (an irregular mass with spicules and a few
calcification dots) with probability ``prevalence_malignant`` and a benign one (a smooth oval mass)
with probability ``prevalence_benign``. A finding sits at the same depth from the chest wall in both
views, as a real lesion does, and its contrast in each view is multiplied by that view's
conspicuity (``conspicuity_cc``, ``conspicuity_mlo``; 0 hides it in that view).

The planted cause (``--testbed``)
---------------------------------
Every testbed plants exactly one cause of view imbalance (:data:`TESTBEDS`):

* ``cue-mlo`` (default): lesions equally conspicuous in both views (one lesion has the same
  size in pixels and the same contrast in CC and MLO); in the MLO view only, a salient shortcut,
  a sharp-edged bright square well inside the breast (so inside every crop window, never cut),
  drawn in 90% of the training breasts with a finding (malignant or benign, so both losses can
  use it) and 5% of those without, and at one rate (20%) whatever the label in validation and
  test, where it therefore carries no information;
* ``cue-cc``: the mirror image, the shortcut in CC;
* ``balanced``: no shortcut;
* ``mlo-blind``: the MLO image carries neither lesion nor shortcut;
* ``lesion-mlo``: no shortcut; lesions at half their contrast in CC in every split.

What is planted is measured, not asserted: ``synthetic.json`` holds a ``calibration`` block
(:mod:`.calibration`) with the integrated signal of a lesion per view and of the shortcut (the
shortcut carries at least 3x a lesion's at the ``small`` and ``demo`` scales), the training and
held-out AUC of a linear probe that learns the shortcut from block-averaged pixels, and the AUC
of the heatmaps alone. Whether a network's columns then divide the learning the way the cause
predicts is what the recipes measure and report (``figures/README.md``); nothing here claims it.

Heatmaps imitate a patch classifier, not the truth: a visible finding is marked with probability
``heatmap_detect`` and a random confidence, the other kind's map responds weakly to it, and every
map gets false-positive blobs, blur and noise, so that the heatmaps alone rank breasts with an
AUC of about 0.8 and image + heatmap models do not saturate.

Files
-----
``generate_synthetic(config, root)`` writes ``root/images/*.png`` (16-bit greyscale; optional
8-bit heatmaps in ``root/heatmaps``), ``root/manifest.csv`` and ``root/synthetic.json`` (the config
and its hash). It does nothing when ``synthetic.json`` already matches the config, so the data are
regenerated only when the config (or the generator version) changes. The same config writes the
same bytes. Images are stored at the resolution of the preset they were made for; the manifest's
``pixel_scale`` column records it, so the loader resizes them correctly under any preset.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage

from .calibration import CalibrationSamples, block_mean, summarize
from .errors import SyntheticDataError
from .manifest import DEFAULT_SPLIT_FRACTIONS, TWO_VIEWS, Manifest, assign_splits, load_manifest

PathLike = str | os.PathLike[str]

GENERATOR_VERSION = 2
"""Bumped whenever the drawing code changes, so cached data sets are regenerated."""
MANIFEST_NAME = "manifest.csv"
META_NAME = "synthetic.json"

# independent random streams per breast: changing one component never shifts another's draws
_LABELS, _ANATOMY, _LESIONS, _CUE, _MARKER, _TEXTURE, _HEATMAP = range(7)
_VIEW_ID = {"CC": 0, "MLO": 1}


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
            split gets at least one malignant and one finding-free breast (see ``_draw_labels``),
            so a malignant AUC is defined on each.
        heatmaps: also write benign/malignant heatmaps that imitate an imperfect patch
            classifier (see ``_draw_heatmaps``), for 3-channel models.
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


# --------------------------------------------------------------------------------------------
# Drawing
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Lesion:
    kind: str  # "malignant" or "benign"
    depth: float  # distance from the chest wall as a fraction of the breast depth (both views)
    lateral: dict[str, float]  # per view, position across the breast in [-1, 1]
    radius: float  # fraction of the image width
    shape: dict[str, Any]


def _rng(config: SyntheticConfig, patient: int, side: int, stream: int, *extra: int):
    return np.random.default_rng([config.seed, patient, side, stream, *extra])


def _breast_geometry(view: str, H: int, W: int, anatomy: dict[str, float]):
    """Grids and shape of a breast in canonical orientation (chest wall at x = 0).

    Returns a dict with the inside mask (H, W) bool, thickness (H, W) in [0, 1] and a function
    mapping (depth fraction, lateral fraction) to pixel (y, x).
    """
    y, x = np.mgrid[0:H, 0:W].astype(np.float64)
    size = anatomy["size"]
    if view == "CC":
        cy = H * (0.5 + anatomy["shift"])
        ay, ax = H * 0.42 * size, W * 0.78 * size
        tilt = 0.0
    else:
        cy = H * (0.45 + anatomy["shift"])
        ay, ax = H * 0.55 * size, W * 0.8 * size
        tilt = 0.25 * H / W  # the nipple points slightly downwards
    yy = (y - cy - tilt * x) / ay
    xx = x / ax
    theta = np.arctan2(yy, xx)
    wobble = 1 + anatomy["wobble"] * np.sin(3 * theta + anatomy["phase"])
    rr = np.sqrt(yy**2 + xx**2) / wobble
    inside = rr < 1
    thickness = np.sqrt(np.clip(1 - rr**2, 0, 1))

    def place(depth: float, lateral: float) -> tuple[float, float]:
        px = depth * ax
        half = ay * np.sqrt(max(1 - depth**2, 0.05))
        py = cy + tilt * px + lateral * half
        return float(py), float(px)

    return {"y": y, "x": x, "inside": inside, "thickness": thickness, "place": place}


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    field = ndimage.gaussian_filter(
        rng.standard_normal(shape), sigma=max(sigma, 0.5), mode="reflect"
    )
    return field / (field.std() + 1e-12)


def _lesion_masks(
    lesion: _Lesion, view: str, geo: dict[str, Any], W: int
) -> tuple[np.ndarray, np.ndarray]:
    """(core mask, full intensity profile) of one lesion in one view, both (H, W) in [0, 1]."""
    y, x = geo["y"], geo["x"]
    cy, cx = geo["place"](lesion.depth, lesion.lateral[view])
    r = max(lesion.radius * W, 1.0)
    dy, dx = y - cy, x - cx
    dist = np.sqrt(dy**2 + dx**2)
    theta = np.arctan2(dy, dx)
    s = lesion.shape
    if lesion.kind == "benign":
        a = s["angle"]
        u = (dx * np.cos(a) + dy * np.sin(a)) / (r * s["elong"])
        v = (-dx * np.sin(a) + dy * np.cos(a)) / (r / s["elong"])
        core = 1 / (1 + np.exp((np.sqrt(u**2 + v**2) - 1) / 0.08))
        return core, core
    boundary = r * (1 + sum(amp * np.cos(k * theta + ph) for k, amp, ph in s["harmonics"]))
    core = 1 / (1 + np.exp((dist - boundary) / (0.15 * r)))
    spicules = np.zeros_like(dist)
    width = max(0.12 * r, 0.6)
    for angle, length in s["spicules"]:
        along = dx * np.cos(angle) + dy * np.sin(angle)
        across = -dx * np.sin(angle) + dy * np.cos(angle)
        reach = length * r
        ray = np.exp(-(across**2) / (2 * width**2)) * np.clip(1 - along / reach, 0, 1) * (along > 0)
        spicules = np.maximum(spicules, ray)
    calcs = np.zeros_like(dist)
    for ddy, ddx in s["calcs"]:
        calcs += np.exp(-((y - cy - ddy * r) ** 2 + (x - cx - ddx * r) ** 2) / (2 * 0.5**2))
    profile = np.clip(core + 0.5 * spicules + 0.8 * np.clip(calcs, 0, 1), 0, 1.6)
    return core, profile


def _draw_lesions(config: SyntheticConfig, rng: np.random.Generator, malignant: bool, benign: bool):
    lesions = []
    for kind, present in (("malignant", malignant), ("benign", benign)):
        # draw the parameters even when absent, so a breast's other draws never shift
        depth = rng.uniform(0.3, 0.75)
        lateral = {"CC": rng.uniform(-0.55, 0.55), "MLO": rng.uniform(-0.55, 0.55)}
        radius = config.lesion_size * rng.uniform(0.8, 1.25)
        shape = {
            "angle": rng.uniform(0, np.pi),
            "elong": rng.uniform(1.0, 1.5),
            "harmonics": [
                (k, rng.uniform(0.05, 0.2), rng.uniform(0, 2 * np.pi)) for k in (3, 5, 7)
            ],
            "spicules": [(rng.uniform(0, 2 * np.pi), rng.uniform(1.5, 2.5)) for _ in range(8)],
            "calcs": [tuple(rng.uniform(-0.7, 0.7, size=2)) for _ in range(5)],
        }
        if present:
            lesions.append(_Lesion(kind, depth, lateral, radius, shape))
    return lesions


def _draw_view(
    config: SyntheticConfig,
    view: str,
    patient: int,
    side: int,
    anatomy: dict[str, float],
    lesions: list[_Lesion],
    cue: tuple[float, float] | None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One image, canonical orientation: (H, W) float in [0, 1] and heatmaps per finding kind.

    Every random draw comes from the breast's own streams, so drawing the same view without its
    lesions or without its cue changes exactly those pixels (the calibration relies on it).
    """
    H, W = config.image_size(view)
    geo = _breast_geometry(view, H, W, anatomy)
    inside, thickness = geo["inside"], geo["thickness"]
    tex = _rng(config, patient, side, _TEXTURE, _VIEW_ID[view])
    coarse = _smooth_noise(tex, (H, W), 0.04 * W)
    fine = _smooth_noise(tex, (H, W), 0.012 * W)
    dense = 1 / (1 + np.exp(-((coarse + 0.5 * fine) - anatomy["density_threshold"]) / 0.35))
    image = inside * (0.22 + 0.28 * thickness + 0.28 * dense * thickness + 0.03 * fine)
    if view == "MLO":
        y, x = geo["y"], geo["x"]
        edge = x / (anatomy["pect_w"] * W) + y / (anatomy["pect_h"] * H)
        image = image + inside * 0.22 / (1 + np.exp((edge - 1) / 0.03))
    conspicuity = _conspicuity(config, view)
    contrast = {"malignant": 0.26, "benign": 0.2}
    for lesion in lesions:
        _, profile = _lesion_masks(lesion, view, geo, config.image_size_cc[1])
        image = image + inside * contrast[lesion.kind] * conspicuity * profile
    if cue is not None and config.cue_strength > 0:
        image = image + config.cue_strength * _cue_box(config, geo, cue, W)
    marker = _rng(config, patient, side, _MARKER, _VIEW_ID[view])
    mh, mw = max(2, round(0.03 * H)), max(2, round(0.06 * W))
    top = round(0.04 * H) if marker.random() < 0.5 else H - round(0.04 * H) - mh
    left = W - round(0.05 * W) - mw
    if not inside[top : top + mh, left : left + mw].any():
        image[top : top + mh, left : left + mw] = 0.9
    image = image + tex.normal(0.0, 0.01, size=(H, W)) + 0.02
    heat = {}
    if config.heatmaps:
        heat_rng = _rng(config, patient, side, _HEATMAP, _VIEW_ID[view])
        heat = _draw_heatmaps(config, view, geo, lesions, heat_rng)
    return np.clip(image, 0, 1), heat


def _conspicuity(config: SyntheticConfig, view: str) -> float:
    return config.conspicuity_cc if view == "CC" else config.conspicuity_mlo


def _cue_box(
    config: SyntheticConfig, geo: dict[str, Any], cue: tuple[float, float], W: int
) -> np.ndarray:
    """The shortcut: a sharp-edged square well inside the breast (so inside every crop window)."""
    cy, cx = geo["place"](*cue)
    half = max(1.0, config.cue_size * W / 2)
    return ((np.abs(geo["y"] - cy) <= half) & (np.abs(geo["x"] - cx) <= half)).astype(np.float64)


def _draw_heatmaps(
    config: SyntheticConfig,
    view: str,
    geo: dict[str, Any],
    lesions: list[_Lesion],
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Benign and malignant heatmaps of an imperfect patch classifier (not the truth).

    A finding visible in the view is marked with probability ``heatmap_detect`` and a random
    confidence; the other kind's map responds to it weakly (benign and malignant masses look
    alike to a patch classifier); each map gets Poisson(``heatmap_false_positives``) blobs of
    random confidence inside the breast, a blur and noise. The calibration records how well the
    maps alone rank the breasts (about 0.8 AUC at the defaults).
    """
    H, W = geo["inside"].shape
    y, x, inside = geo["y"], geo["x"], geo["inside"]
    visible = _conspicuity(config, view) > 0
    heat = {"benign": np.zeros((H, W)), "malignant": np.zeros((H, W))}
    for lesion in lesions:
        core, _ = _lesion_masks(lesion, view, geo, config.image_size_cc[1])
        detected = rng.random() < config.heatmap_detect
        confidence, crosstalk = rng.uniform(0.4, 1.0), rng.uniform(0.0, 0.5)
        if not visible:
            continue
        other = "benign" if lesion.kind == "malignant" else "malignant"
        if detected:
            heat[lesion.kind] = np.maximum(heat[lesion.kind], confidence * core)
        heat[other] = np.maximum(heat[other], crosstalk * confidence * core)
    radius = max(config.lesion_size * config.image_size_cc[1], 1.0)
    for kind in heat:
        for _ in range(rng.poisson(config.heatmap_false_positives)):
            depth, lateral = rng.uniform(0.15, 0.85), rng.uniform(-0.7, 0.7)
            cy, cx = geo["place"](depth, lateral)
            blob = np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * (0.8 * radius) ** 2))
            heat[kind] = np.maximum(heat[kind], rng.uniform(0.2, 0.9) * blob * inside)
        blurred = ndimage.gaussian_filter(heat[kind], sigma=max(0.02 * W, 0.5))
        heat[kind] = np.clip(blurred + rng.normal(0, 0.02, size=(H, W)) + 0.02, 0, 1)
    return heat


# --------------------------------------------------------------------------------------------
# Writing and caching
# --------------------------------------------------------------------------------------------


def _write_png(path: Path, array: np.ndarray, bits: int) -> None:
    from PIL import Image

    scale = 65535 if bits == 16 else 255
    dtype = np.uint16 if bits == 16 else np.uint8
    Image.fromarray(np.round(array * scale).astype(dtype)).save(
        path, format="PNG", compress_level=1
    )


def _draw_labels(
    config: SyntheticConfig, splits: list[str]
) -> dict[tuple[int, int], tuple[bool, bool]]:
    """(malignant, benign) per (patient, side); every split gets both malignant classes.

    Labels are drawn independently with the configured prevalences; then, so that a malignant
    AUC is defined on every split, a split without a malignant breast gets its first breast made
    malignant and a split without a finding-free breast gets its last breast cleared.
    """
    labels = {}
    for p in range(len(splits)):
        for side in (0, 1):
            rng = _rng(config, p, side, _LABELS)
            labels[(p, side)] = (
                bool(rng.random() < config.prevalence_malignant),
                bool(rng.random() < config.prevalence_benign),
            )
    for name in dict.fromkeys(splits):
        keys = [(p, side) for p, s in enumerate(splits) if s == name for side in (0, 1)]
        if not any(labels[k][0] for k in keys):
            labels[keys[0]] = (True, labels[keys[0]][1])
        if not any(not (m or b) for m, b in (labels[k] for k in keys)):
            labels[keys[-1]] = (False, False)
    return labels


_SIGNAL_SAMPLES = 32
"""Breasts with exactly one finding whose lesion and cue signals are measured."""


def _draw_anatomy(a: np.random.Generator) -> dict[str, float]:
    anatomy = {
        "size": a.uniform(0.8, 1.0),
        "shift": a.uniform(-0.06, 0.06),
        "wobble": a.uniform(0.0, 0.05),
        "phase": a.uniform(0, 2 * np.pi),
        "density": a.uniform(0.0, 1.0),
        "pect_w": a.uniform(0.25, 0.4),
        "pect_h": a.uniform(0.35, 0.55),
    }
    anatomy["density_threshold"] = 1.2 - 1.6 * anatomy["density"]
    return anatomy


def _measure_signals(
    config: SyntheticConfig,
    samples: CalibrationSamples,
    p: int,
    side: int,
    anatomy: dict[str, float],
    lesions: list[_Lesion],
    cue_at: tuple[float, float],
) -> None:
    """Integrated signal of the breast's one lesion in each view, and of a cue in the cue view.

    Each is the sum over pixels of (final image with it) - (final image without it): clipping
    and everything else included. The cue is drawn at the breast's cue position whether or not
    the breast carries it, so every sampled breast contributes.
    """
    plain = replace(config, heatmaps=False)
    for view in TWO_VIEWS:
        bare, _ = _draw_view(plain, view, p, side, anatomy, [], None)
        with_lesion, _ = _draw_view(plain, view, p, side, anatomy, lesions, None)
        samples.lesion_signal[view].append(float((with_lesion - bare).sum()))
        if view == config.cue_view and config.cue_strength > 0:
            with_cue, _ = _draw_view(plain, view, p, side, anatomy, lesions, cue_at)
            samples.cue_signal.append(float((with_cue - with_lesion).sum()))


def _write_all(config: SyntheticConfig, root: Path) -> None:
    """Draw every image and write images, heatmaps and the manifest into ``root``."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    if config.heatmaps:
        (root / "heatmaps").mkdir(exist_ok=True)
    ids = [f"S{p:05d}" for p in range(config.n_patients)]
    split_of = dict(
        assign_splits(pd.DataFrame({"patient_id": ids}), config.split_fractions, config.seed)[
            ["patient_id", "split"]
        ].itertuples(index=False)
    )
    labels = _draw_labels(config, [split_of[pid] for pid in ids])
    rows = []
    samples = CalibrationSamples()
    for p, pid in enumerate(ids):
        split = split_of[pid]
        for side, laterality in enumerate(("L", "R")):
            malignant, benign = labels[(p, side)]
            anatomy = _draw_anatomy(_rng(config, p, side, _ANATOMY))
            lesions = _draw_lesions(config, _rng(config, p, side, _LESIONS), malignant, benign)
            c = _rng(config, p, side, _CUE)
            rate = config.cue_rate_train if split == "train" else config.cue_rate_eval
            has_cue = bool(c.random() < (rate[0] if (malignant or benign) else rate[1]))
            cue_at = (c.uniform(0.4, 0.65), c.uniform(-0.3, 0.3))
            heat_score = 0.0
            for view in TWO_VIEWS:
                cue = cue_at if (has_cue and view == config.cue_view) else None
                image, heat = _draw_view(config, view, p, side, anatomy, lesions, cue)
                if view == config.cue_view:
                    samples.probe_features.append(block_mean(image))
                    samples.probe_cue.append(cue is not None and config.cue_strength > 0)
                    samples.probe_train.append(split == "train")
                if config.heatmaps:
                    heat_score = max(heat_score, float(heat["malignant"].max()))
                stem = f"{pid}_{laterality}_{view}"
                row = {
                    "dataset": "synthetic",
                    "image_path": f"images/{stem}.png",
                    "patient_id": pid,
                    "exam_id": "E0",
                    "laterality": laterality,
                    "view": view,
                    "malignant": int(malignant),
                    "benign": int(benign),
                    "label_source": "pathology",
                    "split": split,
                }
                flip = laterality == "R"  # stored as acquired: right breasts chest wall right
                _write_png(root / row["image_path"], image[:, ::-1] if flip else image, 16)
                if config.heatmaps:
                    for kind in ("benign", "malignant"):
                        rel = f"heatmaps/{stem}_{kind}.png"
                        _write_png(root / rel, heat[kind][:, ::-1] if flip else heat[kind], 8)
                        row[f"heatmap_{kind}_path"] = rel
                row["pixel_scale"] = config.pixel_scale
                row["cue"] = int(cue is not None and config.cue_strength > 0)
                row["density"] = round(anatomy["density"], 4)
                rows.append(row)
            if config.heatmaps:
                samples.heat_score.append(heat_score)
                samples.malignant.append(malignant)
            if len(lesions) == 1 and len(samples.lesion_signal["CC"]) < _SIGNAL_SAMPLES:
                _measure_signals(config, samples, p, side, anatomy, lesions, cue_at)
    pd.DataFrame(rows).to_csv(root / MANIFEST_NAME, index=False)
    meta = {
        "generator_version": GENERATOR_VERSION,
        "hash": config.hash(),
        "config": config.to_dict(),
        "calibration": summarize(samples, config.cue_view if config.cue_strength > 0 else None),
    }
    (root / META_NAME).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def _is_current(root: Path, config: SyntheticConfig) -> bool:
    try:
        meta = json.loads((root / META_NAME).read_text())
    except (OSError, ValueError):
        return False
    return meta.get("hash") == config.hash() and (root / MANIFEST_NAME).is_file()


def generate_synthetic(config: SyntheticConfig, root: PathLike) -> Path:
    """Write the data set for ``config`` into ``root`` unless it is already there.

    The data are drawn into a temporary sibling directory and moved into place at the end, so an
    interrupted run leaves no half-written data set and concurrent runs with the same config
    (a sweep) end with one copy.

    Args:
        config: the data set's parameters.
        root: its directory; created if missing. An existing non-empty directory is replaced only
            if it holds an earlier synthetic data set (``synthetic.json``).

    Returns:
        Path of the manifest (``root/manifest.csv``); paths in it are relative to ``root``.

    Raises:
        SyntheticDataError: ``root`` holds other files, or cannot be written.
    """
    root = Path(root)
    if _is_current(root, config):
        return root / MANIFEST_NAME
    if root.exists() and (
        not root.is_dir() or (any(root.iterdir()) and not (root / META_NAME).exists())
    ):
        raise SyntheticDataError(
            f"{root} exists and is not a synthetic data directory (no {META_NAME}); refusing to "
            "overwrite it. Choose an empty or new directory for the synthetic data"
        )
    root.parent.mkdir(parents=True, exist_ok=True)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    except OSError as exc:
        raise SyntheticDataError(f"cannot create a directory next to {root}: {exc}") from exc
    try:
        _write_all(config, tmp)
        if _is_current(root, config):  # another process finished first
            return root / MANIFEST_NAME
        if root.exists():
            old = root.with_name(f".{root.name}.old-{uuid.uuid4().hex[:8]}")
            os.rename(root, old)
            os.rename(tmp, root)
            shutil.rmtree(old, ignore_errors=True)
        else:
            try:
                os.rename(tmp, root)
            except OSError:
                if not _is_current(root, config):
                    raise
    except OSError as exc:
        raise SyntheticDataError(f"cannot write the synthetic data set to {root}: {exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root / MANIFEST_NAME


def load_synthetic(
    config: SyntheticConfig, root: PathLike, *, views: tuple[str, ...] = TWO_VIEWS
) -> Manifest:
    """Generate (if needed) and load the synthetic data set as a :class:`~.manifest.Manifest`."""
    manifest_path = generate_synthetic(config, root)
    return load_manifest(manifest_path, Path(root), views=views, strict=True)

"""Draw the synthetic data set: pure functions from a config and its seed to arrays.

Nothing here touches the disk (:mod:`.files` writes what is drawn). Every breast draws from its
own random streams, one per component (labels, anatomy, lesions, cue, marker, texture,
heatmaps), seeded by ``(seed, patient, side, stream, ...)``: changing one component never shifts
another's draws, and the same config draws the same arrays in any order.

Images come in canonical orientation, chest wall on the left (x = 0), for both breasts; storing
right breasts mirrored, as acquired, is the writer's job.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage

from ..calibration import CalibrationSamples, block_mean
from ..manifest import TWO_VIEWS, assign_splits
from .config import SyntheticConfig

# independent random streams per breast: changing one component never shifts another's draws
_LABELS, _ANATOMY, _LESIONS, _CUE, _MARKER, _TEXTURE, _HEATMAP = range(7)
_VIEW_ID = {"CC": 0, "MLO": 1}

LATERALITIES = ("L", "R")
"""The two breasts of a patient, in drawing order (side 0 and side 1 of the random streams)."""


@dataclass(frozen=True)
class DrawnView:
    """One image of a breast, canonical orientation (chest wall at x = 0)."""

    image: np.ndarray
    """(H, W) float64 in [0, 1], H x W the config's image size of the view."""
    heatmaps: dict[str, np.ndarray]
    """``benign`` and ``malignant`` maps, (H, W) in [0, 1]; empty unless ``config.heatmaps``."""
    cue: bool
    """Whether the shortcut cue is drawn in this image."""


@dataclass(frozen=True)
class DrawnBreast:
    """One breast of one patient: its labels, its split and its two views."""

    patient_id: str
    laterality: str
    split: str
    malignant: bool
    benign: bool
    density: float
    """Fibroglandular density in [0, 1] (the texture's amount), as drawn."""
    views: dict[str, DrawnView]
    """``CC`` and ``MLO``, in :data:`TWO_VIEWS` order."""


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


def patient_splits(config: SyntheticConfig) -> dict[str, str]:
    """Patient id -> ``train``/``val``/``test`` (seeded, patient-level), in patient order."""
    ids = [f"S{p:05d}" for p in range(config.n_patients)]
    frame = assign_splits(pd.DataFrame({"patient_id": ids}), config.split_fractions, config.seed)
    split_of = dict(frame[["patient_id", "split"]].itertuples(index=False))
    return {pid: split_of[pid] for pid in ids}


def draw_breasts(
    config: SyntheticConfig, samples: CalibrationSamples | None = None
) -> Iterator[DrawnBreast]:
    """Draw every breast of the data set, patient by patient, left breast first.

    A generator, so that a writer holds one breast in memory at a time, not the data set.

    Args:
        config: the data set's parameters.
        samples: when given, what the calibration measures (:mod:`..calibration`) is appended to
            it as the breasts are drawn: the cue view's block means for the probe, the heatmap
            score per breast and, for the first breasts with exactly one finding, the integrated
            signal of its lesion and of a cue.

    Yields:
        One :class:`DrawnBreast` per breast, ``2 * config.n_patients`` in all.
    """
    split_of = patient_splits(config)
    labels = _draw_labels(config, list(split_of.values()))
    for p, (pid, split) in enumerate(split_of.items()):
        for side, laterality in enumerate(LATERALITIES):
            malignant, benign = labels[(p, side)]
            anatomy = _draw_anatomy(_rng(config, p, side, _ANATOMY))
            lesions = _draw_lesions(config, _rng(config, p, side, _LESIONS), malignant, benign)
            c = _rng(config, p, side, _CUE)
            rate = config.cue_rate_train if split == "train" else config.cue_rate_eval
            has_cue = bool(c.random() < (rate[0] if (malignant or benign) else rate[1]))
            cue_at = (c.uniform(0.4, 0.65), c.uniform(-0.3, 0.3))
            views = {}
            for view in TWO_VIEWS:
                cue = cue_at if (has_cue and view == config.cue_view) else None
                image, heat = _draw_view(config, view, p, side, anatomy, lesions, cue)
                views[view] = DrawnView(image, heat, cue is not None and config.cue_strength > 0)
            breast = DrawnBreast(
                pid, laterality, split, malignant, benign, anatomy["density"], views
            )
            if samples is not None:
                _sample(config, samples, breast)
                if len(lesions) == 1 and len(samples.lesion_signal["CC"]) < _SIGNAL_SAMPLES:
                    _measure_signals(config, samples, p, side, anatomy, lesions, cue_at)
            yield breast


def _sample(config: SyntheticConfig, samples: CalibrationSamples, breast: DrawnBreast) -> None:
    """Append the probe's features of the cue view and the breast's heatmap score."""
    if config.cue_view is not None:
        drawn = breast.views[config.cue_view]
        samples.probe_features.append(block_mean(drawn.image))
        samples.probe_cue.append(drawn.cue)
        samples.probe_train.append(breast.split == "train")
    if config.heatmaps:
        score = max(float(v.heatmaps["malignant"].max()) for v in breast.views.values())
        samples.heat_score.append(max(0.0, score))
        samples.malignant.append(breast.malignant)

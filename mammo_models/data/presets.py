"""Data-side presets: image scale, crop windows, cache and synthetic data per preset.

==========  =======  =====================  =====================  =================================
preset      scale    CC window (H x W)      MLO window (H x W)     synthetic data
==========  =======  =====================  =====================  =================================
``tiny``    0.024    64 x 47                71 x 42                16 patients (32 breasts), for tests
``small``   0.035    94 x 68                104 x 61               200 patients (400 breasts)
``demo``    1/16     167 x 121              186 x 109              200 patients (400 breasts)
``paper``   1        2677 x 1942            2974 x 1748            the demo data, resized up
==========  =======  =====================  =====================  =================================

The scale resizes every image (anti-aliased) before its window is cut, so a full-resolution DICOM
runs under ``tiny`` as well as under ``paper``; window jitter (100 full-resolution pixels) scales
with it. Synthetic images are stored about 15% larger than the preset's windows, so the window has
room to move and the breast-box placement matters.

``small`` is the scale of ``make figures``, which trains about a hundred short runs for the
paper's figures and tables. ``demo`` is sized so that a two-view ResNet-22 trains on 2 CPU cores in a few minutes: each
epoch holds the ~120 training breasts with a finding plus as many without (about 60 steps of
batch 4, about 20 s each for a joint model). ``paper`` is meant for real data; given the synthetic
data it uses the demo images, upsampled 16x (slow, and no more informative).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from .crops import CropConfig, window_size
from .dataset import DataConfig
from .errors import DataConfigError
from .synthetic import SyntheticConfig

_MARGIN = 1.15  # synthetic image size / window size


def _synthetic_for(scale: float, n_patients: int, **kwargs: Any) -> SyntheticConfig:
    sizes = {}
    for view in ("CC", "MLO"):
        h, w = window_size(view, scale)
        sizes[view] = (round(h * _MARGIN), round(w * _MARGIN))
    return SyntheticConfig(
        n_patients=n_patients,
        image_size_cc=sizes["CC"],
        image_size_mlo=sizes["MLO"],
        pixel_scale=scale,
        **kwargs,
    )


@dataclass(frozen=True)
class DataPreset:
    """The data side of a named preset.

    Attributes:
        name: ``tiny``, ``small``, ``demo`` or ``paper``.
        scale: image resolution relative to the paper's full-resolution images.
        crop: window jitter.
        cache_mb: in-memory cache of decoded, scaled images (per process).
        synthetic: the synthetic data set of this preset.
        description: one line for ``--help`` and run logs.
    """

    name: str
    scale: float
    synthetic: SyntheticConfig
    crop: CropConfig = field(default_factory=CropConfig)
    cache_mb: float = 0.0
    description: str = ""

    @property
    def windows(self) -> dict[str, tuple[int, int]]:
        """Window (H, W) per view at this preset's scale."""
        return {view: window_size(view, self.scale) for view in ("CC", "MLO")}

    def data_config(self, **overrides: Any) -> DataConfig:
        """A :class:`~.dataset.DataConfig` for this preset; keyword overrides win (e.g.
        ``heatmaps=True``, ``seed=3``)."""
        base = DataConfig(scale=self.scale, crop=self.crop, cache_mb=self.cache_mb)
        return replace(base, **overrides)


PRESETS: dict[str, DataPreset] = {
    "tiny": DataPreset(
        name="tiny",
        scale=0.024,
        synthetic=_synthetic_for(0.024, 16),
        cache_mb=64,
        description="tests: windows about 64x48, 32 synthetic breasts",
    ),
    "small": DataPreset(
        name="small",
        scale=0.035,
        synthetic=_synthetic_for(0.035, 200),
        cache_mb=256,
        description="figures: windows about 94x68 (0.035 scale), 400 synthetic breasts",
    ),
    "demo": DataPreset(
        name="demo",
        scale=1 / 16,
        synthetic=_synthetic_for(1 / 16, 200),
        cache_mb=512,
        description="laptop demo: windows about 170x120 (1/16 scale), 400 synthetic breasts",
    ),
    "paper": DataPreset(
        name="paper",
        scale=1.0,
        synthetic=_synthetic_for(1 / 16, 200),
        cache_mb=0,
        description="the paper's full-resolution windows (2677x1942 CC, 2974x1748 MLO)",
    ),
}


def get_preset(name: str) -> DataPreset:
    """The data preset called ``name``.

    Raises:
        DataConfigError: unknown name (the message lists the known ones).
    """
    try:
        return PRESETS[name]
    except KeyError:
        raise DataConfigError(
            f"unknown data preset {name!r}; expected one of {', '.join(PRESETS)}"
        ) from None

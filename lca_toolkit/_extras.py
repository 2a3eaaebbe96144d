"""Optional dependencies: import them only when a feature needs them, fail in one line if absent.

The core toolkit needs torch, numpy, pandas and zarr only; TensorBoard mirroring and xarray
datasets are extras (``pip install 'lca-toolkit[tensorboard]'``). A user who asks for such a
feature without its package gets one line naming the extra to install, not an import traceback.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingExtraError


def require(module: str, *, package: str, extra: str, feature: str) -> ModuleType:
    """Import ``module`` for ``feature``, or raise :class:`MissingExtraError` naming ``extra``.

    Args:
        module: the module to import, e.g. ``"torch.utils.tensorboard"``.
        package: the distribution that provides it, for the message (``"tensorboard"``).
        extra: the optional-dependency group of lca-toolkit that installs it.
        feature: what the user asked for, for the message (e.g. ``"mirror='tensorboard:DIR'"``).
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(
            f"{feature} needs the {package} package, which is not installed: "
            f"pip install 'lca-toolkit[{extra}]'"
        ) from None

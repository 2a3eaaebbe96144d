"""Optional dependencies: import them only when a feature needs them, fail in one line if absent.

The core toolkit needs torch, numpy, pandas and zarr only; TensorBoard mirroring and xarray
datasets are extras (``pip install 'lca-toolkit[tensorboard]'``). A user who asks for such a
feature without its package gets one line naming the extra to install, not an import traceback.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingExtraError


def import_or_explain(module: str, message: str) -> ModuleType:
    """Import ``module``, or raise :class:`MissingExtraError` (an ``ImportError``) with ``message``.

    The chained traceback of the failed import is dropped on purpose: the fix is always the same
    ``pip install`` line, and a page of import machinery hides it.
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(message) from None


def require(module: str, *, package: str, extra: str, feature: str) -> ModuleType:
    """Import ``module`` for ``feature``, or raise :class:`MissingExtraError` naming ``extra``.

    Args:
        module: the module to import, e.g. ``"torch.utils.tensorboard"``.
        package: the distribution that provides it, for the message (``"tensorboard"``).
        extra: the optional-dependency group of lca-toolkit that installs it.
        feature: what the user asked for, for the message (e.g. ``"mirror='tensorboard:DIR'"``).
    """
    return import_or_explain(
        module,
        f"{feature} needs the {package} package, which is not installed: "
        f"pip install 'lca-toolkit[{extra}]'",
    )


def require_for_integration(
    module: str, *, integration: str, library: str, extra: str
) -> ModuleType:
    """``lca_toolkit.integrations.<integration>`` imported without its extra: one line."""
    return import_or_explain(
        module,
        f"lca_toolkit.integrations.{integration} needs {library}: pip install 'lca-toolkit[{extra}]'",
    )

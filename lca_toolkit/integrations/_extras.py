"""One readable error when an integration's optional dependency is missing."""

from __future__ import annotations

import importlib
from types import ModuleType


def require(module: str, *, integration: str, library: str, extra: str) -> ModuleType:
    """Import ``module`` or raise a one-line ImportError naming the extra that installs it.

    The chained traceback of the failed import is dropped on purpose: the fix is always the same
    ``pip install`` line, and a page of import machinery hides it.
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(
            f"lca_toolkit.integrations.{integration} needs {library}: "
            f"pip install 'lca-toolkit[{extra}]'"
        ) from None

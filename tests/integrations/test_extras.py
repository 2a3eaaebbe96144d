"""An integration imported without its extra fails with one line naming the extra."""

from __future__ import annotations

import importlib
import sys

import pytest


@pytest.mark.parametrize(
    ("integration", "blocked", "message"),
    [
        ("lightning", "lightning.pytorch", "needs Lightning: pip install 'lca-toolkit[lightning]'"),
        ("transformers", "transformers",
         "needs transformers: pip install 'lca-toolkit[transformers]'"),
    ],
)
def test_missing_extra_is_one_line(monkeypatch, integration, blocked, message):
    monkeypatch.setitem(sys.modules, blocked, None)  # `import blocked` now raises ImportError
    monkeypatch.delitem(sys.modules, f"lca_toolkit.integrations.{integration}", raising=False)
    with pytest.raises(ImportError) as info:
        importlib.import_module(f"lca_toolkit.integrations.{integration}")
    assert str(info.value) == f"lca_toolkit.integrations.{integration} {message}"
    assert info.value.__suppress_context__  # no chained traceback of the failed import

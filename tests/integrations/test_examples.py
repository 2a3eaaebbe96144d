"""The Lightning and Hugging Face examples run end to end with a few steps."""

from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np
import pytest

from lca_toolkit import open_run

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(name: str) -> dict:
    return runpy.run_path(str(EXAMPLES / name), run_name="example")


@pytest.mark.parametrize(
    ("script", "groups"),
    [
        ("lightning_two_tower.py", ["a", "b", "head"]),
        ("hf_clip.py", ["vision", "text", "heads"]),
    ],
)
def test_example_records_a_store(tmp_path, script, groups):
    pytest.importorskip("lightning" if "lightning" in script else "transformers")
    store = load(script)["main"](tmp_path, steps=6)
    run = open_run(store)
    assert run.groups == groups
    steps = run.steps()
    assert steps["step"].tolist() == [1, 2, 3, 4, 5, 6]
    assert np.isfinite(steps[[f"grad_norm/{g}" for g in groups]].to_numpy()).all()
    lca = run.lca()
    assert len(lca) == 6  # at six steps both examples measure every step
    total = lca[[f"lca/{g}" for g in groups]].sum(axis=1) + lca["residual"]
    np.testing.assert_allclose(total, lca["loss_change"], atol=1e-9)

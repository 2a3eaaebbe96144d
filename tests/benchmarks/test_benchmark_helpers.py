"""The benchmark scripts' measuring helpers, on tiny problems (no timings are asserted)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch
from torch import nn

from lca_toolkit import ParamGroups
from lca_toolkit.lca import LcaConfig, LcaEngine

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_buffer_counter_sees_four_parameter_copies_at_the_peak():
    mem = _load("lca_memory")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 1))
    groups = ParamGroups.from_prefixes(model, {"a": "0.", "b": "2."})
    batches = [torch.randn(4, 6), torch.randn(3, 6)]
    engine = LcaEngine(
        model, groups, lambda m, x: m(x).squeeze(1) ** 2, batches, LcaConfig(1, "simpson")
    )
    counter = mem.BufferCounter(engine)
    engine.measure(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1)
    counter.peak = 0
    result = engine.measure(2)
    P = sum(p.numel() * 4 for p in model.parameters())
    assert counter.peak == 4 * P  # snapshot, accumulator, node, node gradient
    assert mem.nbytes([*engine._snap, *engine._g_prev]) == 2 * P
    assert result.passes == 2  # the wrapper passes results through unchanged


def test_store_cost_model_groups_and_paper_iterations():
    sc = _load("store_cost")
    model, groups, _ = sc.make(4)
    assert groups.names == ["group0", "group1", "group2", "group3"]
    assert model(torch.ones(2, 4)).shape == (2,)
    assert sc.paper_iterations() == (242_500, 2_425)

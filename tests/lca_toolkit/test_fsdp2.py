"""The Tracker on a model sharded with FSDP2 (2 gloo ranks on the CPU) equals one unsharded process.

One torchrun of ``tests/helpers/fsdp_worker.py`` runs every sharded scenario; the reference runs
here, unsharded, on the same global batches.
"""

from __future__ import annotations

import fsdp_worker
import numpy as np
import pytest
import torch
from torch import nn
from torchrun import torchrun

from lca_toolkit import Tracker, open_run
from lca_toolkit.sharding import FSDP1_MESSAGE, ShardingError

REPO_WORKER = fsdp_worker.__file__


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    """What the sharded runs stored and returned (one torchrun for every scenario)."""
    out = tmp_path_factory.mktemp("fsdp2")
    done = torchrun(2, REPO_WORKER, str(out), timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    return out, torch.load(out / "results.pt", weights_only=False)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The unsharded runs: adaptive (as the FSDP2 run) and Simpson (as the HSDP runs)."""
    out = tmp_path_factory.mktemp("one")
    return {
        "adaptive": (out / "a.zarr", fsdp_worker.train(out / "a.zarr")),
        "simpson": (out / "s.zarr", fsdp_worker.train(out / "s.zarr", quadrature="simpson")),
    }


def _numbers(frame):
    return frame.select_dtypes("number").to_numpy(np.float64)


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("fsdp", "adaptive"),
        ("hsdp_2x1", "simpson"),
        ("hsdp_1x2", "simpson"),
        ("resumed", "adaptive"),
        ("accumulated", "adaptive"),
    ],
)
def test_sharded_rows_equal_one_process(sharded, reference, name, rule):
    out, _ = sharded
    one_path, _ = reference[rule]
    one, two = open_run(one_path), open_run(out / f"{name}.zarr")
    s1, s2 = one.steps(), two.steps()
    assert s2["step"].tolist() == list(range(1, fsdp_worker.STEPS + 1))
    # Norms (local squares, one all-reduce over the sharded mesh dimension), losses, updates,
    # and the groups' parameter norms (the learning speed's denominator).
    assert [c for c in s2.columns if c.startswith("param_norm/")] == [
        f"param_norm/{g}" for g in two.groups
    ]
    np.testing.assert_allclose(_numbers(s2), _numbers(s1), rtol=1e-9, atol=1e-12)
    l1, l2 = one.lca(), two.lca()
    assert l2["end_step"].tolist() == [2, 4, 6, 8]
    np.testing.assert_allclose(_numbers(l2), _numbers(l1), rtol=1e-9, atol=1e-12)
    assert two.attrs["group_members"] == one.attrs["group_members"]
    assert two.attrs["model_summary"] == one.attrs["model_summary"]


def test_every_rank_saw_the_same_lca_as_one_process(sharded, reference):
    _, results = sharded
    np.testing.assert_allclose(
        results["fsdp"]["lca"], reference["adaptive"][1]["lca"], rtol=1e-9, atol=1e-12
    )


def test_recording_does_not_change_sharded_training(sharded):
    _, results = sharded
    on, off = results["fsdp"]["weights"], results["off"]["weights"]
    assert on.keys() == off.keys()
    for name in on:
        assert torch.equal(on[name], off[name]), name  # bit-identical


def test_bf16_mixed_precision_gives_finite_norms_close_to_fp32(sharded, reference):
    out, _ = sharded
    bf16 = open_run(out / "bf16.zarr").steps()
    fp = open_run(reference["adaptive"][0]).steps()
    cols = [c for c in bf16.columns if c.startswith("grad_norm/")]
    assert np.isfinite(bf16[cols].to_numpy()).all()
    # bf16 compute: about 3 significant digits, the gradients themselves unscaled.
    np.testing.assert_allclose(bf16[cols].to_numpy(), fp[cols].to_numpy(), rtol=0.1)
    lca = open_run(out / "bf16.zarr").lca()
    assert np.isfinite(_numbers(lca)).all()


def test_partial_placement_is_refused_in_one_line(sharded):
    _, results = sharded
    message = results["refusals"]["partial"]
    assert message.startswith("ShardingError: parameter 'weight' has placement")
    assert "\n" not in message


def test_fsdp1_is_refused_in_one_line():
    from torch.distributed.fsdp import FullyShardedDataParallel

    # FSDP1 cannot be built on the CPU (it needs an accelerator): an instance without its
    # __init__ stands in, inside a model, as the recorder only looks at the wrapper's type.
    wrapper = FullyShardedDataParallel.__new__(FullyShardedDataParallel)
    nn.Module.__init__(wrapper)
    model = nn.Sequential(nn.Linear(2, 2))
    model.add_module("fsdp1", wrapper)
    with pytest.raises(ShardingError, match="FSDP2") as info:
        Tracker(model, {"all": ""})
    assert str(info.value) == FSDP1_MESSAGE and "\n" not in FSDP1_MESSAGE


def test_functional_call_gives_no_gradient_on_fsdp2_and_the_engine_never_uses_it(sharded):
    _, results = sharded
    # FSDP's pre-forward puts its own parameters back: swapped-in tensors of the root's
    # parameters (the head) get no gradient, silently.
    assert results["functional_call_grads"] and not all(results["functional_call_grads"])
    # The "fsdp" run trained with functional_call made to fail, and its rows equal one process
    # (test_sharded_rows_equal_one_process): the engine evaluated the FSDP module in place.
    assert results["fsdp"]["lca"]


@pytest.fixture
def one_rank_group():
    """A gloo process group of one rank in this process, so fully_shard can run here."""
    import torch.distributed as dist

    store = dist.HashStore()
    dist.init_process_group("gloo", rank=0, world_size=1, store=store)
    try:
        yield
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize(
    ("model", "options", "message"),
    [
        (lambda: nn.Sequential(nn.Linear(2, 2)), {"cumulative": True}, "per_tensor=True"),
        (
            lambda: nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)),
            {},
            "bn_policy='interpolate' is not available",
        ),
    ],
)
def test_what_a_sharded_engine_cannot_measure_is_refused(one_rank_group, model, options, message):
    from torch.distributed.fsdp import fully_shard

    net = model()
    fully_shard(net)
    batches = [torch.zeros(2, 2)]
    with pytest.raises(ShardingError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Tracker(net, {"all": ""}, loss_fn=lambda m, b: m(b).sum(1), eval_batches=batches,
                lca_every=1, **options)  # fmt: skip

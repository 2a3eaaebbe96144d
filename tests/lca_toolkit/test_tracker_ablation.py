"""Input ablation recorded by the Tracker: ``modalities=`` and ``ablation_every=``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lca_toolkit import AblationError, Modality, Tracker, TrackerError, open_run


class TwoInputs(nn.Module):
    """Uses input ``a`` and, unless ``ignore_b``, input ``b``."""

    def __init__(self, ignore_b: bool = False) -> None:
        super().__init__()
        self.a, self.b, self.ignore_b = nn.Linear(3, 1), nn.Linear(2, 1), ignore_b

    def forward(self, batch):
        out = self.a(batch["a"])
        return out if self.ignore_b else out + self.b(batch["b"])


def loss_fn(model, batch):
    return (model(batch).squeeze(1) - batch["y"]) ** 2


def batches(seed: int, n: int = 4, size: int = 8):
    g = torch.Generator().manual_seed(seed)
    return [
        {
            "a": torch.randn(size, 3, generator=g),
            "b": torch.randn(size, 2, generator=g),
            "y": torch.randn(size, generator=g),
        }
        for _ in range(n)
    ]


def train(steps: int, ignore_b: bool = False, store=None, close=True, **tracker_kwargs):
    torch.manual_seed(0)
    model = TwoInputs(ignore_b)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    tracker = Tracker(
        model,
        {"a": ["a"], "b": ["b"]},
        store=store,
        optimizer=opt,
        loss_fn=loss_fn,
        eval_batches=batches(1, n=2),
        **tracker_kwargs,
    )
    train_batches = batches(2, n=steps)
    for batch in train_batches:
        opt.zero_grad()
        loss = loss_fn(model, batch).mean()
        loss.backward()
        tracker.after_backward(loss)
        opt.step()
        tracker.after_step()
    if close:
        tracker.close()
    return model, tracker


def test_contributions_every_k_steps_are_stored_and_add_up(tmp_path):
    store = tmp_path / "run.zarr"
    train(6, store=store, modalities={"a": "a", "b": "b"}, ablation_every=2)
    table = open_run(store).table("ablation")
    assert table["step"].tolist() == [2, 4, 6]
    full, empty = table["loss_without_none"], table["loss_without_a+b"]
    total = table["loss_contribution_a"] + table["loss_contribution_b"]
    np.testing.assert_allclose(total, empty - full, rtol=0, atol=1e-12)  # Shapley efficiency


def test_an_ignored_input_contributes_nothing(tmp_path):
    store = tmp_path / "run.zarr"
    train(4, ignore_b=True, store=store, modalities={"a": "a", "b": "b"}, ablation_every=2)
    table = open_run(store).table("ablation")
    assert table["loss_contribution_b"].tolist() == [0.0, 0.0]
    assert (table["loss_contribution_a"] != 0).all()


def test_recording_ablation_leaves_training_bit_identical():
    plain, _ = train(6)
    probed, _ = train(6, modalities={"a": "a", "b": "b"}, ablation_every=1, lca_every=3)
    for p, q in zip(plain.parameters(), probed.parameters(), strict=True):
        assert torch.equal(p, q)


def test_a_checkpoint_keeps_the_measurements_so_far(tmp_path):
    _, tracker = train(4, close=False, modalities={"a": "a", "b": "b"}, ablation_every=2)
    state = tracker.state_dict()
    assert state["quantities"]["ablation"]["columns"]["step"] == [2, 4]
    _, other = train(0, close=False, modalities={"a": "a", "b": "b"}, ablation_every=2)
    other.load_state_dict(state)
    assert other.quantities._added[0].arrays()["step"].tolist() == [2, 4]


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"modalities": {"a": "a"}}, "modalities= needs ablation_every="),
        ({"ablation_every": 2}, "ablation_every= needs modalities="),
        ({"modalities": {"a": "a"}, "ablation_every": 0}, "ablation_every must be a positive"),
        ({"ablation_metric": loss_fn}, "ablation_metric= needs modalities="),
        ({"modalities": {"c": "c"}, "ablation_every": 2}, "'c'"),  # no such input in E's batches
        ({"modalities": {"a": Modality("a", "avg")}, "ablation_every": 2}, "mute must be one of"),
    ],
)
def test_bad_ablation_options_are_refused_before_a_store_exists(kwargs, needle, tmp_path):
    with pytest.raises((TrackerError, AblationError), match=needle):
        Tracker(
            TwoInputs(),
            store=tmp_path / "run.zarr",
            loss_fn=loss_fn,
            eval_batches=batches(1),
            **kwargs,
        )
    assert not (tmp_path / "run.zarr").exists()  # the corrected call can create it

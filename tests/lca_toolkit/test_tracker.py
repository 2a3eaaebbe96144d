"""Tracker: gradient norms per optimizer step, GradScaler, accumulation, non-interference, resume."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from problems import SmoothMLP, mlp_batches, mlp_loss
from torch import nn

from lca_toolkit import ParamGroups, TrackerError
from lca_toolkit.tracker import Tracker


def train_batches(seed: int = 11) -> list[dict[str, torch.Tensor]]:
    return mlp_batches(n=80, batch_size=4, seed=seed)


def test_group_norms_equal_get_total_norm_and_update_norms_are_real():
    model = SmoothMLP()
    groups = ParamGroups.from_children(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    tracker = Tracker(model, groups, optimizer=opt)
    expected_gn, expected_upd, expected_rel = [], [], []
    for batch in train_batches()[:5]:
        opt.zero_grad()
        loss = mlp_loss(model, batch).mean()
        loss.backward()
        tracker.after_backward(loss)
        expected_gn.append(
            [
                torch.nn.utils.get_total_norm([p.grad for p in groups.params(g)]).item()
                for g in groups
            ]
        )
        expected_rel.append(
            [
                sum((p.grad.norm() ** 2 / p.norm() ** 2).item() for p in groups.params(g))
                for g in groups
            ]
        )
        before = {g: [p.detach().clone() for p in groups.params(g)] for g in groups}
        opt.step()
        expected_upd.append(
            [
                math.sqrt(
                    sum(((p - b) ** 2).sum().item() for p, b in zip(groups.params(g), before[g]))
                )
                for g in groups
            ]
        )
        tracker.after_step()
    tracker.close()
    sink = tracker.sink
    np.testing.assert_allclose(sink.step_array("grad_norm"), expected_gn, rtol=1e-12)
    np.testing.assert_allclose(sink.step_array("rel_sq_norm"), expected_rel, rtol=1e-12)
    np.testing.assert_allclose(sink.step_array("update_norm"), expected_upd, rtol=1e-12)
    total = np.sqrt((np.asarray(expected_gn) ** 2).sum(1))
    np.testing.assert_allclose(sink.step_array("grad_norm_total"), total, rtol=1e-12)
    assert sink.step_array("step").tolist() == [1, 2, 3, 4, 5]
    assert sink.step_array("lr").tolist() == [[0.1]] * 5
    assert not sink.step_array("skipped").any()
    assert sink.status == "finished"


def test_gradient_accumulation_writes_one_row_per_optimizer_step():
    model = SmoothMLP()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    tracker = Tracker(model, optimizer=opt, transfer_every=3)
    batches = train_batches()
    expected = []
    for step in range(5):
        opt.zero_grad()
        losses = []
        for micro in batches[4 * step : 4 * step + 4]:
            loss = mlp_loss(model, micro).mean() / 4
            loss.backward()
            tracker.after_backward(loss)
            losses.append(loss.item())
        expected.append(torch.nn.utils.get_total_norm([p.grad for p in model.parameters()]).item())
        opt.step()
        tracker.after_step()
    tracker.close()
    sink = tracker.sink
    assert sink.step_array("step").tolist() == [1, 2, 3, 4, 5]
    np.testing.assert_allclose(sink.step_array("grad_norm_total"), expected, rtol=1e-12)
    assert len(sink.step_array("loss")) == 5


def test_grad_scaler_unscaled_norms_and_skipped_step():
    torch.manual_seed(0)
    model = SmoothMLP().float()
    reference = SmoothMLP().float()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    ref_opt = torch.optim.SGD(reference.parameters(), lr=0.01)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12)
    tracker = Tracker(model, optimizer=opt)
    expected = []
    batches = [{k: v.float() for k, v in b.items()} for b in train_batches()[:4]]
    for i, batch in enumerate(batches):
        opt.zero_grad()
        loss = mlp_loss(model, batch).mean()
        if i == 2:
            loss = loss * float("inf")  # an overflowing step: the scaler skips it
        scaler.scale(loss).backward()
        tracker.after_backward(loss)
        scaler.step(opt)
        scaler.update()
        tracker.after_step()
        if i != 2:
            ref_opt.zero_grad()
            mlp_loss(reference, batch).mean().backward()
            expected.append(
                torch.nn.utils.get_total_norm([p.grad for p in reference.parameters()]).item()
            )
            ref_opt.step()
    tracker.close()
    sink = tracker.sink
    skipped = sink.step_array("skipped")
    assert skipped.tolist() == [False, False, True, False]
    total = sink.step_array("grad_norm_total")
    assert np.isnan(total[2]) and np.isnan(sink.step_array("grad_norm")[2]).all()
    assert (sink.step_array("update_norm")[2] == 0).all()
    np.testing.assert_allclose(total[[0, 1, 3]], expected, rtol=1e-5)


def _run(with_tracker: bool, steps: int = 7, seed: int = 3):
    torch.manual_seed(seed)
    model = SmoothMLP(seed=1, bn=True)
    model.audio.insert(2, nn.Dropout(0.3))  # uses the global RNG in training
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    tracker = None
    if with_tracker:
        tracker = Tracker(
            model,
            optimizer=opt,
            loss_fn=mlp_loss,
            eval_batches=mlp_batches(n=16, batch_size=8),
            lca_every=2,
            quadrature="adaptive",
            cumulative=True,
            per_tensor=True,
        )
    model.train()
    for batch in train_batches()[:steps]:
        opt.zero_grad()
        loss = mlp_loss(model, batch).mean()
        loss.backward()
        if tracker:
            tracker.after_backward(loss)
        opt.step()
        if tracker:
            tracker.after_step()
    if tracker:
        tracker.close()
    return model, opt, tracker


def test_training_with_and_without_recording_is_bit_identical():
    on, opt_on, tracker = _run(True)
    off, opt_off, _ = _run(False)
    assert len(tracker.sink.lca) == 4  # LCA really ran (steps 2, 4, 6, and 7 at close())
    for (name, a), (_, b) in zip(on.state_dict().items(), off.state_dict().items()):
        assert torch.equal(a, b), name
    state_on, state_off = opt_on.state_dict()["state"], opt_off.state_dict()["state"]
    for k in state_on:
        for key in state_on[k]:
            assert torch.equal(state_on[k][key], state_off[k][key]), (k, key)
    assert torch.equal(torch.get_rng_state(), _rng_after_run())


def _rng_after_run() -> torch.Tensor:
    _run(False)
    return torch.get_rng_state()


def test_resume_from_state_dict_continues_the_same_intervals():
    full_model, _, full = _run(True, steps=8)

    torch.manual_seed(3)
    model = SmoothMLP(seed=1, bn=True)
    model.audio.insert(2, nn.Dropout(0.3))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    kwargs = dict(
        loss_fn=mlp_loss,
        eval_batches=mlp_batches(n=16, batch_size=8),
        lca_every=2,
        quadrature="adaptive",
        cumulative=True,
        per_tensor=True,
    )
    tracker = Tracker(model, optimizer=opt, **kwargs)
    model.train()
    batches = train_batches()[:8]
    for batch in batches[:3]:  # stop in the middle of an interval
        opt.zero_grad()
        loss = mlp_loss(model, batch).mean()
        loss.backward()
        tracker.after_backward(loss)
        opt.step()
        tracker.after_step()
    checkpoint = {
        "model": model.state_dict(),
        "opt": opt.state_dict(),
        "tracker": tracker.state_dict(),
        "rng": torch.get_rng_state(),
    }
    first_sink = tracker.sink
    tracker.close("interrupted")

    model2 = SmoothMLP(seed=9, bn=True)
    model2.audio.insert(2, nn.Dropout(0.3))
    model2.load_state_dict(checkpoint["model"])
    opt2 = torch.optim.Adam(model2.parameters(), lr=1e-2)
    opt2.load_state_dict(checkpoint["opt"])
    torch.set_rng_state(checkpoint["rng"])
    tracker2 = Tracker(model2, optimizer=opt2, **kwargs)
    tracker2.load_state_dict(checkpoint["tracker"])
    model2.train()
    for batch in batches[3:]:
        opt2.zero_grad()
        loss = mlp_loss(model2, batch).mean()
        loss.backward()
        tracker2.after_backward(loss)
        opt2.step()
        tracker2.after_step()
    tracker2.close()
    lca = first_sink.lca + tracker2.sink.lca
    assert [(r.start_step, r.end_step) for r in lca] == [(0, 2), (2, 4), (4, 6), (6, 8)]
    for a, b in zip(full.sink.lca, lca, strict=True):
        np.testing.assert_array_equal(a.by_group, b.by_group)
        assert (a.loss_start, a.loss_end, a.residual) == (b.loss_start, b.loss_end, b.residual)
    steps = np.concatenate([first_sink.step_array("step"), tracker2.sink.step_array("step")])
    assert steps.tolist() == list(range(1, 9))
    for (name, a), (_, b) in zip(full_model.state_dict().items(), model2.state_dict().items()):
        assert torch.equal(a, b), name


def test_without_optimizer_norms_come_from_after_backward():
    model = SmoothMLP()
    tracker = Tracker(model)
    batch = train_batches()[0]
    loss = mlp_loss(model, batch).mean()
    loss.backward()
    tracker.after_backward(loss)
    expected = torch.nn.utils.get_total_norm([p.grad for p in model.parameters()]).item()
    tracker.after_step()
    tracker.close()
    assert tracker.sink.step_array("grad_norm_total")[0] == pytest.approx(expected, rel=1e-12)
    assert np.isnan(tracker.sink.step_array("lr")).all()
    assert np.isnan(tracker.sink.step_array("update_norm")).all()


def test_tracker_errors():
    model = SmoothMLP()
    with pytest.raises(TrackerError, match="lca_every needs loss_fn= and eval_batches="):
        Tracker(model, lca_every=5)
    tracker = Tracker(model)
    tracker.close()
    with pytest.raises(TrackerError, match="closed"):
        tracker.after_step()
    with Tracker(model) as t:
        pass
    assert t.sink.status == "finished"
    with pytest.raises(ValueError), Tracker(model) as t:
        raise ValueError("boom")
    assert t.sink.status == "failed" and "boom" in t.sink.status_reason

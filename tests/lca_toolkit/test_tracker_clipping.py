"""Tracker.before_clip: the recorded norms are the raw ones before clipping; learning rates are
the ones optimizer.step() used even when a scheduler steps before after_step."""

from __future__ import annotations

import numpy as np
import torch
from problems import SmoothMLP, mlp_batches, mlp_loss

from lca_toolkit import Tracker


def clipped_run(call_before_clip: bool):
    model = SmoothMLP(seed=1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    tracker = Tracker(model, optimizer=opt)
    raw, clipped = [], []
    for batch in mlp_batches(n=16, batch_size=4, seed=2):
        opt.zero_grad()
        loss = mlp_loss(model, batch).mean()
        loss.backward()
        tracker.after_backward(loss)
        if call_before_clip:
            tracker.before_clip()
        raw.append(float(torch.nn.utils.get_total_norm([p.grad for p in model.parameters()])))
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.01)
        clipped.append(float(torch.nn.utils.get_total_norm([p.grad for p in model.parameters()])))
        opt.step()
        sched.step()  # before after_step: the row still gets the rate the step used
        tracker.after_step()
    tracker.close()
    return tracker.sink, np.array(raw), np.array(clipped)


def test_before_clip_records_the_raw_norms():
    sink, raw, clipped = clipped_run(call_before_clip=True)
    assert (raw > 0.02).all()  # clipping acted on every step
    np.testing.assert_allclose(sink.step_array("grad_norm_total"), raw, rtol=1e-10)
    np.testing.assert_allclose(sink.step_array("lr")[:, 0], [0.1, 0.05, 0.025, 0.0125])


def test_without_before_clip_the_step_hook_sees_clipped_gradients():
    sink, raw, clipped = clipped_run(call_before_clip=False)
    np.testing.assert_allclose(sink.step_array("grad_norm_total"), clipped, rtol=1e-6)

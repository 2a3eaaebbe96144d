"""A small tracked training run that can checkpoint, kill itself, and resume (tests only).

python tracked_run.py STORE STEPS [--checkpoint-at N --checkpoint PATH] [--kill-at N]
                                  [--resume-from PATH]
"""

from __future__ import annotations

import argparse
import os
import signal
from pathlib import Path

import torch
from problems import SmoothMLP, mlp_batches, mlp_loss

from lca_toolkit import Tracker


def run(
    store: Path,
    steps: int,
    checkpoint_at: int | None = None,
    checkpoint: Path | None = None,
    kill_at: int | None = None,
    resume_from: Path | None = None,
) -> None:
    torch.manual_seed(0)
    model = SmoothMLP(seed=1, bn=True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    batches = mlp_batches(n=4 * steps, batch_size=4, seed=5)
    state = torch.load(resume_from, weights_only=False) if resume_from else None
    if state:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
    tracker = Tracker(
        model,
        optimizer=opt,
        store=store,
        store_mode="resume" if state else "create",
        loss_fn=mlp_loss,
        eval_batches=mlp_batches(n=12, batch_size=5),
        lca_every=3,
        transfer_every=2,
        flush_every=1,
    )
    if state:
        tracker.load_state_dict(state["tracker"])
    model.train()
    for step in range(tracker.step, steps):
        batch = batches[step]
        opt.zero_grad()
        loss = mlp_loss(model, batch).mean()
        loss.backward()
        tracker.after_backward(loss)
        opt.step()
        tracker.after_step()
        if tracker.step == checkpoint_at:
            torch.save(
                {
                    "model": model.state_dict(),
                    "opt": opt.state_dict(),
                    "tracker": tracker.state_dict(),
                },
                checkpoint,
            )
        if tracker.step == kill_at:
            tracker.flush()  # rows past the checkpoint are on disk: resume must trim them
            os.kill(os.getpid(), signal.SIGKILL)
    tracker.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("store", type=Path)
    p.add_argument("steps", type=int)
    p.add_argument("--checkpoint-at", type=int)
    p.add_argument("--checkpoint", type=Path)
    p.add_argument("--kill-at", type=int)
    p.add_argument("--resume-from", type=Path)
    a = p.parse_args()
    run(a.store, a.steps, a.checkpoint_at, a.checkpoint, a.kill_at, a.resume_from)

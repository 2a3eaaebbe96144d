"""An example job for ``lca-run job``: your own model, loss, optimizer and data, recorded.

    lca-run job examples/user_job.py:make_job --out runs/user_job.zarr --lca-every 20

The function returns an ``lca_toolkit.job.Job``; keyword arguments come from ``--arg key=value``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from two_input_model import AudioImageNet, make_batches, per_sample_loss  # noqa: E402

from lca_toolkit.job import Job  # noqa: E402


def make_job(epochs: int = 2, lr: float = 3e-3, n_train: int = 512, seed: int = 0) -> Job:
    """Two-branch audio/image model on synthetic data, grouped by branch."""
    torch.manual_seed(seed)
    model = AudioImageNet()
    return Job(
        model=model,
        loss_fn=per_sample_loss,  # (model, batch) -> per-sample losses
        optimizer=torch.optim.Adam(model.parameters(), lr=lr),
        train_batches=make_batches(n_train, 32, seed=seed),
        eval_batches=make_batches(128, 64, seed=seed + 1),  # the fixed LCA subset E
        groups={"audio": "audio.", "image": "image.", "head": "head."},
        epochs=epochs,
        config={"lr": lr, "n_train": n_train, "seed": seed},
    )

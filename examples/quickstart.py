"""Quickstart: record per-group gradient norms and LCA of a two-input model, then read them back.

    python examples/quickstart.py --out runs/quickstart.zarr

Trains AudioImageNet (an audio branch and an image branch fused by sum) for a few epochs with the
Tracker attached, then prints which branch got the larger gradients and the larger share of the
loss reduction.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from two_input_model import AudioImageNet, make_batches, per_sample_loss  # noqa: E402

from lca_toolkit import ParamGroups, Tracker, open_run  # noqa: E402


def train(
    out: Path,
    epochs: int = 3,
    n_train: int = 1024,
    lca_every: int = 16,
    quadrature: str | None = None,
) -> None:
    """Train with the Tracker attached; ``quadrature`` picks the LCA rule (``None``: default)."""
    torch.manual_seed(0)
    model = AudioImageNet()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    train_batches = make_batches(n_train, 32, seed=0)
    eval_subset = make_batches(256, 64, seed=1)  # the fixed subset E that LCA is measured on

    groups = ParamGroups.from_prefixes(
        model, {"audio": "audio.", "image": "image.", "head": "head."}
    )
    with Tracker(
        model,
        groups,
        optimizer=opt,
        store=out,
        store_mode="overwrite",
        loss_fn=per_sample_loss,
        eval_batches=eval_subset,
        lca_every=lca_every,
        quadrature=quadrature,
    ) as tracker:
        for _ in range(epochs):
            model.train()
            for batch in train_batches:
                opt.zero_grad()
                loss = per_sample_loss(model, batch).mean()
                loss.backward()
                tracker.after_backward(loss)
                opt.step()
                tracker.after_step()


def summarize(out: Path) -> None:
    run = open_run(out)
    steps = run.steps()  # one row per optimizer step
    lca = run.lca()  # one row per LCA interval
    norms = steps[[f"grad_norm/{g}" for g in run.groups]].mean().dropna()  # bn_buffers: no gradient
    shares = lca[[f"lca/{g}" for g in run.groups]].sum()
    print(f"{len(steps)} steps, {len(lca)} LCA intervals, groups {run.groups}")
    print("mean gradient norm per group:\n" + norms.round(4).to_string())
    print("total LCA per group (negative = helped):\n" + shares.round(4).to_string())
    rel = (lca["residual"].abs() / lca["loss_change"].abs()).median()
    print(
        f"loss on E: {lca['loss_start'].iloc[0]:.4f} -> {lca['loss_end'].iloc[-1]:.4f}; "
        f"median |residual| / |loss change| = {rel:.2e}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("runs/quickstart.zarr"))
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    train(args.out, args.epochs)
    summarize(args.out)

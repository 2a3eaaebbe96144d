"""Runs under a file-size limit (``ulimit -f``), standing in for a full disk (tests only).

python limited_run.py tracker STORE LIMIT_BYTES
    A Tracker with 64 groups records steps; the limit is set once the store exists, so the
    store writer's chunk writes fail mid-run. Prints the error and exits 1.
python limited_run.py mammo FACTOR -- LCA-RUN-ARGS...
    ``lca-run`` with the limit at FACTOR x the smallest possible checkpoint (3 x the parameter
    bytes of the joint model).

SIGXFSZ is ignored, so an oversized write fails with EFBIG like a write to a full disk.
"""

from __future__ import annotations

import resource
import signal
import sys

import torch
from torch import nn


def limit(nbytes: int) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, resource.RLIM_INFINITY))


def tracker_run(store: str, nbytes: int) -> int:
    from lca_toolkit import Tracker

    torch.manual_seed(0)
    model = nn.Sequential(*[nn.Linear(4, 4) for _ in range(64)])
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    try:
        with Tracker(model, optimizer=opt, store=store, transfer_every=16, flush_every=16) as t:
            limit(nbytes)
            for _ in range(3000):
                opt.zero_grad()
                loss = model(torch.randn(8, 4)).pow(2).mean()
                loss.backward()
                t.after_backward(loss)
                opt.step()
                t.after_step()
    except Exception as exc:  # noqa: BLE001 - the test reads the message
        print(f"{type(exc).__name__}: {exc}", flush=True)
        return 1
    return 0


def mammo_run(factor: float, args: list[str]) -> None:
    from lca_toolkit_cli.run import main

    from mammo_models.variants import build_model

    model = build_model("joint", input_channels=1)
    limit(int(factor * 3 * sum(p.numel() * p.element_size() for p in model.parameters())))
    main(args, prog_name="lca-run")


if __name__ == "__main__":
    if sys.argv[1] == "tracker":
        sys.exit(tracker_run(sys.argv[2], int(sys.argv[3])))
    mammo_run(float(sys.argv[2]), sys.argv[4:])

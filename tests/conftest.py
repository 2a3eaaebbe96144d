"""Suite-wide settings: one thread per pytest-xdist worker, and for the processes it starts.

``make test`` runs the suite in two worker processes on two cores; each worker keeps to one torch
thread so the two do not oversubscribe the cores. The same limit goes to subprocesses through
``OMP_NUM_THREADS`` (torch reads it at start), so a test that compares a run in a subprocess with
one in the worker compares the same reduction order. A plain ``pytest`` run keeps the defaults.
"""

from __future__ import annotations

import os

import torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)

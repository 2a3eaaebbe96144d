"""Suite-wide settings: one torch thread per pytest-xdist worker.

``make test`` runs the suite in two worker processes on two cores; each worker then keeps to one
thread, so the two do not oversubscribe the cores. A plain ``pytest`` run keeps torch's default.
"""

from __future__ import annotations

import os

import torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

"""Run a tiny mammography experiment and SIGKILL it at a given step (tests only).

python killed_experiment.py OUT SYNTHETIC_ROOT KILL_AT_STEP
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from mammo_models.training import DataSource, Experiment, ExperimentConfig


def tiny_config(out: Path, synthetic_root: Path) -> ExperimentConfig:
    return ExperimentConfig(
        out=out,
        variant="joint",
        preset="tiny",
        lr=1e-3,
        device="cpu",
        data=DataSource(synthetic_root=synthetic_root),
        checkpoint_every=3,
    )


if __name__ == "__main__":
    out, root, kill_at = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])

    def maybe_kill(step: int) -> None:
        if step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    Experiment(tiny_config(out, root), progress=False, on_step=maybe_kill).run()

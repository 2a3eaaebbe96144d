"""Two-process DDP (gloo, CPU) fit with the Lightning LcaCallback; run as a script.

Lightning's DDP launcher starts rank 1 by running this script again. Each rank writes what it saw
to ``OUT/rank<r>.json``; rank 0 alone must write ``OUT/run.zarr``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from lightning.pytorch.strategies import DDPStrategy  # noqa: E402
from lightning_problems import (  # noqa: E402
    GROUPS,
    GradReference,
    TwoTower,
    eval_batches,
    loader,
    per_sample_loss,
    trainer,
)

from lca_toolkit.integrations.lightning import LcaCallback  # noqa: E402


def main(out: Path) -> None:
    callback = LcaCallback(
        GROUPS, store=out / "run.zarr", loss_fn=per_sample_loss, eval_batches=eval_batches(),
        lca_every=2,
    )
    reference = GradReference(GROUPS)
    fit = trainer(
        [callback, reference],
        devices=2,
        strategy=DDPStrategy(process_group_backend="gloo"),
        max_steps=4,
        accumulate_grad_batches=2,
    )
    fit.fit(TwoTower(), loader(n=32, batch_size=4))
    rank = fit.global_rank
    info = {
        "rank": rank,
        "sink": type(callback.tracker.sink).__name__,
        "steps": callback.tracker.step,
        "reference": reference.norms,
    }
    (out / f"rank{rank}.json").write_text(json.dumps(info))


if __name__ == "__main__":
    main(Path(sys.argv[1]))

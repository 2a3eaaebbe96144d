"""The zarr v3 run store: a background writer for the Tracker and pandas readers for users.

Write (the Tracker does this)::

    with RunWriter("runs/x.zarr", groups=["cc", "mlo"], group_members=members) as w:
        w.append_steps(block)      # queued; a background thread writes
        w.append_lca(record)

Read (also while the run is writing)::

    run = open_run("runs/x.zarr")
    run.steps()                    # one row per step, grad_norm/<group> columns
    run.lca(wide=False)            # long form for seaborn
    open_runs(paths).epochs(with_config=["lr", "seed"])

Layout and names: see :mod:`lca_toolkit.store._schema`. The writer is three layers: the
synchronous store file (:mod:`._file`), the background worker (:mod:`._worker`) and the
``RunWriter`` facade (:mod:`._writer`); file-system probes are in :mod:`._fs`.
"""

from ._fs import check_writable, nearest_existing
from ._reader import Run, Runs, is_run_store, open_run, open_runs
from ._records import LcaRecord, StepBlock
from ._schema import SCHEMA_VERSION
from ._writer import RunWriter

__all__ = [
    "SCHEMA_VERSION",
    "LcaRecord",
    "Run",
    "RunWriter",
    "Runs",
    "StepBlock",
    "check_writable",
    "is_run_store",
    "nearest_existing",
    "open_run",
    "open_runs",
]

"""A reader on a store that another process is writing: the plots and `lca-plot` see a prefix.

The writer's rows are functions of their step (``grad_norm = step + 0.25 / 0.5``, LCA every 10
steps with ``by_group = (-1, 0.5) * end_step``), so a figure drawn from a torn read (arrays cut
at different rows, a fill value, a row from two writes) is detected from the drawn data alone.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from click.testing import CliRunner  # noqa: E402
from lca_toolkit_cli.plot import main as lca_plot  # noqa: E402

from lca_toolkit import open_run  # noqa: E402
from lca_toolkit.plots import plot_cumulative_lca, plot_grad_norm  # noqa: E402

WRITER = """
import sys, time
from pathlib import Path
import numpy as np
from lca_toolkit.store import LcaRecord, RunWriter, StepBlock

path, stop = sys.argv[1], Path(sys.argv[2])
w = RunWriter(path, groups=["cc", "mlo"], group_members={"cc": ["cc.w"], "mlo": ["mlo.w"]},
              flush_every=7, flush_interval=0.05)
step = 1
while not stop.exists():
    s = np.arange(step, step + 5)
    g = np.stack([s + 0.25, s + 0.5], axis=1).astype(float)
    w.append_steps(StepBlock(step=s, loss=s * 1.0, grad_norm=g, grad_norm_total=s + 0.75,
                             rel_sq_norm=g * 2, update_norm=g * 3, skipped=s < 0,
                             lr=(s * 1e-3)[:, None]))
    step += 5
    if (step - 1) % 10 == 0:
        end = step - 1
        bg = np.array([-1.0, 0.5]) * end
        w.append_lca(LcaRecord(start_step=end - 10, end_step=end, by_group=bg,
                               abs_by_group=np.abs(bg), helped=[end, 0], hurt=[0, end],
                               loss_start=2.0 * end, loss_end=2.0 * end - 1.0,
                               residual=-1.0 - bg.sum(), passes=2))
    if (step - 1) % 50 == 0:
        w.append_epoch((step - 1) // 50 - 1, {"val_auc": 0.5, "train_loss": 1.0})
    time.sleep(0.002)
w.close()
"""


def check_figures(path: Path) -> int:
    """Draw both per-group figures from one live read each; returns the steps drawn."""
    fig = plot_grad_norm(path)
    lines = {line.get_label(): line for line in fig.axes[0].lines}
    plt.close(fig)
    n = 0
    for label, offset in (("CC", 0.25), ("MLO", 0.5)):
        x, y = np.asarray(lines[label].get_xdata()), np.asarray(lines[label].get_ydata())
        n = len(x)
        np.testing.assert_array_equal(x, np.arange(1, n + 1))
        np.testing.assert_array_equal(y, x + offset)
    if open_run(path).rows["lca"] == 0:
        return n
    fig = plot_cumulative_lca(path)
    lines = {line.get_label(): line for line in fig.axes[0].lines}
    plt.close(fig)
    x = np.asarray(lines["CC"].get_xdata())
    ends = 10 * np.arange(1, len(x))
    np.testing.assert_array_equal(x, [0, *ends])
    np.testing.assert_allclose(lines["CC"].get_ydata(), [0, *np.cumsum(-1.0 * ends)])
    np.testing.assert_allclose(lines["MLO"].get_ydata(), [0, *np.cumsum(0.5 * ends)])
    return n


def test_plots_and_lca_plot_on_a_store_being_written(tmp_path):
    path, stop = tmp_path / "live.zarr", tmp_path / "stop"
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(WRITER), str(path), str(stop)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[int] = []
    try:
        while not path.exists() or open_run(path).rows["lca"] == 0:
            assert proc.poll() is None, proc.communicate()[1]
            time.sleep(0.05)
        for i in range(4):
            seen.append(check_figures(path))
            out = tmp_path / f"figs{i}"
            result = CliRunner().invoke(
                lca_plot, [str(path), "--out", str(out), "-k", "grad-norm", "-k", "lca"]
            )
            assert result.exit_code == 0, result.output
            assert sorted(p.name for p in out.iterdir()) == ["grad_norm.png", "lca.png"]
            assert proc.poll() is None, proc.communicate()[1]  # still writing
    finally:
        stop.touch()
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert seen == sorted(seen) and len(set(seen)) > 2  # the reads overlapped the writing
    final = check_figures(path)
    assert final >= seen[-1] and open_run(path).status == "finished"

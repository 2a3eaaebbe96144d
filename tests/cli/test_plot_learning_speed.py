"""``lca-plot --kind learning-speed``: a PNG from a store with param_norm, one-line refusals."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import plot_stores as stores
from click.testing import CliRunner
from lca_toolkit_cli.plot import main
from PIL import Image

from lca_toolkit.store import RunWriter, StepBlock


def write_with_param_norm(path, n: int = 30):
    rng = np.random.default_rng(0)
    grad = rng.lognormal(size=(n, 3))
    members = {g: [f"{g}.weight"] for g in ("cc", "mlo", "shared")}
    with RunWriter(path, groups=list(members), group_members=members, param_norm=True) as w:
        w.append_steps(
            StepBlock(
                step=np.arange(1, n + 1),
                loss=rng.random(n),
                grad_norm=grad,
                grad_norm_total=np.sqrt((grad**2).sum(1)),
                rel_sq_norm=rng.random((n, 3)),
                update_norm=rng.random((n, 3)),
                skipped=np.zeros(n, dtype=bool),
                lr=np.full((n, 1), 1e-3),
                param_norm=np.full((n, 3), 4.0),
            )
        )
    return path


def test_learning_speed_png_with_a_pair(tmp_path):
    store = write_with_param_norm(tmp_path / "run.zarr")
    out = tmp_path / "figs"
    res = CliRunner().invoke(
        main, [str(store), "--out", str(out), "--kind", "learning-speed", "--pair", "mlo,cc"]
    )
    assert res.exit_code == 0, res.output
    with Image.open(out / "learning_speed.png") as im:
        assert im.size == (1050, 825)  # 7 x 5.5 in at 150 dpi


def test_old_store_and_bad_pair_are_one_line_errors(tmp_path):
    old = stores.write_store(tmp_path / "old.zarr", lca_every=None, n_epochs=0)
    res = CliRunner().invoke(main, [str(old), "-o", str(tmp_path / "f"), "-k", "learning-speed"])
    assert res.exit_code == 1
    assert "cannot make learning-speed:" in res.output and "no steps/param_norm" in res.output
    res = CliRunner().invoke(main, [str(old), "-o", str(tmp_path / "g"), "-k", "all"])
    assert res.exit_code == 0 and "skipped learning-speed:" in res.output
    new = write_with_param_norm(tmp_path / "new.zarr")
    for pair, why in (("mlo", "expected two group names"), ("mlo,xx", "['xx'] not among")):
        res = CliRunner().invoke(
            main, [str(new), "-o", str(tmp_path / "h"), "-k", "learning-speed", "--pair", pair]
        )
        assert res.exit_code != 0 and why in res.output, res.output
        assert "Traceback" not in res.output

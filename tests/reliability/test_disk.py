"""Disk and permissions: a read-only output folder and a full disk (a file-size limit).

Each case runs in a subprocess: the file-size limit (``RLIMIT_FSIZE``, SIGXFSZ ignored) makes a
too-large write fail with EFBIG as a full disk fails with ENOSPC. Root ignores folder
permissions, so as root the read-only case runs without the capabilities that let it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lca_toolkit import open_run
from mammo_models.data import get_preset, load_synthetic

ROOT = Path(__file__).resolve().parents[2]
HELPERS = ROOT / "tests" / "helpers"


def python(*args: str, drop_root: bool = False) -> subprocess.CompletedProcess:
    cmd = [sys.executable, *args]
    if drop_root and os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv, "as root this test needs util-linux setpriv to drop CAP_DAC_OVERRIDE"
        caps = "-dac_override,-dac_read_search,-fowner"
        cmd = [setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}", *cmd]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(HELPERS)])}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    preset = get_preset("tiny")
    load_synthetic(preset.synthetic, root / preset.synthetic.hash()[:12])
    return root


READ_ONLY = """
import json, sys
from pathlib import Path
from click.testing import CliRunner
from lca_toolkit_cli.run import main
from lca_toolkit.errors import StoreError
from lca_toolkit.store import RunWriter
from mammo_models.training import DataSource, Experiment, ExperimentConfig

ro, synth = Path(sys.argv[1]), Path(sys.argv[2])
out = {}
res = CliRunner().invoke(main, ["mammo", "--preset", "tiny", "--quiet", "--synthetic-root",
                                str(synth), "--out", str(ro / "sub" / "run.zarr")])
out["cli"] = [res.exit_code, res.output]
config = ExperimentConfig(out=ro / "run.zarr", preset="tiny", device="cpu",
                          data=DataSource(synthetic_root=synth))
try:
    Experiment(config, progress=False, echo=lambda s: out.setdefault("echo", s)).run()
except StoreError as exc:
    out["experiment"] = str(exc)
try:
    RunWriter(ro / "w.zarr", groups=["a"], group_members={"a": ["a.w"]})
except StoreError as exc:
    out["writer"] = str(exc)
print(json.dumps(out))
"""


def test_read_only_output_folder_is_refused_before_anything_runs(synth, tmp_path):
    ro = tmp_path / "read-only"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        proc = python("-c", textwrap.dedent(READ_ONLY), str(ro), str(synth), drop_root=True)
    finally:
        ro.chmod(0o755)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    code, text = out["cli"]
    assert code == 2 and "--out" in text and f"no file can be created in '{ro}'" in text
    assert "Permission denied" in text
    # The library refuses as early: no data was read (nothing echoed), nothing was created.
    assert f"cannot write '{ro / 'run.zarr'}'" in out["experiment"] and "echo" not in out
    assert f"cannot create run store '{ro / 'w.zarr'}'" in out["writer"]
    assert list(ro.iterdir()) == []


def test_file_size_limit_below_a_checkpoint_is_refused_before_training(synth, tmp_path):
    out = tmp_path / "run.zarr"
    args = ["--preset", "tiny", "--quiet", "--device", "cpu", "--synthetic-root", str(synth)]
    proc = python(str(HELPERS / "limited_run.py"), "mammo", "0.5", "--", "mammo", *args,
                  "--out", str(out))  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: the file-size limit (ulimit -f)") and "raise the limit" in last
    assert not out.exists()  # refused before the store was created


def test_full_disk_at_a_checkpoint_fails_clearly_and_keeps_the_store(synth, tmp_path):
    out = tmp_path / "run.zarr"
    args = ["--preset", "tiny", "--quiet", "--device", "cpu", "--synthetic-root", str(synth)]
    proc = python(str(HELPERS / "limited_run.py"), "mammo", "1.2", "--", "mammo", *args,
                  "--checkpoint-every", "2", "--out", str(out))  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    ckpt = f"{out}.ckpt/last.pt"
    assert last == f"Error: [Errno 27] cannot write checkpoint {ckpt}: File too large"
    assert "Traceback" not in proc.stderr
    run = open_run(out)
    assert (
        run.status == "failed" and f"cannot write checkpoint {ckpt}" in run.attrs["status_reason"]
    )
    assert run.steps()["step"].tolist() == [1, 2]  # flushed before the checkpoint was written
    assert not list(Path(f"{out}.ckpt").glob(".last.pt.*.tmp"))  # no temporary file left


def test_full_disk_in_the_store_writer_fails_clearly_and_keeps_the_committed_rows(tmp_path):
    store = tmp_path / "run.zarr"
    proc = python(str(HELPERS / "limited_run.py"), "tracker", str(store), str(64 * 1024))
    assert proc.returncode == 1, proc.stderr[-3000:]
    message = proc.stdout.strip().splitlines()[-1]
    assert message.startswith(f"StoreError: writing run store '{store}' failed: ")
    assert "File too large" in message and "keeps its committed prefix" in message
    run = open_run(store)
    assert run.status == "failed" and "File too large" in run.attrs["status_reason"]
    steps = run.steps()["step"].tolist()
    assert 0 < len(steps) < 3000 and steps == list(range(1, len(steps) + 1))
    assert f"({len(steps)} steps," in message  # the message says what the store still holds

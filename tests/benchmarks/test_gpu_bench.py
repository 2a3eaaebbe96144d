"""``make gpu-bench``: every part runs for seconds on the CPU (``--smoke``), so the one command a
GPU session runs cannot rot between sessions; and the runner keeps the rows of a run cut short."""

from __future__ import annotations

import datetime
import importlib
import os
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    return importlib.import_module("gpu_bench"), importlib.import_module("gpu_parts")


def _rows(out: Path) -> list[list[str]]:
    lines = out.read_text().splitlines()
    assert (
        lines[0]
        == "| card | commit | torch | CUDA | date | part | measured | result | against, how |"
    )
    return [[c.strip() for c in line.strip("|").split(" | ")] for line in lines[2:]]


def test_smoke_run_gives_every_part_its_rows_named_by_card_commit_and_versions(bench, tmp_path):
    gpu_bench, parts = bench
    out = tmp_path / "rows.md"
    bad = gpu_bench.main(["--smoke", "--out", str(out), "--scratch", str(tmp_path / "scratch")])
    rows = _rows(out)
    assert bad == 0, rows
    assert list(dict.fromkeys(r[5] for r in rows)) == list(parts.PARTS)  # all, in order
    today = datetime.date.today().isoformat()
    for card, commit, version, cuda, date, _, _, result, _ in rows:
        assert (card, version, cuda, date) == (
            "CPU",
            torch.__version__,
            torch.version.cuda or "none",
            today,
        )
        assert commit not in {"", "?"} and result not in {"failed", "cut off", "no result"}
    by_part = {}
    for r in rows:
        by_part.setdefault(r[5], []).append(r)
    feeds = [r[6].rsplit(": ", 1)[1] for r in by_part["end_to_end"]]
    assert feeds == [
        "GPU-bound (batch on the device)",
        "end to end, --feed workers, 0 workers",
        "end to end, --feed device, 0 workers",
    ]
    assert all(r[7].endswith("steps/s") for r in by_part["end_to_end"])
    assert "of the GPU-bound rate" in by_part["end_to_end"][1][8]
    accuracy = by_part["lca_accuracy"]
    assert [r[6].rsplit(": ", 1)[1] for r in accuracy] == [
        "default rule (adaptive, rel_tol 0.01, at most 8 panels)",
        "Simpson",
    ]
    assert all(r[7].startswith("median ") and r[7].endswith("%") for r in accuracy)
    assert len(by_part["recording_overhead"]) == 3 and len(by_part["lca_cost"]) == 2
    for r in by_part["recording_overhead"] + by_part["lca_cost"]:
        assert float(r[7]) > 0
    (sync,) = by_part["sync_bn"]
    assert sync[7] == "skipped" and "needs 2 or more GPUs" in sync[8]
    if not list(BENCH.glob("fsdp2_*.py")):
        assert by_part["fsdp2"][0][7:] == ["skipped", "no benchmarks/fsdp2_*.py in this commit"]


def test_a_part_past_its_limit_is_killed_and_one_that_raises_is_named(bench, tmp_path, monkeypatch):
    gpu_bench, parts = bench
    pid_file = tmp_path / "pid"

    def hangs(ctx):
        pid_file.write_text(str(os.getpid()))
        yield parts.Row("first", "1", "before the hang")
        time.sleep(120)

    def raises(ctx):
        yield parts.Row("only", "2", "before the error")
        raise RuntimeError("boom")

    monkeypatch.setattr(
        parts,
        "PARTS",
        {
            "environment": parts.PARTS["environment"],
            "hangs": parts.Part("hangs", 1.5, 1.5, hangs),
            "raises": parts.Part("raises", 30, 30, raises),
        },
    )
    out = tmp_path / "rows.md"
    bad = gpu_bench.main(["--smoke", "--out", str(out), "--scratch", str(tmp_path)])
    rows = [r[5:] for r in _rows(out)]
    assert rows[1:] == [
        ["hangs", "first", "1", "before the hang"],
        ["hangs", "the part", "cut off", "at its limit of 2 s, after 1 row(s)"],
        ["raises", "only", "2", "before the error"],
        ["raises", "the part", "failed", "RuntimeError: boom"],
    ]
    assert bad == 2
    with pytest.raises(ProcessLookupError):  # the hanging process is gone, not left behind
        os.kill(int(pid_file.read_text()), 0)


def test_a_script_part_turns_the_scripts_table_body_into_rows(bench, tmp_path, monkeypatch):
    _, parts = bench
    (tmp_path / "fsdp2_demo.py").write_text(
        textwrap.dedent(
            """
            import sys
            print("sharded recording, " + ("smoke" if "--smoke" in sys.argv else "gpu"))
            print("| measured | result |")
            print("| --- | ---: |")
            print("| norms, 2 ranks | 1.01 |")
            print("| LCA, 2 ranks | 1.02 |")
            """
        )
    )
    monkeypatch.setattr(parts, "BENCH", tmp_path)
    ctx = parts.Context(smoke=True, device="cpu", scratch=tmp_path, workers=0, env=dict(os.environ))
    rows = [r.cells for r in parts.PARTS["fsdp2"].run(ctx)]
    assert rows == [("norms, 2 ranks", "1.01"), ("LCA, 2 ranks", "1.02")]
    (tmp_path / "fsdp2_demo.py").unlink()
    assert [r.cells for r in parts.PARTS["fsdp2"].run(ctx)] == [
        ("fsdp2", "skipped", "no benchmarks/fsdp2_*.py in this commit")
    ]

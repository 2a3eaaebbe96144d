"""`lca-run mammo ... --resume`: the command that started a run, run again with --resume added."""

from __future__ import annotations

import hashlib
from pathlib import Path

from click.testing import CliRunner
from lca_toolkit_cli.run import main

from lca_toolkit import open_run


def lca_run(*args: object) -> tuple[int, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` with a hash of its bytes (what "nothing changed" means)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_the_same_command_with_resume_added_continues_the_run(tmp_path):
    synth, out = tmp_path / "synthetic", tmp_path / "runs" / "run.zarr"
    command = (
        "mammo",
        *("--preset", "tiny", "--quiet", "--synthetic-root", synth, "--out", out),
        *("--model", "uni_cc", "--no-lca", "--epochs", "1", "--lr", "1e-3", "--seed", "0"),
        *("--max-steps", "2", "--device", "cpu"),
    )
    code, text = lca_run(*command)
    assert code == 0, text
    before = snapshot(tmp_path / "runs")

    # A setting that differs: refused, naming the option and both values, nothing written.
    changed = [("1e-2" if a == "1e-3" else a) for a in command]
    code, text = lca_run(*changed, "--resume")
    assert code == 2
    assert f"--lr: the run at {out} was trained with 0.001, this command says 0.01" in text
    assert "--resume continues the run with its own settings; do not pass --lr" in text
    assert "Traceback" not in text
    code, text = lca_run(*command, "--resume", "--heatmaps", "--model", "joint")
    assert code == 2
    (line,) = [x for x in text.splitlines() if "do not pass" in x]  # one line names them all
    assert (
        f"--heatmaps: the run at {out} was trained without --heatmaps, this command says --heatmaps"
        in line
    )
    assert "--model: the run at" in line and "trained with uni_cc, this command says joint" in line
    code, text = lca_run(*command, "--resume", "--lca-every", "5")
    assert code == 2 and "trained without --lca-every, this command says 5" in text
    assert snapshot(tmp_path / "runs") == before

    # The very same command: accepted silently; device, workers and max-steps may change.
    code, text = lca_run(*command, "--resume", "--workers", "0")
    assert code == 0, text
    assert "resuming at epoch 0, step 2" in text and "do not pass" not in text
    assert "steps: 2 over 1 epochs" in text  # --max-steps 2 means 2 steps in all
    assert open_run(out).array("steps/step").tolist() == [1, 2]
    code, text = lca_run(*[a for a in command if a not in ("--max-steps", "2")], "--resume")
    assert code == 0, text
    run = open_run(out)
    assert run.status == "finished"
    assert run.array("steps/step").tolist() == list(range(1, len(run.steps()) + 1))
    assert run.config["experiment"]["lr"] == 0.001

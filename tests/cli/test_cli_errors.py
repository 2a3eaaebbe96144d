"""What `lca-run` prints when it fails: every reason and row, and the place in the user's code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from lca_toolkit_cli._errors import keep_reasons
from lca_toolkit_cli.run import main
from PIL import Image

from lca_toolkit import open_run


def lca_run(*args: object) -> tuple[int, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """Eight tiny PNGs (four breasts, CC and MLO) and their valid manifest rows."""
    root = tmp_path_factory.mktemp("images")
    rows = []
    for i in range(4):
        for view in ("CC", "MLO"):
            Image.fromarray(np.full((16, 12), 40 * i, np.uint8)).save(root / f"b{i}_{view}.png")
            rows.append(
                dict(dataset="t", image_path=f"b{i}_{view}.png", patient_id=f"P{i}",
                     exam_id="E0", laterality="L" if i % 2 else "R", view=view,
                     malignant=i % 2, benign=0, label_source="pathology")
            )  # fmt: skip
    return root, pd.DataFrame(rows)


def run_manifest(tmp_path: Path, root: Path, manifest: pd.DataFrame) -> tuple[int, str]:
    path = tmp_path / "bad.csv"
    manifest.to_csv(path, index=False)
    return lca_run(
        "mammo", "--data", "manifest", "--manifest", path, "--data-root", root,
        "--preset", "tiny", "--quiet", "--out", tmp_path / "run.zarr",
    )  # fmt: skip


def test_manifest_errors_keep_every_reason_and_row(images, tmp_path):
    root, rows = images
    bad = rows.copy()
    bad.loc[3, "laterality"] = "X"
    bad.loc[5, "image_path"] = "gone.png"
    code, text = run_manifest(tmp_path, root, bad)
    assert code == 1 and "Traceback" not in text
    assert "bad.csv: 2 problems" in text
    assert "row 4: unknown laterality 'X'; expected L or R" in text
    assert "row 6: image_path: file not found:" in text and "gone.png" in text

    code, text = run_manifest(tmp_path, root, rows.drop(columns=["view"]))
    assert code == 1 and "missing required column view" in text

    many = rows.assign(laterality="X", view="LM", malignant=2)  # 3 problems in each of 8 rows
    code, text = run_manifest(tmp_path, root, many)
    assert code == 1 and "24 problems" in text
    listed = [line for line in text.splitlines() if line.startswith("  row ")]
    assert len(listed) == 20 and listed[0].startswith("  row 1:")
    assert "... and 4 more" in text


def test_a_long_message_is_cut_after_twenty_lines_with_the_count():
    text = "head\n" + "\n".join(f"  reason {i}" for i in range(25))
    kept = keep_reasons(text).splitlines()
    assert kept[0] == "head" and kept[20] == "  reason 19" and kept[21] == "  ... and 5 more"
    assert keep_reasons("one line") == "one line"


BAD_JOB = """import torch
from torch import nn
from lca_toolkit.job import Job


class Net(nn.Module):
    def __init__(self, fail):
        super().__init__()
        self.body, self.head, self.fail = nn.Linear(4, 3), nn.Linear(3, 1), fail

    def forward(self, x):
        if self.fail == "model":
            return self.head(self.body(x)[:, :2])  # a shape error raised inside torch
        return self.head(self.body(x))


def loss_fn(model, batch):
    if model.fail == "loss":
        raise KeyError("label")
    return (model(batch["x"]).squeeze(1) - batch["y"]) ** 2


def make_job(fail="none"):
    if fail == "job":
        raise ValueError("no data for fold 7")
    model = Net(fail)
    batches = [{"x": torch.ones(2, 4), "y": torch.zeros(2)}] * 3
    return Job(model=model, loss_fn=loss_fn, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
               train_batches=batches, eval_batches=batches[:1])
"""


def line_of(text: str) -> int:
    """The line of BAD_JOB that holds ``text`` (1-based)."""
    return next(i for i, line in enumerate(BAD_JOB.splitlines(), 1) if text in line)


@pytest.mark.parametrize(
    ("fail", "message", "where"),
    [
        ("job", "ValueError: no data for fold 7", [("raise ValueError", "make_job")]),
        ("loss", "KeyError: 'label'", [('raise KeyError("label")', "loss_fn")]),
        (
            "model",
            "RuntimeError: mat1 and mat2 shapes cannot be multiplied (2x2 and 3x1)",
            [("return (model(batch", "loss_fn"), ("[:, :2])", "forward")],
        ),
    ],
)
def test_an_error_in_the_users_code_names_its_place(tmp_path, fail, message, where):
    job = tmp_path / f"bad_job_{fail}.py"  # one module name per case: imports are cached
    job.write_text(BAD_JOB)
    out = tmp_path / "run.zarr"
    code, text = lca_run(
        "job", f"{job}:make_job", "--arg", f"fail={fail}", "--out", out, "--quiet"
    )  # (no progress bar in the output read here)
    assert code == 1
    lines = text.strip().splitlines()
    assert lines[0] == f"Error: {message}"
    for source, function in where:
        assert f'File "{job}", line {line_of(source)}, in {function}' in text
        assert source in text
    assert len(lines) == 1 + 2 * len(where)  # each frame: its place and its source line
    assert "lca_toolkit" not in text and "click" not in text and "Traceback" not in text
    if fail != "job":  # the store written so far is kept, marked failed
        assert open_run(out).status == "failed"

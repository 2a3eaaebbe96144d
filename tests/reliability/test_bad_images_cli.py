"""`lca-run mammo` with a broken image in the manifest: one clear line, or a counted skip."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from bad_files import write_broken
from click.testing import CliRunner
from lca_toolkit_cli.run import main

from lca_toolkit import open_run
from mammo_models.data import get_preset, load_synthetic


@pytest.fixture(scope="module")
def broken_set(tmp_path_factory) -> tuple[Path, Path]:
    """The tiny synthetic set as a user manifest, one validation image cut in half."""
    preset = get_preset("tiny")
    src = tmp_path_factory.mktemp("synthetic") / "set"
    load_synthetic(preset.synthetic, src)
    root = tmp_path_factory.mktemp("data") / "set"
    shutil.copytree(src, root)
    manifest = pd.read_csv(root / "manifest.csv", dtype=str)
    bad = manifest[(manifest["split"] == "val") & (manifest["view"] == "CC")].iloc[0]
    path = root / bad["image_path"]
    write_broken(path.with_suffix(""), "truncated_png")
    return root / "manifest.csv", path


def lca_run(*args) -> tuple[int, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def base(manifest: Path, out: Path) -> list:
    return ["mammo", "--preset", "tiny", "--quiet", "--device", "cpu", "--no-lca",
            "--max-steps", "1", "--manifest", manifest, "--out", out]  # fmt: skip


@pytest.mark.parametrize("workers", ["0", "1"])
def test_a_broken_image_is_one_line_naming_the_file_and_the_store_is_not_finished(
    broken_set, tmp_path, workers
):
    manifest, bad = broken_set
    out = tmp_path / "run.zarr"
    code, text = lca_run(*base(manifest, out), "--workers", workers)
    assert code == 1
    last = text.strip().splitlines()[-1]
    assert last.startswith(f"Error: {bad}: cannot decode PNG")
    assert "Traceback" not in text
    run = open_run(out)
    assert run.status == "failed" and str(bad) in run.attrs["status_reason"]
    assert "results" not in run.attrs  # never presented as a complete run


def test_skip_bad_images_counts_stores_and_prints_the_skip(broken_set, tmp_path):
    manifest, bad = broken_set
    out = tmp_path / "run.zarr"
    code, text = lca_run(*base(manifest, out), "--skip-bad-images")
    assert code == 0, text
    assert "skipped 1 unreadable image(s), first: row " in text and str(bad) in text
    assert "1 the image file (or, with heatmaps, a heatmap) cannot be decoded" in text  # summary
    assert "note: 1 unreadable image(s) skipped (--skip-bad-images)" in text
    run = open_run(out)
    assert run.status == "finished"
    assert run.attrs["bad_images_skipped"] == 1 and str(bad) in run.attrs["bad_images"][0]
    assert run.config["experiment"]["data"]["skip_bad_images"] is True

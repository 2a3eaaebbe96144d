"""Bad input at scale: generated broken manifests and corrupted image files.

Property: a broken manifest is always one ``ManifestError`` naming exactly the rows at fault (or
the missing column), and a corrupted image always an ``ImageReadError`` naming the file, never an
exception from deep inside pandas, Pillow or pydicom. Hypothesis runs derandomized (same examples
on every machine) and with modest example counts.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bad_files import BROKEN_KINDS, breast_image, dicom_bytes, png_bytes, write_broken
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mammo_models.data import ImageReadError, ManifestError, load_manifest, read_image

SETTINGS = settings(
    max_examples=40,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
N_BREASTS = 4


# --------------------------------------------------------------------------- corrupted images
@pytest.mark.parametrize("kind", BROKEN_KINDS)
def test_every_broken_kind_is_an_image_read_error_naming_the_file(kind, tmp_path):
    path = write_broken(tmp_path / "img", kind)
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    assert info.value.path == str(path) and str(info.value).startswith(f"{path}: ")


def _decodes_or_names_the_file(path: Path, shape: tuple[int, int]) -> None:
    try:
        out = read_image(path)
    except ImageReadError as exc:
        assert exc.path == str(path)
        assert str(exc).startswith(f"{path}: ") and len(str(exc)) > len(str(path)) + 2
        return
    assert out.shape == shape and out.dtype == np.float32 and np.isfinite(out).all()


@SETTINGS
@given(
    fmt=st.sampled_from(["png8", "png16", "dicom"]),
    cut=st.floats(0.0, 1.0, exclude_max=True),
    flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), max_size=3),
)
def test_truncated_or_corrupted_files_decode_or_fail_naming_the_file(fmt, cut, flips):
    image = breast_image(1)
    if fmt == "png16":
        image = image.astype(np.uint16) * 257
    data = bytearray(dicom_bytes(image.astype(np.uint16)) if fmt == "dicom" else png_bytes(image))
    for where, xor in flips:
        data[int(where * len(data))] ^= xor
    data = data[: int(cut * len(data))] if cut > 0 else data
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("img.dcm" if fmt == "dicom" else "img.png")
        path.write_bytes(bytes(data))
        _decodes_or_names_the_file(path, image.shape)


# --------------------------------------------------------------------------- broken manifests
@pytest.fixture(scope="module")
def image_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("images")
    for i in range(N_BREASTS):
        for view in ("CC", "MLO"):
            (root / f"b{i}_{view}.png").write_bytes(png_bytes(breast_image(i)))
    return root


def valid_rows() -> list[dict]:
    rows = []
    for i in range(N_BREASTS):
        for view in ("CC", "MLO"):
            rows.append(
                {
                    "dataset": "t",
                    "image_path": f"b{i}_{view}.png",
                    "patient_id": f"P{i}",
                    "exam_id": "E0",
                    "laterality": "L" if i % 2 else "R",
                    "view": view,
                    "malignant": i % 2,
                    "benign": 0,
                    "label_source": "pathology",
                }
            )
    return rows


BAD_LABELS = ["2", "yes", "-1", "0.5", None, 3.0, "", [1]]
BAD_TYPED = {"laterality": [3.5, None, "X", 7], "view": [None, 2, "LM"], "label_source": [True, 1]}
MUTATION = st.one_of(
    st.tuples(st.just("drop"), st.sampled_from(["image_path", "malignant", "view", "exam_id"])),
    st.tuples(
        st.just("label"),
        st.integers(0, 99),
        st.sampled_from(["malignant", "benign"]),
        st.sampled_from(BAD_LABELS),
    ),  # fmt: skip
    st.tuples(st.just("path"), st.integers(0, 99)),
    st.tuples(st.just("dup"), st.integers(0, 99)),
    st.tuples(
        st.just("type"), st.integers(0, 99), st.sampled_from(sorted(BAD_TYPED)), st.integers(0, 3)
    ),  # fmt: skip
)


def mutate(mutations: list[tuple]) -> tuple[pd.DataFrame, set[int], list[str]]:
    """The broken manifest, the 1-based rows that must be reported, and the dropped columns."""
    rows, bad, dropped = valid_rows(), [False] * (2 * N_BREASTS), []
    for m in mutations:
        kind = m[0]
        if kind == "drop":
            dropped.append(m[1])
            continue
        i = m[1] % len(rows)
        if kind == "label":
            rows[i][m[2]] = m[3]
        elif kind == "path":
            rows[i]["image_path"] = f"missing/row{i}.png"
        elif kind == "dup":
            rows.append(dict(rows[i]))
            bad.append(True)
            continue
        elif kind == "type":
            values = BAD_TYPED[m[2]]
            rows[i][m[2]] = values[m[3] % len(values)]
        bad[i] = True
    frame = pd.DataFrame(rows).drop(columns=sorted(set(dropped)))
    return frame, {i + 1 for i, b in enumerate(bad) if b}, dropped


@SETTINGS
@given(mutations=st.lists(MUTATION, max_size=4), via_csv=st.booleans())
def test_broken_manifests_name_exactly_the_rows_at_fault(image_root, mutations, via_csv):
    frame, bad_rows, dropped = mutate(mutations)
    source: Path | pd.DataFrame = frame
    if via_csv:
        source = image_root / "manifest.csv"
        frame.to_csv(source, index=False)
    try:
        manifest = load_manifest(source, image_root)
    except ManifestError as exc:
        text = str(exc)
        if dropped:  # reported alone: rows cannot be checked without the column
            assert exc.rows == [] and "missing required column" in text
            assert all(c in text for c in dropped)
        else:
            assert set(exc.rows) == bad_rows, text
            assert all(f"\n  row {r}: " in text for r in bad_rows), text
        return
    assert not bad_rows and not dropped
    assert len(manifest.breasts) == N_BREASTS


def test_skip_bad_images_leaves_out_and_counts_only_broken_files(image_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(image_root, root)
    write_broken(root / "b1_CC", "truncated_png")  # b1_CC.png, cut in half
    rows = valid_rows()
    with pytest.raises(ImageReadError, match="b1_CC.png: cannot decode PNG"):
        read_image(root / "b1_CC.png")
    manifest = load_manifest(pd.DataFrame(rows), root, skip_bad_images=True)
    assert [p.row for p in manifest.skipped_images] == [3]
    assert "b1_CC.png" in str(manifest.skipped_images[0])
    assert manifest.summary.images_dropped["unreadable"] == 1
    assert "P1" not in set(manifest.breasts["patient_id"])
    assert len(manifest.breasts) == N_BREASTS - 1
    assert "cannot be decoded" in str(manifest.summary)
    rows[0]["image_path"] = "gone.png"  # a missing file stays an error: likely a wrong root
    with pytest.raises(ManifestError, match="row 1: image_path: file not found"):
        load_manifest(pd.DataFrame(rows), root, skip_bad_images=True)


def test_skip_bad_images_also_decodes_heatmaps_when_the_run_reads_them(image_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(image_root, root)
    rows = valid_rows()
    for row in rows:
        for kind in ("benign", "malignant"):
            row[f"heatmap_{kind}_path"] = row["image_path"]  # any readable greyscale PNG
    (root / "broken_heat.png").write_bytes(png_bytes(breast_image(0))[:60])
    rows[5]["heatmap_malignant_path"] = "broken_heat.png"  # b2_MLO's malignant heatmap
    kept = load_manifest(pd.DataFrame(rows), root, skip_bad_images=True)
    assert kept.skipped_images == [] and len(kept.breasts) == N_BREASTS  # images only: not read
    manifest = load_manifest(pd.DataFrame(rows), root, skip_bad_images=True, heatmaps=True)
    [problem] = manifest.skipped_images
    assert problem.row == 6 and problem.column == "heatmap_malignant_path"  # 1-based data row
    assert "broken_heat.png" in str(problem) and "malignant heatmap" in str(problem)
    assert "P2" not in set(manifest.breasts["patient_id"])
    assert len(manifest.breasts) == N_BREASTS - 1

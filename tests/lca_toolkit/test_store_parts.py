"""The smaller parts around the store writer: the public records contract, record checks,
file-system probes and the library version handed to the store."""

from __future__ import annotations

import ast
import inspect
import json
from pathlib import Path

import numpy as np
import pytest

import lca_toolkit
from lca_toolkit import records, sinks
from lca_toolkit.errors import RecordError, StoreError
from lca_toolkit.store import RunWriter, _fs, _validate, check_writable, nearest_existing
from lca_toolkit.store._layout import StoreLayout

STORE_DIR = Path(lca_toolkit.__file__).parent / "store"


def test_records_and_sink_are_public_and_one_object_everywhere():
    assert lca_toolkit.StepBlock is records.StepBlock is lca_toolkit.store.StepBlock
    assert lca_toolkit.LcaRecord is records.LcaRecord is lca_toolkit.store.LcaRecord
    assert lca_toolkit.Sink is records.Sink is sinks.Sink
    for name in ("StepBlock", "LcaRecord", "Sink"):
        assert name in lca_toolkit.__all__


@pytest.mark.parametrize("sink", [RunWriter, sinks.MemorySink, sinks.NullSink])
def test_every_sink_has_the_protocol_calls(sink):
    wanted = [n for n in vars(records.Sink) if not n.startswith("_")]
    assert len(wanted) == 9
    for name in wanted:
        assert callable(getattr(sink, name, None)), f"{sink.__name__} lacks {name}"


def test_the_store_does_not_import_the_package_root():
    for source in STORE_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 2 and node.module is None:
                pytest.fail(f"{source.name} imports from the package root: {ast.dump(node)}")


def test_library_version_is_passed_in_or_the_package_default(tmp_path):
    assert RunWriter.default_library_version == lca_toolkit.__version__
    assert "library_version" in inspect.signature(RunWriter).parameters
    for name, given, want in [("a", None, lca_toolkit.__version__), ("b", "7.0", "7.0")]:
        path = tmp_path / f"{name}.zarr"
        with RunWriter(path, groups=["g"], group_members={"g": []}, library_version=given):
            pass
        attrs = json.loads((path / "zarr.json").read_text())["attributes"]
        assert attrs["library_versions"]["lca_toolkit"] == want


def test_probes_are_still_exported_from_the_store_and_the_writer():
    from lca_toolkit.store import _writer

    assert check_writable is _fs.check_writable is _writer.check_writable
    assert nearest_existing is _fs.nearest_existing is _writer.nearest_existing


def test_nearest_existing_and_check_writable(tmp_path):
    assert nearest_existing(tmp_path / "a" / "b" / "run.zarr") == tmp_path
    assert nearest_existing(tmp_path) == tmp_path
    check_writable(tmp_path / "new" / "run.zarr")
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    with pytest.raises(StoreError, match="is a file, not a writable directory"):
        check_writable(afile / "run.zarr")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".lca-write-probe")]


def test_is_run_store_or_empty(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _fs.is_run_store_or_empty(empty)
    (empty / "x").write_text("x")
    assert not _fs.is_run_store_or_empty(empty)


def test_layout_checks_its_arguments():
    with pytest.raises(RecordError, match="groups must be unique"):
        StoreLayout.checked(["a", "a"], {"a": []})
    with pytest.raises(RecordError, match="lr_groups must be an integer >= 1"):
        StoreLayout.checked(["a"], {"a": []}, lr_groups=0)
    layout = StoreLayout.checked(["a", "b"], {"a": ["x"], "b": []}, 2, ["x"])
    assert [s.name for s in layout.fixed_specs("lca")][-1] == "by_tensor"
    assert layout.width(layout.fixed_specs("steps")[-1]) == 2  # lr


def test_validate_returns_owned_copies_and_names_the_fault():
    src = np.ones(3)
    owned, at = _validate.owned_cumulative({"w": src}, np.int64(4))
    src[0] = 9.0
    assert owned["w"][0] == 1.0 and at == 4 and type(at) is int
    with pytest.raises(RecordError, match="at_step must be an integer"):
        _validate.owned_cumulative({}, True)
    assert _validate.epoch_row(np.int64(2), {"auc": np.float32(0.5)}) == (2, {"auc": 0.5})
    with pytest.raises(RecordError, match="cannot be called 'epoch'"):
        _validate.epoch_row(1, {"epoch": 1.0})
    with pytest.raises(RecordError, match="columns have different lengths"):
        _validate.owned_table("t", {"a": np.ones(2), "b": np.ones(3)})
    with pytest.raises(RecordError, match="update_attrs cannot set \\['rows'\\]"):
        _validate.owned_attrs({"rows": 1})
    layout = StoreLayout.checked(["a"], {"a": []})
    with pytest.raises(RecordError, match="append_steps needs a StepBlock"):
        _validate.check_step_block("rows", layout, Path("x.zarr"))  # type: ignore[arg-type]

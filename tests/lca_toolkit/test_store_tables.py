"""Per-run tables (test predictions) in the store: round trip, replacement, errors."""

import numpy as np
import pytest

from lca_toolkit import RecordError, RunWriter, StoreError, open_run


def test_table_round_trip_and_replacement(tmp_path):
    path = tmp_path / "r.zarr"
    with RunWriter(path, groups=["a"], group_members={"a": ["x"]}) as w:
        w.write_table(
            "test_predictions", {"index": np.arange(3), "prob": [0.1, 0.5, 0.9], "old": [1, 2, 3]}
        )
        w.flush()
        w.write_table("test_predictions", {"index": np.array([4, 5]), "prob": np.array([0.2, 0.7])})
    run = open_run(path)
    assert run.tables == ["test_predictions"]
    frame = run.table("test_predictions")
    assert list(frame.columns) == ["index", "prob"]  # the replaced table has no stale column
    np.testing.assert_array_equal(frame["index"], [4, 5])
    np.testing.assert_array_equal(frame["prob"], [0.2, 0.7])


def test_table_errors(tmp_path):
    path = tmp_path / "r.zarr"
    with RunWriter(path, groups=["a"], group_members={"a": ["x"]}) as w:
        with pytest.raises(RecordError, match="different lengths"):
            w.write_table("t", {"a": [1, 2], "b": [1]})
        with pytest.raises(RecordError, match="column 'a' must be a 1-D numeric array"):
            w.write_table("t", {"a": np.zeros((2, 2))})
    with pytest.raises(StoreError, match="has no table 'missing'; it has none"):
        open_run(path).table("missing")

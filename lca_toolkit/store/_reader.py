"""Read run stores as pandas frames, one run or a whole sweep, also while the run is writing.

A reader never trusts an array's length: it slices every array of a section to the committed row
count in the root attribute ``rows``, which the writer updates only after the rows' data is on
disk. Removing rows (``RunWriter.truncate`` on resume) bumps the root attribute ``generation``
first; a read that overlaps such a change sees a different generation afterwards and starts over,
so a frame is always one consistent prefix of the run.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import zarr
from zarr.storage import LocalStore

from ..errors import RunMismatchError, SchemaVersionError, StoreError, StoreNotFoundError
from ._schema import (
    BY_TENSOR,
    CUMULATIVE_GROUP,
    EPOCH_INDEX,
    ERROR_BY_GROUP,
    LCA_ARRAYS,
    PARAM_NORM,
    SCHEMA_VERSION,
    SECTIONS,
    STEP_ARRAYS,
    TABLES_GROUP,
    ArraySpec,
    empty_rows,
    metric_spec,
)

if TYPE_CHECKING:
    import xarray

_RETRIES = 50
_RETRY_SLEEP_S = 0.02

PER_GROUP_STEP_METRICS: tuple[str, ...] = ("grad_norm", "rel_sq_norm", "update_norm", "param_norm")
"""Per-group step arrays, wide-frame column order and long ``metric`` (the last where stored)."""

LCA_GROUP_COLUMNS: dict[str, str] = {
    "by_group": "lca",
    "abs_by_group": "abs_lca",
    "helped": "helped",
    "hurt": "hurt",
}
"""Array name -> column prefix (wide) or ``metric`` value (long) of the per-group LCA arrays."""

ERROR_COLUMN = "error"
"""Column prefix of the per-group error estimates in the wide LCA frame (``error/<group>``)."""


def read_root_attrs(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The root attributes of a run store, checked to be one this reader understands.

    Reads ``zarr.json`` directly (it is small and replaced atomically by the writer); a read that
    still fails to parse is retried a few times before giving up.

    Raises:
        StoreNotFoundError: the path is missing or is not a zarr v3 group.
        SchemaVersionError: ``schema_version`` is missing or newer than ``SCHEMA_VERSION``.
    """
    root = Path(path)
    meta = root / "zarr.json"
    if not root.exists():
        raise StoreNotFoundError(f"no run store at '{root}': the path does not exist")
    if not root.is_dir():
        raise StoreNotFoundError(f"'{root}' is a file, not a run store (a zarr v3 directory)")
    if not meta.is_file():
        hint = (
            "it is a zarr v2 group, not an lca-toolkit run store (zarr v3)"
            if (root / ".zgroup").exists()
            else "it has no zarr.json"
        )
        raise StoreNotFoundError(f"'{root}' is not a run store: {hint}")
    doc: Any = None
    for attempt in range(_RETRIES):
        try:
            doc = json.loads(meta.read_bytes())
            break
        except (json.JSONDecodeError, UnicodeDecodeError, FileNotFoundError) as exc:
            if attempt == _RETRIES - 1:
                raise StoreError(f"cannot read '{meta}': {exc}") from exc
            time.sleep(_RETRY_SLEEP_S)
    if not isinstance(doc, dict) or doc.get("node_type") != "group" or doc.get("zarr_format") != 3:
        raise StoreNotFoundError(
            f"'{root}' is not a run store: its zarr.json is not a zarr v3 group"
        )
    attrs = doc.get("attributes") or {}
    version = attrs.get("schema_version")
    if version is None:
        raise SchemaVersionError(
            f"'{root}' is a zarr group without 'schema_version': not written by lca-toolkit, or "
            "its creation was interrupted"
        )
    if not isinstance(version, int) or version > SCHEMA_VERSION or version < 1:
        if isinstance(version, int) and version > SCHEMA_VERSION:
            fix = "it was written by a newer lca-toolkit; upgrade lca-toolkit to read it"
        else:
            fix = "it is not a schema this or any released lca-toolkit wrote"
        raise SchemaVersionError(
            f"'{root}' has schema_version {version!r}; this lca-toolkit reads versions 1.."
            f"{SCHEMA_VERSION}: {fix}"
        )
    return attrs


class Run:
    """One run store, read lazily: every frame reflects what is committed at the time of the call.

    Args:
        path: the run's zarr directory (e.g. ``runs/joint.zarr``).

    Attributes:
        path: the store's path.
        groups: ordered group names, the column order of every ``n_groups`` axis.
        group_members: group name -> its parameter (or buffer) names.
        config: the run configuration given when it was created.
        model_summary: parameter counts and model facts given when it was created.
        tensor_names: names of the ``lca/by_tensor`` columns, or ``None`` if not recorded.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        attrs = read_root_attrs(self.path)
        self.groups: list[str] = list(attrs["groups"])
        self.group_members: dict[str, list[str]] = {
            k: list(v) for k, v in dict(attrs.get("group_members") or {}).items()
        }
        self.config: dict[str, Any] = dict(attrs.get("config") or {})
        self.model_summary: dict[str, Any] = dict(attrs.get("model_summary") or {})
        self.tensor_names: list[str] | None = (
            None if attrs.get("tensor_names") is None else list(attrs["tensor_names"])
        )
        self.n_lr_groups: int = int(attrs.get("lr_groups", 1))
        self._store = LocalStore(self.path, read_only=True)

    def __repr__(self) -> str:
        return f"Run('{self.path}', groups={self.groups}, status={self.status!r})"

    @property
    def attrs(self) -> dict[str, Any]:
        """A fresh copy of the root attributes (status and row counts change while running)."""
        return read_root_attrs(self.path)

    @property
    def status(self) -> str:
        """``running``, ``finished``, ``failed`` or ``interrupted`` (a crash leaves ``running``)."""
        return str(self.attrs.get("status"))

    @property
    def rows(self) -> dict[str, int]:
        """Committed row counts per section."""
        return {k: int(v) for k, v in self.attrs["rows"].items()}

    @property
    def has_lca(self) -> bool:
        """Whether any LCA interval is committed (none when recorded without ``lca_every``)."""
        return self.rows.get("lca", 0) > 0

    # ------------------------------------------------------------------------------ raw arrays
    def _width(self, spec: ArraySpec) -> int | None:
        return {
            None: None,
            "group": len(self.groups),
            "lr_group": self.n_lr_groups,
            "tensor": len(self.tensor_names or []),
        }[spec.columns]

    def _read_section(
        self, section: str, specs: Sequence[ArraySpec]
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The committed prefix of several arrays of one section, all of the same length.

        Returns:
            (name -> array with ``rows[section]`` rows, the root attrs the rows were read under).
        """
        last_exc: Exception | None = None
        for _ in range(_RETRIES):
            attrs = read_root_attrs(self.path)
            n = int(attrs["rows"][section])
            if n == 0:
                return {s.name: empty_rows(s, self._width(s)) for s in specs}, attrs
            out: dict[str, np.ndarray] = {}
            try:
                for spec in specs:
                    arr = zarr.open_array(self._store, path=f"{section}/{spec.name}", mode="r")
                    if arr.shape[0] < n:
                        raise _Changed(f"{section}/{spec.name} has {arr.shape[0]} < {n} rows")
                    out[spec.name] = np.asarray(arr[:n])
            except (_Changed, FileNotFoundError, ValueError, KeyError) as exc:
                last_exc = exc
                time.sleep(_RETRY_SLEEP_S)
                continue
            if read_root_attrs(self.path).get("generation") == attrs.get("generation"):
                return out, attrs
            last_exc = _Changed("rows were removed while reading")
        raise StoreError(
            f"could not read a consistent '{section}' prefix of '{self.path}' after {_RETRIES} "
            f"tries: {last_exc}"
        )

    def array(self, name: str) -> np.ndarray:
        """Raw numpy access to one array, e.g. ``run.array("steps/grad_norm")`` -> (n_steps, G).

        Arrays of ``steps/``, ``lca/`` and ``epochs/`` are cut to the committed rows;
        ``lca_cumulative/<param>`` arrays are returned whole.
        """
        section, _, leaf = name.partition("/")
        if section == CUMULATIVE_GROUP and leaf:
            try:
                return np.asarray(zarr.open_array(self._store, path=name, mode="r")[...])
            except FileNotFoundError as exc:
                raise StoreError(f"'{self.path}' has no array '{name}'") from exc
        known = self._known_specs()
        if section not in SECTIONS or leaf not in known.get(section, {}):
            names = [f"{s}/{a}" for s, specs in known.items() for a in specs]
            raise StoreError(f"'{self.path}' has no array '{name}'; it has {names}")
        data, _ = self._read_section(section, [known[section][leaf]])
        return data[leaf]

    def _stored(self, section: str, spec: ArraySpec) -> bool:  # older stores lack some arrays
        return (self.path / section / spec.name / "zarr.json").is_file()

    def _step_specs(self) -> tuple[ArraySpec, ...]:
        """The step arrays every frame reads: the fixed ones, and ``param_norm`` if stored."""
        return STEP_ARRAYS + ((PARAM_NORM,) if self._stored("steps", PARAM_NORM) else ())

    def _lca_specs(self) -> tuple[ArraySpec, ...]:
        """The LCA arrays every frame reads: the fixed ones, and the error estimate if stored."""
        return LCA_ARRAYS + ((ERROR_BY_GROUP,) if self._stored("lca", ERROR_BY_GROUP) else ())

    def _known_specs(self) -> dict[str, dict[str, ArraySpec]]:
        lca = self._lca_specs() + ((BY_TENSOR,) if self.tensor_names is not None else ())
        metrics = [metric_spec(m) for m in self.attrs.get("epoch_metrics", [])]
        return {
            "steps": {s.name: s for s in self._step_specs()},
            "lca": {s.name: s for s in lca},
            "epochs": {s.name: s for s in (EPOCH_INDEX, *metrics)},
        }

    # ------------------------------------------------------------------------------ frames
    def steps(self, wide: bool = True) -> pd.DataFrame:
        """Per-step records.

        Args:
            wide: one row per step with columns ``step, loss, grad_norm_total, skipped, lr``
                (``lr/0, lr/1, ...`` with several optimizer param groups) and
                ``grad_norm/<group>``, ``rel_sq_norm/<group>``, ``update_norm/<group>``,
                ``param_norm/<group>`` (absent in stores written before it; NaN in rows from
                before a resume added it). If false, those in long form: ``step, group, metric,
                value`` (``group``, ``metric`` categorical, in store order; for seaborn's hue).
        """
        d, _ = self._read_section("steps", self._step_specs())
        per_group = {m: d[m] for m in PER_GROUP_STEP_METRICS if m in d}
        if not wide:
            return _long({"step": d["step"]}, per_group, self.groups)
        cols: dict[str, np.ndarray] = {
            "step": d["step"],
            "loss": d["loss"],
            "grad_norm_total": d["grad_norm_total"],
            "skipped": d["skipped"],
        }
        lr = d["lr"]
        if lr.shape[1] == 1:
            cols["lr"] = lr[:, 0]
        else:
            cols.update({f"lr/{j}": lr[:, j] for j in range(lr.shape[1])})
        for metric, values in per_group.items():
            cols.update({f"{metric}/{g}": values[:, j] for j, g in enumerate(self.groups)})
        return pd.DataFrame(cols)

    def lca(self, wide: bool = True) -> pd.DataFrame:
        """LCA intervals ``start_step < step <= end_step``; negative LCA = the group helped.

        Args:
            wide: one row per interval with ``start_step, end_step, loss_start, loss_end,
                loss_change, residual, passes`` and ``lca/<group>``, ``abs_lca/<group>``,
                ``helped/<group>``, ``hurt/<group>``, ``error/<group>``, where ``loss_change =
                loss_end - loss_start = sum of lca/<group> + residual`` and ``error/<group>`` is
                the estimated quadrature error of ``lca/<group>`` (NaN in stores written before
                it was recorded). If false, the per-group columns in long form: ``start_step,
                end_step, group, metric, value`` with ``metric`` in ``lca, abs_lca, helped,
                hurt`` (the error estimates are in the wide frame only).
        """
        d, _ = self._read_section("lca", self._lca_specs())
        index = {"start_step": d["start_step"], "end_step": d["end_step"]}
        if not wide:
            per_group = {LCA_GROUP_COLUMNS[a]: d[a] for a in LCA_GROUP_COLUMNS}
            return _long(index, per_group, self.groups)
        error = d.get(ERROR_BY_GROUP.name, np.full(d["by_group"].shape, np.nan))
        cols: dict[str, np.ndarray] = {
            **index,
            "loss_start": d["loss_start"],
            "loss_end": d["loss_end"],
            "loss_change": d["loss_end"] - d["loss_start"],
            "residual": d["residual"],
            "passes": d["passes"],
        }
        for array_name, prefix in LCA_GROUP_COLUMNS.items():
            cols.update({f"{prefix}/{g}": d[array_name][:, j] for j, g in enumerate(self.groups)})
        cols.update({f"{ERROR_COLUMN}/{g}": error[:, j] for j, g in enumerate(self.groups)})
        return pd.DataFrame(cols)

    def lca_by_tensor(self, wide: bool = True) -> pd.DataFrame:
        """LCA per parameter tensor, when the run recorded it (``tensor_names`` given).

        Args:
            wide: ``start_step, end_step`` plus one column per tensor name. If false:
                ``start_step, end_step, tensor, group, lca`` with ``group`` the tensor's group
                (from ``group_members``; empty when the tensor is in none).

        Raises:
            StoreError: the run has no ``lca/by_tensor``.
        """
        if self.tensor_names is None:
            raise StoreError(
                f"'{self.path}' has no lca/by_tensor: the run was recorded without tensor_names "
                "(Tracker(per_tensor=True) records it)"
            )
        specs = [LCA_ARRAYS[0], LCA_ARRAYS[1], BY_TENSOR]
        d, _ = self._read_section("lca", specs)
        names = self.tensor_names
        if wide:
            cols = {"start_step": d["start_step"], "end_step": d["end_step"]}
            cols.update({t: d["by_tensor"][:, j] for j, t in enumerate(names)})
            return pd.DataFrame(cols)
        owner = {m: g for g, members in self.group_members.items() for m in members}
        n, t = d["by_tensor"].shape
        return pd.DataFrame(
            {
                "start_step": np.repeat(d["start_step"], t),
                "end_step": np.repeat(d["end_step"], t),
                "tensor": pd.Categorical(np.tile(np.asarray(names, dtype=object), n), names),
                "group": np.tile(np.asarray([owner.get(x, "") for x in names], dtype=object), n),
                "lca": d["by_tensor"].ravel(),
            }
        )

    def epochs(self) -> pd.DataFrame:
        """Per-epoch metrics: ``epoch`` plus one float column per metric, in order of appearance.

        A metric first logged in a later epoch is NaN in earlier rows.
        """
        metrics = list(self.attrs.get("epoch_metrics", []))
        while True:  # a writer may commit a new metric between the two reads of the attrs
            specs = [EPOCH_INDEX, *(metric_spec(m) for m in metrics)]
            d, attrs = self._read_section("epochs", specs)
            committed = list(attrs.get("epoch_metrics", []))
            if set(committed) <= set(metrics):
                break
            metrics = committed
        cols = {"epoch": d["epoch"]}
        cols.update({m: d[m] for m in committed if m in d})
        return pd.DataFrame(cols)

    def to_xarray(self) -> xarray.Dataset:
        """The run's committed rows as one ``xarray.Dataset`` (needs ``lca-toolkit[xarray]``).

        Dimensions ``step`` and ``group`` for the per-step arrays (``grad_norm``,
        ``rel_sq_norm``, ``update_norm``, ``param_norm`` where stored; ``loss``,
        ``grad_norm_total``, ``skipped`` and ``lr`` along ``step``, ``lr`` along
        ``(step, lr_group)`` with several optimizer param groups),
        ``interval`` and ``group`` for the LCA arrays (``by_group`` with negative = helped,
        ``abs_by_group``, ``helped``, ``hurt``, ``error_by_group``; ``loss_start``,
        ``loss_end``, ``loss_change``, ``residual``, ``passes`` along ``interval``),
        ``(interval, tensor)`` for ``by_tensor`` when recorded, and ``epoch_<metric>`` along
        ``epoch``. Variables keep the store's array names. Coordinates: ``step`` (the step
        numbers), ``group`` (names, store order), ``interval`` (0, 1, ...) with
        ``start_step``/``end_step`` on it (``ds.swap_dims(interval="end_step")`` indexes
        intervals by their last step), ``epoch``, and ``numel`` per group when the store has
        it. Attributes: ``path``, ``status``, ``schema_version`` and the run's config
        flattened to ``config.<key>.<subkey>``.

        Raises:
            MissingExtraError: xarray is not installed.
        """
        from ._xarray import run_dataset

        return run_dataset(self)

    def cumulative_lca(self) -> dict[str, np.ndarray]:
        """Cumulative per-parameter LCA arrays (parameter name -> array of its shape).

        The step they were summed up to is ``attrs["lca_cumulative_at_step"]``. They are
        rewritten array by array, so a read during a rewrite may mix two steps.

        Raises:
            StoreError: the run has none.
        """
        try:
            grp = zarr.open_group(self._store, path=CUMULATIVE_GROUP, mode="r")
        except FileNotFoundError as exc:
            raise StoreError(
                f"'{self.path}' has no {CUMULATIVE_GROUP}/ arrays (Tracker(cumulative=True) "
                "records them)"
            ) from exc
        names = list(grp.attrs.get("names", []))
        return {name: np.asarray(grp[name][...]) for name in names}

    @property
    def tables(self) -> list[str]:
        """Names of the tables the run holds (see :meth:`table`)."""
        try:
            grp = zarr.open_group(self._store, path=TABLES_GROUP, mode="r")
        except FileNotFoundError:
            return []
        return sorted(grp.group_keys())

    def table(self, name: str) -> pd.DataFrame:
        """A table written with ``RunWriter.write_table`` (e.g. ``test_predictions``).

        Raises:
            StoreError: the run has no table of that name (the message lists the ones it has).
        """
        try:
            grp = zarr.open_group(self._store, path=f"{TABLES_GROUP}/{name}", mode="r")
        except FileNotFoundError:
            raise StoreError(
                f"'{self.path}' has no table {name!r}; it has {self.tables or 'none'}"
            ) from None
        columns = list(grp.attrs.get("columns", sorted(grp.array_keys())))
        return pd.DataFrame({c: np.asarray(grp[c][...]) for c in columns})


class _Changed(Exception):
    """The store changed under a read; the read starts over."""


def _long(
    index: Mapping[str, np.ndarray], per_group: Mapping[str, np.ndarray], groups: Sequence[str]
) -> pd.DataFrame:
    """Stack ``(n, G)`` arrays into rows ``(*index, group, metric, value)``, metric-major."""
    g = len(groups)
    n = len(next(iter(index.values())))
    metrics = list(per_group)
    cols: dict[str, Any] = {k: np.tile(np.repeat(v, g), len(metrics)) for k, v in index.items()}
    cols["group"] = pd.Categorical.from_codes(
        np.tile(np.arange(g), n * len(metrics)), categories=list(groups)
    )
    cols["metric"] = pd.Categorical.from_codes(np.repeat(np.arange(len(metrics)), n * g), metrics)
    cols["value"] = (
        np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in per_group.values()])
        if metrics
        else np.empty(0)
    )
    return pd.DataFrame(cols)


def is_run_store(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` holds an lca-toolkit run store this reader understands."""
    try:
        read_root_attrs(path)
    except StoreError:
        return False
    return True


def open_run(path: str | os.PathLike[str]) -> Run:
    """Open one run store for reading (also while it is being written).

    Raises:
        StoreNotFoundError: nothing, or not a run store, at ``path``.
        SchemaVersionError: written by a newer lca-toolkit, or without a schema version.
    """
    return Run(path)


class Runs(Sequence[Run]):
    """Several runs read together, e.g. the stores of a learning-rate or seed sweep.

    Frames are the runs' frames concatenated with a leading ``run`` column (the store's file name
    without suffix, with parent folders added where two runs would share a name) and, on request,
    config values as extra columns named after the key (``with_config=["seed", "optim.lr"]``);
    a key that is already a column of the frame (``lr`` in ``steps()``) becomes
    ``config/<key>``.
    """

    def __init__(self, runs: Sequence[Run]) -> None:
        self._runs = list(runs)
        self.labels: list[str] = _labels([r.path for r in self._runs])

    def __len__(self) -> int:
        return len(self._runs)

    def __iter__(self) -> Iterator[Run]:
        return iter(self._runs)

    def __getitem__(self, key: int | str) -> Run:  # type: ignore[override]
        if isinstance(key, str):
            if key not in self.labels:
                raise KeyError(f"no run labelled {key!r}; labels are {self.labels}")
            return self._runs[self.labels.index(key)]
        return self._runs[key]

    def __repr__(self) -> str:
        return f"Runs({self.labels})"

    @property
    def groups(self) -> list[str]:
        """Group names of the first run (all runs share them unless opened otherwise)."""
        return list(self._runs[0].groups) if self._runs else []

    def steps(self, wide: bool = True, *, with_config: Sequence[str] = ()) -> pd.DataFrame:
        """``Run.steps`` of every run, concatenated; see ``Runs`` for the extra columns."""
        return self._concat(lambda r: r.steps(wide), with_config)

    def lca(self, wide: bool = True, *, with_config: Sequence[str] = ()) -> pd.DataFrame:
        """``Run.lca`` of every run, concatenated; see ``Runs`` for the extra columns."""
        return self._concat(lambda r: r.lca(wide), with_config)

    def epochs(self, *, with_config: Sequence[str] = ()) -> pd.DataFrame:
        """``Run.epochs`` of every run, concatenated; see ``Runs`` for the extra columns."""
        return self._concat(lambda r: r.epochs(), with_config)

    def _concat(self, frame_of, with_config: Sequence[str]) -> pd.DataFrame:
        if isinstance(with_config, str):
            with_config = [with_config]
        frames = []
        for run, label in zip(self._runs, self.labels, strict=True):
            df = frame_of(run)
            extra: dict[str, Any] = {"run": label}
            for key in with_config:
                column = f"config/{key}" if key in df.columns or key == "run" else key
                extra[column] = _config_value(run, label, key)
            for pos, (k, v) in enumerate(extra.items()):
                df.insert(pos, k, [v] * len(df) if not _is_scalar(v) else v)
            frames.append(df)
        out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        if "run" in out:
            out["run"] = pd.Categorical(out["run"], categories=self.labels)
        return out


def _is_scalar(v: Any) -> bool:
    return v is None or isinstance(v, (str, int, float, bool, np.generic))


def _config_value(run: Run, label: str, key: str) -> Any:
    """``config[key]``, or a dotted path into nested dicts (``"optim.lr"``)."""
    if key in run.config:
        return run.config[key]
    node: Any = run.config
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise RunMismatchError(
                f"run '{label}' ({run.path}) has no config key {key!r}; its top-level keys are "
                f"{sorted(run.config)}"
            )
        node = node[part]
    return node


def _labels(paths: Sequence[Path]) -> list[str]:
    """Shortest unique labels: the file stem, then with parent folders until all differ."""
    parts = [list(p.resolve().parts[:-1]) + [p.stem] for p in paths]
    depth = max((len(x) for x in parts), default=1)
    for k in range(1, depth + 1):
        labels = ["/".join(x[-k:]) for x in parts]
        if len(set(labels)) == len(labels):
            return labels
    return [f"{p.stem}#{i}" for i, p in enumerate(paths)]


def open_runs(paths: Iterable[str | os.PathLike[str]], *, require_same_groups: bool = True) -> Runs:
    """Open several run stores to read them together (a sweep).

    Args:
        paths: the stores; a single path is accepted too.
        require_same_groups: refuse runs whose group names (or their order) differ, since their
            per-group columns would not line up. With ``False`` the frames are outer-joined.

    Raises:
        StoreNotFoundError, SchemaVersionError: as ``open_run``, naming the run at fault.
        RunMismatchError: group names differ, naming both runs and their groups.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    runs = [Run(p) for p in paths]
    if not runs:
        raise StoreError("open_runs got no paths; pass the run stores to read")
    if require_same_groups:
        first = runs[0]
        for other in runs[1:]:
            if other.groups != first.groups:
                raise RunMismatchError(
                    f"runs have different groups: '{first.path}' has {first.groups} but "
                    f"'{other.path}' has {other.groups}; pass require_same_groups=False to "
                    "read them together anyway"
                )
    return Runs(runs)

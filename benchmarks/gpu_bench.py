"""Every GPU row from one command: ``make gpu-bench``, within 8 minutes on one H100 or H200.

Time on a GPU machine is scarce and short, so the measurements that need a GPU are one prepared
command that cannot waste it. The parts (``gpu_parts.py``, in this order: environment, synthetic data,
end-to-end training at ``--preset paper`` with both feeds against the GPU-bound rate, LCA
accuracy at k = 60 with the default rule, recording overhead, LCA cost against its floor,
``--sync-bn`` under torchrun with 2+ GPUs, FSDP2 scripts once they exist) each run in a process
of their own, forked from this one (so torch and the project are imported once), with a time
limit of their own and the whole run within ``--budget`` seconds. A part's rows are printed and
appended to ``--out`` as soon as it has them, so a run cut short still leaves the rows it had; a
part that hangs is killed with its process group at its limit and leaves a "cut off" row, one
that raises leaves a "failed" row, and the next part starts.

Every row names the card, the commit, the torch and CUDA versions and the date
(``| H100 | 1a2b3c4 | 2.11.0+cu130 | 13.0 | 2026-12-06 | ...``). Nothing is downloaded at run
time: the synthetic data are generated, and packages the machine lacks (its image had no zarr,
numcodecs, donfig, google-crc32c, pydicom or openpyxl) are installed into a folder of the scratch
space from the wheels that ``make gpu-wheels`` keeps in ``.gpu-wheels/`` (git-ignored; the device
call carries it), else from the package index.

    python3 benchmarks/gpu_bench.py                         # on the GPU machine (make gpu-bench)
    python3 benchmarks/gpu_bench.py --smoke                 # every part for seconds on the CPU
    python benchmarks/gpu_bench.py --download-wheels        # here, before (make gpu-wheels)
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import importlib.util
import multiprocessing
import os
import re
import resource
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WHEELS = ROOT / ".gpu-wheels"
BUDGET_S = 470.0  # 8 minutes with room for the interpreter and the imports

NEEDED = (
    ("zarr", "zarr"),
    ("numcodecs", "numcodecs"),
    ("donfig", "donfig"),
    ("google_crc32c", "google-crc32c"),
    ("pydicom", "pydicom"),
    ("openpyxl", "openpyxl"),
    ("et_xmlfile", "et-xmlfile"),
)
"""(module, distribution) pairs the project needs that the GPU machines' image (Python 3.12)
lacked in 2026-11; everything else the project imports was there."""

PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
)

HEADER = ("card", "commit", "torch", "CUDA", "date", "part", "measured", "result", "against, how")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def commit_here(wheels: Path = WHEELS) -> str:
    """The commit being measured: git where the checkout has it, else what ``make gpu-wheels``
    wrote beside the wheels (the device machine gets the files without ``.git``)."""
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty", "--abbrev=7"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    stamp = wheels / "COMMIT"
    if stamp.is_file():
        return stamp.read_text().strip()
    return os.environ.get("GPU_BENCH_COMMIT", "unknown")


def download_wheels(dest: Path, python_version: str) -> None:
    """Wheels of :data:`NEEDED` for CPython ``python_version`` on x86-64 Linux into ``dest``,
    at the versions installed here (the ones the suite passes with), one version of each."""
    from importlib.metadata import PackageNotFoundError, version

    pins = {}
    for _, dist in NEEDED:
        try:
            pins[_norm(dist)] = f"{dist}=={version(dist)}"
        except PackageNotFoundError:
            pins[_norm(dist)] = dist
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    cmd += ["--python-version", python_version, "--implementation", "cp"]
    cmd += [f"--platform={p}" for p in PLATFORMS] + ["-d", str(dest), *pins.values()]
    subprocess.run(cmd, check=True)
    for wheel in dest.glob("*.whl"):  # two versions of one package would stop the install
        name, ver = wheel.name.split("-")[:2]
        pin = pins.get(_norm(name), "")
        if "==" in pin and pin.split("==")[1] != ver:
            wheel.unlink()
    (dest / "COMMIT").write_text(commit_here(Path("/nonexistent")) + "\n")
    print(f"wheels for Python {python_version} in {dest}: {len(list(dest.glob('*.whl')))}")


def ensure_packages(wheels: Path, site: Path) -> str:
    """Install what :data:`NEEDED` names and this Python lacks into ``site`` (put first on the
    path): from ``wheels`` where they are there, else from the package index. Says what it did."""
    missing = [dist for module, dist in NEEDED if importlib.util.find_spec(module) is None]
    if not missing:
        return "nothing to install"
    want = {_norm(d) for d in missing}
    kept = [w for w in sorted(wheels.glob("*.whl")) if _norm(w.name.split("-")[0]) in want]
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-compile", "--target", str(site)]
    if kept:
        cmd, source = [*pip, "--no-index", "--no-deps", "--upgrade", *map(str, kept)], wheels.name
    else:
        cmd, source = [*pip, "--retries", "0", "--timeout", "15", *missing], "the package index"
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise SystemExit(f"gpu_bench: could not install {', '.join(missing)} from {source}: {tail}")
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    return f"installed {', '.join(missing)} from {source}"


class Table:
    """The rows, printed and appended to a file as they come (flushed: a kill keeps them)."""

    def __init__(self, out: Path, prefix: dict[str, str]) -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        self.out, self.prefix = out, prefix
        self._file: TextIO = out.open("w")
        self.rows: list[tuple[str, ...]] = []
        self._line(HEADER)
        self._line(tuple("---" for _ in HEADER))

    def _line(self, cells: Sequence[str]) -> None:
        text = "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"
        print(text, flush=True)
        self._file.write(text + "\n")
        self._file.flush()

    def row(self, part: str, *cells: str) -> None:
        p = self.prefix
        full = (p["card"], p["commit"], p["torch"], p["cuda"], p["date"], part, *cells)
        self.rows.append(full)
        self._line(full)

    def close(self) -> None:
        self._file.close()


def _child(run: Callable, ctx: object, conn) -> None:
    os.setpgrp()  # its own process group: a kill at the limit takes its loader workers too
    if getattr(ctx, "smoke", False):  # a code-path check: one thread, as in the suite
        import torch

        torch.set_num_threads(1)
    try:
        for message in run(ctx):
            conn.send(message)
    except BaseException as e:  # noqa: BLE001 - every failure becomes the part's row
        traceback.print_exc()
        first = (f"{type(e).__name__}: {e}".strip().splitlines() or ["?"])[0]
        conn.send(("error", first[:300]))
    finally:
        conn.close()


def _kill(proc: multiprocessing.Process) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.kill()
    proc.join(10)


def run_part(part, ctx, limit: float, table: Table) -> str:
    """Run ``part`` in a forked process for at most ``limit`` s, its rows into ``table``.
    Returns ``ok``, ``failed``, ``cut off`` or ``no result``."""
    from gpu_parts import Info, Row

    mp = multiprocessing.get_context("fork")
    reader, writer = mp.Pipe(duplex=False)
    proc = mp.Process(target=_child, args=(part.run, ctx, writer), name=f"gpu-bench {part.name}")
    start = time.monotonic()
    proc.start()
    writer.close()
    rows, error, status = 0, None, "ok"
    try:
        while True:
            left = start + limit - time.monotonic()
            if left <= 0:
                _kill(proc)
                cut = f"at its limit of {limit:.0f} s, after {rows} row(s)"
                table.row(part.name, "the part", "cut off", cut)
                return "cut off"
            if not reader.poll(min(left, 1.0)):
                if proc.is_alive():
                    continue
                if not reader.poll(0):
                    break
            try:
                message = reader.recv()
            except EOFError:
                break
            if isinstance(message, Info):
                table.prefix.update(message.values)
            elif isinstance(message, Row):
                table.row(part.name, *message.cells)
                rows += 1
            else:
                error = message[1]
    except BaseException:
        _kill(proc)
        raise
    proc.join(30)
    if proc.is_alive():
        _kill(proc)
    if error is not None:
        table.row(part.name, "the part", "failed", error)
        status = "failed"
    elif proc.exitcode != 0:
        ended = f"its process ended with exit code {proc.exitcode}"
        table.row(part.name, "the part", "failed", ended)
        status = "failed"
    elif rows == 0:
        table.row(part.name, "the part", "no result", "it ended without a row")
        status = "no result"
    return status


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--smoke", action="store_true", help="every part for seconds on the CPU")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "gpu-bench.md")
    p.add_argument("--scratch", type=Path, default=Path("/tmp/gpu_bench"), help="data, stores")
    p.add_argument("--budget", type=float, default=BUDGET_S, help="seconds for all parts")
    p.add_argument("--only", nargs="+", metavar="PART", help="these parts (in the run's order)")
    p.add_argument("--workers", type=int, default=None, help="[default: 14, or CPUs - 2]")
    p.add_argument("--wheels", type=Path, default=WHEELS)
    p.add_argument("--download-wheels", action="store_true", help="fill --wheels and stop")
    p.add_argument("--python-version", default="3.12", help="of --download-wheels")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the parts; the exit status is the number of parts that did not give their rows."""
    a = parse_args(argv)
    if a.download_wheels:
        download_wheels(a.wheels, a.python_version)
        return 0
    started = time.monotonic()
    installed = ensure_packages(a.wheels, a.scratch / "site")
    for p in (str(BENCH), str(ROOT)):
        if p not in sys.path:
            sys.path.insert(0, p)
    paths = [str(ROOT), *([str(a.scratch / "site")] if installed.startswith("installed") else [])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*paths, os.environ.get("PYTHONPATH", "")])}
    gpu_parts = importlib.import_module("gpu_parts")  # torch and the project, once for all parts
    import torch  # never touches CUDA here: the parts' processes are forked from this one

    workers = a.workers
    if workers is None:
        workers = 0 if a.smoke else max(1, min(14, (os.cpu_count() or 4) - 2))
    ctx = gpu_parts.Context(
        smoke=a.smoke,
        device="cpu" if a.smoke else "cuda",
        scratch=a.scratch,
        workers=workers,
        env=env,
        installed=installed,
    )
    names = list(gpu_parts.PARTS)
    unknown = set(a.only or ()) - set(names)
    if unknown:
        raise SystemExit(
            f"gpu_bench: no part {', '.join(sorted(unknown))}; have {', '.join(names)}"
        )
    prefix = {
        "card": "?",
        "commit": commit_here(a.wheels),
        "torch": torch.__version__,
        "cuda": torch.version.cuda or "none",
        "date": datetime.date.today().isoformat(),
    }
    table = Table(a.out, prefix)
    bad = 0
    try:
        for name in names:
            if a.only and name not in a.only and name != "environment":
                continue
            part = gpu_parts.PARTS[name]
            left = a.budget - (time.monotonic() - started)
            if left < 5:
                spent = f"the budget of {a.budget:.0f} s was spent"
                table.row(name, "the part", "not run", spent)
                bad += 1
                continue
            limit = min(part.smoke_limit_s if a.smoke else part.limit_s, left)
            t, cpu = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
            status = run_part(part, ctx, limit, table)
            cpu_s = sum(resource.getrusage(resource.RUSAGE_CHILDREN)[:2]) - sum(cpu[:2])
            wall = time.monotonic() - t
            print(
                f"[{name}: {status}, {wall:.1f} s, CPU {cpu_s:.1f} s]", file=sys.stderr, flush=True
            )
            bad += status != "ok"
            if name == "environment" and not a.smoke and prefix.get("gpus", "0") == "0":
                table.row("all", "the other parts", "not run", "no CUDA device on this machine")
                return bad + 1
    finally:
        table.close()
    print(f"{len(table.rows)} rows in {a.out} ({time.monotonic() - started:.0f} s)", flush=True)
    return bad


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a timeout kills the parts too
    sys.exit(main())

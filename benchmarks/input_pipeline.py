"""Can the input pipeline feed the GPU at full resolution? Per-stage CPU cost and images/s.

The measured GPU step of the Joint ResNet-22 at the paper's resolution (batch 4, one H200) takes
60 ms, so training at the GPU's pace needs 16.6 steps/s x 4 breasts x 2 views = 133 full-resolution
images per second from the input pipeline. This script measures what the CPU side delivers, for
two feeds (``--feed`` of ``lca-run mammo``):

* ``workers`` (today's path): a worker decodes, resizes to the preset's scale, cuts and resizes the
  window, standardises, all in float32, and ships float32 windows;
* ``device``: a worker decodes (keeping uint16), places the box and window and ships the integer
  image; the resize, cut and standardisation run on the training device (``prepare_batch``).

Sources: the bundled synthetic set at ``--preset paper`` (stored 16x smaller, resized up), and
full-size 16-bit PNG and 12-bit DICOM files written by ``data_throughput.py``'s generator.

Prints, per source: the median milliseconds of each stage for one image (both paths), the
images/s one worker process delivers on each path (``torch`` limited to one thread, as in a
DataLoader worker; old and new interleaved in one process so their ratio is fair on a busy
machine), and the rate ``--workers`` such workers would give against the 133 images/s. The
device half of the new path is timed on ``--device`` (on the CPU it is the main process's cost,
which a GPU replaces). With ``--device cuda`` it also trains the Joint ResNet-22 for ``--steps``
steps: with the batch already on the GPU (the GPU-bound rate), then end to end from a DataLoader
with ``--workers`` workers on each feed.

    python benchmarks/input_pipeline.py --files 4 --repeats 3
    python benchmarks/input_pipeline.py --device cuda --workers 14 --steps 40
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from data_throughput import write_files  # noqa: E402

from mammo_models.data import DataConfig, MammoDataset, get_preset, load_synthetic  # noqa: E402
from mammo_models.data import images as im  # noqa: E402
from mammo_models.data.compact import CompactDataset, collate_compact  # noqa: E402
from mammo_models.data.crops import breast_bbox, cut_window  # noqa: E402
from mammo_models.data.prepare import prepare_view  # noqa: E402

GPU_IMAGES_PER_S = 133.0  # 16.6 steps/s (60 ms, H200) x batch 4 x 2 views


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def stages_old(ds: MammoDataset, i: int) -> dict[str, float]:
    """Seconds of each stage of the worker path for breast ``i``'s CC view."""
    row, out = ds.breasts.iloc[i], {}
    path = ds._path(row["cc_image_path"])
    factor = ds.config.scale / float(row.get("cc_pixel_scale", 1.0) or 1.0)
    t = time.perf_counter()
    image = im.read_image(path)
    out["decode (float32)"] = time.perf_counter() - t
    t = time.perf_counter()
    image = im.rescale(image, factor)
    out["resize to scale"] = time.perf_counter() - t
    t = time.perf_counter()
    image, _ = im.orient(image, str(row["laterality"]), ds.config.mirror)
    box = breast_bbox(image, ds.config.crop.threshold)
    window = ds.window_at(i, "CC", image.shape, box)
    out["orient + box + window"] = time.perf_counter() - t
    t = time.perf_counter()
    crop = cut_window(image[None], window, ds.config.window("CC"), [float(image.min())])
    out["cut + resize window"] = time.perf_counter() - t
    t = time.perf_counter()
    im.standardize(crop[0], out=crop[0])
    out["standardise"] = time.perf_counter() - t
    tensors = [torch.from_numpy(crop)] * 4
    t = time.perf_counter()
    torch.stack(tensors)
    out["collate (per image, batch 4)"] = (time.perf_counter() - t) / 4
    return out


def stages_new(ds: MammoDataset, i: int, device: torch.device) -> dict[str, float]:
    """Seconds of the worker and device halves of the device feed for breast ``i``'s CC view."""
    row, out = ds.breasts.iloc[i], {}
    compact = CompactDataset(ds)
    t = time.perf_counter()
    im.read_pixels(ds._path(row["cc_image_path"]))
    out["worker: decode (integer)"] = time.perf_counter() - t
    t = time.perf_counter()
    view = compact.view(i, "CC")
    out["worker: decode + box + window + part"] = time.perf_counter() - t
    t = time.perf_counter()
    collate_compact([{"cc": view}] * 4)
    out["worker: collate (per image)"] = (time.perf_counter() - t) / 4
    _sync(device)
    t = time.perf_counter()
    pixels = view["pixels"].to(device)
    _sync(device)
    out[f"transfer to {device.type}"] = time.perf_counter() - t
    geometry, fill = view["geometry"].tolist(), float(view["fill"])
    prepare_view(pixels, geometry, fill, ds.config.window("CC"))  # warm-up (kernels)
    _sync(device)
    t = time.perf_counter()
    prepare_view(pixels, geometry, fill, ds.config.window("CC"))
    _sync(device)
    out[f"{device.type}: resize, cut, resize, standardise"] = time.perf_counter() - t
    return out


def per_worker_rates(
    ds: MammoDataset, n: int, repeats: int
) -> tuple[list[float], list[float], int]:
    """Images/s of one process on each path, interleaved: (old, new, images per pass)."""
    compact = CompactDataset(ds)
    items = list(range(min(n, len(ds))))
    images = len(items) * len(ds.views)

    def timed(fn: Callable[[int], object]) -> float:
        t = time.perf_counter()
        for i in items:
            fn(i)
        return images / (time.perf_counter() - t)

    old, new = [], []
    for rep in range(repeats):
        ds.set_epoch(rep)
        old.append(timed(ds.__getitem__))
        new.append(timed(compact.__getitem__))
    return old, new, images


def sources(args: argparse.Namespace) -> dict[str, MammoDataset]:
    preset = get_preset("paper")
    root = args.root / "synthetic" / preset.synthetic.hash()[:12]
    manifest = load_synthetic(preset.synthetic, root)
    out = {
        "synthetic, --preset paper": MammoDataset.from_manifest(
            manifest, "train", preset.data_config(), train=True
        )
    }
    tables = write_files(args.root / "files", args.files)
    names = {"png": "16-bit PNG, full size", "dcm": "DICOM 12-bit, full size"}
    for fmt, table in tables.items():
        out[names[fmt]] = MammoDataset(
            table, args.root / "files", DataConfig(scale=1.0), train=True
        )
    return out


def _endless(loader) -> Iterator[dict]:
    """The loader's batches, epoch after epoch (a small preset's epoch is a few batches)."""
    from mammo_models.data import set_epoch

    for epoch in itertools.count():
        set_epoch(loader, epoch)
        yield from loader


def train_rates(
    root: Path,
    workers: int,
    steps: int,
    device: torch.device,
    preset: str = "paper",
    warmup: int = 3,
) -> Iterator[tuple[str, float]]:
    """Steps/s of the Joint ResNet-22 at ``preset``'s resolution: GPU-bound (one batch already on
    the device), then end to end from the run's own loader per feed; each as soon as measured."""
    from mammo_models.losses import per_sample_loss
    from mammo_models.training.config import DataSource, ExperimentConfig
    from mammo_models.training.data_setup import build_run_data
    from mammo_models.variants import build_model

    model = build_model("joint", input_channels=1).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-5)

    def step(batch: dict[str, torch.Tensor]) -> None:
        opt.zero_grad(set_to_none=True)
        per_sample_loss(model(batch), batch).mean().backward()
        opt.step()

    for feed in ("workers", "device"):
        config = ExperimentConfig(
            out=root / "unused.zarr",
            preset=preset,
            device=str(device),
            num_workers=workers,
            feed=feed,
            data=DataSource(synthetic_root=root / "synthetic"),
        )
        data = build_run_data(config, device)
        batches = _endless(data.loader)
        if feed == "workers":  # the GPU-bound rate: one batch, already on the device
            fixed = data.to_model_batch(next(batches), device)
            for _ in range(warmup):
                step(fixed)
            _sync(device)
            t = time.perf_counter()
            for _ in range(steps):
                step(fixed)
            _sync(device)
            yield "GPU-bound (batch on the device)", steps / (time.perf_counter() - t)
        for _ in range(warmup):  # workers started, first batches queued
            step(data.to_model_batch(next(batches), device))
        _sync(device)
        t, done = time.perf_counter(), 0
        for batch in batches:
            step(data.to_model_batch(batch, device))
            done += 1
            if done == steps:
                break
        _sync(device)
        yield f"end to end, --feed {feed}, {workers} workers", done / (time.perf_counter() - t)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--files", type=int, default=4, help="full-size files per format")
    p.add_argument("--breasts", type=int, default=4, help="breasts per source per pass")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--workers", type=int, default=14, help="DataLoader workers to project for")
    p.add_argument("--device", default="cpu", help="where the device half runs: cpu or cuda")
    p.add_argument("--steps", type=int, default=40, help="training steps timed (cuda only)")
    p.add_argument("--root", type=Path, default=Path("/tmp/bench/input_pipeline"))
    a = p.parse_args()
    if a.files < 2 or a.repeats < 1 or a.breasts < 1:
        p.error("--files must be >= 2, --breasts and --repeats >= 1")
    device = torch.device(a.device)
    torch.set_num_threads(1)  # as in a DataLoader worker
    print(
        f"torch {torch.__version__}, device {device}, torch threads 1 (a worker's), "
        f"{a.breasts} breasts x 2 views per source, {a.repeats} interleaved repeats"
    )
    for name, ds in sources(a).items():
        old = [stages_old(ds, i % len(ds)) for i in range(a.repeats)]
        new = [stages_new(ds, i % len(ds), device) for i in range(a.repeats)]
        print(f"\n## {name}\n\nstages of one CC image, median ms:")
        for label, runs in (("workers (today)", old), ("device feed", new)):
            print(f"  {label}:")
            for stage in runs[0]:
                ms = 1e3 * statistics.median(r[stage] for r in runs)
                print(f"    {stage:<45}{ms:9.1f}")
        r_old, r_new, images = per_worker_rates(ds, a.breasts, a.repeats)
        mo, mn = statistics.median(r_old), statistics.median(r_new)
        print(f"\nimages/s per worker ({images} images per pass, median of {a.repeats}):")
        print("| path | images/s per worker | x workers | vs 133 images/s |")
        print("| --- | --- | --- | --- |")
        for label, r in (("workers (today)", mo), ("device feed, worker half", mn)):
            print(
                f"| {label} | {r:.2f} | {r * a.workers:.0f} ({a.workers}) "
                f"| {r * a.workers / GPU_IMAGES_PER_S:.2f} |"
            )
        print(f"speed-up of the worker side: {mn / mo:.1f}x")
    if device.type == "cuda":
        print(f"\nJoint ResNet-22, paper windows, batch 4, {a.steps} steps, {device}:")
        print("| path | steps/s | images/s |")
        print("| --- | --- | --- |")
        for name, r in train_rates(a.root, a.workers, a.steps, device):
            print(f"| {name} | {r:.2f} | {8 * r:.0f} |", flush=True)
    else:
        print("\nno --device cuda: training rates not measured (expected rates above)")


if __name__ == "__main__":
    main()

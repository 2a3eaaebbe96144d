"""Images per second for loading + cropping full-size mammograms, against the bare decode.

Writes ``--files`` synthetic full-size mammograms per format (half CC, half MLO, 15% larger than
the paper's windows as the synthetic set is: CC 3079x2233, MLO 3420x2010) into ``--root``: 16-bit
greyscale PNG (Pillow, default compression) and uncompressed 12-bit MONOCHROME2 DICOM (pydicom,
explicit VR little endian). Then times, interleaved in one process:

* ``decode``: the bare decode of every file (Pillow ``Image.open`` + ``np.asarray``; pydicom
  ``dcmread`` + ``pixel_array``), the floor;
* ``train``: every breast through ``MammoDataset`` at full resolution (scale 1, no cache) in train
  mode: read, turn chest-wall-left, breast box, jittered window cut and resized to the paper's
  window, standardised;
* ``eval``: the same in eval mode (centred window, no resize).

Prints images per second and the ratio of each path's time to the bare decode (median and
min-max spread over repeats). ``--profile`` adds the median time of each stage for one image.

    python benchmarks/data_throughput.py --files 16 --repeats 5 --profile
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from mammo_models.data import DataConfig, MammoDataset
from mammo_models.data import images as im
from mammo_models.data.crops import breast_bbox, cut_window, random_window

SIZES = {"CC": (3079, 2233), "MLO": (3420, 2010)}  # (H, W): 1.15 x the paper's windows
FORMATS = ("png", "dcm")


def synthetic_mammogram(view: str, seed: int) -> np.ndarray:
    """(H, W) uint16 in [0, 4095]: an elliptic breast at the left edge with texture and noise."""
    H, W = SIZES[view]
    rng = np.random.default_rng(seed)
    h, w = H // 8, W // 8
    y, x = np.mgrid[0:h, 0:w]
    cy = h * rng.uniform(0.45, 0.55)
    r = np.sqrt(((y - cy) / (0.45 * h)) ** 2 + (x / (0.8 * w)) ** 2)
    texture = ndimage.gaussian_filter(rng.standard_normal((h, w)), 3)
    small = (r < 1) * (0.35 + 0.3 * np.sqrt(np.clip(1 - r**2, 0, 1)) + 0.1 * texture)
    big = ndimage.zoom(small, (H / h, W / w), order=1)[:H, :W]
    big = big + rng.normal(0, 0.01, size=(H, W)) + 0.02
    return np.clip(np.round(big * 4095), 0, 4095).astype(np.uint16)


def write_png(path: Path, pixels: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(pixels).save(path, format="PNG")


def write_dicom(path: Path, pixels: np.ndarray, view: str) -> None:
    from pydicom import Dataset
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "MG"
    ds.ViewPosition = view
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.tobytes()
    ds.save_as(path, enforce_file_format=True)


def write_files(root: Path, n_files: int) -> dict[str, pd.DataFrame]:
    """Breast tables (one per format) of ``n_files // 2`` breasts, files written once."""
    root.mkdir(parents=True, exist_ok=True)
    tables = {}
    n_breasts = n_files // 2
    for fmt in FORMATS:
        rows = []
        for i in range(n_breasts):
            row = {"laterality": "LR"[i % 2], "malignant": 0, "benign": 0}
            for view in ("CC", "MLO"):
                path = root / f"{i:02d}_{view}.{fmt}"
                if not path.exists():
                    pixels = synthetic_mammogram(view, seed=2 * i + (view == "MLO"))
                    if i % 2:  # right breast: stored chest wall on the right
                        pixels = np.ascontiguousarray(pixels[:, ::-1])
                    if fmt == "png":
                        write_png(path, pixels)
                    else:
                        write_dicom(path, pixels, view)
                row[f"{view.lower()}_image_path"] = path.name
            rows.append(row)
        tables[fmt] = pd.DataFrame(rows)
    return tables


def bare_decode(path: Path) -> np.ndarray:
    if path.suffix == ".png":
        from PIL import Image

        with Image.open(path) as img:
            return np.asarray(img)
    import pydicom

    return pydicom.dcmread(path).pixel_array


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def profile_stages(path: Path, view: str, repeats: int) -> dict[str, float]:
    """Median seconds of each stage the dataset runs for one image (train mode)."""
    config = DataConfig(scale=1.0)
    stages: dict[str, list[float]] = {}

    def add(name: str, seconds: float) -> None:
        stages.setdefault(name, []).append(seconds)

    for k in range(repeats):
        t = time.perf_counter()
        bare_decode(path)
        add("bare decode", time.perf_counter() - t)
        t = time.perf_counter()
        image = im.read_image(path)
        add("read_image (decode, checks, float32)", time.perf_counter() - t)
        t = time.perf_counter()
        image, _ = im.orient(im.rescale(image, 1.0), "L" if k % 2 == 0 else "R")
        add("rescale + orient", time.perf_counter() - t)
        t = time.perf_counter()
        box = breast_bbox(image, config.crop.threshold)
        add("breast_bbox", time.perf_counter() - t)
        t = time.perf_counter()
        shift, size_noise = config.crop.jitter_px(1.0)
        window = random_window(
            image.shape,
            box,
            config.window(view),
            np.random.default_rng(k),
            shift=shift,
            size_noise=size_noise,
        )
        out = cut_window(image[None], window, config.window(view), [float(image.min())])
        add("cut_window (cut + resize)", time.perf_counter() - t)
        t = time.perf_counter()
        im.standardize(out[0])
        add("standardize", time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in stages.items()}


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--files", type=int, default=16, help="files per format (half CC, half MLO)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--root", type=Path, default=Path("/tmp/bench/data_throughput"))
    p.add_argument("--profile", action="store_true", help="time each stage for one image")
    a = p.parse_args()
    if a.files < 2 or a.repeats < 1:
        p.error("--files must be >= 2 and --repeats >= 1")
    tables = write_files(a.root, a.files)
    n_images = 2 * (a.files // 2)
    config = DataConfig(scale=1.0, cache_mb=0)
    datasets = {
        fmt: {
            "train": MammoDataset(table, a.root, config, train=True),
            "eval": MammoDataset(table, a.root, config, train=False),
        }
        for fmt, table in tables.items()
    }
    paths = {
        fmt: [a.root / table.loc[i, f"{v}_image_path"] for i in table.index for v in ("cc", "mlo")]
        for fmt, table in tables.items()
    }

    def run(fmt: str, mode: str) -> float:
        if mode == "decode":
            return timed(lambda: [bare_decode(path) for path in paths[fmt]])
        ds = datasets[fmt][mode]
        return timed(lambda: [ds[i] for i in range(len(ds))])

    cells = [(fmt, mode) for fmt in FORMATS for mode in ("decode", "train", "eval")]
    for cell in cells:  # warm-up (and the OS file cache: every pass reads from memory)
        run(*cell)
    times: dict[tuple[str, str], list[float]] = {c: [] for c in cells}
    for rep in range(a.repeats):
        for by_mode in datasets.values():
            for ds in by_mode.values():
                ds.set_epoch(rep)
        for cell in cells:
            times[cell].append(run(*cell))
    print(
        f"{n_images} full-size images per format (CC {SIZES['CC']}, MLO {SIZES['MLO']}), "
        f"{a.repeats} repeats, files in the OS cache"
    )
    print()
    print("| format | path | images/s | ratio to bare decode | spread (min-max) |")
    print("| --- | --- | --- | --- | --- |")
    names = {"png": "16-bit PNG", "dcm": "DICOM (12-bit, uncompressed)"}
    for fmt, mode in cells:
        t = times[(fmt, mode)]
        ratios = [x / d for x, d in zip(t, times[(fmt, "decode")], strict=True)]
        label = {
            "decode": "bare decode",
            "train": "load + crop, train",
            "eval": "load + crop, eval",
        }
        print(
            f"| {names[fmt]} | {label[mode]} | {n_images / statistics.median(t):.1f} "
            f"| {statistics.median(ratios):.2f} | {min(ratios):.2f}-{max(ratios):.2f} |"
        )
    if a.profile:
        for fmt in FORMATS:
            table = tables[fmt]
            path = a.root / table.loc[0, "cc_image_path"]
            stages = profile_stages(path, "CC", a.repeats)
            print(f"\nstages for one CC image ({fmt}), median of {a.repeats}, ms:")
            for name, seconds in stages.items():
                print(f"  {name:<40}{seconds * 1e3:8.1f}")


if __name__ == "__main__":
    main()

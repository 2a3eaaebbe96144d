"""Reading mammograms and heatmaps into arrays, and the per-image operations that follow.

Formats (chosen by file suffix, with a content sniff for DICOM files without one):

* PNG, 8- or 16-bit greyscale, through Pillow. Colour PNGs are accepted only when their channels
  are equal (a greyscale image saved as RGB).
* DICOM (``.dcm``, ``.dicom``, or any file with the ``DICM`` preamble), through pydicom: the
  modality LUT (rescale slope/intercept) is applied, and ``MONOCHROME1`` images are inverted so
  that, as in ``MONOCHROME2``, dense tissue is bright and the background is dark. Compressed
  transfer syntaxes decode when pydicom has a decoder for them (RLE Lossless natively; JPEG
  variants need the optional pylibjpeg / gdcm plugins, and the error says so). VOI LUT windowing
  is not applied: every image is standardised later anyway.
* NumPy ``.npy``: a 2-D array, or 3-D with one singleton axis.

Orientation: all breasts are shown **chest wall on the left** (column 0), nipple pointing right.
That is how a left breast is stored in DICOM (patient orientation ``A\\R`` for L-CC), so right
breasts are mirrored left-right (:func:`mirror_to_left`).

Everything returned is float32. Images keep their raw intensity scale until
:func:`standardize` (applied by the dataset to the final crop window); heatmaps are mapped to
[0, 1] when read.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .errors import ImageNotFoundError, ImageReadError

PathLike = str | os.PathLike[str]

PNG_SUFFIXES: tuple[str, ...] = (".png",)
DICOM_SUFFIXES: tuple[str, ...] = (".dcm", ".dicom")
NPY_SUFFIXES: tuple[str, ...] = (".npy",)
IMAGE_SUFFIXES: tuple[str, ...] = PNG_SUFFIXES + DICOM_SUFFIXES + NPY_SUFFIXES

MIRROR_MODES: tuple[str, ...] = ("laterality", "auto", "none")
"""How breasts are turned chest-wall-left: by the manifest's laterality (mirror ``R``), by
image content (mirror when most tissue is in the right half; for datasets whose storage
orientation is inconsistent), or not at all."""

# DICOM ViewPosition codes (and ViewCodeSequence meanings) that are CC or MLO; every other
# non-empty code is a real but unused view ("other").
_DICOM_VIEW_CODES: dict[str, str] = {"CC": "CC", "MLO": "MLO"}
_DICOM_VIEW_MEANINGS: dict[str, str] = {"cranio-caudal": "CC", "medio-lateral oblique": "MLO"}


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def is_dicom(path: PathLike) -> bool:
    """True for a ``.dcm``/``.dicom`` suffix or a file with the 128-byte preamble + ``DICM``."""
    p = Path(path)
    if p.suffix.lower() in DICOM_SUFFIXES:
        return True
    if p.suffix.lower() in PNG_SUFFIXES + NPY_SUFFIXES:
        return False
    try:
        with open(p, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


def _check_exists(path: Path) -> None:
    if not path.is_file():
        what = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise ImageNotFoundError(path, f"image file {what}")


def _decode(p: Path) -> np.ndarray:
    """The file's pixels as its decoder returns them, chosen by suffix (DICOM also by header)."""
    _check_exists(p)
    suffix = p.suffix.lower()
    if suffix in PNG_SUFFIXES:
        return _read_png(p)
    if suffix in NPY_SUFFIXES:
        return _read_npy(p)
    if is_dicom(p):
        return _read_dicom(p)
    raise ImageReadError(
        p, f"unknown image format {suffix or '(no suffix)'!r}; expected one of {IMAGE_SUFFIXES}"
    )


def read_image(path: PathLike) -> np.ndarray:
    """Read one mammogram as a 2-D float32 array, bright = dense tissue.

    Args:
        path: a PNG (8/16-bit), DICOM or ``.npy`` file.

    Returns:
        (H, W) float32 in the file's own intensity scale (0..255, 0..65535, Hounsfield-like
        values after a rescale, ...). ``MONOCHROME1`` DICOMs are already inverted.

    Raises:
        ImageNotFoundError: the file does not exist.
        ImageReadError: the file cannot be decoded, is not greyscale, not 2-D, or empty.
    """
    p = Path(path)
    return _as_2d_float(p, _decode(p))


def read_pixels(path: PathLike) -> np.ndarray:
    """Read one mammogram like :func:`read_image`, but keep the decoder's compact dtype.

    A 16-bit PNG or DICOM stays uint16 (half the bytes of float32), which is what DataLoader
    workers hand to the training device when the resize and standardisation run there
    (:mod:`.prepare`). ``read_image(path)`` equals ``read_pixels(path).astype(np.float32)``.

    Returns:
        (H, W) array: uint8, uint16 or int16 when the file stores those (after the DICOM
        modality LUT, which keeps integers without a rescale), else float32.

    Raises:
        ImageNotFoundError / ImageReadError: as :func:`read_image`.
    """
    p = Path(path)
    arr = _decode(p)
    if arr.dtype not in COMPACT_DTYPES:
        return _as_2d_float(p, arr)
    if arr.ndim == 3 and 1 in arr.shape:
        arr = arr.squeeze(axis=arr.shape.index(1))
    if arr.ndim != 2:
        raise ImageReadError(p, f"expected a 2-D greyscale image, got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageReadError(p, f"image is empty (shape {arr.shape})")
    return np.ascontiguousarray(arr)


COMPACT_DTYPES: tuple[np.dtype, ...] = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.int16))
"""Integer types :func:`read_pixels` keeps as they are (each converts to float32 exactly)."""


def read_heatmap(path: PathLike) -> np.ndarray:
    """Read a heatmap (probability map of a patch classifier) as float32 in [0, 1].

    Integer PNG/DICOM/npy heatmaps are divided by the largest value of their type (255 for
    8-bit, 65535 for 16-bit); float ``.npy`` heatmaps must already lie in [0, 1].

    Returns:
        (H, W) float32 in [0, 1].

    Raises:
        ImageNotFoundError / ImageReadError: as :func:`read_image`, or values outside [0, 1].
    """
    p = Path(path)
    _check_exists(p)
    suffix = p.suffix.lower()
    if suffix in PNG_SUFFIXES:
        raw = _read_png(p)
    elif suffix in NPY_SUFFIXES:
        raw = _read_npy(p)
    elif is_dicom(p):
        raw = _read_dicom(p, apply_luts=False)
    else:
        raise ImageReadError(
            p, f"unknown heatmap format {suffix or '(no suffix)'!r}; expected {IMAGE_SUFFIXES}"
        )
    if raw.dtype == np.uint8:
        out = raw.astype(np.float32) / 255.0
    elif raw.dtype in (np.uint16, np.int32, np.int16):
        out = raw.astype(np.float32) / 65535.0
    else:
        out = raw.astype(np.float32)
    out = _as_2d_float(p, out)
    lo, hi = float(out.min()), float(out.max())
    if lo < -1e-6 or hi > 1.0 + 1e-6:
        raise ImageReadError(
            p, f"heatmap values must lie in [0, 1]; got min {lo:.4g}, max {hi:.4g}"
        )
    return np.clip(out, 0.0, 1.0)


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if mode in ("L", "I;16", "I;16L", "I;16B", "I", "F"):
                arr = np.asarray(img)
            elif mode == "1":
                arr = np.asarray(img).astype(np.uint8) * 255
            elif mode in ("LA", "P", "PA", "RGB", "RGBA"):
                rgb = np.asarray(img.convert("RGB"))
                if not (
                    np.array_equal(rgb[..., 0], rgb[..., 1])
                    and np.array_equal(rgb[..., 0], rgb[..., 2])
                ):
                    raise ImageReadError(
                        path, f"colour PNG (mode {mode}) with unequal channels; expected greyscale"
                    )
                arr = rgb[..., 0]
            else:
                raise ImageReadError(path, f"unsupported PNG mode {mode!r}; expected greyscale")
    except ImageReadError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ImageReadError(path, f"cannot decode PNG: {exc}") from exc
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr


def _read_npy(path: Path) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ImageReadError(path, f"cannot load .npy array: {exc}") from exc
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "biuf":
        raise ImageReadError(
            path, f"expected a numeric array, got dtype {getattr(arr, 'dtype', '?')}"
        )
    return arr


def _read_dicom(path: Path, *, apply_luts: bool = True) -> np.ndarray:
    import pydicom
    from pydicom.pixels import apply_modality_lut

    try:
        ds = pydicom.dcmread(path)
    except Exception as exc:  # a corrupted header raises many types (even NotImplementedError)
        raise ImageReadError(path, f"cannot read DICOM file: {_short(exc)}") from exc
    if "PixelData" not in ds:
        raise ImageReadError(path, "DICOM file has no Pixel Data element (7FE0,0010)")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames != 1:
        raise ImageReadError(path, f"expected a single-frame DICOM image, got {frames} frames")
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise ImageReadError(
            path,
            f"PhotometricInterpretation {photometric or '(missing)'!r} is not supported; "
            "expected MONOCHROME1 or MONOCHROME2",
        )
    try:
        arr = ds.pixel_array
    except Exception as exc:  # pydicom raises several types for missing decoders / bad data
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        name = getattr(syntax, "name", str(syntax))
        raise ImageReadError(
            path,
            f"cannot decode pixel data (transfer syntax {name}): {_short(exc)}. RLE Lossless and "
            "uncompressed data decode with pydicom alone; JPEG, JPEG-LS and JPEG 2000 need a "
            "pydicom decoder plugin (pylibjpeg with its codecs, or python-gdcm)",
        ) from exc
    if not apply_luts:
        return arr
    out = np.asarray(apply_modality_lut(arr, ds))  # integers stay integers without a rescale
    if photometric == "MONOCHROME1":
        lo, hi = _dicom_value_range(ds, out)
        out = np.float32(lo + hi) - out.astype(np.float32)
    return out


def _short(exc: BaseException, limit: int = 300) -> str:
    """One line of at most ``limit`` characters (a corrupted header can echo kilobytes)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _dicom_value_range(ds: Any, values: np.ndarray) -> tuple[float, float]:
    """Smallest and largest value the stored bits can hold, after the modality rescale.

    Inverting against the range of the *type* (not of this image) keeps the background at the
    dark end for every image of a MONOCHROME1 series.
    """
    if "ModalityLUTSequence" in ds:
        return float(values.min()), float(values.max())
    bits = int(ds.get("BitsStored", ds.get("BitsAllocated", 16)))
    if int(ds.get("PixelRepresentation", 0)) == 1:
        lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    else:
        lo, hi = 0, 2**bits - 1
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    a, b = lo * slope + intercept, hi * slope + intercept
    return (min(a, b), max(a, b))


def _as_2d_float(path: Path, arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 3 and 1 in arr.shape:
        arr = arr.squeeze(axis=arr.shape.index(1))
    if arr.ndim != 2:
        raise ImageReadError(path, f"expected a 2-D greyscale image, got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageReadError(path, f"image is empty (shape {arr.shape})")
    out = np.ascontiguousarray(arr, dtype=np.float32)
    if arr.dtype.kind == "f" and not np.isfinite(out).all():  # integers are always finite
        raise ImageReadError(path, "image contains NaN or infinite values")
    return out


def dicom_laterality_view(path: PathLike) -> tuple[str | None, str | None]:
    """Read the breast side and the view from a DICOM header (pixel data is not decoded).

    Laterality comes from ImageLaterality (0020,0062), else Laterality (0020,0060); only ``L``
    and ``R`` count. The view comes from ViewPosition (0018,5101): ``CC`` and ``MLO`` map to
    themselves, any other code (ML, LM, XCCL, ...) to ``"other"``; when ViewPosition is empty,
    the first ViewCodeSequence item's CodeMeaning is used the same way.

    Returns:
        ``(laterality, view)``, each ``None`` when the header does not say.

    Raises:
        ImageNotFoundError: the file does not exist.
        ImageReadError: the file is not DICOM.
    """
    import pydicom

    p = Path(path)
    _check_exists(p)
    try:
        ds = pydicom.dcmread(p, stop_before_pixels=True)
    except Exception as exc:  # a corrupted header raises many types (even NotImplementedError)
        raise ImageReadError(p, f"cannot read DICOM header: {_short(exc)}") from exc
    laterality = None
    for keyword in ("ImageLaterality", "Laterality"):
        value = str(ds.get(keyword, "") or "").strip().upper()
        if value in ("L", "R"):
            laterality = value
            break
    view = None
    code = str(ds.get("ViewPosition", "") or "").strip().upper()
    if code:
        view = _DICOM_VIEW_CODES.get(code, "other")
    elif "ViewCodeSequence" in ds and len(ds.ViewCodeSequence) > 0:
        meaning = str(ds.ViewCodeSequence[0].get("CodeMeaning", "") or "").strip().lower()
        if meaning:
            view = _DICOM_VIEW_MEANINGS.get(meaning, "other")
    return laterality, view


# --------------------------------------------------------------------------------------------
# Per-image operations
# --------------------------------------------------------------------------------------------


def mirror_to_left(image: np.ndarray, laterality: str) -> np.ndarray:
    """Turn a breast chest-wall-left: mirror right breasts left-right, keep left ones.

    Args:
        image: (..., H, W); the last axis is flipped.
        laterality: ``"L"`` or ``"R"`` (as in the manifest).

    Returns:
        A contiguous array of the same shape.
    """
    if laterality == "R":
        return np.ascontiguousarray(image[..., ::-1])
    if laterality == "L":
        return image
    raise ValueError(f"laterality must be 'L' or 'R', got {laterality!r}")


def chest_wall_on_left(image: np.ndarray) -> bool:
    """Guess from content whether the chest wall is on the left (column 0) of an image.

    Breast tissue is thickest at the chest wall, so the column profile of the intensity above the
    background has its centre of mass on the chest-wall side.

    Args:
        image: (H, W), bright = tissue.
    """
    profile = (image - image.min()).sum(axis=0, dtype=np.float64)
    total = profile.sum()
    if total <= 0:
        return True
    centre = float((profile * np.arange(profile.size)).sum() / total)
    return centre <= (profile.size - 1) / 2


def orient(image: np.ndarray, laterality: str, mode: str = "laterality") -> tuple[np.ndarray, bool]:
    """Apply a :data:`MIRROR_MODES` policy; return the image and whether it was mirrored.

    Args:
        image: (H, W) image used for the decision and flipped when needed.
        laterality: ``"L"`` or ``"R"``.
        mode: ``"laterality"``, ``"auto"`` or ``"none"``.
    """
    if mode == "laterality":
        flip = laterality == "R"
    elif mode == "auto":
        flip = not chest_wall_on_left(image)
    elif mode == "none":
        flip = False
    else:
        raise ValueError(f"mirror mode must be one of {MIRROR_MODES}, got {mode!r}")
    return (np.ascontiguousarray(image[:, ::-1]) if flip else image), flip


STANDARDIZE_BLOCK = 1 << 16
"""Elements per float32 dot product in :func:`standardize`; the block sums add in float64."""


def standardize(image: np.ndarray, eps: float = 1e-6, out: np.ndarray | None = None) -> np.ndarray:
    """Zero mean, unit standard deviation over the whole array.

    A constant image becomes all zeros rather than NaN. The mean is summed in float64 and the
    variance in float64 over float32 dot products of 65,536 elements, so the result agrees with a
    float64 computation to about one float32 rounding while making three passes over float32
    data instead of seven over float64 (full-size windows are 5 million pixels).

    Args:
        image: any shape, usually the (H, W) image channel of one crop window.
        eps: smallest standard deviation divided by.
        out: float32 array of the same shape to write into (may be ``image`` itself).

    Returns:
        float32 array of the same shape (``out`` when given).
    """
    x = np.asarray(image, dtype=np.float32)
    n = x.size
    if out is None:
        out = np.empty(x.shape, dtype=np.float32)
    if n == 0:
        return out
    mean = float(x.sum(dtype=np.float64)) / n
    np.subtract(x, np.float32(mean), out=out)
    flat = out.reshape(-1)
    sq = 0.0
    for start in range(0, n, STANDARDIZE_BLOCK):
        block = flat[start : start + STANDARDIZE_BLOCK]
        sq += float(np.dot(block, block))
    out *= np.float32(1.0 / max(math.sqrt(sq / n), eps))
    return out


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize with anti-aliased bilinear interpolation (a box-like filter when shrinking).

    Anti-aliasing matters when a full-resolution mammogram (about 3000 x 2400) is shrunk 40x for
    the ``tiny`` preset: plain bilinear sampling would alias the parenchymal texture.

    Args:
        image: (H, W) or (C, H, W) float array.
        size: output (height, width), both >= 1.

    Returns:
        float32 array of shape (out_H, out_W) or (C, out_H, out_W).
    """
    out_h, out_w = int(size[0]), int(size[1])
    if out_h < 1 or out_w < 1:
        raise ValueError(f"resize target must be at least 1x1, got {size}")
    squeeze = image.ndim == 2
    x = image[None] if squeeze else image
    C, H, W = x.shape
    if (H, W) == (out_h, out_w):
        out = x.astype(np.float32, copy=False)
    else:
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None]  # (1, C, H, W)
        # When no axis shrinks, the anti-aliasing filter is the bilinear one: take the faster path.
        shrink = out_h < H or out_w < W
        t = F.interpolate(
            t, size=(out_h, out_w), mode="bilinear", antialias=shrink, align_corners=False
        )
        out = t[0].numpy()  # (C, out_H, out_W)
    return out[0] if squeeze else out


def rescale(image: np.ndarray, factor: float) -> np.ndarray:
    """Resize by a scale factor: (H, W) -> (round(H * factor), round(W * factor)), at least 1."""
    if not factor > 0:
        raise ValueError(f"scale factor must be > 0, got {factor!r}")
    if factor == 1.0:
        return image.astype(np.float32, copy=False)
    H, W = image.shape[-2:]
    size = (max(1, round(H * factor)), max(1, round(W * factor)))
    return resize(image, size)


# --------------------------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------------------------


class ImageCache:
    """A least-recently-used in-memory cache of decoded, scaled images, bounded in bytes.

    Keys are chosen by the caller (the dataset uses path + scale factor + orientation), values are
    tuples of numpy arrays and small objects. Each DataLoader worker process holds its own copy,
    so with ``num_workers > 0`` the memory bound applies per worker.

    Args:
        max_bytes: evict the least recently used entries above this many array bytes.
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be > 0, got {max_bytes!r}")
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self.nbytes = 0
        self.hits = 0
        self.misses = 0

    @staticmethod
    def _size(value: Any) -> int:
        if isinstance(value, np.ndarray):
            return value.nbytes
        if isinstance(value, tuple | list):
            return sum(ImageCache._size(v) for v in value)
        return 64

    def get(self, key: Hashable) -> Any | None:
        """The cached value, or ``None`` (and a miss is counted)."""
        item = self._items.get(key)
        if item is None:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return item[0]

    def put(self, key: Hashable, value: Any) -> None:
        """Store a value; entries larger than the whole cache are not stored."""
        size = self._size(value)
        if size > self.max_bytes:
            return
        if key in self._items:
            self.nbytes -= self._items.pop(key)[1]
        self._items[key] = (value, size)
        self.nbytes += size
        while self.nbytes > self.max_bytes:
            _, (_, evicted) = self._items.popitem(last=False)
            self.nbytes -= evicted

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        """Drop every entry (counters are kept)."""
        self._items.clear()
        self.nbytes = 0

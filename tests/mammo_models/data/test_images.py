"""Image files (PNG 8/16-bit, DICOM, npy), DICOM tags, mirroring, standardisation, resizing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mammo_models.data import (
    ImageCache,
    ImageNotFoundError,
    ImageReadError,
    chest_wall_on_left,
    dicom_laterality_view,
    mirror_to_left,
    read_heatmap,
    read_image,
    resize,
    standardize,
)
from mammo_models.data.images import orient, rescale


def _ramp(h: int = 6, w: int = 5, top: int = 65535) -> np.ndarray:
    return (np.arange(h * w).reshape(h, w) * (top // (h * w))).astype(np.uint16)


def test_png_8_and_16_bit_keep_their_values(tmp_path, files):
    a8 = (np.arange(20).reshape(4, 5) * 12).astype(np.uint8)
    a16 = _ramp()
    out8 = read_image(files.write_png(tmp_path / "a8.png", a8))
    out16 = read_image(files.write_png(tmp_path / "a16.png", a16))
    assert out8.dtype == np.float32 and out16.dtype == np.float32
    np.testing.assert_array_equal(out8, a8.astype(np.float32))
    np.testing.assert_array_equal(out16, a16.astype(np.float32))
    assert out16.max() > 255  # 16-bit range survives


def test_npy_2d_and_singleton_3d(tmp_path):
    arr = np.random.default_rng(0).random((7, 4)).astype(np.float64)
    np.save(tmp_path / "a.npy", arr)
    np.save(tmp_path / "b.npy", arr[None])
    np.testing.assert_allclose(read_image(tmp_path / "a.npy"), arr, rtol=1e-6)
    np.testing.assert_allclose(read_image(tmp_path / "b.npy"), arr, rtol=1e-6)


@pytest.mark.parametrize("rle", [False, True], ids=["uncompressed", "rle"])
def test_dicom_monochrome2_decodes_to_the_stored_pixels(tmp_path, files, rle):
    arr = _ramp(8, 6)
    path = files.write_dicom(tmp_path / "m2.dcm", arr, rle=rle)
    if rle:
        import pydicom

        assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.5"
    np.testing.assert_array_equal(read_image(path), arr.astype(np.float32))


@pytest.mark.parametrize("rle", [False, True], ids=["uncompressed", "rle"])
def test_dicom_monochrome1_is_inverted_against_the_stored_bit_range(tmp_path, files, rle):
    arr = (np.arange(48).reshape(8, 6) * 80).astype(np.uint16)  # < 4096: 12-bit data
    path = files.write_dicom(
        tmp_path / "m1.dcm", arr, photometric="MONOCHROME1", rle=rle, bits_stored=12
    )
    out = read_image(path)
    np.testing.assert_array_equal(out, (4095 - arr).astype(np.float32))
    # orientation is untouched: the largest stored value (bottom-right) becomes the darkest pixel
    assert out[-1, -1] == out.min() and out[0, 0] == out.max()


def test_dicom_without_suffix_is_sniffed(tmp_path, files):
    arr = _ramp(4, 4)
    path = files.write_dicom(tmp_path / "noext", arr)
    np.testing.assert_array_equal(read_image(path), arr.astype(np.float32))


@pytest.mark.parametrize("tag", ["ImageLaterality", "Laterality"])
def test_dicom_laterality_and_view_from_tags(tmp_path, files, tag):
    path = files.write_dicom(
        tmp_path / "t.dcm", _ramp(4, 4), laterality="R", laterality_tag=tag, view="MLO"
    )
    assert dicom_laterality_view(path) == ("R", "MLO")
    other = files.write_dicom(tmp_path / "o.dcm", _ramp(4, 4), laterality="L", view="XCCL")
    assert dicom_laterality_view(other) == ("L", "other")
    bare = files.write_dicom(tmp_path / "b.dcm", _ramp(4, 4))
    assert dicom_laterality_view(bare) == (None, None)


def test_missing_and_unreadable_files_name_the_file(tmp_path):
    with pytest.raises(ImageNotFoundError, match="nope.png"):
        read_image(tmp_path / "nope.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png at all")
    with pytest.raises(ImageReadError, match="bad.png.*cannot decode PNG"):
        read_image(bad)
    fake = tmp_path / "fake.dcm"
    fake.write_bytes(b"\x00" * 10)
    with pytest.raises(ImageReadError, match="fake.dcm"):
        read_image(fake)
    with pytest.raises(ImageReadError, match="unknown image format '.jpg'"):
        (tmp_path / "x.jpg").write_bytes(b"x")
        read_image(tmp_path / "x.jpg")


def test_colour_png_rejected_unless_grey(tmp_path, files):
    grey = np.repeat((np.arange(12).reshape(3, 4) * 20).astype(np.uint8)[..., None], 3, axis=2)
    np.testing.assert_array_equal(
        read_image(files.write_png(tmp_path / "g.png", grey)), grey[..., 0]
    )
    colour = grey.copy()
    colour[0, 0, 1] = 255
    with pytest.raises(ImageReadError, match="colour PNG"):
        read_image(files.write_png(tmp_path / "c.png", colour))


def test_heatmaps_map_to_unit_interval(tmp_path, files):
    h8 = np.array([[0, 255], [51, 102]], dtype=np.uint8)
    np.testing.assert_allclose(read_heatmap(files.write_png(tmp_path / "h.png", h8)), h8 / 255)
    np.save(tmp_path / "bad.npy", np.array([[0.0, 2.0]]))
    with pytest.raises(ImageReadError, match=r"\[0, 1\]"):
        read_heatmap(tmp_path / "bad.npy")


def test_mirroring_turns_right_breasts_chest_wall_left(files):
    left = files.breast_image(laterality="L").astype(np.float32)
    right = files.breast_image(laterality="R").astype(np.float32)
    assert chest_wall_on_left(left) and not chest_wall_on_left(right)
    np.testing.assert_array_equal(mirror_to_left(left, "L"), left)
    mirrored = mirror_to_left(right, "R")
    np.testing.assert_array_equal(mirrored, right[:, ::-1])
    assert chest_wall_on_left(mirrored)
    # the content-based policy agrees, and flags what it did
    out, flipped = orient(right, "L", "auto")
    assert flipped and chest_wall_on_left(out)
    with pytest.raises(ValueError, match="laterality"):
        mirror_to_left(left, "B")


def test_standardize_zero_mean_unit_std_and_constant_image():
    x = np.random.default_rng(1).normal(300.0, 40.0, (30, 20)).astype(np.float32)
    z = standardize(x)
    assert z.dtype == np.float32
    assert abs(float(z.mean())) < 1e-5 and abs(float(z.std()) - 1) < 1e-5
    np.testing.assert_array_equal(standardize(np.full((4, 4), 7.0)), np.zeros((4, 4)))


def test_standardize_agrees_with_float64_over_several_blocks_and_in_place():
    # 300 x 500 = 150,000 values: three blocks of the float32 dot products
    x = np.random.default_rng(2).gamma(2.0, 900.0, (300, 500)).astype(np.float32) + 1000
    x64 = x.astype(np.float64)
    reference = (x64 - x64.mean()) / x64.std()
    z = standardize(x)
    np.testing.assert_allclose(z, reference, rtol=0, atol=2e-6)
    y = x.copy()
    assert standardize(y, out=y) is y
    np.testing.assert_array_equal(y, z)


def test_resize_is_antialiased_and_rescale_rounds():
    checker = (np.indices((64, 64)).sum(axis=0) % 2).astype(np.float32)
    small = resize(checker, (8, 8))
    # a box-like filter averages the checkerboard to grey; point sampling would give 0s or 1s
    np.testing.assert_allclose(small, 0.5, atol=0.05)
    assert rescale(np.zeros((100, 61), np.float32), 0.1).shape == (10, 6)
    assert resize(np.zeros((2, 10, 10), np.float32), (5, 4)).shape == (2, 5, 4)


def test_resize_up_equals_the_antialiased_filter():
    """Enlarging skips the anti-aliasing kernel, which is the bilinear one when nothing shrinks."""
    x = np.random.default_rng(3).random((2, 97, 61), dtype=np.float32)
    up = resize(x, (103, 64))
    t = torch.from_numpy(x)[None]
    aa = F.interpolate(t, size=(103, 64), mode="bilinear", antialias=True, align_corners=False)
    np.testing.assert_allclose(up, aa[0].numpy(), atol=1e-5)  # float32 rounding


def test_image_cache_evicts_least_recently_used():
    cache = ImageCache(max_bytes=3 * 400)
    for k in range(3):
        cache.put(k, np.zeros(100, np.float32))  # 400 bytes each
    assert cache.get(0) is not None  # 0 is now most recent
    cache.put(3, np.zeros(100, np.float32))
    assert cache.get(1) is None and cache.get(0) is not None and len(cache) == 3
    assert cache.nbytes == 1200

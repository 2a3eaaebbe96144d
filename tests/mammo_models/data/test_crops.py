"""Crop-window geometry: sizes, breast box, placement inside the image, jitter, padding."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mammo_models.data import (
    Box,
    CropConfig,
    DataConfigError,
    Window,
    breast_bbox,
    centered_window,
    cut_window,
    random_window,
    window_size,
)


def test_window_sizes_scale_with_the_image():
    assert window_size("CC", 1.0) == (2677, 1942)
    assert window_size("MLO", 1.0) == (2974, 1748)
    assert window_size("CC", 1 / 16) == (167, 121)
    assert window_size("MLO", 0.024) == (71, 42)
    with pytest.raises(DataConfigError, match="unknown view 'other'"):
        window_size("other", 1.0)
    assert CropConfig().jitter_px(1 / 16) == (6, 6)


def test_breast_box_ignores_a_bright_marker_in_the_background():
    img = np.zeros((60, 50), np.float32)
    img[10:45, 0:30] = 0.5  # the breast, against the chest wall
    img[2:5, 44:48] = 1.0  # a lead marker, brighter but small
    assert breast_bbox(img) == Box(10, 0, 45, 30)
    assert breast_bbox(np.ones((5, 4), np.float32)) == Box(0, 0, 5, 4)


def test_full_size_box_is_searched_on_a_grid_and_lands_within_its_step():
    H, W = 3079, 2233  # a full-size CC image: every 8th pixel is searched
    y, x = np.mgrid[0:H, 0:W]
    img = np.where(((y - 1600) / 1100.0) ** 2 + (x / 1500.0) ** 2 < 1, 3000.0, 100.0)
    img[100:160, 2000:2100] = 4000.0  # a lead marker, not the largest component
    img = img.astype(np.float32)
    box = breast_bbox(img)
    rows = np.flatnonzero((img[:, :1600] > 1000).any(axis=1))
    cols = np.flatnonzero((img[:, :1600] > 1000).any(axis=0))
    exact = (rows[0], cols[0], rows[-1] + 1, cols[-1] + 1)
    step = min(H, W) // 256
    assert step == 8
    got = (box.top, box.left, box.bottom, box.right)
    assert all(abs(g - e) <= step for g, e in zip(got, exact, strict=True)), (got, exact)
    assert box.bottom <= H and box.right <= 1500 + step


def test_centered_window_sits_at_the_chest_wall_and_on_the_breast():
    box = Box(top=30, left=0, bottom=70, right=40)
    w = centered_window((100, 80), box, (50, 30))
    assert (w.left, w.height, w.width) == (0, 50, 30)
    assert w.top + 25 == 50  # vertical centre on the breast's centre
    # near the bottom edge the window is shifted back inside
    low = centered_window((100, 80), Box(80, 0, 100, 40), (50, 30))
    assert low.bottom == 100


@settings(max_examples=60, deadline=None)
@given(
    H=st.integers(20, 120),
    W=st.integers(20, 120),
    h=st.integers(10, 100),
    w=st.integers(10, 100),
    top=st.integers(0, 19),
    left=st.integers(0, 19),
    seed=st.integers(0, 2**16),
    shift=st.integers(0, 15),
    size_noise=st.integers(0, 15),
)
def test_random_windows_stay_inside_the_image(H, W, h, w, top, left, seed, shift, size_noise):
    box = Box(top, left, min(H, top + 10), min(W, left + 10))
    win = random_window(
        (H, W), box, (h, w), np.random.default_rng(seed), shift=shift, size_noise=size_noise
    )
    assert abs(win.height - h) <= size_noise and abs(win.width - w) <= size_noise
    for start, length, image_len in ((win.top, win.height, H), (win.left, win.width, W)):
        if image_len >= length:
            assert 0 <= start and start + length <= image_len  # inside the image
        else:
            assert start <= 0 and start + length >= image_len  # the image inside the window


def test_jitter_is_seeded_and_bounded():
    box = Box(20, 0, 80, 60)
    args = ((200, 150), box, (100, 80))
    draws = [
        random_window(*args, np.random.default_rng(s), shift=10, size_noise=10) for s in range(50)
    ]
    again = [
        random_window(*args, np.random.default_rng(s), shift=10, size_noise=10) for s in range(50)
    ]
    assert draws == again
    base = centered_window(*args)
    assert len(set(draws)) > 25
    assert all(abs(d.top + d.height / 2 - (base.top + 50)) <= 11 for d in draws)
    assert random_window(*args, np.random.default_rng(0), shift=0, size_noise=0) == base


def test_cut_window_pads_outside_the_image_with_the_fill_values():
    channels = np.stack([np.full((4, 3), 5.0), np.full((4, 3), 0.5)]).astype(np.float32)
    out = cut_window(channels, Window(-1, 0, 6, 5), (6, 5), fill=(1.0, 0.0))
    assert out.shape == (2, 6, 5)
    np.testing.assert_array_equal(out[0, 1:5, :3], 5.0)
    assert out[0, 0].tolist() == [1.0] * 5 and out[0, :, 3:].min() == 1.0
    assert out[1, 0].max() == 0.0 and out[1, 1:5, :3].min() == 0.5
    # a window of jittered size is resized back to the output size
    assert cut_window(channels, Window(0, 0, 4, 3), (8, 6), fill=(0, 0)).shape == (2, 8, 6)

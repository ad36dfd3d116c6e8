"""The water-spatter distance transform: exact 5x5 chamfer distances (OpenCV's DIST_L2, 5)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dstlib.corruptions.weather import distance_to_zero

MOVES = [((0, 1), 65536), ((1, 0), 65536), ((1, 1), 91750), ((1, 2), 143976), ((2, 1), 143976)]


def relaxed(src: np.ndarray) -> np.ndarray:
    """Shortest in-image paths by Bellman-Ford relaxation over the 16 chamfer moves (int64)."""
    h, w = src.shape
    inf = 1 << 40
    d = np.where(src == 0, 0, inf).astype(np.int64)
    while True:
        p = np.full((h + 4, w + 4), inf, dtype=np.int64)
        p[2:-2, 2:-2] = d
        new = d.copy()
        for (a, b), c in MOVES:
            for dy, dx in {(a, b), (-a, b), (a, -b), (-a, -b)}:
                new = np.minimum(new, p[2 + dy:2 + dy + h, 2 + dx:2 + dx + w] + c)
        if np.array_equal(new, d):
            return d
        d = new


@pytest.mark.parametrize("cap", [20.0, 3.3, 40.0])
def test_distance_to_zero_is_the_exact_chamfer_distance(cap):
    rng = np.random.default_rng(int(cap * 10))
    for trial in range(12):
        h, w = rng.integers(1, 48, 2)
        src = (rng.random((2, h, w)) > rng.random() ** 3).astype(np.int64) * 255
        got = distance_to_zero(torch.from_numpy(src), cap)
        assert got.dtype == torch.float32 and got.shape == (2, h, w)
        want = np.stack([np.minimum(relaxed(s) / 65536, cap) for s in src]).astype(np.float32)
        assert np.array_equal(got.numpy(), want), (h, w, trial)


def test_distance_to_zero_is_batch_independent_and_matches_opencv():
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(1)
    edges = (rng.random((3, 64, 80)) < 0.01).astype(np.uint8) * 255
    src = torch.from_numpy(255 - edges.astype(np.int64))
    batch = distance_to_zero(src)
    for i in range(3):
        assert torch.equal(distance_to_zero(src[i:i + 1])[0], batch[i])
        ref = cv2.distanceTransform(255 - edges[i], cv2.DIST_L2, 5)
        assert np.abs(batch[i].numpy() - np.minimum(ref, 20)).max() < 1e-4


def test_canny_matches_opencv_on_varied_images():
    """Every direction branch of the int16 sign-bit non-maximum suppression: random
    8-bit noise, flat blobs and thresholded smooth layers, odd sizes."""
    cv2 = pytest.importorskip("cv2")
    from dstlib.corruptions.weather import canny

    rng = np.random.default_rng(7)
    for t in range(18):
        h, w = rng.integers(3, 70, 2)
        if t % 3 == 0:
            img = rng.integers(0, 256, (h, w))
        elif t % 3 == 1:
            img = (rng.random((h, w)) > 0.5) * rng.integers(1, 256)
        else:
            z = cv2.GaussianBlur(rng.normal(0.65, 0.3, (h, w)), (0, 0), 1.0)
            img = np.where(z > 0.69, z * 255, 0).astype(np.int64) & 255
        img = img.astype(np.uint8)
        got = canny(torch.from_numpy(np.stack([img, img[::-1, ::-1].copy()])).long())
        assert np.array_equal(got[0].numpy(), cv2.Canny(img, 50, 150) > 0), t
        assert np.array_equal(got[1].numpy(), cv2.Canny(img[::-1, ::-1].copy(), 50, 150) > 0), t


def test_plasma_map_crop_equals_the_whole_map_cropped():
    from dstlib.corruptions.weather import plasma_draws, plasma_map

    u = torch.rand(3, plasma_draws(64), generator=torch.Generator().manual_seed(3))
    full = plasma_map(u, 64, 1.75)
    assert full.shape == (3, 64, 64) and float(full.min()) == 0.0 and float(full.max()) == 1.0
    for h, w in ((64, 64), (40, 51), (33, 64)):
        assert torch.equal(plasma_map(u, 64, 1.75, h, w), full[:, :h, :w])
    assert torch.equal(plasma_map(u[1:2], 64, 1.75)[0], full[1])  # batch-invariant

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

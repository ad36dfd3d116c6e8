"""Throughput of dstlib.corruptions against the imagecorruptions-imaug reference.

Times every corruption (severity 3, the `imagenet` table on both sides, the one
the reference hard-codes) on a batch of 32x32 and of 224x224 photographs cut
from scikit-image's sample images, single process on the CPU
(torch.set_num_threads(1), OMP_NUM_THREADS=1 recommended), and on CUDA when
available. Reports images per second and the speed ratio ours / reference.

    python benchmarks/bench_corruptions.py [--n32 256] [--n224 16] [--device cpu]

The reference refuses images under 32 px and uses ImageNet constants, so the
32-px row times both sides with those constants on 32x32 images.
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _corruption_refs import natural_images, to_hwc  # noqa: E402

from dstlib import corruptions as C  # noqa: E402


def _time(fn, min_time=0.5):
    fn()  # warm-up (caches, first-call costs)
    t, reps = 0.0, 0
    while t < min_time:
        t0 = time.perf_counter()
        fn()
        t += time.perf_counter() - t0
        reps += 1
    return t / reps


def bench(size, n, device, reference=True, severity=3):
    import imagecorruptions

    x = natural_images(n, size)
    xd = x.to(device)
    xs = to_hwc(x)
    rows = []
    for name in C.NAMES:
        def ours():
            y = C.corrupt(xd, name, severity, seed=1, table="imagenet")
            if device != "cpu":
                torch.cuda.synchronize()
            return y

        t_ours = _time(ours)
        t_ref = None
        if reference:
            np.random.seed(0)
            t_ref = _time(lambda: [imagecorruptions.corrupt(im, severity, name) for im in xs])
        rows.append((name, n / t_ours, None if t_ref is None else n / t_ref))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n32", type=int, default=256)
    ap.add_argument("--n224", type=int, default=16)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-reference", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, device {args.device}, "
          f"1 thread, severity 3, table imagenet")
    for size, n in ((32, args.n32), (224, args.n224)):
        rows = bench(size, n, args.device, reference=not args.no_reference)
        print(f"\n## {size}x{size}, batch {n}\n")
        print("| corruption | dstlib img/s | reference img/s | ratio |")
        print("|---|---:|---:|---:|")
        tot_o = tot_r = 0.0
        for name, o, r in rows:
            tot_o += 1 / o
            if r:
                tot_r += 1 / r
            print(f"| {name} | {o:.0f} | {r and f'{r:.0f}' or '-'} | {r and f'{o / r:.1f}' or '-'} |")
        if tot_r:
            print(f"| **all 19** | {1 / tot_o:.1f} | {1 / tot_r:.1f} | **{tot_r / tot_o:.1f}** |")


if __name__ == "__main__":
    main()

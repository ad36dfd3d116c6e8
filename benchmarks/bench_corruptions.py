"""Throughput of dstlib.corruptions against the imagecorruptions-imaug reference.

Times every corruption (severity 3 by default) on a batch of 32x32 and of
224x224 photographs cut from scikit-image's sample images (128 and 64 by default:
`dstlib.evaluate` and `python -m dstlib corrupt` pass 256 and 500 images per call,
and on the CPU `corrupt` runs 224-px batches as chunks of 8 images), single process, one
thread on the CPU (torch.set_num_threads(1), cv2.setNumThreads(1); run with OMP_NUM_THREADS=1), with
the same parameter table on both sides: the `imagenet` table, the constants the
reference hard-codes (it refuses images under 32 px, so the 32-px rows also use
them). Each side is warmed up once (numba compilation, caches, first calls),
then timed `--repeats` times, alternating ours and the reference so that load
from other processes hits both alike; the best time of each side (`--stat
min`, timeit's advice on a shared machine) or the median (`--stat median`) is
reported as images per second, with the ratio ours / reference, and the total
over all 19 corruptions (times per image summed: "all 19 together"). The
reference corrupts one image at a time, so at 224 px it is timed on the first
`--ref-n224` images (8; its time per image is the same on 16). `--n224 8` times
ours on a single chunk (every call then starts with cold caches). With CUDA
available a GPU column times ours on the GPU (synchronised, same batch).

    OMP_NUM_THREADS=1 python benchmarks/bench_corruptions.py [--n32 128] [--n224 64] [--severity 3]

Evidence (issue targets: all 19 together >= 20x at 32 px and >= 10x at 224 px,
no corruption slower than the reference): see the table printed by a run; the
README's table was measured with the defaults.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _corruption_refs import natural_images, to_hwc  # noqa: E402

from dstlib import corruptions as C  # noqa: E402


def _once(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench(size: int, n: int, severity: int, repeats: int, reference: bool, gpu: bool, stat=min, names=C.NAMES,
          n_ref: int | None = None):
    import imagecorruptions

    x = natural_images(n, size).contiguous()  # NCHW memory, as dstlib.data holds images
    n_ref = min(n, n_ref or n)  # the reference loops over single images: timed on the first n_ref
    xs = [np.ascontiguousarray(im) for im in to_hwc(x[:n_ref])]  # HWC arrays, as the reference takes them
    xg = x.cuda() if gpu else None
    rows = []
    for name in names:
        ours = lambda: C.corrupt(x, name, severity, seed=1, table="imagenet")  # noqa: E731
        ref = lambda: [imagecorruptions.corrupt(im, severity, name) for im in xs]  # noqa: E731

        def ours_gpu():
            C.corrupt(xg, name, severity, seed=1, table="imagenet")
            torch.cuda.synchronize()

        np.random.seed(0)
        ours()
        if reference:
            ref()  # warm-up
        if gpu:
            ours_gpu()
        t_o, t_r, t_g = [], [], []
        for _ in range(repeats):
            t_o.append(_once(ours))
            if reference:
                t_r.append(_once(ref))
            if gpu:
                t_g.append(_once(ours_gpu))
        med = lambda t: stat(t) if t else None  # noqa: E731
        rows.append((name, med(t_o) / n, med(t_r) / n_ref if t_r else None, med(t_g) / n if t_g else None))
    return rows


def table(rows, gpu: bool) -> str:
    head = "| corruption | dstlib CPU img/s | reference img/s | ratio |" + (" dstlib GPU img/s |" if gpu else "")
    lines = [head, "|---|---:|---:|---:|" + ("---:|" if gpu else "")]
    tot = [0.0, 0.0, 0.0]
    for name, o, r, g in rows:
        tot[0] += o
        tot[1] += r or 0.0
        tot[2] += g or 0.0
        line = f"| {name} | {1 / o:.0f} | {f'{1 / r:.0f}' if r else '-'} | {f'{r / o:.1f}' if r else '-'} |"
        lines.append(line + (f" {1 / g:.0f} |" if gpu else ""))
    line = (f"| **all {len(rows)} together** | {1 / tot[0]:.1f} | {f'{1 / tot[1]:.1f}' if tot[1] else '-'} | "
            f"**{f'{tot[1] / tot[0]:.1f}' if tot[1] else '-'}** |")
    lines.append(line + (f" {1 / tot[2]:.1f} |" if gpu else ""))
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n32", type=int, default=128, help="batch of 32x32 images")
    ap.add_argument("--n224", type=int, default=64, help="batch of 224x224 images (ours: 8 CPU chunks)")
    ap.add_argument("--ref-n224", type=int, default=8,
                    help="224x224 images the reference is timed on (it corrupts one image at a time)")
    ap.add_argument("--severity", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-reference", action="store_true")
    ap.add_argument("--sizes", default="32,224")
    ap.add_argument("--stat", choices=("min", "median"), default="min")
    ap.add_argument("--names", default=",".join(C.NAMES), help="comma-separated corruptions (default: all 19)")
    args = ap.parse_args(argv)
    names = args.names.split(",")
    bad = [n for n in names if n not in C.NAMES]
    if bad:
        ap.error(f"--names={bad[0]!r} is invalid; allowed: {', '.join(C.NAMES)}")
    torch.set_num_threads(1)
    try:  # the reference calls OpenCV, whose own thread pool ignores OMP_NUM_THREADS
        import cv2

        cv2.setNumThreads(1)
    except ImportError:
        pass
    gpu = torch.cuda.is_available()
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, 1 CPU thread "
          f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}), severity {args.severity}, "
          f"table imagenet on both sides, {args.stat} of {args.repeats} alternating runs"
          + (f", GPU {torch.cuda.get_device_name()}" if gpu else ", no GPU"))
    for size in (int(s) for s in args.sizes.split(",")):
        n, n_ref = (args.n32, args.n32) if size <= 64 else (args.n224, args.ref_n224)
        stat = min if args.stat == "min" else statistics.median
        rows = bench(size, n, args.severity, args.repeats, not args.no_reference, gpu, stat, names, n_ref)
        ref = "" if args.no_reference or n_ref >= n else f" (the reference on {n_ref} of them)"
        print(f"\n## {size}x{size}, batch {n}{ref}\n")
        print(table(rows, gpu))


if __name__ == "__main__":
    main()

"""Throughput of the C-bar corruptions against the per-pixel oracle and the common corruptions.

Times every ImageNet-C-bar corruption on a batch of 224x224 photographs ("imagenet" table)
and every CIFAR-10-C-bar corruption on 32x32 ones ("cifar" table), cut from scikit-image's
sample images, severity 3, single process, one CPU thread (torch.set_num_threads(1); run
with OMP_NUM_THREADS=1). In the same run, in the same rounds, it times our 19 common
corruptions at 224 px (`imagenet` table): the target is every C-bar corruption at 224 px
no slower than the slowest of them. Timing: each corruption is warmed up once, then timed
`--repeats` times in rounds that visit every corruption in turn (so load from other
processes hits all alike); the best time per corruption (`--stat min`, timeit's advice on
a shared machine) or the median is reported in images per second. The oracle
(tests/_cbar_refs.py: the reference's transform written out pixel by pixel, given the
same drawn parameters) is timed once per corruption on `--oracle-n32` whole 32-px images
and `--oracle-n224` whole 224-px ones (seconds each). With CUDA available a GPU column
times ours on the GPU (synchronised, same batch).

    OMP_NUM_THREADS=1 python benchmarks/bench_cbar.py [--n32 128] [--n224 16] [--repeats 5]

Evidence: the table a run prints; the README's table was measured with the defaults.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _cbar_refs import oracle  # noqa: E402
from _corruption_refs import natural_images, to_hwc  # noqa: E402

from dstlib import corruptions as C  # noqa: E402
from dstlib.corruptions import cbar  # noqa: E402


def _once(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _gpu(fn):
    def run():
        fn()
        torch.cuda.synchronize()
    return run


def time_ours(jobs: dict, repeats: int, stat) -> dict:
    """jobs: label -> (callable, images); every callable warmed up, then timed in rounds."""
    for fn, _ in jobs.values():
        fn()
    times = {k: [] for k in jobs}
    for _ in range(repeats):
        for k, (fn, _) in jobs.items():
            times[k].append(_once(fn))
    return {k: stat(t) / jobs[k][1] for k, t in times.items()}


def time_oracle(name: str, table: str, x: torch.Tensor, severity: int) -> float:
    """Seconds per image of the oracle on the images x (the same fields as ours)."""
    f = C.random_fields(x, name, severity, seed=1, table=table)
    lev = cbar.level(table, name, severity)
    t0 = time.perf_counter()
    for i, im in enumerate(to_hwc(x)):
        oracle(name, im, {k: v[i] for k, v in f.items()}, lev)
    return (time.perf_counter() - t0) / x.shape[0]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n32", type=int, default=128, help="batch of 32x32 images (CIFAR-10-C-bar)")
    ap.add_argument("--n224", type=int, default=16, help="batch of 224x224 images (ImageNet-C-bar and common)")
    ap.add_argument("--oracle-n32", type=int, default=4, help="32-px images the oracle is timed on")
    ap.add_argument("--oracle-n224", type=int, default=1, help="224-px images the oracle is timed on")
    ap.add_argument("--severity", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--stat", choices=("min", "median"), default="min")
    ap.add_argument("--no-oracle", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    stat = min if args.stat == "min" else statistics.median
    gpu = torch.cuda.is_available()
    sev = args.severity
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, 1 CPU thread "
          f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}), severity {sev}, "
          f"{args.stat} of {args.repeats} rounds" + (f", GPU {torch.cuda.get_device_name()}" if gpu else ", no GPU"))
    x32 = natural_images(args.n32, 32, seed=0).contiguous()
    x224 = natural_images(args.n224, 224, seed=0).contiguous()
    jobs = {}
    for name in C.CIFAR_CBAR_NAMES:
        jobs[("cifar", name)] = (lambda n=name: C.corrupt(x32, n, sev, seed=1, table="cifar"), args.n32)
    for name in C.CBAR_NAMES:
        jobs[("imagenet", name)] = (lambda n=name: C.corrupt(x224, n, sev, seed=1, table="imagenet"), args.n224)
    for name in C.NAMES:
        jobs[("common", name)] = (lambda n=name: C.corrupt(x224, n, sev, seed=1, table="imagenet"), args.n224)
    ours = time_ours(jobs, args.repeats, stat)
    ours_gpu = {}
    if gpu:
        g32, g224 = x32.cuda(), x224.cuda()
        gjobs = {}
        for (table, name), (_, n) in jobs.items():
            xs = g32 if table == "cifar" else g224
            t = "cifar" if table == "cifar" else "imagenet"
            gjobs[(table, name)] = (_gpu(lambda nm=name, xx=xs, tt=t: C.corrupt(xx, nm, sev, seed=1, table=tt)), n)
        ours_gpu = time_ours(gjobs, args.repeats, stat)
    ref = {}
    if not args.no_oracle:
        for name in C.CIFAR_CBAR_NAMES:
            ref[("cifar", name)] = time_oracle(name, "cifar", x32[:args.oracle_n32], sev)
        for name in C.CBAR_NAMES:
            ref[("imagenet", name)] = time_oracle(name, "imagenet", x224[:args.oracle_n224], sev)

    common = {name: ours[("common", name)] for name in C.NAMES}
    slowest = max(common, key=common.get)
    gcol = " ours GPU img/s |" if gpu else ""
    for table, size, n in (("cifar", 32, args.n32), ("imagenet", 224, args.n224)):
        on = args.oracle_n32 if size == 32 else args.oracle_n224
        print(f"\n## {table} table, {size}x{size}, batch {n} (oracle: {on} image(s))\n")
        extra = " / slowest common |" if size == 224 else ""
        print(f"| corruption | ours img/s | oracle img/s | ratio |{extra}{gcol}")
        print("|---|---:|---:|---:|" + ("---:|" if size == 224 else "") + ("---:|" if gpu else ""))
        for name in (C.CIFAR_CBAR_NAMES if table == "cifar" else C.CBAR_NAMES):
            o, r = ours[(table, name)], ref.get((table, name))
            line = f"| {name} | {1 / o:.0f} | {f'{1 / r:.2f}' if r else '-'} | {f'{r / o:.0f}' if r else '-'} |"
            if size == 224:
                line += f" {common[slowest] / o:.2f} |"
            if gpu:
                line += f" {1 / ours_gpu[(table, name)]:.0f} |"
            print(line)
    print("\n## common corruptions, 224x224 (same rounds)\n")
    print("| corruption | ours img/s |" + (" ours GPU img/s |" if gpu else ""))
    print("|---|---:|" + ("---:|" if gpu else ""))
    for name in C.NAMES:
        print(f"| {name} | {1 / common[name]:.0f} |" + (f" {1 / ours_gpu[('common', name)]:.0f} |" if gpu else ""))
    worst = max(C.CBAR_NAMES, key=lambda nm: ours[("imagenet", nm)])
    print(f"\nslowest common at 224 px: {slowest} {1 / common[slowest]:.0f} img/s; slowest C-bar: {worst} "
          f"{1 / ours[('imagenet', worst)]:.0f} img/s ({common[slowest] / ours[('imagenet', worst)]:.2f}x the "
          f"slowest common's speed; target >= 1)")


if __name__ == "__main__":
    main()

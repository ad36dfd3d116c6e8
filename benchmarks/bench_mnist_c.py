"""Throughput of Fashion-MNIST-C's 15 corruptions (dstlib.corruptions.mnist_c) against the reference.

The reference is the test oracle tests/_fmnist_c_refs.py: the published generator's
procedure, one image at a time, on the library calls it makes (numpy, scikit-image,
PIL, OpenCV, ImageMagick through Wand; motion blur's row is left out without Wand).
Ours corrupts a batch of `--n` Fashion-MNIST test images per call (the size
`dstlib.evaluate` passes), the reference the first `--ref-n` of them. One thread on
each side (torch.set_num_threads(1), cv2.setNumThreads(1); run with OMP_NUM_THREADS=1);
each side is warmed up once, then timed `--repeats` times, alternating, and the best
time of each is reported as images per second, with the ratio ours / reference and the
mixed set (each image one corruption, uniformly: the harmonic mean of the rows).
A last line times `fashion_mnist_c` on the whole batch, draws and grouping included.
With CUDA available a GPU column times ours on the GPU (synchronised, same batch).

    OMP_NUM_THREADS=1 python benchmarks/bench_mnist_c.py [--n 256] [--ref-n 32] [--repeats 5]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import _fmnist_c_refs as R  # noqa: E402

from dstlib import corruptions as C  # noqa: E402
from dstlib import data  # noqa: E402


def _once(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def reference(name: str, rng):
    """The reference function for one image, random draws from `rng` as the generator's globals."""
    if name in R.DETERMINISTIC:
        return R.DETERMINISTIC[name]
    if name in R.SIGNED:
        return lambda im: R.SIGNED[name](im, int(rng.choice([-1, 1])))
    if name == "shot_noise":
        return lambda im: R.shot_noise(im, rng)
    if name == "impulse_noise":
        return lambda im: R.impulse_noise(im, rng)
    if name == "glass_blur":
        return lambda im: R.glass_blur(im, *R.glass_draws(rng))
    return lambda im: R.motion_blur(im, rng.uniform(-45, 45))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=256, help="images per call of ours")
    ap.add_argument("--ref-n", type=int, default=32, help="images the reference is timed on")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    import cv2
    cv2.setNumThreads(1)
    try:
        import wand.image  # noqa: F401
        wand = True
    except ImportError:
        wand = False
    gpu = torch.cuda.is_available()
    x = data.load("fashion_mnist", "test").images[:args.n].contiguous()
    xs = [np.ascontiguousarray(im) for im in x[:args.ref_n, 0].numpy()]
    xg = x.cuda() if gpu else None
    rng = np.random.default_rng(0)
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, 1 CPU thread "
          f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}), batch {args.n}, reference on "
          f"{len(xs)} images, best of {args.repeats} alternating runs"
          + (f", GPU {torch.cuda.get_device_name()}" if gpu else ", no GPU"))
    head = "| corruption | dstlib CPU img/s | reference img/s | ratio |" + (" dstlib GPU img/s |" if gpu else "")
    print("\n" + head + "\n|---|---:|---:|---:|" + ("---:|" if gpu else ""))
    tot = [0.0, 0.0, 0.0]
    for name in C.FMNIST_C_NAMES:
        ours = lambda: C.corrupt_mnist_c(x, name, seed=1)  # noqa: E731
        ref_fn = reference(name, rng)
        ref = (lambda: [R.as_saved(ref_fn(im)) for im in xs]) if wand or name != "motion_blur" else None  # noqa: E731

        def ours_gpu():
            C.corrupt_mnist_c(xg, name, seed=1)
            torch.cuda.synchronize()

        for fn in (ours, ref, ours_gpu if gpu else None):
            if fn is not None:
                fn()  # warm-up
        t_o, t_r, t_g = [], [], []
        for _ in range(args.repeats):
            t_o.append(_once(ours))
            if ref is not None:
                t_r.append(_once(ref))
            if gpu:
                t_g.append(_once(ours_gpu))
        o, r = min(t_o) / len(x), (min(t_r) / len(xs) if t_r else None)
        g = min(t_g) / len(x) if t_g else None
        tot[0] += o
        tot[1] += r or 0.0
        tot[2] += g or 0.0
        line = f"| {name} | {1 / o:.0f} | {f'{1 / r:.0f}' if r else '-'} | {f'{r / o:.1f}' if r else '-'} |"
        print(line + (f" {1 / g:.0f} |" if gpu else ""), flush=True)
    k = len(C.FMNIST_C_NAMES)
    ratio = f"**{tot[1] / tot[0]:.1f}**" if wand else "-"
    ref_rate = f"**{k / tot[1]:.0f}**" if wand else "-"
    print(f"| **mixed set** | **{k / tot[0]:.0f}** | {ref_rate} | {ratio} |" + (f" {k / tot[2]:.0f} |" if gpu else ""))
    t = min(_once(lambda: C.fashion_mnist_c(x, seed=1)) for _ in range(args.repeats))
    print(f"\nfashion_mnist_c on the batch of {len(x)}: {len(x) / t:.0f} img/s "
          f"({t * 1e4 / len(x):.2f} s per 10,000 images, one thread)")


if __name__ == "__main__":
    main()

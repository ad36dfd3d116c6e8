"""Throughput of dstlib.corruptions.corrupt_video on 8-frame clips against doing the same frame by frame.

Times every video corruption (severity 3 by default) on a batch of clips (8 frames each, cut from
scikit-image's sample photographs) at 112 and 224 px, single process, one CPU thread
(torch.set_num_threads(1), cv2.setNumThreads(1); run with OMP_NUM_THREADS=1). The per-frame side is what the
benchmark's code does: every frame through `imagecorruptions-imaug`'s corruption of the same name (gaussian,
shot, impulse and speckle noise, defocus, motion and zoom blur, JPEG: the package's own constants at the same
severity, which are the video table's for all but shot and speckle noise, where only the parameter differs,
not the work), and PIL's `Image.rotate` per frame for rotate and static_rotate (the benchmark's own call).
Translate and the temporal corruptions index frames and have no per-frame counterpart. The per-frame side is
timed on the first `--ref-clips` clips (it works one frame at a time, so its time per clip does not depend on
the batch). Each side is warmed up once, then timed `--repeats` times alternately; the best time of each side
(`--stat min`) or the median is reported as clips per second with the ratio, and the total over the
corruptions that have a counterpart ("per-frame together": times per clip summed).

    OMP_NUM_THREADS=1 python benchmarks/bench_video.py [--clips 8] [--sizes 112,224] [--severity 3]

Evidence (issue target: the corruptions with a per-frame counterpart together at least 10x faster at 224 px on
the CPU): see the table printed by a run; the README's table was measured with the defaults.
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
from _corruption_refs import natural_images  # noqa: E402

from dstlib import corruptions as C  # noqa: E402
from dstlib.corruptions import video as V  # noqa: E402

FRAMES = 8
COUNTERPART = {"motion_blur": "motion_blur", "compression": "jpeg_compression", "defocus_blur": "defocus_blur",
               "gaussian_noise": "gaussian_noise", "shot_noise": "shot_noise", "impulse_noise": "impulse_noise",
               "zoom_blur": "zoom_blur", "speckle_noise": "speckle_noise", "rotate": "pil", "static_rotate": "pil"}


def _once(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def per_frame(name: str, frames: list[np.ndarray], severity: int):
    """The benchmark code's loop: one frame at a time."""
    import imagecorruptions
    from PIL import Image

    if COUNTERPART[name] != "pil":
        return [imagecorruptions.corrupt(f, severity, COUNTERPART[name]) for f in frames]
    rng = np.random.default_rng(0)
    m = 6 * severity + 1
    if name == "static_rotate":
        return [np.asarray(Image.fromarray(f).rotate(V._UCF101["static_rotate"][severity - 1])) for f in frames]
    return [np.asarray(Image.fromarray(f).rotate(int(rng.integers(-m, m + 1)))) for f in frames]


def bench(size: int, clips: int, ref_clips: int, severity: int, repeats: int, stat):
    x = natural_images(clips * FRAMES, size).view(clips, FRAMES, 3, size, size).contiguous()
    frames = [np.ascontiguousarray(f.permute(1, 2, 0).numpy()) for f in x[:ref_clips].reshape(-1, 3, size, size)]
    rows = []
    for name in V.VIDEO_NAMES:
        ours = lambda: C.corrupt_video(x, name, severity, seed=1, table="ucf101")  # noqa: E731
        ref = (lambda: per_frame(name, frames, severity)) if name in COUNTERPART else None
        np.random.seed(0)
        ours()
        if ref:
            ref()
        t_o, t_r = [], []
        for _ in range(repeats):
            t_o.append(_once(ours))
            if ref:
                t_r.append(_once(ref))
        rows.append((name, stat(t_o) / clips, stat(t_r) / ref_clips if t_r else None))
    return rows


def table(rows) -> str:
    lines = ["| corruption | dstlib clips/s | per-frame clips/s | ratio |", "|---|---:|---:|---:|"]
    tot_o = tot_r = 0.0
    for name, o, r in rows:
        if r:
            tot_o, tot_r = tot_o + o, tot_r + r
        lines.append(f"| {name} | {1 / o:.1f} | {f'{1 / r:.1f}' if r else '-'} | {f'{r / o:.1f}' if r else '-'} |")
    lines.append(f"| **per-frame together** | {1 / tot_o:.2f} | {1 / tot_r:.2f} | **{tot_r / tot_o:.1f}** |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=8, help="clips of 8 frames per batch (ours)")
    ap.add_argument("--ref-clips", type=int, default=1, help="clips the per-frame side is timed on")
    ap.add_argument("--sizes", default="112,224")
    ap.add_argument("--severity", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--stat", choices=("min", "median"), default="min")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    try:  # the reference calls OpenCV, whose own thread pool ignores OMP_NUM_THREADS
        import cv2

        cv2.setNumThreads(1)
    except ImportError:
        pass
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, 1 CPU thread "
          f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}), severity {args.severity}, "
          f"{args.stat} of {args.repeats} alternating runs, load average {os.getloadavg()[0]:.1f}")
    stat = min if args.stat == "min" else statistics.median
    for size in (int(s) for s in args.sizes.split(",")):
        rows = bench(size, args.clips, min(args.ref_clips, args.clips), args.severity, args.repeats, stat)
        print(f"\n## {size}x{size}, {args.clips} clips of {FRAMES} frames (per-frame side on {args.ref_clips})\n")
        print(table(rows))


if __name__ == "__main__":
    main()

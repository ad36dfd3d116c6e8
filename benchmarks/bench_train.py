"""Training throughput (images per second) of dense training and of every sparse method, at paper scale.

Evidence: the README's paper-scale table (machine, date, threads and widths stated there).

Per model, synthetic uint8 images of the dataset's size live on the device (no decoding: this measures
the training step), and each method trains beside dense from copies of the same initial model, the two
taking turns step by step, as `dstlib.train.Trainer` steps: the training augmentation on the device (crop
and flip at 32 px; at 224 px the random-resized crop is done while decoding, so none here), normalisation,
channels-last, bfloat16 autocast on CUDA, SGD (momentum 0.9, weight decay 5e-4) with the learning rate set
per step, `sparsifier.step()`. Topology updates are timed apart (`--updates` of them, each on the weights
and gradients of a real step) and charged at the paper's interval (`--interval`: 500 steps for ResNet34 on
CIFAR-100, 2000 for ResNet50 on ImageNet):

- `images/s`: dense and each method, steps only;
- `ratio`: median over steps of sparse / dense step time (paired), then with one update per dT added
  (`ratio at dT`): the target is every method within 5% of dense (ratio at dT <= 1.05).

Usage: ``OMP_NUM_THREADS=1 python benchmarks/bench_train.py [--device cuda] [--models resnet34 resnet50]
[--width 1.0] [--steps 30] [--methods ...]``. On the CPU use a reduced `--width` (and say so).
"""
from __future__ import annotations

import argparse
import copy
import platform
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

import dstlib.sparsity as S
from dstlib import data, models
from dstlib.config import RunSpec
from dstlib.train import crop_flip, learning_rate, make_optimizer

SETTINGS = {  # model: dataset, per-GPU batch, paper dT, distribution (Table 4; ImageNet: 4 GPUs x 64)
    "resnet34": ("cifar100", 100, 500, "uniform"),
    "resnet50": ("imagenet", 64, 2000, "erk"),
}
METHODS = ("static", "set", "rigl", "mest_r", "mest_g", "granet_r", "granet_g", "acdc")


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Loop:
    """One training run's step, as dstlib.train takes it, on synthetic in-device images."""

    def __init__(self, base: nn.Module, spec: RunSpec, info, device, total_steps: int):
        self.model = copy.deepcopy(base)
        self.spec, self.info, self.device = spec, info, device
        self.optimizer = make_optimizer(spec, self.model)
        self.sparsifier = S.create(spec.method, self.model, optimizer=self.optimizer, total_steps=total_steps,
                                   **spec.sparsity_options())
        self.amp = torch.bfloat16 if device.type == "cuda" else None
        self.gen = torch.Generator().manual_seed(0)
        self.steps = 0

    def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if x.shape[-1] <= 64:
            x = crop_flip(x, self.gen)
        x = data.normalize(x, self.info).contiguous(memory_format=torch.channels_last)
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.spec, self.steps, 1000)
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=self.amp, enabled=self.amp is not None):
            loss = F.cross_entropy(self.model(x), y)
        loss.backward()
        self.optimizer.step()
        self.sparsifier.step()
        self.steps += 1


def measure(name: str, args) -> list[dict]:
    dataset, batch, interval, distribution = SETTINGS[name]
    batch = args.batch or batch
    interval = args.interval or interval
    info = data.info(dataset)
    device = torch.device(args.device)
    torch.manual_seed(0)
    base = models.create(name, info, width_multiplier=args.width).to(device).to(memory_format=torch.channels_last)
    g = torch.Generator().manual_seed(1)
    xs = [torch.randint(0, 256, (batch, 3, info.image_size, info.image_size), dtype=torch.uint8, generator=g).to(device)
          for _ in range(4)]
    ys = [torch.randint(0, info.num_classes, (batch,), generator=g).to(device) for _ in range(4)]
    rows = []
    # the machine's own warm-up (allocator, kernels' first calls, CPU frequency) on a throwaway dense loop, so the
    # first method's pairs do not carry it
    warm = Loop(base, RunSpec(model=name, dataset=dataset, epochs=1000, lr=0.1), info, device, 1000 * interval)
    for i in range(2 * args.warmup):
        warm.step(xs[i % 4], ys[i % 4])
    del warm
    for method in args.methods:
        # the paper's dT over a long run: no update falls in the timed steps; `update` below times real ones
        spec = RunSpec(model=name, dataset=dataset, method=method, sparsity=args.sparsity, distribution=distribution,
                       update_interval=interval, epochs=1000, lr=0.1, sparse_classifier=name == "resnet50")
        total = 1000 * interval
        dense = Loop(base, spec.replace(method="dense"), info, device, total)
        sparse = Loop(base, spec, info, device, total)
        for i in range(args.warmup):
            dense.step(xs[i % 4], ys[i % 4])
            sparse.step(xs[i % 4], ys[i % 4])
        t_d, t_s, ratios = [], [], []
        for i in range(args.steps):
            order = (dense, sparse) if i % 2 == 0 else (sparse, dense)  # neither always goes first
            times = {}
            for loop in order:
                sync(device)
                t0 = time.perf_counter()
                loop.step(xs[i % 4], ys[i % 4])
                sync(device)
                times[loop is sparse] = time.perf_counter() - t0
            t_d.append(times[False])
            t_s.append(times[True])
            ratios.append(times[True] / times[False])
        update = []
        if hasattr(sparse.sparsifier, "update") and method != "static":
            sp = sparse.sparsifier
            due = next(s for s in range(interval, total, interval) if sp.is_update(s))  # the schedule's first update
            for k in range(args.updates):  # on the weights and dense gradients of a real step
                sparse.step(xs[k % 4], ys[k % 4])
                sync(device)
                t0 = time.perf_counter()
                sp.update(due)
                sync(device)
                update.append(time.perf_counter() - t0)
        t_update = statistics.median(update) if update else 0.0
        step_d = statistics.median(t_d)
        row = {"model": name, "method": method, "batch": batch, "dense_ips": batch / step_d,
               "sparse_ips": batch / statistics.median(t_s), "ratio": statistics.median(ratios),
               "update_s": t_update, "ratio_at_dT": statistics.median(ratios) + t_update / interval / step_d,
               "interval": interval}
        rows.append(row)
        print(f"{name} {method:9s} dense {row['dense_ips']:9.1f} img/s  sparse {row['sparse_ips']:9.1f} img/s  "
              f"ratio {row['ratio']:.3f}  update {1000 * t_update:8.1f} ms  ratio at dT={interval} "
              f"{row['ratio_at_dT']:.3f}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--width", type=float, default=1.0, help="width multiplier (reduce on a CPU)")
    parser.add_argument("--batch", type=int, default=None, help="images per step (default: the paper's per GPU)")
    parser.add_argument("--interval", type=int, default=None, help="dT charged per update (default: the paper's)")
    parser.add_argument("--sparsity", type=float, default=0.5)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--updates", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else platform.processor() or "cpu"
    print(f"# {dev}, torch {torch.__version__}, {torch.get_num_threads()} thread(s), width {args.width}, "
          f"sparsity {args.sparsity}, {args.steps} paired steps")
    rows = [r for name in args.models for r in measure(name, args)]
    print("\n| model | batch | dense img/s | " + " | ".join(args.methods) + " |")
    print("|---|---|---|" + "---|" * len(args.methods))
    for name in args.models:
        mine = [r for r in rows if r["model"] == name]
        cells = [f"{r['ratio']:.3f} ({r['ratio_at_dT']:.3f})" for r in mine]
        dense = statistics.median(r["dense_ips"] for r in mine)
        print(f"| {name} | {mine[0]['batch']} | {dense:.1f} | " + " | ".join(cells) + " |")
    print("\ncells: paired step ratio sparse / dense (with one topology update per dT charged)")


if __name__ == "__main__":
    main()

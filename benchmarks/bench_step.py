"""Training-time overhead of every dstlib.sparsity method against dense training, in a real loop.

Evidence: see the README's step-overhead table (its machine, date and thread counts are stated
there); the machine it was measured on is shared with other jobs, so read the `paired` column.

Per model and method, a dense run and the method's run train side by side on Fashion-MNIST
(batches of `--batch` images in one fixed shuffled order, normalised as `dstlib.train` does), each
from its own copy of the same initial model with its own SGD (lr 0.05, momentum 0.9, weight decay
5e-4, the paper's optimiser), the two runs taking turns step by step. The sparse run's time counts
everything a training loop pays: creating the sparsifier, its first steps, every topology update
(`--interval` dT), `sp.step()` and the optimiser step it takes part in. `--rounds` repeat this.

- `paired`: median over rounds of (sparse run time / dense run time): the two runs share the
  machine's state step by step, so this survives a shared machine's noise best;
- `best`: the fastest sparse run over the fastest dense run (how the issue measured);
- `update ms`: median time of one topology update inside the runs, and `updates`: how many.

Usage: ``OMP_NUM_THREADS=1 python benchmarks/bench_step.py [--models mlp lenet300_100] [--threads 1]
[--steps 300] [--interval 100] [--batch 128] [--rounds 3] [--methods ...]``.
"""
from __future__ import annotations

import argparse
import copy
import platform
import statistics
import time

import torch
from torch import nn

import dstlib.sparsity as S


def batches(n_steps: int, batch: int, device: str):
    """Fashion-MNIST training batches, normalised floats, in one fixed order (uint8 kept in memory)."""
    from dstlib import data

    train = data.load("fashion_mnist", "train")
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))
    images, labels = train.images.to(device), train.labels.to(device)
    out = []
    for i in range(n_steps):
        idx = order[(i * batch) % (len(order) - batch):][:batch].to(device)
        out.append((data.normalize(images[idx], train.info), labels[idx]))
    return out


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_pair(base: nn.Module, method: str, data, args) -> tuple[float, float, list[float]]:
    """(dense seconds, sparse seconds, update seconds) of two runs trained step by step in turns."""
    def fresh():
        model = copy.deepcopy(base)
        return model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)

    dense, opt_d = fresh()
    model, opt = fresh()
    updates: list[float] = []
    t_dense = t_sparse = 0.0
    sync(args.device)
    t0 = time.perf_counter()
    sp = S.create(method, model, optimizer=opt, total_steps=len(data), sparsity=args.sparsity,
                  update_interval=args.interval)
    sync(args.device)
    t_sparse += time.perf_counter() - t0
    own_update = getattr(sp, "update", None)
    if own_update is not None:
        def timed(step, own_update=own_update):
            u0 = time.perf_counter()
            own_update(step)
            sync(args.device)
            updates.append(time.perf_counter() - u0)
        sp.update = timed
    for step, (x, y) in enumerate(data):
        for which in ((0, 1) if step % 2 == 0 else (1, 0)):  # neither run always goes first
            net, o = (dense, opt_d) if which == 0 else (model, opt)
            t0 = time.perf_counter()
            o.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(net(x), y).backward()
            o.step()
            if which == 1:
                sp.step()
            sync(args.device)
            elapsed = time.perf_counter() - t0
            if which == 0:
                t_dense += elapsed
            else:
                t_sparse += elapsed
    return t_dense, t_sparse, updates


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["mlp", "lenet300_100"])
    # chts (MLPs, CH3-L3 link prediction at every update) has its own benchmark, bench_cht.py
    ap.add_argument("--methods", nargs="+", default=[m for m in S.METHODS if m not in ("dense", "chts")])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, i.e. OMP_NUM_THREADS)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--interval", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sparsity", type=float, default=0.5)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from dstlib import models

    print(f"# torch {torch.__version__}, {platform.processor() or platform.machine()}, threads {torch.get_num_threads()}, "
          f"device {torch.cuda.get_device_name() if args.device.startswith('cuda') else 'cpu'}")
    print(f"# batch {args.batch}, sparsity {args.sparsity}, dT {args.interval}, {args.steps} steps, {args.rounds} rounds")
    print("| model | method | dense s | sparse s | paired | best | update ms | updates |")
    print("|---|---|---|---|---|---|---|---|")
    data = batches(args.steps, args.batch, args.device)
    for name in args.models:
        torch.manual_seed(0)
        base = models.create(name, "fashion_mnist").to(args.device)
        for method in args.methods:
            try:
                S.create(method, copy.deepcopy(base), total_steps=args.steps)
            except ValueError as e:  # e.g. chts on a convolutional model
                print(f"| {name} | {method} | - | - | - | - | - | ({e}) |")
                continue
            dense_t, sparse_t, upd = [], [], []
            for _ in range(args.rounds):
                d, s, u = run_pair(base, method, data, args)
                dense_t.append(d)
                sparse_t.append(s)
                upd += u
            paired = statistics.median(s / d for s, d in zip(sparse_t, dense_t))
            best = min(sparse_t) / min(dense_t)
            upd_ms = statistics.median(upd) * 1e3 if upd else 0.0
            print(f"| {name} | {method} | {min(dense_t):.2f} | {min(sparse_t):.2f} | {paired:.3f} | {best:.3f} | "
                  f"{upd_ms:.1f} | {len(upd) // args.rounds} |", flush=True)


if __name__ == "__main__":
    main()

"""Step-time overhead of every dstlib.sparsity method against dense training.

Evidence (2026-11-25, shared 2-core AMD EPYC VM, torch 2.14.1 CPU, 1 thread,
batch 128, sparsity 0.5, dT 100, Fashion-MNIST-shaped random batches; the
machine was shared with other jobs, so "dense (again)", a second dense copy,
shows the noise floor: 0.993 / 0.991):

    model  method    step ms  sp.step ms  update ms  amortised  direct
    mlp    dense       23.93       0.003        0.0      1.000   1.000
    mlp    static      24.56       0.658        0.0      1.026   1.028
    mlp    set         24.53       0.666       53.8      1.048   1.050
    mlp    rigl        24.23       0.659       58.7      1.037   1.052
    mlp    mest_r      24.44       0.653       53.1      1.043   1.049
    mlp    mest_g      24.40       0.642       58.6      1.044   1.051
    mlp    granet_r    24.77       0.662       51.2      1.056   1.049
    mlp    granet_g    24.46       0.659       49.5      1.043   1.048
    mlp    acdc        24.53       0.667       27.5      1.027   1.030
    cnn    dense      172.80       0.003        0.0      1.000   1.000
    cnn    (all)      ~172         0.10-0.12  1.9-7.6  0.995-1.000  1.001

MLP 784-1000x3-10 (2.8 M masked weights): about 2.7% per step for re-applying
the masks (a memory-bound multiply, near the machine's bandwidth) plus about
2% for one update per 100 steps: at the 5% target. Small CNN (0.29 M
parameters, compute-bound): 0.1%. No GPU run yet (no device was lent).

Per model, every method trains its own copy of the model on the same fixed
batches (SGD momentum 0.9, weight decay 5e-4), the methods taking turns in
round-robin blocks in one process, so machine noise hits all alike:

- ``step``: time of one training step (zero_grad, forward, backward,
  optimiser step, ``sp.step()`` without topology update), the minimum over
  rounds of the mean over a block (the least disturbed block: this machine
  is shared), and its ratio to dense;
- ``sp.step``: the part of it spent in ``sp.step()`` (re-applying the masks);
- ``update``: median time of one topology update (``sp.update``);
- ``amortised``: ``(step + update / dT) / step_dense``, the measured ratio of
  a run with updates every dT steps (default 100, RunSpec's); ``direct``:
  ``1 + (sp.step + update / dT) / step_dense``, the same from the sparsifier's
  own time only, which the noise of the shared machine does not blur.

Usage: ``python benchmarks/bench_step.py [--models mlp cnn] [--device cpu]
[--batch 128] [--rounds 7] [--block 6] [--interval 100]``.
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


def build(name: str) -> nn.Module:
    """Our default models (dstlib.models) for Fashion-MNIST."""
    from dstlib import models

    return models.create(name, "fashion_mnist")


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["mlp", "cnn"])
    ap.add_argument("--methods", nargs="+", default=list(S.METHODS))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--block", type=int, default=6)
    ap.add_argument("--interval", type=int, default=100)
    ap.add_argument("--sparsity", type=float, default=0.5)
    args = ap.parse_args()
    if args.rounds * args.block >= args.interval:
        raise SystemExit("rounds * block must stay below --interval (no update inside the step timing)")
    dev = args.device
    print(f"# torch {torch.__version__}, {platform.processor() or platform.machine()}, threads {torch.get_num_threads()}, "
          f"device {torch.cuda.get_device_name() if dev.startswith('cuda') else 'cpu'}")
    print(f"# batch {args.batch}, sparsity {args.sparsity}, dT {args.interval}, {args.rounds} rounds x {args.block} steps")
    print("| model | method | step ms | step ratio | sp.step ms | update ms | amortised ratio | direct ratio |")
    print("|---|---|---|---|---|---|---|---|")
    g = torch.Generator().manual_seed(0)
    for name in args.models:
        base = build(name).to(dev)
        batches = [(torch.randn(args.batch, 1, 28, 28, generator=g).to(dev),
                    torch.randint(0, 10, (args.batch,), generator=g).to(dev)) for _ in range(4)]
        runs = {}
        for method in [*args.methods, "dense"]:
            key = method if method not in runs else "dense (again)"  # a second dense copy: the noise floor
            model = copy.deepcopy(base)
            opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
            sp = S.create(method, model, optimizer=opt, total_steps=100 * args.interval,
                          sparsity=args.sparsity, update_interval=args.interval,
                          **({"warmup": 0.0} if method == "acdc" else {}))
            runs[key] = (model, opt, sp)

        def one_step(model, opt, sp, i):
            x, y = batches[i % len(batches)]
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            sync(dev)
            t0 = time.perf_counter()
            sp.step()
            sync(dev)
            return time.perf_counter() - t0

        for method, run in runs.items():  # warm-up
            one_step(*run, 0)
        times = {m: [] for m in runs}
        sp_times = {m: [] for m in runs}
        order = list(runs)
        for r in range(args.rounds):
            for method in order[r % len(order):] + order[: r % len(order)]:  # rotate: no method always first
                run = runs[method]
                sync(dev)
                t0 = time.perf_counter()
                inner = sum(one_step(*run, i) for i in range(args.block))
                times[method].append((time.perf_counter() - t0) / args.block)
                sp_times[method].append(inner / args.block)
        step = {m: min(v) for m, v in times.items()}
        sp_step = {m: statistics.median(v) for m, v in sp_times.items()}
        dense = step["dense"] if "dense" in step else step[args.methods[0]]
        for method, (model, opt, sp) in runs.items():
            upd = 0.0
            if method not in ("dense", "dense (again)", "static"):
                samples = []
                for k in range(3):
                    one_step(model, opt, sp, k)  # fresh dense .grad
                    at = args.interval if method != "acdc" else max(1, round(0.85 * sp.total_steps))
                    sync(dev)
                    t0 = time.perf_counter()
                    sp.update(at)
                    sync(dev)
                    samples.append(time.perf_counter() - t0)
                upd = statistics.median(samples)
            # AC/DC changes topology at phase boundaries only (every 5% of training), not every dT
            every = args.interval if method != "acdc" else max(1, round(sp.phase * sp.total_steps))
            amort = (step[method] + upd / every) / dense
            direct = 1.0 + (sp_step[method] + upd / every) / dense
            print(f"| {name} | {method} | {step[method] * 1e3:.2f} | {step[method] / dense:.3f} | "
                  f"{sp_step[method] * 1e3:.3f} | {upd * 1e3:.1f} | {amort:.3f} | {direct:.3f} |", flush=True)


if __name__ == "__main__":
    main()

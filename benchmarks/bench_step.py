"""Step-time overhead of every dstlib.sparsity method against dense training.

Evidence (2026-11-25, idle 2-core AMD EPYC VM, torch 2.14.1 CPU, 1 thread,
batch 128, sparsity 0.5, dT 100, Fashion-MNIST-shaped random batches; the
full table is in the README):

    model  method    step ms  sp.step ms  update ms  amortised  paired  direct
    mlp    dense       21.37       0.003        0.0      1.000   1.002   1.000
    mlp    static      21.80       0.595        0.0      1.020   1.026   1.028
    mlp    set         21.80       0.573       20.6      1.030   1.034   1.036
    mlp    rigl        21.94       0.547       15.6      1.034   1.033   1.033
    mlp    mest_r      22.15       0.543       18.9      1.045   1.032   1.034
    mlp    granet_r    21.60       0.551       19.3      1.020   1.031   1.035
    mlp    acdc        21.64       0.542       13.3      1.014   1.017   1.027
    cnn    (all)      152-159      0.10-0.11  1.4-2.8  0.971-1.020  0.991-1.008  1.001

MLP 784-1000x3-10 (2.8 M masked weights): about 2.6% per step for re-applying
the masks (a memory-bound multiply, near the machine's bandwidth) plus 0.6-1%
for one update per 100 steps. Small CNN (0.29 M parameters, compute-bound):
0.1%. No GPU run yet (no device was lent).

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
  a run with updates every dT steps (default 100, RunSpec's), across model
  copies; ``paired``: the median over rounds of the same copy's block time
  with ``sp.step()`` over its block time without it (alternating blocks, so
  per-copy memory effects cancel), plus ``update / dT``; ``direct``:
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
    print("| model | method | step ms | step ratio | sp.step ms | update ms | amortised ratio | paired ratio | direct ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
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

        def one_step(model, opt, sp, i, with_sp=True):
            x, y = batches[i % len(batches)]
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            sync(dev)
            t0 = time.perf_counter()
            if with_sp:
                sp.step()
                sync(dev)
            return time.perf_counter() - t0

        for method, run in runs.items():  # warm-up
            one_step(*run, 0)
        times = {m: [] for m in runs}
        bare = {m: [] for m in runs}  # the same model copy without sp.step(): pairs out per-copy effects
        sp_times = {m: [] for m in runs}
        order = list(runs)
        for r in range(args.rounds):
            for method in order[r % len(order):] + order[: r % len(order)]:  # rotate: no method always first
                run = runs[method]
                for with_sp in ((True, False) if r % 2 == 0 else (False, True)):
                    sync(dev)
                    t0 = time.perf_counter()
                    inner = sum(one_step(*run, i, with_sp) for i in range(args.block))
                    (times if with_sp else bare)[method].append((time.perf_counter() - t0) / args.block)
                    if with_sp:
                        sp_times[method].append(inner / args.block)
        step = {m: min(v) for m, v in times.items()}
        paired = {m: statistics.median(a / b for a, b in zip(times[m], bare[m])) for m in runs}
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
            pair = paired[method] + upd / every / min(bare[method])
            print(f"| {name} | {method} | {step[method] * 1e3:.2f} | {step[method] / dense:.3f} | "
                  f"{sp_step[method] * 1e3:.3f} | {upd * 1e3:.1f} | {amort:.3f} | {pair:.3f} | {direct:.3f} |", flush=True)


if __name__ == "__main__":
    main()

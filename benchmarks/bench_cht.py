"""CHTs cost: link prediction against path enumeration, CSR kernels against masked dense layers, epochs.

Evidence (2026-12-04, a 2-core Intel Xeon VM with AVX-512, shared with other
jobs: load average 2.5-6 on 2 cores during the runs, so absolute times vary by
up to ~2x between runs while ratios measured side by side hold; torch 2.14.1
CPU, 1 thread):

links, 784-1000-1000-1000-10 at 95% (``links``):

    layer        L3 paths     ours s  enum s  ratio  max rel diff
    (1000, 784)   76,579,160   0.088    5.88   67x    2.9e-07
    (1000, 1000) 124,807,909   0.212   17.37   82x    3.7e-07
    (1000, 1000) 124,691,531   0.308   15.07   49x    3.8e-07
    whole topology update (removal, chain removal, scores, sampling): 0.43-0.62 s
    at 97%: 0.27 s for the three layers against 5.3 s (20x), update 0.35 s
    784-1568-1568-1568-10 at 95%: 188M, 755M, 754M paths; 1.3-2.9 s per update

CSR kernels against masked dense layers, ms per training step (``kernels``):

    MLP                   batch 8        32            128           512     eval 1000 images
    784-1568x3-10   44 / 56 0.80x  41 / 48 0.85x  52 / 47 1.11x  159 / 120 1.33x   1.88x
    784-1000x3-10   7.8/9.4 0.83x  9.4/11.0 0.85x 18.1/15.1 1.20x 52.7/38.7 1.36x  1.51x
    784-300-100-10  1.0/1.5 0.68x  1.2/1.7 0.73x  1.9/2.3 0.84x   5.0/5.5 0.91x    1.17x

Epochs over all 60,000 images (``epochs``; CHTs 95%, uniform, dT 100, lr 0.1
cosine over 3 epochs, batch 128): 784-300-100-10 1.2-4 s per epoch, test
accuracy after 3 epochs 85.7% (random init), 86.1% (BSW), 81.7% (CSTI; 75.7%
at 97%); 784-1000x3-10 (CSTI) 20-25 s, 85.5%; 784-1568x3-10 (CSTI) 41-51 s
with the CSR kernels and 55 s without, 86.2%. At the paper's batch 8 (dT 300,
ERK), timed on 7,500 images: 53 s for the 784-1568x3-10 MLP (about 7 minutes
per epoch) and 2.0 s for 784-300-100-10 (about 16 s per epoch).

Three parts, each on its own:

``links``: one topology update of a CHTs MLP at 95% sparsity. Per sparse
layer: the number of L3 paths (the reference's unit of work: its C++ walks
every one, O(N d^3)), the time of :func:`dstlib.sparsity.cht.ch3_l3_scores`,
and the time of :func:`path_enumeration` below (the reference's algorithm:
per source node, list every path, count each destination's local community,
sum the path terms; vectorised per source with numpy, so a path costs nanoseconds,
not a Python loop's microseconds), with the largest difference between the
two; then the whole ``sp.update`` (removal, chain removal, scores, soft
sampling) for the network. The reference's compiled, OpenMP-parallel C++ is
not built here (its code is not ours to copy), so the ratio is against this
enumeration, and the path count is what the C++ would walk.

``kernels``: time of one training step (forward, backward, SGD step,
``sp.step()``) of CHTs at the given sparsity with masked dense layers and with
``sparse_kernels=True`` (CSR products): two copies of the same model on the
same batches, in alternating blocks; and of one evaluation forward pass
(1000 images).

``epochs``: seconds per epoch over all 60,000 Fashion-MNIST images and the test
accuracy after each epoch of a CHTs run (``dstlib.train.Trainer``), for the
given widths, batch size and kernels.

Usage::

    python benchmarks/bench_cht.py links [--widths 1000 1000 1000] [--sparsity 0.95] [--rounds 5] [--no-enumerate]
    python benchmarks/bench_cht.py kernels [--widths 1568 1568 1568] [--batches 8 32 128] [--rounds 7]
    python benchmarks/bench_cht.py epochs [--widths 300 100] [--batch 128] [--epochs 3] [--kernels]
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import torch
from torch import nn

import dstlib.sparsity as S
from dstlib import models
from dstlib.sparsity import cht


def path_enumeration(mask: np.ndarray, sources=None) -> np.ndarray:
    """CH3-L3 of the pairs (source output node, every input node) by enumerating every L3 path.

    The reference's algorithm: from each source ``a``, list every simple path
    ``a - j - b - i`` (here as numpy arrays, one entry per path, rather than
    the C++'s depth-first search), count per destination ``i`` the paths
    through each intermediate node (its internal degree), and sum
    ``1 / sqrt((1 + de(j)) (1 + de(b)))`` per destination, ``1 + de(j) =
    deg(j) - di(j)`` and ``1 + de(b) = deg(b) - di(b)`` (each has one link to
    a seed). Present links get their sum too, as in the C++; the caller zeroes
    them. ``sources``: the output nodes to do (default all).
    """
    out_f, in_f = mask.shape
    deg_out, deg_in = mask.sum(1), mask.sum(0)
    row_ptr = np.concatenate([[0], np.cumsum(deg_out)])
    row_idx = np.nonzero(mask)[1]            # inputs of each output, CSR
    col_ptr = np.concatenate([[0], np.cumsum(deg_in)])
    col_idx = np.nonzero(mask.T)[1]          # outputs of each input, CSC
    scores = np.zeros((out_f, in_f))
    for a in range(out_f) if sources is None else sources:
        js = row_idx[row_ptr[a]:row_ptr[a + 1]]
        wj = np.repeat(js, deg_in[js])                                   # wedges a - j - b
        wb = np.concatenate([col_idx[col_ptr[j]:col_ptr[j + 1]] for j in js]) if len(js) else js
        keep = wb != a
        wj, wb = wj[keep], wb[keep]
        pj, pb = np.repeat(wj, deg_out[wb]), np.repeat(wb, deg_out[wb])  # paths a - j - b - i
        pi = np.concatenate([row_idx[row_ptr[b]:row_ptr[b + 1]] for b in wb]) if len(wb) else wb
        keep = pi != pj
        pj, pb, pi = pj[keep], pb[keep], pi[keep]
        _, inv_j, di_j = np.unique(pj * in_f + pi, return_inverse=True, return_counts=True)
        _, inv_b, di_b = np.unique(pb * in_f + pi, return_inverse=True, return_counts=True)
        term = 1.0 / np.sqrt((deg_in[pj] - di_j[inv_j]) * (deg_out[pb] - di_b[inv_b]))
        scores[a] = np.bincount(pi, weights=term, minlength=in_f)
    return scores


def count_l3_paths(mask: torch.Tensor) -> int:
    """Number of simple L3 paths a - j - b - i: each middle link (b, j) joins deg(j) - 1 starts to deg(b) - 1 ends."""
    m = mask.to(torch.float64)
    deg_out, deg_in = m.sum(1), m.sum(0)
    return int(((deg_in[None, :] - 1) * (deg_out[:, None] - 1) * m).sum())


def chts_mlp(widths, sparsity: float, update_interval: int = 10**6, **kw):
    torch.manual_seed(0)
    model = models.create("mlp", "fashion_mnist", widths=tuple(widths))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    sp = S.create("chts", model, optimizer=opt, total_steps=10**6, sparsity=sparsity,
                  update_interval=update_interval, **kw)
    return model, opt, sp


def links(args) -> None:
    model, opt, sp = chts_mlp(args.widths, args.sparsity, update_interval=1)
    x = torch.randn(64, 1, 28, 28)
    y = torch.randint(0, 10, (64,))
    nn.functional.cross_entropy(model(x), y).backward()
    print(f"CHTs MLP 784-{'-'.join(map(str, args.widths))}-10 at sparsity {args.sparsity}: CH3-L3 of one layer, "
          f"median of {args.rounds}; path enumeration once")
    print(f"{'layer':>12} {'L3 paths':>12} {'ours s':>8} {'enum s':>8} {'ratio':>7} {'max rel diff':>13}")
    ours_total = enum_total = 0.0
    for name in sp.names:
        mask = sp.masks[name]
        times = []
        for _ in range(args.rounds):
            t = time.perf_counter()
            ours = cht.ch3_l3_scores(mask)
            times.append(time.perf_counter() - t)
        ours_t = statistics.median(times)
        ours_total += ours_t
        if not args.enumerate:
            print(f"{str(tuple(mask.shape)):>12} {count_l3_paths(mask):>12,} {ours_t:>8.3f}")
            continue
        t = time.perf_counter()
        ref = path_enumeration(mask.numpy())
        enum = time.perf_counter() - t
        ref[mask.numpy()] = 0.0
        diff = float(np.abs(ours.double().numpy() - ref).max() / ref.max())
        enum_total += enum
        print(f"{str(tuple(mask.shape)):>12} {count_l3_paths(mask):>12,} {ours_t:>8.3f} {enum:>8.2f} "
              f"{enum / ours_t:>6.1f}x {diff:>13.1e}")
    if args.enumerate:
        print(f"{'all layers':>12} {'':>12} {ours_total:>8.3f} {enum_total:>8.2f} {enum_total / ours_total:>6.1f}x")
    else:
        print(f"{'all layers':>12} {'':>12} {ours_total:>8.3f}")
    updates = []
    for k in range(args.rounds):
        t = time.perf_counter()
        sp.update(k + 1)
        updates.append(time.perf_counter() - t)
    print(f"whole topology update (removal, chain removal, scores, soft sampling): median {statistics.median(updates):.3f} s "
          f"over {args.rounds}")


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def kernels(args) -> None:
    print(f"CHTs MLP 784-{'-'.join(map(str, args.widths))}-10 at sparsity {args.sparsity}: ms per training step "
          f"(median of {args.rounds} rounds of {args.block}-step blocks, alternating)")
    print(f"{'batch':>6} {'masked dense':>13} {'CSR kernels':>12} {'speed-up':>9}")
    g = torch.Generator().manual_seed(0)
    for batch in args.batches:
        runs = {}
        for sk in (False, True):
            model, opt, sp = chts_mlp(args.widths, args.sparsity, sparse_kernels=sk)
            runs[sk] = (model, opt, sp)
        xs = [torch.randn(batch, 1, 28, 28, generator=g) for _ in range(args.block)]
        ys = [torch.randint(0, 10, (batch,), generator=g) for _ in range(args.block)]

        def block(model, opt, sp):
            t = time.perf_counter()
            for x, y in zip(xs, ys):
                opt.zero_grad(set_to_none=True)
                nn.functional.cross_entropy(model(x), y).backward()
                opt.step()
                sp.step()
            return (time.perf_counter() - t) / len(xs)

        times = {False: [], True: []}
        for r in range(args.rounds + 1):
            for sk in ((False, True) if r % 2 else (True, False)):
                t = block(*runs[sk])
                if r:  # round 0 warms up
                    times[sk].append(t)
        dense, sparse = statistics.median(times[False]), statistics.median(times[True])
        print(f"{batch:>6} {dense * 1e3:>13.2f} {sparse * 1e3:>12.2f} {dense / sparse:>8.2f}x")
    x = torch.randn(1000, 1, 28, 28, generator=g)
    ev = {False: [], True: []}
    with torch.no_grad():
        for r in range(args.rounds + 1):
            for sk in (False, True):
                t = _timed(lambda: runs[sk][0](x))
                if r:
                    ev[sk].append(t)
    dense, sparse = statistics.median(ev[False]), statistics.median(ev[True])
    print(f"evaluation forward, 1000 images: masked dense {dense * 1e3:.1f} ms, CSR {sparse * 1e3:.1f} ms, "
          f"{dense / sparse:.2f}x")


def epochs(args) -> None:
    from dstlib.config import RunSpec
    from dstlib.train import Trainer

    spec = RunSpec(model="mlp", widths=tuple(args.widths), epochs=args.total_epochs, batch_size=args.batch, lr=args.lr,
                   method="chts", sparsity=args.sparsity, distribution=args.distribution,
                   update_interval=args.update_interval, topology_init=args.topology_init,
                   sparse_kernels=args.kernels, train_subset=args.train_subset, seed=0)
    t = time.perf_counter()
    trainer = Trainer(spec)
    print(f"CHTs MLP 784-{'-'.join(map(str, args.widths))}-10, sparsity {args.sparsity}, {args.distribution}, "
          f"init {args.topology_init}, batch {args.batch}, lr {args.lr} cosine over {args.total_epochs} epochs, "
          f"dT {args.update_interval}, kernels {args.kernels}, {len(trainer.train_set)} training images; "
          f"setup {time.perf_counter() - t:.1f} s")
    for _ in range(args.epochs):
        row = trainer.train_epoch()
        print(f"epoch {row['epoch']}: {row['seconds']:.1f} s, train loss {row['train_loss']:.3f}, "
              f"test accuracy {row['test_acc']:.4f}, density {row['density']:.4f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("part", choices=("links", "kernels", "epochs"))
    ap.add_argument("--widths", type=int, nargs="+", default=[1000, 1000, 1000])
    ap.add_argument("--sparsity", type=float, default=0.95)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--no-enumerate", dest="enumerate", action="store_false",
                    help="links: skip the path enumeration (minutes for 1568-wide layers)")
    ap.add_argument("--batches", type=int, nargs="+", default=[8, 32, 128])
    ap.add_argument("--block", type=int, default=10)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=3, help="epochs to run")
    ap.add_argument("--total-epochs", type=int, default=3, help="epochs of the spec (the cosine schedule's length)")
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--distribution", default="uniform")
    ap.add_argument("--update-interval", type=int, default=100)
    ap.add_argument("--topology-init", default="random")
    ap.add_argument("--kernels", action="store_true")
    ap.add_argument("--train-subset", type=int, default=None, help="train on this many images (timing a part of an epoch)")
    args = ap.parse_args()
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s)")
    {"links": links, "kernels": kernels, "epochs": epochs}[args.part](args)


if __name__ == "__main__":
    main()

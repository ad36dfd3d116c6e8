"""Convergence of the quick profile's models: dense clean accuracy after E epochs against 3E epochs.

The evidence rule of the book (dstlib.book.evidence.CONVERGED_EPOCHS): a model counts as trained to
convergence after E epochs on all 60,000 Fashion-MNIST images when its dense clean test accuracy (all 10,000
test images) is within 0.5 point of the same model trained 3E epochs. Settings as the quick profile: SGD
(momentum 0.9, weight decay 5e-4), batch 128, learning rate 0.05 with a cosine schedule, seeds 0 and 1.

Usage: python benchmarks/convergence.py [--models lenet300_100 lenet5] [--seeds 0 1]
(one thread; about 6 minutes for both models and two seeds on this project's 2-core machine).
"""
from __future__ import annotations

import argparse
import platform
import time

import torch

from dstlib.book.evidence import CONVERGED_EPOCHS
from dstlib.config import RunSpec
from dstlib.train import Trainer


def final_accuracy(model: str, epochs: int, seed: int) -> tuple[float, float]:
    spec = RunSpec(model=model, epochs=epochs, batch_size=128, lr=0.05, seed=seed)
    trainer, t0 = Trainer(spec), time.perf_counter()
    while not trainer.done:
        trainer.train_epoch()
    return trainer.history[-1]["test_acc"], time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=["lenet300_100", "lenet5"])
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1])
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread, {platform.machine()}")
    print("| model | seed | E | clean accuracy after E | after 3E | difference (pp) | seconds (E, 3E) |")
    print("|---|---|---|---|---|---|---|")
    for model in args.models:
        e = CONVERGED_EPOCHS[(model, "fashion_mnist", ())]
        for seed in args.seeds:
            a, ta = final_accuracy(model, e, seed)
            b, tb = final_accuracy(model, 3 * e, seed)
            print(f"| `{model}` | {seed} | {e} | {100 * a:.2f}% | {100 * b:.2f}% | {100 * (b - a):+.2f} | "
                  f"{ta:.0f}, {tb:.0f} |", flush=True)


if __name__ == "__main__":
    main()

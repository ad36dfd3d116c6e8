"""Sanity on the real data: dense mlp and cnn on all of Fashion-MNIST.

Prints test accuracy after each epoch and the seconds per epoch; the README's
table comes from this script. Usage: python benchmarks/sanity.py [--epochs-mlp 3 --epochs-cnn 5]
"""
from __future__ import annotations

import argparse
import platform

import torch

from dstlib.config import RunSpec
from dstlib.train import Trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs-mlp", type=int, default=3)
    parser.add_argument("--epochs-cnn", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    print("| model | parameters | epochs | test accuracy per epoch | seconds per epoch |")
    print("|---|---|---|---|---|")
    for model, epochs in (("mlp", args.epochs_mlp), ("cnn", args.epochs_cnn)):
        spec = RunSpec(model=model, epochs=epochs, batch_size=128, lr=0.05)
        t = Trainer(spec, device=args.device)
        while not t.done:
            t.train_epoch(progress=True)
        n = sum(p.numel() for p in t.model.parameters())
        accs = ", ".join(f"{r['test_acc']:.1%}" for r in t.history)
        secs = sum(r["seconds"] for r in t.history) / len(t.history)
        print(f"| `{model}` | {n / 1e6:.2f} M | {epochs} | {accs} | {secs:.0f} |", flush=True)


if __name__ == "__main__":
    main()

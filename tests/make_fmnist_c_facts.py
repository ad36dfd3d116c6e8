"""Derive tests/data/fmnist_c_published.json from the published Fashion-MNIST-C sample.

The published repository (testingautomated-usi/fashion-mnist-c) commits the first
100 corrupted train and test images as raw IDX files (generated/dummy/
fmnist-c-{train,test}-ubyte.gz; not gzipped despite the name). This script compares
each with its clean Fashion-MNIST source through the test oracles
(tests/_fmnist_c_refs.py, which need scikit-image, OpenCV and, for motion blur, Wand
with ImageMagick) and records facts only, never the images:

- `sha256`: the first 16 hex digits of SHA-256 over the image's 784 bytes;
- `corruption`: the generator key it was identified as (deterministic ones and shear
  or rotation by byte equality, with `sign`; motion blur by byte equality at some
  angle: `angles`, the range of matching angles on a 0.05-degree grid, ImageMagick
  6.9.11 Q16; shot noise: only 0, 85, 170, 255 and zeros kept; impulse noise: every
  pixel kept or 0 or 255; glass blur: the rest);
- shot noise: `counts` of 0, 85, 170, 255 (all pixels);
- impulse noise: `to0` / `not0` (pixels set to 0 / pixels not 0 in the clean image)
  and `to255` / `not255`;
- glass blur: `hv`, the mean absolute horizontal and vertical neighbour differences.

    python tests/make_fmnist_c_facts.py PATH/TO/generated/dummy [--out tests/data/fmnist_c_published.json]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _fmnist_c_refs as R  # noqa: E402


def sha(img: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(img, dtype=np.uint8).tobytes()).hexdigest()[:16]


def directional(img: np.ndarray) -> list[float]:
    y = img.astype(np.float64)
    return [round(float(np.abs(np.diff(y, axis=1)).mean()), 4), round(float(np.abs(np.diff(y, axis=0)).mean()), 4)]


def identify(x: np.ndarray, y: np.ndarray) -> dict:
    for key, f in R.DETERMINISTIC.items():
        if np.array_equal(R.as_saved(f(x)), y):
            return {"corruption": key}
    for key, f in R.SIGNED.items():
        for sign in (-1, 1):
            if np.array_equal(R.as_saved(f(x, sign)), y):
                return {"corruption": key, "sign": sign}
    if set(np.unique(y).tolist()) <= {0, 85, 170, 255} and np.all(y[x == 0] == 0):
        return {"corruption": "shot_noise", "counts": [int((y == v).sum()) for v in (0, 85, 170, 255)]}
    if np.all((y == x) | (y == 0) | (y == 255)):
        return {"corruption": "impulse_noise", "to0": int(((y == 0) & (x != 0)).sum()), "not0": int((x != 0).sum()),
                "to255": int(((y == 255) & (x != 255)).sum()), "not255": int((x != 255).sum())}
    angles = [a for a in np.arange(-45, 45, 0.05) + 0.025 if np.array_equal(R.as_saved(R.motion_blur(x, a)), y)]
    if angles:
        return {"corruption": "motion_blur", "angles": [round(float(min(angles)), 3), round(float(max(angles)), 3)]}
    return {"corruption": "glass_blur", "hv": directional(y)}


def main() -> int:
    from dstlib import data
    from dstlib.data.fashion_mnist import read_idx

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dummy", help="folder holding fmnist-c-{train,test}-ubyte.gz (the published first 100)")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "data" / "fmnist_c_published.json"))
    args = parser.parse_args()
    facts = []
    for split in ("test", "train"):
        clean = data.load("fashion_mnist", split).images[:100, 0].numpy()
        published = read_idx(Path(args.dummy) / f"fmnist-c-{split}-ubyte.gz")
        for i in range(len(published)):
            facts.append({"split": split, "index": i, "sha256": sha(published[i]), **identify(clean[i], published[i])})
            print(split, i, facts[-1]["corruption"], flush=True)
    head = {"source": "testingautomated-usi/fashion-mnist-c, generated/dummy (first 100 of each split)",
            "clean": "Fashion-MNIST (train-images-idx3-ubyte, t10k-images-idx3-ubyte)"}
    lines = ",\n".join("  " + json.dumps(f) for f in facts)  # one image per line
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(head, indent=1)[:-2] + ',\n "images": [\n' + lines + "\n ]\n}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

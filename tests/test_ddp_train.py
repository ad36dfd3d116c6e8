"""One run on two processes: `torchrun --nproc_per_node=2 -m dstlib train` with gloo on the CPU, end to end."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import _paper_data
from dstlib.config import RunSpec
from dstlib.store import Store

REPO = Path(__file__).resolve().parents[1]


def torchrun(args: list[str], env: dict) -> dict:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "dstlib", "train", *args, "--json"]
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    lines = [json.loads(x) for x in out.stdout.splitlines() if x.startswith("{")]
    assert len(lines) == 1, out.stdout  # rank 0 alone prints
    return lines[0]


@pytest.mark.timeout(600)
def test_torchrun_trains_one_run_from_an_image_folder_into_the_single_process_entry(tmp_path):
    data = tmp_path / "data"
    _paper_data.imagenet(data, classes_with_images=4, n_train_per_class=4, n_val_per_class=2)
    env = {**os.environ, "DSTLIB_DATA": str(data), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    spec = RunSpec(model="cnn", widths=(4, 8), dataset="imagenet", epochs=2, batch_size=8, lr=0.05,
                   augmentation="rrc_flip", method="rigl", sparsity=0.5, update_interval=1)
    args = ["--model", "cnn", "--widths", "4", "8", "--dataset", "imagenet", "--epochs", "2", "--batch-size", "8",
            "--lr", "0.05", "--augmentation", "rrc_flip", "--method", "rigl", "--sparsity", "0.5",
            "--update-interval", "1", "--store", str(tmp_path / "runs"), "--workers", "1"]
    out = torchrun(args, env)
    assert out["processes"] == 2 and out["trained"] and out["id"] == spec.short_id()
    assert out["test_images"] == 8 and out["epochs"] == 2  # every test image counted once over the ranks
    run = Store(tmp_path / "runs").run(spec, train=False)  # loads here, in one process, on the CPU
    from dstlib.book import evidence
    assert run.history[-1]["updates"] == evidence.planned_updates(spec, 16) == 3  # RigL stops at 75% of 4 steps
    assert set(run.masks) == {"features.0.weight", "features.3.weight",
                                                                    "features.7.weight", "features.10.weight"}
    assert run.model()(torch.zeros(1, 3, 224, 224)).shape == (1, 1000)


@pytest.mark.timeout(600)
def test_two_processes_train_in_memory_as_one_does(tmp_path):
    # no BatchNorm and equal shares: the mean of the ranks' gradients is the global batch's, so the weights
    # agree with a single process's up to float rounding (in-memory: every rank builds the global batch)
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    env.pop("DSTLIB_DATA", None)
    spec = RunSpec(model="mlp", widths=(32,), epochs=2, batch_size=64, train_subset=512, lr=0.05,
                   method="set", sparsity=0.5, update_interval=3, mixup=0.2, monitor_size=500)
    args = ["--model", "mlp", "--widths", "32", "--epochs", "2", "--batch-size", "64", "--train-subset", "512",
            "--lr", "0.05", "--method", "set", "--sparsity", "0.5", "--update-interval", "3", "--mixup", "0.2",
            "--monitor-size", "500", "--store", str(tmp_path / "two")]
    out = torchrun(args, env)
    assert out["id"] == spec.short_id()
    two = Store(tmp_path / "two").run(spec, train=False)
    one = Store(tmp_path / "one").run(spec, progress=False)
    a, b = one.model().state_dict(), two.model().state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    assert all(torch.equal(one.masks[k], two.masks[k]) for k in one.masks)
    assert [r["train_loss"] for r in one.history] == pytest.approx([r["train_loss"] for r in two.history], rel=1e-5)

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

from dstlib.config import RunSpec

REPO = Path(__file__).resolve().parents[1]


def cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "dstlib", *args], cwd=REPO, capture_output=True, text=True, **kw)


def test_train_help_documents_every_spec_field():
    out = cli("train", "--help").stdout
    for f in dataclasses.fields(RunSpec):
        assert "--" + f.name.replace("_", "-") in out
    for flag in ("--store", "--device", "--no-train"):
        assert flag in out


def test_train_prints_id_folder_and_accuracy(tmp_path):
    args = ("train", "--model", "mlp", "--widths", "32", "--epochs", "1", "--train-subset", "256",
            "--seed", "0", "--store", str(tmp_path))
    first = cli(*args)
    assert first.returncode == 0, first.stderr
    spec = RunSpec(model="mlp", widths=(32,), epochs=1, train_subset=256)
    assert f"run {spec.short_id()} (trained)" in first.stdout and str(tmp_path / spec.short_id()) in first.stdout
    assert "test accuracy" in first.stdout
    again = json.loads(cli(*args, "--json").stdout)
    assert again["trained"] is False and again["id"] == spec.short_id() and 0 < again["test_acc"] <= 1


def test_bad_input_is_one_line_before_any_compute(tmp_path):
    for args, expected in [
        (("--method", "foo"), "error: method='foo' is invalid; allowed: dense, static, set"),
        (("--model", "resnt50"), "error: model='resnt50' is unknown; valid: cnn, cnn3d, i3d_r50, lenet300_100"),
        (("--sparsity", "1.5", "--method", "set"), "error: sparsity=1.5 is invalid; allowed: [0, 1)"),
    ]:
        r = cli("train", "--store", str(tmp_path), *args)
        assert r.returncode == 2 and r.stderr.strip() == expected + r.stderr.strip()[len(expected):]
        assert len(r.stderr.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())

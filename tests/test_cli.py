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


def test_a_damaged_stored_run_is_an_error_not_a_loaded_run(tmp_path):
    args = ("train", "--model", "mlp", "--widths", "8", "--epochs", "1", "--train-subset", "128",
            "--monitor-size", "64", "--store", str(tmp_path))
    first = cli(*args)
    assert first.returncode == 0 and "test accuracy" in first.stdout and "(first 64 test images)" in first.stdout
    weights = next(tmp_path.glob("*/weights.safetensors"))
    weights.write_bytes(weights.read_bytes()[:100])  # truncated
    again = cli(*args)
    assert again.returncode == 2 and "loaded" not in again.stdout
    assert again.stderr.startswith("error: ") and "weights.safetensors: missing or damaged" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1


def test_files_and_counts_a_user_can_get_wrong_are_one_line_errors(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    for args, expected in [
        (("train", "--store", str(afile)), f"error: store='{afile}' is a file; allowed: a folder"),
        (("corrupt", "--out", str(afile)), f"error: --out='{afile}' is a file; allowed: a folder"),
        (("corrupt", "--out", str(tmp_path / "o"), "--limit", "-5"), "error: --limit=-5 is invalid; allowed: a positive"),
        (("corrupt", "--out", str(tmp_path / "o"), "--limit", "five"), "error: --limit='five' is invalid; allowed: an int"),
    ]:
        r = cli(*args)
        assert r.returncode == 2 and r.stderr.startswith(expected), (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1

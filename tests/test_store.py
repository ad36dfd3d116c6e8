import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dstlib.config import RunSpec
from dstlib.store import DamagedRunError, MissingRunError, Store

REPO = Path(__file__).resolve().parents[1]


def same_weights(a, b):
    sa, sb = a.model().state_dict(), b.model().state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_finished_run_is_loaded_not_trained_again(tmp_path, tiny_spec):
    store = Store(tmp_path)
    first = store.run(tiny_spec, progress=False)
    assert first.trained_now and first.id == tiny_spec.hash()[:16] and len(first.history) == 3
    stamp = (first.path / "weights.safetensors").stat().st_mtime_ns
    second = store.run(tiny_spec, progress=False)
    assert not second.trained_now and (first.path / "weights.safetensors").stat().st_mtime_ns == stamp
    assert same_weights(first, second) and second.history == first.history
    assert not list(first.path.glob("checkpoint*")) and not list(first.path.rglob("*.tmp"))
    assert [r.id for r in store.runs()] == [first.id]
    with pytest.raises(MissingRunError, match="training is off"):
        store.run(tiny_spec.replace(seed=5), train=False)


@pytest.mark.parametrize("method", ["dense", "rigl"])
def test_resume_after_kill_gives_the_uninterrupted_result(tmp_path, method):
    spec = RunSpec(model="mlp", widths=(256,), epochs=8, batch_size=64, train_subset=4096, lr=0.05,
                   method=method, sparsity=0.7, update_interval=10, snapshots=(2, 8))
    code = (f"from dstlib.config import RunSpec; from dstlib.store import Store; "
            f"Store({str(tmp_path / 'killed')!r}).run(RunSpec.from_dict({spec.to_dict()!r}), progress=False)")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO)
    ckpt = tmp_path / "killed" / spec.short_id() / "checkpoint.json"
    deadline = time.time() + 120
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (ckpt.parent / "manifest.json").exists(), "the run finished before it could be killed"
    resumed = Store(tmp_path / "killed").run(spec, progress=False)
    whole = Store(tmp_path / "whole").run(spec, progress=False)
    assert resumed.trained_now and same_weights(resumed, whole)
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in whole.history]
    assert resumed.snapshots == [2, 8]
    assert all(torch.equal(resumed.masks[k], whole.masks[k]) for k in whole.masks)


def test_snapshots_change_neither_hash_nor_result(tmp_path, tiny_spec):
    with_snaps = tiny_spec.replace(snapshots=(1, 3))
    assert with_snaps.hash() == tiny_spec.hash()
    a = Store(tmp_path / "a").run(with_snaps, progress=False)
    b = Store(tmp_path / "b").run(tiny_spec, progress=False)
    assert same_weights(a, b) and a.snapshots == [1, 3] and b.snapshots == []
    final, _ = a.snapshot(3)
    assert all(torch.equal(v, a.model().state_dict()[k]) for k, v in final.state_dict().items())
    first, _ = a.snapshot(1)
    assert not torch.equal(first.state_dict()["classifier.weight"], final.state_dict()["classifier.weight"])
    with pytest.raises(ValueError, match="epoch=2 has no snapshot"):
        a.snapshot(2)
    with pytest.raises(ValueError, match=r"asks for epochs \[2\] that run .* allowed: Store.run\(spec\) with training on"):
        Store(tmp_path / "a").load(tiny_spec.replace(snapshots=(2,)))


def test_snapshots_are_added_to_a_finished_run_not_refused_nor_stored_twice(tmp_path, tiny_spec):
    store = Store(tmp_path)
    first = store.run(tiny_spec.replace(snapshots=(3,)), progress=False)  # one section trains it first
    stamps = {n: (first.path / n).stat().st_mtime_ns for n in ("weights.safetensors", "masks.safetensors",
                                                                "history.json", "snapshots/epoch_3.safetensors")}
    wanted = tiny_spec.replace(snapshots=(1, 2))  # the spectral section then asks for others
    assert store.missing_snapshots(wanted) == [1, 2]
    again = store.run(wanted, progress=False)
    assert again.trained_now and again.id == first.id and [r.id for r in store.runs()] == [first.id]
    assert again.snapshots == [1, 2, 3] and again.spec.snapshots == (1, 2, 3) and store.missing_snapshots(wanted) == []
    assert stamps == {n: (first.path / n).stat().st_mtime_ns for n in stamps}  # the stored result is untouched
    reference = Store(tmp_path / "ref").run(tiny_spec.replace(snapshots=(1, 2, 3)), progress=False)
    for e in (1, 2, 3):  # the replay's snapshots are the uninterrupted run's
        a, b = again.snapshot(e)[0].state_dict(), reference.snapshot(e)[0].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), e
    added = json.loads((first.path / "snapshots" / "added.json").read_text())
    assert added == [{"epochs": [1, 2], "exact": True, "device": "cpu"}]
    assert not (first.path / "replay").exists()
    store.verify(wanted)
    assert not store.run(wanted, progress=False).trained_now


def test_an_interrupted_replay_resumes_to_the_same_snapshots(tmp_path, tiny_spec, monkeypatch):
    from dstlib.train import Trainer
    store = Store(tmp_path)
    run = store.run(tiny_spec, progress=False)
    replay = tiny_spec.replace(snapshots=(1, 3))
    real, calls = Trainer.train_epoch, {"n": 0}

    def killed_in_epoch_2(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(Trainer, "train_epoch", killed_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        store.run(replay, progress=False)
    monkeypatch.setattr(Trainer, "train_epoch", real)
    assert (run.path / "replay" / "checkpoint.json").is_file() and (run.path / "snapshots/epoch_1.safetensors").is_file()
    assert run.snapshots == [] and store.missing_snapshots(replay) == [1, 3]  # not listed until the replay ends
    done = store.run(replay, progress=False)
    reference = Store(tmp_path / "ref").run(replay, progress=False)
    assert done.snapshots == [1, 3] and not (run.path / "replay").exists()
    for e in (1, 3):
        a, b = done.snapshot(e)[0].state_dict(), reference.snapshot(e)[0].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), e


@pytest.mark.parametrize("name", ["weights.safetensors", "history.json", "masks.safetensors", "spec.json"])
def test_damaged_or_truncated_files_are_reported(tmp_path, tiny_spec, name):
    store = Store(tmp_path)
    path = store.run(tiny_spec, progress=False).path / name

    def use():
        run = store.run(tiny_spec, progress=False)
        run.model(), run.masks

    raw = path.read_bytes()
    path.write_bytes(raw[:10] + bytes([raw[10] ^ 0xFF]) + raw[11:])  # one flipped byte
    with pytest.raises(DamagedRunError, match=f"{name}: missing or damaged"):
        use()
    path.write_bytes(raw[: len(raw) // 3])  # truncated
    with pytest.raises(DamagedRunError, match=f"{name}: missing or damaged"):
        use()
    path.write_bytes(raw)
    use()


def test_damaged_checkpoint_is_reported_not_loaded(tmp_path, tiny_spec, monkeypatch):
    from dstlib import train

    calls = {"n": 0}
    real = train.Trainer.train_epoch

    def crash_in_epoch_2(self, progress=False, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(self, progress, **kwargs)

    monkeypatch.setattr(train.Trainer, "train_epoch", crash_in_epoch_2)
    store = Store(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        store.run(tiny_spec, progress=False)
    monkeypatch.setattr(train.Trainer, "train_epoch", real)
    ckpt = store.path(tiny_spec) / "checkpoint.safetensors"
    ckpt.write_bytes(ckpt.read_bytes()[:-10])
    with pytest.raises(DamagedRunError, match="checkpoint.safetensors: missing or damaged"):
        store.run(tiny_spec, progress=False)


def test_two_processes_train_a_run_once(tmp_path):
    args = [sys.executable, "-m", "dstlib", "train", "--model", "mlp", "--widths", "64", "--epochs", "3",
            "--train-subset", "2048", "--store", str(tmp_path), "--json"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
             for _ in range(2)]
    outs = [json.loads(p.communicate(timeout=300)[0].decode().strip().splitlines()[-1]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(o["trained"] for o in outs) == [False, True]
    assert outs[0]["id"] == outs[1]["id"] and outs[0]["test_acc"] == outs[1]["test_acc"]
    assert not list(tmp_path.rglob("*.tmp"))


def test_spec_json_must_match_the_folder(tmp_path, tiny_spec):
    store = Store(tmp_path)
    run = store.run(tiny_spec, progress=False)
    other = tiny_spec.replace(seed=9)
    os.rename(run.path, store.path(other))
    with pytest.raises(DamagedRunError, match="describes another run"):
        store.load(other)

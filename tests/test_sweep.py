"""`python -m dstlib sweep`: a section's missing runs trained here or through submitit, finished ones skipped,
failures reported and retried alone, the status, and the GPU-hours estimate."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from filelock import FileLock

from dstlib import cli
from dstlib.commands import sweep
from dstlib.config import RunSpec
from dstlib.store import Store

ROOT = Path(__file__).resolve().parents[1]


def params_file(tmp_path, name="overall.yaml", **changes) -> Path:
    p = yaml.safe_load((ROOT / "params/smoke/overall.yaml").read_text())
    p.update({"methods": ["set"], "train_subset": 128, "n_test": 16, "corruptions": ["fog"], "severities": [1],
              "store": str(tmp_path / "runs"), "results": str(tmp_path / "results"), **changes})
    path = tmp_path / name
    path.write_text(yaml.safe_dump(p))
    return path


def specs_of(path: Path):
    args = cli_args([str(path), "--status"])
    return [s for s, _, _ in sweep.runs_of(sweep.load_plans(args))]


def cli_args(argv):
    import argparse
    parser = argparse.ArgumentParser()
    sweep.add_arguments(parser)
    return parser.parse_args(argv)


def test_sweep_trains_the_missing_runs_then_skips_them(tmp_path, capsys):
    path = params_file(tmp_path)
    assert cli.main(["sweep", str(path)]) == 0
    out = capsys.readouterr().out
    assert "4 runs: 0 done, 0 running, 0 partial, 4 missing" in out and "4 runs: 4 done" in out
    store = Store(tmp_path / "runs")
    runs = [store.run(s, train=False) for s in specs_of(path)]
    assert all(list((r.path / "eval").glob("*.nc")) for r in runs)  # evaluated as the notebook's workers do
    stamps = [(r.path / "weights.safetensors").stat().st_mtime_ns for r in runs]
    assert cli.main(["sweep", str(path), "--status"]) == 0
    assert cli.main(["sweep", str(path)]) == 0
    assert "4 runs: 4 done" in capsys.readouterr().out
    assert stamps == [(r.path / "weights.safetensors").stat().st_mtime_ns for r in runs]


def test_a_failed_run_is_reported_and_retried_without_touching_the_others(tmp_path, capsys, monkeypatch):
    path = params_file(tmp_path, seeds=[0, 1], methods=["rigl"])
    bad = specs_of(path)[1].short_id()
    real, calls = sweep.job, {"n": 0}

    def flaky(spec, section, params, root, workers=None):
        if spec["seed"] == 0 and spec["method"] == "rigl":
            calls["n"] += 1
            if calls["n"] == 1:
                raise RuntimeError("out of memory (a stand-in)")
        return real(spec, section, params, root, workers)
    monkeypatch.setattr(sweep, "job", flaky)
    assert cli.main(["sweep", str(path)]) == 0
    captured = capsys.readouterr()
    assert f"run {bad} failed (attempt 1): RuntimeError: out of memory (a stand-in)" in captured.err
    assert "4 runs: 4 done" in captured.out and calls["n"] == 2

    monkeypatch.setattr(sweep, "job", lambda spec, *a: (_ for _ in ()).throw(ValueError("broken")) if spec["seed"] == 1
                        else real(spec, *a))
    path2 = params_file(tmp_path, "overall_other.yaml", seeds=[0, 1], methods=["set"], store=str(tmp_path / "runs2"))
    assert cli.main(["sweep", str(path2), "--retries", "0"]) == 1
    out = capsys.readouterr().out
    assert "4 runs: 2 done, 0 running, 0 partial, 2 missing" in out and out.count("failed ") == 2


def test_status_tells_running_and_partial_runs_apart(tmp_path, capsys):
    path = params_file(tmp_path)
    specs = specs_of(path)
    store = Store(tmp_path / "runs")
    for s in specs[:2]:
        store.path(s).mkdir(parents=True)
    (store.path(specs[1]) / "checkpoint.json").write_text("{}")
    with FileLock(str(store.path(specs[0]) / ".lock")):
        assert store.is_running(specs[0]) and not store.is_running(specs[1])
        assert cli.main(["sweep", str(path), "--status"]) == 1
    assert "4 runs: 0 done, 1 running, 1 partial, 2 missing" in capsys.readouterr().out


@pytest.mark.timeout(300)
def test_submitit_local_executor_trains_a_job_array(tmp_path, capsys):
    pytest.importorskip("submitit")
    path = params_file(tmp_path, seeds=[0, 1], methods=["set"], train_subset=64)
    for spec in specs_of(path)[:3]:  # one job left for the array (each job is a fresh interpreter)
        Store(tmp_path / "runs").run(spec, progress=False)
    env_path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), env_path])  # the jobs import this dstlib
    try:
        assert cli.main(["sweep", str(path), "--executor", "local", "--timeout-min", "5"]) == 0
    finally:
        os.environ["PYTHONPATH"] = env_path
    out = capsys.readouterr().out
    assert "4 runs: 3 done, 0 running, 0 partial, 1 missing" in out
    assert "submitted 1 job(s) to local" in out and "4 runs: 4 done" in out


def test_the_estimate_is_the_flops_rule_at_the_stated_throughput(tmp_path, capsys, monkeypatch):
    from dstlib import flops, models
    monkeypatch.setenv("DSTLIB_DATA", str(tmp_path / "no-data"))  # planned without the data at hand
    assert cli.main(["sweep", str(ROOT / "params/paper/spatial.yaml"), "--estimate"]) == 0
    out = capsys.readouterr().out
    row = [x for x in out.splitlines() if x.startswith("| spatial")][0].split("|")
    dense = flops.count(models.create("resnet34", "cifar100"), (3, 32, 32))["dense_flops"]
    hours = 15 * 3 * dense * 50_000 * 160 / sweep.GPU_FLOPS_PER_S / 3600
    assert float(row[5]) == pytest.approx(hours, abs=0.06) and row[4].strip() == "15 (15)"
    assert "60.6 TFLOP/s for dense layers" in out
    assert cli.main(["sweep", str(ROOT / "params/paper/video.yaml"), "--estimate"]) == 0  # clips: (C, T, H, W)
    row = [x for x in capsys.readouterr().out.splitlines() if x.startswith("| video")][0].split("|")
    net = models.create("slow_r50", "ucf101")
    clip = flops.count(net, (3, 8, 224, 224))["dense_flops"]
    assert float(row[5]) == pytest.approx(12 * 3 * clip * sweep.TRAIN_IMAGES["ucf101"] * 80 / sweep.GPU_FLOPS_PER_S
                                          / 3600, abs=0.06)


def test_section_comes_from_the_file_name():
    assert sweep.section_of(Path("params/paper/variants/corruptions_deit.yaml"), None) == "corruptions"
    assert sweep.section_of(Path("x/spectral.yaml"), None) == "spectral"
    with pytest.raises(ValueError, match=r"names no section; allowed: <section>.yaml"):
        sweep.section_of(Path("x/mine.yaml"), None)
    with pytest.raises(ValueError, match=r"^--section='x' is invalid; allowed: overall"):
        sweep.section_of(Path("x/mine.yaml"), "x")


def test_a_finished_run_lacking_the_plans_snapshots_counts_as_missing_until_they_are_added(tmp_path, tiny_spec):
    store = Store(tmp_path)
    store.run(tiny_spec, progress=False)
    wanted = tiny_spec.replace(snapshots=(2,))
    assert sweep.state(store, tiny_spec) == "done" and sweep.state(store, wanted) == "missing"
    with FileLock(str(store.path(wanted) / ".lock")):
        assert sweep.state(store, wanted) == "running"
    store.run(wanted, progress=False)
    assert sweep.state(store, wanted) == "done" and store.run(wanted, train=False).snapshots == [2]


def test_a_run_another_process_trains_is_left_to_the_end(tmp_path, monkeypatch):
    import threading
    path = params_file(tmp_path, methods=["set"])
    specs = specs_of(path)
    first = specs[0].short_id()
    store = Store(tmp_path / "runs")
    store.path(specs[0]).mkdir(parents=True)
    held, release = threading.Event(), threading.Event()

    def other_process():  # another sweep holds the first run's lock (training it) until this one did the others
        with FileLock(str(store.path(specs[0]) / ".lock")):
            held.set()
            release.wait(120)

    order, real = [], sweep.job

    def recorded(spec, *a):
        if len(order) == len(specs) - 1:
            release.set()
        order.append(RunSpec.from_dict(spec).short_id())
        return real(spec, *a)

    t = threading.Thread(target=other_process)
    real_here = sweep._run_here

    def another_sweep_starts_first(todo, root, args):  # after this sweep chose its runs
        t.start()
        assert held.wait(30)
        return real_here(todo, root, args)

    monkeypatch.setattr(sweep, "job", recorded)
    monkeypatch.setattr(sweep, "_run_here", another_sweep_starts_first)
    try:
        assert cli.main(["sweep", str(path)]) == 0
    finally:
        release.set()
        if t.ident is not None:
            t.join()
    assert order[-1] == first and sorted(order) == sorted(s.short_id() for s in specs)


def test_commands_train_each_missing_run_into_its_store_entry(tmp_path, capsys, monkeypatch):
    import argparse
    import shlex

    from dstlib.commands import train
    monkeypatch.setenv("DSTLIB_DATA", str(tmp_path / "no-data"))  # printed without the data at hand
    files = [str(ROOT / "params/paper/spectral.yaml"), str(ROOT / "params/paper/variants/corruptions_deit.yaml")]
    assert cli.main(["sweep", *files, "--store", str(tmp_path / "runs"), "--commands",
                     "torchrun --nproc_per_node=4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    specs = [s for s, _, _ in sweep.runs_of(sweep.load_plans(cli_args([*files, "--status"])))]
    assert len(lines) == len(specs) == 15 + 12
    parser = argparse.ArgumentParser()
    train.add_arguments(parser)
    for line, spec in zip(lines, specs):
        words = shlex.split(line)
        assert words[:5] == ["torchrun", "--nproc_per_node=4", "-m", "dstlib", "train"]
        args = parser.parse_args(words[5:])
        back = train.spec_from_args(args)
        assert back.hash() == spec.hash() and back.snapshots == spec.snapshots and back == spec
        assert args.store == str(tmp_path / "runs") and args.device == "cuda"

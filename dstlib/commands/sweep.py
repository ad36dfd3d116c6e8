"""`python -m dstlib sweep PARAMS.yaml ...`: train the runs of book sections that the store lacks.

Each file is a section's parameters (`params/<profile>/<section>.yaml`, or a variant named
`<section>_<name>.yaml`); its runs are the ones the section's notebook would train
(`dstlib.book.plan`, recipes and spectral snapshots included), deduplicated over the files. Each
run is trained and evaluated as the notebook's worker would do it (`dstlib.book.measure.prepare`),
so the notebooks then only load.

Executors:

- `here` (default): one run after another in this process;
- `slurm`: a Slurm job array through submitit, one job per run; `--gpus-per-job N` makes each job
  N tasks on one node that train the run together (DistributedDataParallel, as torchrun);
- `local`: submitit's local executor (subprocesses on this machine; what the tests use).

The Slurm executor and multi-GPU jobs are written against submitit's documented interface but have not
been run by this project (no cluster here); `local` runs the same job function through the same array
submission.

Finished runs are skipped; a run another process is training is left alone, and one that another
process starts while this sweep goes is put back to the end of its queue (then waited for and loaded),
so one `sweep` per GPU over the same files shares the work. A failed run is reported and retried
(`--retries`) without touching the others. Before and after, the command prints what is done, running,
partial (a checkpoint to resume) and missing; it exits 1 when runs are still missing. `--status` prints
only that; `--commands [LAUNCHER]` prints the `dstlib train` command line of each missing run
(`train_command`), e.g. to train each on 4 GPUs with torchrun; `--estimate` prints the GPU-hours and the disk the
missing runs need (`estimate`), from `dstlib.flops` and the stated throughput.
"""
from __future__ import annotations

import argparse
import functools
import importlib
import os
import sys
import traceback
from pathlib import Path
from typing import Any

HELP = "train the runs of book sections (params/<profile>/<section>.yaml) that the store lacks, here or on Slurm"
EXECUTORS = ("here", "local", "slurm")

#: Effective training throughput of one NVIDIA A100 with mixed precision, in FLOPs per second as `dstlib.flops`
#: counts them (2 per multiply-add, 3 x the forward pass per image), from NVIDIA's published training throughput
#: (DeepLearningExamples, PyTorch, 1 x A100 80GB, AMP): ResNet-50 at 2,470 images/s (3 x 8.18 GFLOPs) gives
#: the rate of dense convolutions and linear layers; EfficientNet-B0 at 2,489 images/s (0.703 dense and 0.069
#: depthwise GFLOPs) then leaves 367 us per image for its depthwise convolutions (and the squeeze-excite,
#: activations and normalisation around them): their rate. Batches of 100-128 images of 32 or 64 px fill a GPU
#: less than 256 ImageNet images do, so for CIFAR and Tiny-ImageNet these hours are a lower bound.
GPU_FLOPS_PER_S = 60.6e12
GPU_GROUPED_FLOPS_PER_S = 0.565e12
#: Training images per dataset, for estimates without the data at hand.
TRAIN_IMAGES = {"fashion_mnist": 60_000, "cifar10": 50_000, "cifar100": 50_000, "tiny_imagenet": 100_000,
                "imagenet": 1_281_167, "ucf101": 9_537}  # UCF101: clips of split 1
TEST_IMAGES = {"fashion_mnist": 10_000, "cifar10": 10_000, "cifar100": 10_000, "tiny_imagenet": 10_000,
               "imagenet": 50_000, "ucf101": 3_783}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("params", nargs="+", help="section parameter files (YAML), e.g. params/paper/overall.yaml")
    parser.add_argument("--section", default=None, help="the section of every file (default: from the file name)")
    parser.add_argument("--store", default=None, help="run store (default: the files' store, $DSTLIB_STORE or runs/)")
    parser.add_argument("--executor", choices=EXECUTORS, default="here", help="where the runs train")
    parser.add_argument("--status", action="store_true", help="only print what is done, running and missing")
    parser.add_argument("--estimate", action="store_true",
                        help="only print the GPU-hours and disk the missing runs need (stated throughput)")
    parser.add_argument("--retries", type=int, default=1, help="times a failed run is tried again")
    parser.add_argument("--device", default=None, help="torch device of the runs (default: the files' device)")
    parser.add_argument("--gpus-per-job", type=int, default=1,
                        help="Slurm: GPUs (and tasks) per job; above 1 a job trains its run with DDP")
    parser.add_argument("--cpus-per-gpu", type=int, default=8, help="Slurm: CPU cores per GPU (image decoding)")
    parser.add_argument("--timeout-min", type=int, default=24 * 60, help="Slurm: time limit per job, minutes")
    parser.add_argument("--partition", default=None, help="Slurm partition")
    parser.add_argument("--parallel", type=int, default=32, help="Slurm: jobs of the array running at once")
    parser.add_argument("--logs", default=None, help="submitit's job folder (default: <store>/_sweep)")
    parser.add_argument("--workers", type=int, default=None, help="decoding processes per training process")
    parser.add_argument("--no-wait", action="store_true", help="Slurm: submit and return (no retries)")
    parser.add_argument("--commands", nargs="?", const="python", default=None, metavar="LAUNCHER",
                        help="only print one `LAUNCHER -m dstlib train ...` line per missing run (default "
                             "LAUNCHER: python; e.g. 'torchrun --nproc_per_node=4'), to run them yourself")


# --- the runs of the files ------------------------------------------------------------------------
def section_of(path: Path, given: str | None) -> str:
    from dstlib import config
    if given is not None:
        config.check_choice("--section", given, config.SECTIONS)
        return given
    stem = path.stem
    for cand in (stem, stem.split("_")[0], stem.split("+")[0]):
        if cand in config.SECTIONS:
            return cand
    raise ValueError(f"{path}: the file name names no section; allowed: <section>.yaml, <section>_<name>.yaml "
                     f"or --section (one of {', '.join(config.SECTIONS)})")


def load_plans(args) -> list[tuple[str, dict, list]]:
    """(section, parameters, run specs) per file, checked before any compute (a profile's recipes.yaml among the
    files is skipped). Training here checks the data and the device as the notebooks do; a Slurm sweep is
    planned on a machine that may have neither GPU nor data (the jobs check them), and so are --status and
    --estimate."""
    import yaml

    from dstlib import book, config, models
    from dstlib.book import params as book_params
    plan_mod = importlib.import_module("dstlib.book.plan")  # the package's `plan` is the function
    out = []
    for name in args.params:
        path = Path(name)
        if path.name == "recipes.yaml":
            continue
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such parameter file")
        section = section_of(path, args.section)
        raw = yaml.safe_load(path.read_text()) or {}
        if not isinstance(raw, dict):
            raise ValueError(f"{path}: expected a mapping of parameters, got {type(raw).__name__}")
        if args.store:
            raw["store"] = args.store
        if args.device:
            raw["device"] = args.device
        if args.executor == "here" and not (args.status or args.estimate or args.commands is not None):
            p = book.validate(section, raw)
            specs = book.plan(section, p, verbose=False).specs
        else:
            p = config.check_notebook_params(section, raw)
            models.check_name(p["model"])
            book_params.profile_recipes(p["profile"])
            specs = plan_mod.specs(section, dict(p, _snapshots=plan_mod.snapshot_rule(section, p)))
        out.append((section, p, specs))
    if not out:
        raise ValueError("no section parameter file given; allowed: params/<profile>/<section>.yaml ...")
    return out


def runs_of(plans) -> list[tuple[Any, str, dict]]:
    """(spec, section, parameters) of every run, once (the first section that asks for it)."""
    seen: dict[str, int] = {}
    out: list[tuple[Any, str, dict]] = []
    for section, p, specs in plans:
        for spec in specs:
            k = spec.short_id()
            if k in seen:
                prev = out[seen[k]]
                if set(spec.snapshots) - set(prev[0].snapshots):  # plans agree; never lose a snapshot
                    out[seen[k]] = (prev[0].replace(snapshots=sorted(set(prev[0].snapshots) | set(spec.snapshots))),
                                    prev[1], prev[2])
                continue
            seen[k] = len(out)
            out.append((spec, section, {k2: v for k2, v in p.items() if not k2.startswith("_")}))
    return out


def state(store, spec) -> str:
    """done, running (another process holds its lock), partial (a checkpoint to resume) or missing (a finished
    run that lacks snapshots this plan keeps is missing them: the store adds them, `dstlib.store`)."""
    if store.is_finished(spec) and not store.missing_snapshots(spec):
        return "done"
    if store.is_running(spec):
        return "running"
    if (store.path(spec) / "checkpoint.json").is_file() or (store.path(spec) / "replay" / "checkpoint.json").is_file():
        return "partial"
    return "missing"


def report(store, runs, failed: dict[str, str] | None = None) -> dict[str, int]:
    counts = {"done": 0, "running": 0, "partial": 0, "missing": 0}
    for spec, _, _ in runs:
        counts[state(store, spec)] += 1
    print(f"{store.root}: {len(runs)} runs: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    for rid, err in (failed or {}).items():
        print(f"  failed {rid}: {err}")
    return counts


def train_command(spec, launcher: str = "python", store: str | None = None, device: str | None = None) -> str:
    """The `dstlib train` command line that trains `spec` into the same store entry (every field that differs
    from RunSpec's default, as `dstlib.commands.train`'s flags read it; snapshots included)."""
    import shlex

    from dstlib.config import RunSpec
    default, mine = RunSpec().to_dict(), spec.to_dict()
    words = [*shlex.split(launcher), "-m", "dstlib", "train"]
    for name, value in mine.items():
        if value == default[name]:
            continue
        words.append("--" + name.replace("_", "-"))
        if isinstance(value, (list, tuple)):
            words += [str(v) for v in value]
        elif value is None:
            words.append("none")
        elif isinstance(value, bool):
            words.append("true" if value else "false")
        else:
            words.append(str(value))
    if store:
        words += ["--store", store]
    if device:
        words += ["--device", device]
    return shlex.join(words)


# --- one job ------------------------------------------------------------------------------------------
def job(spec_dict: dict, section: str, params: dict, root: str, workers: int | None = None) -> str:
    """Train (or resume) one run and compute its per-run results for `section`; returns the run id. Under Slurm
    with several tasks, the tasks train it together (DDP); rank 0 evaluates."""
    from dstlib import distributed
    from dstlib.book import measure
    from dstlib.config import RunSpec
    from dstlib.store import Store

    if int(os.environ.get("SLURM_NTASKS", "1")) > 1 and "RANK" not in os.environ:
        import submitit
        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    device = distributed.init(params["device"])
    try:
        spec = RunSpec.from_dict(spec_dict)
        run = Store(root).run(spec, device=device, progress=False, workers=workers)
        if distributed.is_main():
            measure.prepare(section, params, run, Path(root))
        return run.id
    finally:
        distributed.close()


def _run_here(todo, root: str, args) -> dict[str, str]:
    """Train `todo` one after another; a run another process is training when its turn comes (another
    `sweep` on another GPU, say) is put back to the end, where its job only waits for it and loads it, so
    several sweeps over the same files share the runs instead of walking through them in step."""
    from dstlib.store import Store
    store = Store(root)
    failed: dict[str, str] = {}
    for attempt in range(args.retries + 1):
        retry = []
        queue = list(todo)
        deferred: set[str] = set()
        while queue:
            spec, section, p = queue.pop(0)
            if spec.short_id() not in deferred and state(store, spec) == "running" and queue:
                deferred.add(spec.short_id())
                queue.append((spec, section, p))
                continue
            try:
                job(spec.to_dict(), section, p, root, args.workers)
                failed.pop(spec.short_id(), None)
            except Exception as e:  # reported and retried; the other runs go on
                failed[spec.short_id()] = f"{type(e).__name__}: {e}".splitlines()[0]
                print(f"run {spec.short_id()} failed (attempt {attempt + 1}): {failed[spec.short_id()]}",
                      file=sys.stderr)
                if os.environ.get("DSTLIB_SWEEP_TRACEBACK"):
                    traceback.print_exc()
                retry.append((spec, section, p))
        todo = retry
        if not todo:
            break
    return failed


def _run_submitit(todo, root: str, args) -> dict[str, str]:
    try:
        import submitit
    except ImportError:
        raise ValueError("--executor slurm and local need submitit; allowed: pip install submitit, "
                         "or --executor here") from None
    folder = Path(args.logs or Path(root) / "_sweep")
    executor = submitit.AutoExecutor(folder=str(folder), cluster="local" if args.executor == "local" else "slurm")
    g = args.gpus_per_job
    params: dict[str, Any] = dict(timeout_min=args.timeout_min, name="dstlib-sweep")
    if args.executor == "slurm":
        params.update(slurm_array_parallelism=args.parallel, gpus_per_node=g, tasks_per_node=g,
                      cpus_per_task=args.cpus_per_gpu, nodes=1)
        if args.partition:
            params["slurm_partition"] = args.partition
    executor.update_parameters(**params)
    failed: dict[str, str] = {}
    for attempt in range(args.retries + 1):
        jobs = executor.map_array(job, [s.to_dict() for s, _, _ in todo], [sec for _, sec, _ in todo],
                                  [p for _, _, p in todo], [root] * len(todo), [args.workers] * len(todo))
        print(f"submitted {len(jobs)} job(s) to {args.executor} (logs: {folder})")
        if args.no_wait:
            return {}
        retry = []
        for (spec, section, p), j in zip(todo, jobs):
            try:
                j.result()
                failed.pop(spec.short_id(), None)
            except Exception as e:  # submitit's FailedJobError carries the job's traceback: keep its last line
                lines = [x for x in str(e).strip().splitlines() if x.strip()]
                failed[spec.short_id()] = lines[-1] if lines else type(e).__name__
                retry.append((spec, section, p))
        todo = retry
        if not todo:
            break
    return failed


def run(args) -> int:
    from dstlib.book import params as book_params
    from dstlib.store import Store

    if args.retries < 0 or args.gpus_per_job < 1 or args.parallel < 1 or args.timeout_min < 1:
        raise ValueError("--retries >= 0, --gpus-per-job >= 1, --parallel >= 1 and --timeout-min >= 1 are required")
    if args.gpus_per_job > 1 and args.executor != "slurm":
        raise ValueError(f"--gpus-per-job={args.gpus_per_job} is invalid with --executor {args.executor}; allowed: "
                         f"1, or --executor slurm (on one machine: torchrun -m dstlib train, book/reproducing.md)")
    plans = load_plans(args)
    runs = runs_of(plans)
    roots = {str(book_params.store_dir(p)) for _, p, _ in plans}
    if len(roots) != 1:
        raise ValueError(f"the files name different stores ({', '.join(sorted(roots))}); allowed: one, or --store")
    store = Store(roots.pop())
    if args.estimate:
        print_estimate(plans)
        return 0
    if args.commands is not None:
        for spec, _, p in runs:
            if state(store, spec) in ("missing", "partial"):
                print(train_command(spec, args.commands, str(store.root), p["device"]))
        return 0
    counts = report(store, runs)
    if args.status:
        return 0 if counts["done"] == len(runs) else 1
    todo = [r for r in runs if state(store, r[0]) in ("missing", "partial")]
    if todo:
        store.root.mkdir(parents=True, exist_ok=True)
        runner = _run_here if args.executor == "here" else _run_submitit
        failed = runner(todo, str(store.root), args)
        counts = report(store, runs, failed)
    return 0 if counts["done"] == len(runs) else 1


# --- what the runs cost on GPUs ------------------------------------------------------------------
def run_cost(spec, section: str, p: dict, n_train: int, n_test: int) -> dict[str, float]:
    """GPU-seconds to train and to evaluate one run, and the bytes of its snapshots and final weights.

    Training: 3 x the dense forward FLOPs per image (a masked layer costs a GPU its dense time) x images x
    epochs, at GPU_FLOPS_PER_S for dense layers and GPU_GROUPED_FLOPS_PER_S for grouped convolutions.
    Evaluation: the section's inference passes (`dstlib.book.plan`'s count) at a third of that per image.
    Disk: float32 weights and buffers plus one byte per masked weight, per kept snapshot and once at the end.
    """
    plan_mod = importlib.import_module("dstlib.book.plan")
    dense_f, grouped_f, weights, masked = _numbers(spec.model, spec.dataset, tuple(spec.widths), spec.stem,
                                                   spec.width_multiplier, spec.method == "dense",
                                                   tuple(spec.dense_layers), spec.dense_first_layer,
                                                   spec.sparse_classifier, tuple(spec.dense_patterns),
                                                   tuple(spec.dense_types))
    per_image = dense_f / GPU_FLOPS_PER_S + grouped_f / GPU_GROUPED_FLOPS_PER_S
    train = 3 * per_image * n_train * spec.epochs
    evaluate = per_image * plan_mod._eval_images(section, {**p, "epochs": spec.epochs}, n_test)
    return {"train_s": train, "eval_s": evaluate, "snapshot_bytes": len(spec.snapshots) * (weights + masked),
            "final_bytes": weights + masked}


@functools.lru_cache(maxsize=64)
def _numbers(model, dataset, widths, stem, width, dense, dense_layers, dense_first, sparse_classifier, patterns,
             types) -> tuple[float, float, int, int]:
    """(dense-layer FLOPs, grouped-conv FLOPs, float bytes of the state, masked weights) of one forward pass."""
    import torch

    from dstlib import data, flops, models
    from dstlib.sparsity import masks as masklib
    info = data.info(dataset)
    with torch.random.fork_rng(devices=[]):
        net = models.create(model, info, widths=widths, stem=stem, width_multiplier=width)
    size = (info.channels, info.image_size, info.image_size)  # clips: (C, T, H, W), as dstlib.book.plan
    rows = flops.layer_costs(net, size if info.frames == 1 else (info.channels, info.frames, *size[1:]))
    grouped = {f"{n}.weight" for n, m in net.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv3d)) and m.groups > 1}
    g = sum(2 * r["numel"] * r["positions"] for r in rows if r["param"] in grouped)
    f = sum(2 * r["numel"] * r["positions"] for r in rows) - g
    weights = sum(t.numel() * 4 for t in net.state_dict().values() if t.is_floating_point())
    masked = 0 if dense else sum(prm.numel() for _, prm in masklib.sparse_weights(
        net, dense_layers, dense_first, sparse_classifier, patterns, types))
    return f, g, weights, masked


def estimate(plans) -> list[dict[str, Any]]:
    """Per file (in order): runs it adds, GPU-hours to train them and to evaluate its runs, snapshot disk."""
    from dstlib import data
    seen: set[str] = set()
    rows = []
    for section, p, specs in plans:
        try:
            n_train = p["train_subset"] or len(data.load(p["dataset"], "train"))
            n_test = p["n_test"] or len(data.load(p["dataset"], "test"))
        except FileNotFoundError:
            n_train = p["train_subset"] or TRAIN_IMAGES[p["dataset"]]
            n_test = p["n_test"] or TEST_IMAGES[p["dataset"]]
        new = [s for s in specs if s.short_id() not in seen]
        seen |= {s.short_id() for s in new}
        costs = {s.short_id(): run_cost(s, section, p, n_train, n_test) for s in specs}
        rows.append({"section": section, "model": p["model"], "dataset": p["dataset"], "runs": len(specs),
                     "new_runs": len(new),
                     "train_gpu_h": sum(costs[s.short_id()]["train_s"] for s in new) / 3600,
                     "eval_gpu_h": sum(c["eval_s"] for c in costs.values()) / 3600,
                     "snapshot_gb": sum(costs[s.short_id()]["snapshot_bytes"] for s in new) / 1e9,
                     "store_gb": sum(costs[s.short_id()]["final_bytes"] for s in new) / 1e9})
    return rows


def print_estimate(plans) -> None:
    rows = estimate(plans)
    print("| section | model | dataset | runs (new) | training GPU-h | evaluation GPU-h | snapshots GB | weights GB |")
    print("|---|---|---|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['section']} | {r['model']} | {r['dataset']} | {r['runs']} ({r['new_runs']}) | "
              f"{r['train_gpu_h']:.1f} | {r['eval_gpu_h']:.1f} | {r['snapshot_gb']:.1f} | {r['store_gb']:.1f} |")
    t = {k: sum(r[k] for r in rows) for k in ("train_gpu_h", "eval_gpu_h", "snapshot_gb", "store_gb")}
    print(f"| all | | | {sum(r['new_runs'] for r in rows)} | {t['train_gpu_h']:.1f} | {t['eval_gpu_h']:.1f} | "
          f"{t['snapshot_gb']:.1f} | {t['store_gb']:.1f} |")
    print(f"\nThroughput assumed (dstlib.commands.sweep): {GPU_FLOPS_PER_S / 1e12:.1f} TFLOP/s for dense layers, "
          f"{GPU_GROUPED_FLOPS_PER_S / 1e12:.3f} TFLOP/s for depthwise ones: one A100 with mixed precision, from "
          f"NVIDIA's published ResNet-50 and EfficientNet-B0 training throughput; all runs counted, stored or not.")

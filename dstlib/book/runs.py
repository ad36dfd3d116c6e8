"""Load or train a plan's runs, several at a time, each in its own worker process.

Small models use a CPU core poorly from one process (a LeNet step is a few
milliseconds of small matrix products), and two threads of one process lose
much more than they gain when anything else runs beside them; so the runs a
store lacks are trained by `Plan.workers` processes with
`cpu_count // workers` threads each (OMP_NUM_THREADS caps the cores), and each worker also computes the
run's per-run results (`measure.prepare`: its robustness evaluation or its
radius-accuracy curves), for its section and for the profile's other sections
that use the same run (`plan.sharing_sections`), which the notebooks then read
from the cache. The
corrupted test images every evaluation shares are generated first, by the
same pool. On a GPU (or with `workers: 1`) everything runs in this process.
A run is a pure function of its spec for a given number of threads (the
thread count can change the order of floating-point sums, so weights trained
with 1 and 2 threads agree only to rounding); the store trains each run once.
"""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from dstlib.book import measure
from dstlib.book.plan import Plan, sharing_sections


def _threads(workers: int) -> int:
    """Threads per worker: the CPU cores (at most OMP_NUM_THREADS, where set) shared by the workers."""
    cores = os.cpu_count() or 1
    if os.environ.get("OMP_NUM_THREADS", "").isdigit() and int(os.environ["OMP_NUM_THREADS"]) > 0:
        cores = min(cores, int(os.environ["OMP_NUM_THREADS"]))
    return max(1, cores // workers)


def _corrupt_job(params: dict, root: str, suite: str, corruption: str, severity: int, threads: int) -> None:
    import torch
    torch.set_num_threads(threads)
    measure.CorruptedImages.of(params, root, suite)(corruption, severity)


def _run_job(section: str, params: dict, spec: dict, root: str, also: list, threads: int) -> str:
    """Train (or load) one run and prepare its per-run results for `section` and for the `also` [(section,
    parameters)] that share it."""
    import torch
    from dstlib.config import RunSpec
    from dstlib.store import Store
    torch.set_num_threads(threads)
    run = Store(root).run(RunSpec.from_dict(spec), device=params["device"], progress=False)
    for sec, p in [(section, params), *also]:
        measure.prepare(sec, p, run, Store(root).root)
    return run.id


def _run_jobs(jobs: list, n: int, bar) -> None:
    if n == 1:
        import torch
        before = torch.get_num_threads()
        try:
            for fn, args in jobs:
                fn(*args, _threads(1))
                bar.update(fn is _run_job)
        finally:
            torch.set_num_threads(before)
        return
    ctx = multiprocessing.get_context("spawn")  # fork is unsafe once torch has started its threads
    with ProcessPoolExecutor(n, mp_context=ctx) as pool:
        futures = {pool.submit(fn, *args, _threads(n)): fn for fn, args in jobs}
        try:
            for f in as_completed(futures):
                f.result()  # a failed run stops the section with its own error
                bar.update(futures[f] is _run_job)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def train(plan: Plan, *, progress: bool = True) -> dict[str, Any]:
    """{spec short id: Run}: load every run of the plan, training (and preparing) the missing ones first."""
    from tqdm.auto import tqdm
    store = plan.store
    todo = [s for s in plan.specs if not store.is_finished(s)]
    if todo and not plan.params["train"]:
        s = todo[0]
        raise LookupError(f"train=False and run {s.short_id()} ({s.method}, sparsity {s.sparsity}, seed {s.seed}) "
                          f"is not in {store.root}; allowed: train=True, or a store holding it")
    if todo:
        params = {k: v for k, v in plan.params.items() if not k.startswith("_")}
        jobs = []
        for suite in measure.suites(plan.section, params):
            images = measure.CorruptedImages.of(params, store.root, suite)
            if images is None:  # clips too many to keep: each evaluation makes its own
                continue
            jobs += [(_corrupt_job, (params, str(store.root), suite, c, s)) for c, s in images.to_generate()
                     if not images._path(c, s).is_file()]
        also = sharing_sections(plan.section, params)
        jobs += [(_run_job, (plan.section, params, s.to_dict(), str(store.root), also.get(s.hash(), [])))
                 for s in todo]
        n = plan.workers
        quiet = not progress or os.environ.get("TQDM_DISABLE", "") not in ("", "0")
        bar = tqdm(total=len(todo), desc=f"training {plan.section}", disable=quiet, unit="run")
        try:
            _run_jobs(jobs, n, bar)
        finally:
            bar.close()
    return {s.short_id(): store.run(s, train=False, device=plan.params["device"]) for s in plan.specs}

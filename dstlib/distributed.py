"""One run on several processes: torch.distributed set up from torchrun's (or Slurm's) environment.

`torchrun --nproc_per_node=N -m dstlib train ...` starts N processes with
RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT set; `init()` joins
them into one process group: NCCL on CUDA (one GPU per process, by
LOCAL_RANK), gloo on the CPU. Without those variables (or with WORLD_SIZE 1)
nothing is set up and every helper here acts as for a single process, so the
training loop calls them unconditionally.

Conventions: rank 0 alone writes to the store and prints; the spec records the
global batch size, which the ranks share (`local_batch`).

Tested: gloo on the CPU, two processes on one machine (tests/test_ddp_train.py).
NCCL, several nodes and Slurm's environment take the same calls but have not
been run by this project (no GPU or cluster here).
"""
from __future__ import annotations

import datetime
import os
from typing import Any

import torch
import torch.distributed as dist

#: Ranks wait this long for each other (rank 0 may wait for another job's lock on a run first).
TIMEOUT = datetime.timedelta(hours=2)


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def requested() -> bool:
    """True when the environment asks for several processes (torchrun, or Slurm through submitit)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device: str = "cpu") -> str:
    """Join the process group the environment describes; return this process's device.

    `device` "cuda" (or "cuda:<i>") becomes "cuda:<LOCAL_RANK>" under several processes. A second call is
    a no-op. Raises ValueError when several processes are asked for on CUDA without enough GPUs.
    """
    if not requested() or active():
        return _local_device(device) if requested() else device
    backend = "nccl" if device.startswith("cuda") else "gloo"
    local = _local_device(device)
    if local.startswith("cuda"):
        index = int(local.split(":")[1])
        if index >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK={index} is invalid: {torch.cuda.device_count()} CUDA device(s) here; "
                             f"allowed: at most one process per GPU (torchrun --nproc_per_node)")
        torch.cuda.set_device(index)
    dist.init_process_group(backend, timeout=TIMEOUT)
    return local


def _local_device(device: str) -> str:
    if device.startswith("cuda"):
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return device


def close() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if active():
        dist.barrier()


def broadcast(value: Any) -> Any:
    """Rank 0's `value` on every rank (any picklable object)."""
    if not active():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_sum(values: list[float], device) -> list[float]:
    """Element-wise sum of `values` over the ranks (float64)."""
    if not active():
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def local_batch(global_batch: int, world_size: int) -> int:
    """Images per process for a global batch (ValueError unless it divides)."""
    if global_batch % world_size:
        raise ValueError(f"batch_size={global_batch} is invalid for {world_size} processes; allowed: a multiple of "
                         f"the number of processes (the spec records the global batch)")
    return global_batch // world_size

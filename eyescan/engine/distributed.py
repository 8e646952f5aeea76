"""Data-parallel training across processes and machines (torchrun / DDP).

``torchrun`` starts one process per device and sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; :func:`init_from_env`
turns those into a process group (NCCL on CUDA, gloo otherwise). Rank and
world size fall back to the environment (then 0 and 1), so code can ask
:func:`is_main` before or without a process group. Every helper is a no-op in
a single process, which is how :func:`eyescan.engine.training.fit` stays one loop.
"""

from __future__ import annotations

import atexit
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def _group_ready() -> bool:
    if "torch" not in sys.modules:  # nothing can have started a group without torch
        return False
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank (0 in a single process)."""
    if _group_ready():
        import torch.distributed as dist

        return dist.get_rank()
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    """Number of processes taking part (1 in a single process)."""
    if _group_ready():
        import torch.distributed as dist

        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def local_rank() -> int:
    """Rank on this machine: the index of the GPU this process uses."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    """True on the process that writes files and prints (rank 0)."""
    return rank() == 0


def resolve_device(device: str | None) -> str:
    """``auto`` → this process's CUDA device if there is one, else ``cpu``.

    ``cuda`` without an index becomes ``cuda:LOCAL_RANK`` so each process of a
    machine uses its own GPU.
    """
    import torch

    if device in (None, "", "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        device = f"cuda:{local_rank()}"
    return device


def init_from_env(device: str = "cpu", backend: str | None = None) -> bool:
    """Join the process group torchrun describes; True when running distributed.

    Does nothing (False) with ``WORLD_SIZE`` unset or 1; reuses a group that
    is already initialised. The group is destroyed when the process exits.
    """
    if _group_ready():
        return world_size() > 1
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    import torch
    import torch.distributed as dist

    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.set_device(torch.device(device))
    dist.init_process_group(
        backend or ("nccl" if cuda else "gloo"),
        device_id=torch.device(device) if cuda else None,
    )
    atexit.register(_destroy)
    return dist.get_world_size() > 1


def _destroy() -> None:
    if _group_ready():
        import torch.distributed as dist

        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every process (no-op in a single process)."""
    if _group_ready():
        import torch.distributed as dist

        dist.barrier()


def shard_batches(batches: Iterable[T], shard: int, shards: int, pad: bool = True) -> Iterator[T]:
    """This process's share of an epoch's batches, like ``DistributedSampler``.

    Batch ``i`` goes to process ``i % shards``. When the count does not divide
    evenly and ``pad`` is set, the last round is padded with the epoch's first
    batches so every process takes the same number of steps (DDP needs that
    to stay in step); without ``pad`` (evaluation) each batch is seen once.
    Every process must see the same sequence of batches (seeded generation).
    """
    if shards <= 1:
        yield from batches
        return
    head: list[T] = []  # the first batches, kept to pad the last round
    count = 0
    for batch in batches:
        if pad and count < shard:
            head.append(batch)
        if count % shards == shard:
            yield batch
        count += 1
    if pad and count % shards and count % shards <= shard:
        yield head[(shard - count % shards) % count]  # wraps when there are < shards


def sum_across(values: Sequence[float], device: str = "cpu") -> list[float]:
    """Element-wise sum of ``values`` over all processes (float64)."""
    if not _group_ready():
        return [float(v) for v in values]
    import torch
    import torch.distributed as dist

    tensor = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def mean_across(sums: dict[str, float], count: int, device: str = "cpu") -> dict[str, float]:
    """Means of per-process sums over the total count of all processes.

    Every process must have the same keys in the same order.
    """
    keys = list(sums)
    *totals, total_count = sum_across([sums[k] for k in keys] + [count], device)
    return {k: v / max(1.0, total_count) for k, v in zip(keys, totals)}


def all_true(flag: bool, device: str = "cpu") -> bool:
    """True when ``flag`` holds on every process."""
    (failed,) = sum_across([0.0 if flag else 1.0], device)
    return failed == 0


def from_main(value: Any) -> Any:
    """Rank 0's ``value`` on every process (any picklable object)."""
    if not _group_ready():
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def broadcast_buffers(module: Any) -> None:
    """Copy rank 0's buffers (e.g. BatchNorm statistics) to every process."""
    if not _group_ready():
        return
    import torch.distributed as dist

    for buffer in module.buffers():
        dist.broadcast(buffer, src=0)


def wrap(module: Any, device: str, find_unused_parameters: bool = False) -> Any:
    """``module`` in DistributedDataParallel when running distributed, else as is.

    ``find_unused_parameters`` is for models whose forward skips some
    parameters (e.g. a branch trained in a later stage).
    """
    if not _group_ready() or world_size() <= 1:
        return module
    from torch.nn.parallel import DistributedDataParallel

    if device.startswith("cuda"):
        import torch

        index = torch.device(device).index
        return DistributedDataParallel(
            module,
            device_ids=[index],
            output_device=index,
            find_unused_parameters=find_unused_parameters,
        )
    return DistributedDataParallel(module, find_unused_parameters=find_unused_parameters)


def unwrap(module: Any) -> Any:
    """The model inside a DDP wrapper (the one to save)."""
    from torch.nn.parallel import DistributedDataParallel

    return module.module if isinstance(module, DistributedDataParallel) else module


def without_option(args: Sequence[str], name: str) -> list[str]:
    """``args`` without option ``name`` and its value (``--name V`` or ``--name=V``)."""
    kept, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg == name:
            skip = True
        elif not arg.startswith(name + "="):
            kept.append(arg)
    return kept


def torchrun_command(nproc: int, args: Sequence[str]) -> list[str]:
    """Command that runs ``eyescan ARGS`` in ``nproc`` processes on this machine."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "eyescan",
        *args,
    ]

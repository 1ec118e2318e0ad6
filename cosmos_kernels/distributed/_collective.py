"""Checks shared by the distributed functions: a usable process group, and input checks that agree.

A collective must be entered by every rank of the group. If one rank raised on bad input before a
collective and the others went on, they would wait in it until the timeout. So each function checks its
input locally first, then all ranks exchange a flag (and the numbers the call needs, e.g. shard
lengths) in one all_gather, and every rank raises when any rank failed.
"""

from collections.abc import Callable, Sequence

import torch
import torch.distributed as dist

ProcessGroup = dist.ProcessGroup


def check_group(op: str, group: object) -> ProcessGroup:
    """The process group to use (None: the default group), or a ValueError/TypeError saying why not."""
    if not dist.is_available() or not dist.is_initialized():
        raise ValueError(
            f"{op}: group needs an initialized torch.distributed (call torch.distributed.init_process_group "
            "first, e.g. under torchrun)"
        )
    if group is None:
        group = dist.group.WORLD
    if not isinstance(group, ProcessGroup):
        raise TypeError(
            f"{op}: group must be a torch.distributed.ProcessGroup or None, got {type(group).__name__}"
        )
    if dist.get_rank(group) < 0:
        raise ValueError(f"{op}: group must contain this rank (global rank {dist.get_rank()}), it does not")
    return group


def comm_device(group: ProcessGroup) -> torch.device:
    """Where small bookkeeping tensors for a collective on ``group`` must live."""
    if dist.get_backend(group) == dist.Backend.NCCL:
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def agree(op: str, group: ProcessGroup, error: str | None, values: Sequence[int]) -> list[list[int]]:
    """All-gather ``values`` (same length on every rank) and raise on every rank if any rank failed.

    ``error`` is this rank's local check failure (None if its input is fine; ``values`` are then
    ignored but must still have their usual length). Returns one list of values per rank of the group.
    """
    mine = torch.tensor([error is not None, *values], dtype=torch.int64, device=comm_device(group))
    rows = [torch.empty_like(mine) for _ in range(dist.get_world_size(group))]
    dist.all_gather(rows, mine, group=group)
    table = [row.tolist() for row in rows]
    if error is not None:
        raise ValueError(error)
    failed = [rank for rank, row in enumerate(table) if row[0]]
    if failed:
        raise ValueError(
            f"{op}: rank(s) {failed} of the group got invalid input (their error says which); all ranks stop"
        )
    return [row[1:] for row in table]


def local_error(check: Callable[..., object], *args: object) -> str | None:
    """Run ``check(*args)``; return its ValueError/TypeError message instead of raising it."""
    try:
        check(*args)
    except (TypeError, ValueError) as err:
        return str(err)
    return None

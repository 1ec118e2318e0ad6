"""Context parallelism's data movement: split a token sequence across ranks, gather it back.

Each rank of a context-parallel group holds one contiguous shard of the sequence, in rank order.
Shards may differ in length (``torch.tensor_split`` over the world size, or sizes the caller gives).
"""

import functools
from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch import nn

from cosmos_kernels.checks import check_int, is_int
from cosmos_kernels.distributed._collective import ProcessGroup, agree, check_group, local_error
from cosmos_kernels.distributed.ring_attention import ring_attention
from cosmos_kernels.distributed.ulysses import ulysses_attention

Tensor = torch.Tensor
# gather_sequence exchanges the shapes of tensors of up to this many dims in one fixed-size message.
_MAX_DIMS = 8
_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int32, torch.int64, torch.bool)


def shard_sizes(length: int, group: ProcessGroup | None) -> list[int]:
    """The shard lengths ``torch.tensor_split`` gives for ``length`` tokens over the group's ranks.

    The first ``length % world`` ranks get one token more than the others.
    """
    group = check_group("shard_sizes", group)
    check_int("shard_sizes", "length", length, 0)
    world = dist.get_world_size(group)
    return [length // world + (rank < length % world) for rank in range(world)]


def _normalize_dim(op: str, x: Tensor, dim: object) -> int:
    return check_int(op, "dim", dim, -x.dim(), maximum=x.dim() - 1) % x.dim()


def shard_sequence(
    x: Tensor, group: ProcessGroup | None, dim: int = 1, *, sizes: Sequence[int] | None = None
) -> Tensor:
    """This rank's contiguous shard of ``x`` along ``dim``; a view of x, differentiable.

    Args:
        x: the whole sequence, the same on every rank, e.g. tokens (B, S, C) or RoPE tables (S, D/2)
            with ``dim=0``.
        group: the context-parallel process group (None: the default group).
        dim: the sequence dim.
        sizes: the shard length of each rank, summing to ``x.shape[dim]``; default
            :func:`shard_sizes` (``torch.tensor_split`` semantics).
    Returns:
        ``x.narrow(dim, offset, sizes[rank])``. No communication: every rank computes its offset.
        Its gradient reaches only this rank's rows of x.
    """
    op = "shard_sequence"
    group = check_group(op, group)
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: x must be a torch.Tensor, got {type(x).__name__}")
    dim = _normalize_dim(op, x, dim)
    world, rank = dist.get_world_size(group), dist.get_rank(group)
    if sizes is None:
        sizes = shard_sizes(x.shape[dim], group)
    elif (
        not isinstance(sizes, Sequence)
        or len(sizes) != world
        or not all(is_int(s) and s >= 0 for s in sizes)
        or sum(sizes) != x.shape[dim]
    ):
        raise ValueError(
            f"{op}: sizes must be {world} ints >= 0 (one per rank) summing to x.shape[{dim}] = "
            f"{x.shape[dim]}, got {sizes!r}"
        )
    return x.narrow(dim, sum(sizes[:rank]), sizes[rank])


class _GatherSequence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, group: ProcessGroup, dim: int, sizes: list[int]) -> Tensor:
        ctx.dim, ctx.offset, ctx.size = dim, sum(sizes[: dist.get_rank(group)]), x.shape[dim]
        # all_gather takes equal shapes: pad every shard to the longest, then cut the padding off.
        longest = max(sizes)
        padded = x.new_zeros((*x.shape[:dim], longest, *x.shape[dim + 1 :]))
        padded.narrow(dim, 0, x.shape[dim]).copy_(x)
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded, group=group)
        return torch.cat([part.narrow(dim, 0, size) for part, size in zip(parts, sizes, strict=True)], dim)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None, None]:
        # Every rank holds the same gathered output and computes the same gradient of it: this rank's
        # share of the gradient is its own rows, with no reduction (summing would count it world times).
        return grad.narrow(ctx.dim, ctx.offset, ctx.size).contiguous(), None, None, None


def gather_sequence(x: Tensor, group: ProcessGroup | None, dim: int = 1) -> Tensor:
    """The whole sequence from every rank's shard along ``dim``, in rank order; differentiable.

    Args:
        x: this rank's shard. Shards may differ in length along ``dim``; every other dim and the dtype
            must agree across ranks (checked on every rank before any data moves: a mismatch raises a
            ValueError on all of them).
        group: the context-parallel process group (None: the default group).
        dim: the sequence dim.
    Returns:
        The concatenation of all shards along ``dim``, the same on every rank. The backward pass gives
        x the rows of the output gradient that belong to this rank's shard.
    """
    op = "gather_sequence"
    group = check_group(op, group)

    def check() -> None:
        if not isinstance(x, Tensor):
            raise TypeError(f"{op}: x must be a torch.Tensor, got {type(x).__name__}")
        if not 1 <= x.dim() <= _MAX_DIMS:
            raise ValueError(f"{op}: x must have 1 to {_MAX_DIMS} dims, got shape {tuple(x.shape)}")
        _normalize_dim(op, x, dim)

    error = local_error(check)
    shape = [] if error else list(x.shape)
    dtype_code = 0 if error else _DTYPES.index(x.dtype) if x.dtype in _DTYPES else len(_DTYPES)
    mine = [len(shape), dtype_code, *shape, *[0] * (_MAX_DIMS - len(shape))]
    table = agree(op, group, error, mine)
    seq_dim = dim % x.dim()
    others = [(row[0], row[1], row[2 : 2 + row[0]]) for row in table]
    key = [(ndim, code, s[:seq_dim] + s[seq_dim + 1 :]) for ndim, code, s in others]
    if any(k != key[0] for k in key):
        shapes = {rank: tuple(s) for rank, (_, _, s) in enumerate(others)}
        dtypes = {rank: _dtype_name(code) for rank, (_, code, _) in enumerate(others)}
        raise ValueError(
            f"{op}: every rank's x must have the same dims and dtype except along dim {seq_dim}, got shapes "
            f"{shapes} and dtypes {dtypes}"
        )
    return _GatherSequence.apply(x, group, seq_dim, [s[seq_dim] for _, _, s in others])


def _dtype_name(code: int) -> str:
    return str(_DTYPES[code]) if code < len(_DTYPES) else "another dtype"


CP_ATTENTION = ("ring", "ulysses", "hybrid")


def _check_hybrid_layout(
    op: str, cp_group: ProcessGroup, ulysses_group: ProcessGroup, ring_group: ProcessGroup
) -> None:
    """Raise on every rank of ``cp_group`` unless the sequence shards, contiguous in ``cp_group`` rank
    order, are what the hybrid expects: each Ulysses group holds one contiguous run of shards (in its
    own rank order), and the ring passes those runs in ring rank order. That is cp rank = ring rank * u
    + Ulysses rank for every member of both groups (``init_device_mesh(device, (r, u))``, ring = dim 0,
    Ulysses = dim 1, over the ranks of cp_group in order)."""

    def check() -> None:
        u, r = dist.get_world_size(ulysses_group), dist.get_world_size(ring_group)
        if u * r != dist.get_world_size(cp_group):
            raise ValueError(
                f"{op}: the Ulysses group ({u} ranks) times the ring group ({r} ranks) must make up cp_group "
                f"({dist.get_world_size(cp_group)} ranks)"
            )
        members = set(dist.get_process_group_ranks(cp_group))
        for name, group in (("ulysses_group", ulysses_group), ("ring_group", ring_group)):
            if not set(dist.get_process_group_ranks(group)) <= members:
                raise ValueError(f"{op}: {name} must be made of ranks of cp_group")
        cp_rank = functools.partial(dist.get_group_rank, cp_group)
        ulysses = [cp_rank(g) for g in dist.get_process_group_ranks(ulysses_group)]
        ring = [cp_rank(g) for g in dist.get_process_group_ranks(ring_group)]
        base, position = dist.get_rank(ring_group) * u, dist.get_rank(ulysses_group)
        if ulysses != list(range(base, base + u)) or ring != list(range(position, u * r, u)):
            raise ValueError(
                f"{op}: the hybrid needs cp rank = ring rank * {u} + Ulysses rank; this rank's Ulysses group "
                f"holds cp ranks {ulysses} and its ring group {ring} (build both from "
                f"init_device_mesh(device, ({r}, {u})) over cp_group's ranks: ring = dim 0, Ulysses = dim 1)"
            )

    agree(op, cp_group, local_error(check), [])


def context_parallel(
    model: nn.Module,
    cp_group: ProcessGroup | None,
    *,
    attention: str = "ring",
    ulysses_group: ProcessGroup | None = None,
    ring_group: ProcessGroup | None = None,
) -> nn.Module:
    """Make ``model`` split its token sequence over ``cp_group`` (None: run unsplit); returns model.

    The model must support it by having ``cp_group`` and ``cp_attention`` attributes (the DiT of
    ``models.dit`` does): with a group set, it shards its tokens with :func:`shard_sequence`, runs
    self-attention through ``cp_attention`` and gathers the result with :func:`gather_sequence`.
    ``attention`` picks :func:`ring_attention` (any number of ranks), :func:`ulysses_attention` (heads
    divisible by the ranks; faster within a node) or ``"hybrid"``: Ulysses inside ``ulysses_group``
    (a node), ring across ``ring_group``, the two dims of a mesh over cp_group's ranks, which is what
    scales across nodes (docs/DISTRIBUTED.md):

        mesh = init_device_mesh("cuda", (nodes, 8), mesh_dim_names=("ring", "ulysses"))
        context_parallel(dit, dist.group.WORLD, attention="hybrid",
                         ulysses_group=mesh.get_group("ulysses"), ring_group=mesh.get_group("ring"))

    Every rank of the group must run the model on the same input. Parameter gradients are then each
    rank's share: sum them over the group (``shard_model`` on a 2-D mesh does) to get the gradient of
    the unsplit model.
    """
    op = "context_parallel"
    if not isinstance(model, nn.Module):
        raise TypeError(f"{op}: model must be a torch.nn.Module, got {type(model).__name__}")
    if not (hasattr(model, "cp_group") and hasattr(model, "cp_attention")):
        raise TypeError(
            f"{op}: model must support context parallelism (have cp_group and cp_attention attributes, as "
            "models.dit.GeneralDIT and a diffusers CosmosTransformer3DModel after "
            f"cosmos_kernels.integrations.diffusers.apply_cosmos_kernels do), got a {type(model).__name__}"
        )
    if attention not in CP_ATTENTION:
        raise ValueError(f"{op}: attention must be one of {', '.join(CP_ATTENTION)}, got {attention!r}")
    hybrid = attention == "hybrid"
    if (ulysses_group is not None, ring_group is not None) != (hybrid, hybrid):
        raise ValueError(
            f"{op}: attention='hybrid' takes both ulysses_group and ring_group; ring and ulysses take neither"
        )
    if hybrid and cp_group is None:
        raise ValueError(f"{op}: attention='hybrid' needs cp_group, the group its two groups make up")
    attend = None
    if cp_group is not None:
        cp_group = check_group(op, cp_group)
        if hybrid:
            ulysses_group, ring_group = check_group(op, ulysses_group), check_group(op, ring_group)
            _check_hybrid_layout(op, cp_group, ulysses_group, ring_group)
            attend = functools.partial(ulysses_attention, group=ulysses_group, ring_group=ring_group)
        else:
            attend = functools.partial(
                ring_attention if attention == "ring" else ulysses_attention, group=cp_group
            )
    model.cp_group, model.cp_attention = cp_group, attend
    return model

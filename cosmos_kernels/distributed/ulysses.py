"""Ulysses attention: all-to-alls turn sequence shards into head shards and back (DeepSpeed-Ulysses).

Each of the P ranks holds q, k, v for its contiguous shard of the sequence (B, S_rank, H, D). One
all-to-all gives every rank all S tokens of H/P heads; attention then runs locally, with no further
communication, and a second all-to-all returns each rank's rows of the output for all heads. The
backward pass is the same two all-to-alls in reverse. Per rank and pass it moves about 4 (forward)
plus 4 (backward) tensors of S/P * H * D elements, (P-1)/P of them off the rank, and does not overlap
them with compute; it needs P to divide H. With ``ring_group``, the attention over the gathered
sequence is itself ring attention over another group: the hybrid (Ulysses inside a node, ring across
nodes) that docs/DISTRIBUTED.md models.
"""

import torch
import torch.distributed as dist

from cosmos_kernels.distributed._collective import ProcessGroup, check_group
from cosmos_kernels.distributed._shards import check_shards
from cosmos_kernels.distributed.ring_attention import ring_attention
from cosmos_kernels.ops.attention import plan_attention
from cosmos_kernels.ops.attention_blocks import attention_core
from cosmos_kernels.ops.qk_norm_rope import apply_prologue

Tensor = torch.Tensor


def _seq_to_heads(x: Tensor, group: ProcessGroup, sizes: list[int]) -> Tensor:
    """(N, B, S_rank, H, D) sequence shards -> (N, B, S, H/P, D): all tokens of this rank's heads."""
    world = len(sizes)
    n, batch, rows, heads, dim = x.shape
    part = heads // world
    # Rank j gets head chunk j of every local token: chunk j is the j-th slab of the send buffer.
    send = x.view(n, batch, rows, world, part, dim).permute(3, 0, 1, 2, 4, 5).contiguous()
    recv = x.new_empty(n * batch * sum(sizes) * part * dim)
    per_token = n * batch * part * dim
    dist.all_to_all_single(
        recv, send.view(-1), [s * per_token for s in sizes], [rows * per_token] * world, group
    )
    chunks = recv.split([s * per_token for s in sizes])
    return torch.cat([c.view(n, batch, s, part, dim) for c, s in zip(chunks, sizes, strict=True)], dim=2)


def _heads_to_seq(y: Tensor, group: ProcessGroup, sizes: list[int]) -> Tensor:
    """(N, B, S, H/P, D) head shards -> (N, B, S_rank, H, D): this rank's tokens of all heads."""
    world, rank = len(sizes), dist.get_rank(group)
    n, batch, _, part, dim = y.shape
    per_token = n * batch * part * dim
    send = torch.cat([c.contiguous().view(-1) for c in y.split(sizes, dim=2)])
    recv = y.new_empty(world * sizes[rank] * per_token)
    dist.all_to_all_single(
        recv, send, [sizes[rank] * per_token] * world, [s * per_token for s in sizes], group
    )
    gathered = recv.view(world, n, batch, sizes[rank], part, dim).permute(1, 2, 3, 0, 4, 5)
    return gathered.reshape(n, batch, sizes[rank], world * part, dim)


class _AllToAll(torch.autograd.Function):
    """Sequence shards <-> head shards; the backward of each direction is the other direction."""

    @staticmethod
    def forward(ctx, x: Tensor, group: ProcessGroup, sizes: list[int], to_heads: bool) -> Tensor:
        ctx.group, ctx.sizes, ctx.to_heads = group, sizes, to_heads
        return (_seq_to_heads if to_heads else _heads_to_seq)(x, group, sizes)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None, None]:
        back = _heads_to_seq if ctx.to_heads else _seq_to_heads
        return back(grad.contiguous(), ctx.group, ctx.sizes), None, None, None


def ulysses_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    group: ProcessGroup | None,
    *,
    q_norm_weight: Tensor | None = None,
    k_norm_weight: Tensor | None = None,
    norm_eps: float = 1e-6,
    rope_cos: Tensor | None = None,
    rope_sin: Tensor | None = None,
    softmax_scale: float | None = None,
    ring_group: ProcessGroup | None = None,
    backend: str = "auto",
) -> Tensor:
    """Self-attention over the whole sequence by head-parallel all-to-alls; same contract as ring_attention.

    Args:
        q, k, v: (B, S_rank, H, D), this rank's contiguous shard (S_rank >= 1 may differ between ranks);
            the group's size must divide H.
        group: the process group the sequence is split over (None: the default group).
        q_norm_weight, k_norm_weight, norm_eps, rope_cos, rope_sin, softmax_scale, backend: as in
            :func:`ring_attention` (RoPE tables: this rank's rows).
        ring_group: None, or the group of ranks that hold the other parts of the sequence at the same
            position within their own ``group`` (hybrid: ``group`` = the Ulysses ranks of a node,
            ``ring_group`` = one rank per node). Shards are in global rank order when ranks r*u..r*u+u-1
            form the Ulysses groups (``init_device_mesh(device, (nodes, u))``: group = mesh dim 1,
            ring_group = mesh dim 0).
    Returns:
        (B, S_rank, H, D) in q's dtype: this rank's rows of the attention over the whole sequence.
    """
    op = "ulysses_attention"
    group = check_group(op, group)
    if ring_group is not None:
        ring_group = check_group(op, ring_group)
    norm_weights = {"q_norm_weight": q_norm_weight, "k_norm_weight": k_norm_weight}
    sizes = check_shards(op, group, q, k, v, norm_weights, norm_eps, rope_cos, rope_sin, softmax_scale)
    world, heads = len(sizes), q.shape[2]
    if heads % world:
        # H is the same on every rank (checked above), so every rank raises here.
        raise ValueError(f"{op}: the group size ({world}) must divide the number of heads H = {heads}")
    scale = q.shape[-1] ** -0.5 if softmax_scale is None else float(softmax_scale)
    plan = plan_attention(backend, q, rope_cos)
    q, k = apply_prologue(q, k, q_norm_weight, k_norm_weight, norm_eps, rope_cos, rope_sin, plan.backend)
    q, k, v = _AllToAll.apply(torch.stack([q, k, v]), group, sizes, True).unbind(0)
    if ring_group is None:
        out = attention_core(q, k, v, scale, plan)
    else:
        out = ring_attention(q, k, v, ring_group, softmax_scale=scale, backend=backend)
    return _AllToAll.apply(out.unsqueeze(0), group, sizes, False)[0]

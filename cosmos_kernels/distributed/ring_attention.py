"""Ring attention: exact self-attention over a sequence split into contiguous shards across ranks.

Each of the P ranks holds q, k, v for its shard (B, S_rank, H, D). In P steps the K/V blocks travel
around the ring (rank r sends to r+1 and receives from r-1 with ``batch_isend_irecv``), each transfer
overlapped with the attention of the block at hand; the partial outputs merge exactly through their
log-sum-exps. The backward pass sends the K/V blocks around once more and, with them, the dK/dV each
block has accumulated so far, which arrive back at their owner after the last step. Each block's
gradients come from the global out and lse (the flash-attention identity), so no per-block outputs
are kept: memory per rank is that of one attention over the local queries, two K/V blocks in flight
and float32 accumulators for the output (forward) or dQ and one dK/dV block (backward).
"""

import torch
import torch.distributed as dist

from cosmos_kernels.distributed._collective import ProcessGroup, check_group
from cosmos_kernels.distributed._shards import check_shards
from cosmos_kernels.ops.attention import plan_attention
from cosmos_kernels.ops.attention_blocks import (
    attention_block,
    attention_block_backward,
    attention_core,
    block_kernel,
    merge_attention_block,
)
from cosmos_kernels.ops.qk_norm_rope import apply_prologue

Tensor = torch.Tensor
# Distinct tags keep a K/V block and a dK/dV block in flight between the same two ranks apart (gloo
# matches messages by tag; NCCL by issue order, which is the same on every rank here).
_KV_TAG, _GRAD_TAG = 1, 2


def _compute_dtype(t: Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


class _Ring:
    """One rank's place in the ring: its neighbours and the shard lengths of every rank."""

    def __init__(self, group: ProcessGroup, sizes: list[int]) -> None:
        self.group, self.sizes = group, sizes
        self.world, self.rank = len(sizes), dist.get_rank(group)
        self.next = dist.get_global_rank(group, (self.rank + 1) % self.world)
        self.prev = dist.get_global_rank(group, (self.rank - 1) % self.world)

    def owner(self, step: int) -> int:
        """The rank whose K/V block this rank holds at ``step`` (its own at step 0)."""
        return (self.rank - step) % self.world

    def pass_on(self, send: Tensor, recv: Tensor, tag: int) -> list[dist.Work]:
        """Start sending ``send`` to the next rank and receiving ``recv`` from the previous one."""
        return dist.batch_isend_irecv(
            [
                dist.P2POp(dist.isend, send, self.next, self.group, tag),
                dist.P2POp(dist.irecv, recv, self.prev, self.group, tag),
            ]
        )


def _wait(works: list[dist.Work]) -> None:
    for work in works:
        work.wait()


def _block_buffer(like: Tensor, ring: _Ring, step: int, dtype: torch.dtype) -> Tensor:
    """An empty (2, B, S_owner, H, D) buffer for the K/V (or dK/dV) block held at ``step``."""
    batch, _, heads, dim = like.shape[-4:]
    return like.new_empty((2, batch, ring.sizes[ring.owner(step)], heads, dim), dtype=dtype)


class _RingAttention(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx, q: Tensor, k: Tensor, v: Tensor, ring: _Ring, scale: float, kernel: str, merge_backend: str
    ) -> Tensor:
        ct = _compute_dtype(q)
        kv = torch.stack([k, v])  # one message per step
        out = lse = None
        for step in range(ring.world):
            last = step == ring.world - 1
            if not last:
                incoming = _block_buffer(kv, ring, step + 1, kv.dtype)
                works = ring.pass_on(kv, incoming, _KV_TAG)
            block_out, block_lse, aux = attention_block(q, kv[0], kv[1], scale, kernel)
            if out is None:
                # The kernel's other outputs (dropout seeds, varlen offsets) are the same for every block.
                out, lse, ctx.aux = block_out.to(ct), block_lse.contiguous(), aux
            else:
                lse = merge_attention_block(out, lse, block_out, block_lse, merge_backend)
            if not last:
                _wait(works)
                kv = incoming
        out = out.to(q.dtype)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.ring, ctx.scale, ctx.kernel = ring, scale, kernel
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        q, k, v, out, lse = ctx.saved_tensors
        ring: _Ring = ctx.ring
        ct = _compute_dtype(q)
        grad_out = grad_out.contiguous()
        kv = torch.stack([k, v])
        grad_q = torch.zeros(q.shape, dtype=ct, device=q.device)
        pending = None  # (works, send buffer, receive buffer) of the dK/dV in flight
        for step in range(ring.world):
            last = step == ring.world - 1
            if not last:
                incoming = _block_buffer(kv, ring, step + 1, kv.dtype)
                works = ring.pass_on(kv, incoming, _KV_TAG)
            # The block's share of the gradient, from the global out and lse.
            block_dq, block_dk, block_dv = attention_block_backward(
                grad_out, q, kv[0], kv[1], out, lse, ctx.aux, ctx.scale, ctx.kernel
            )
            grad_q += block_dq
            grad_kv = torch.empty((2, *block_dk.shape), dtype=ct, device=q.device)
            if pending is None:
                grad_kv[0].copy_(block_dk)
                grad_kv[1].copy_(block_dv)
            else:
                # What the ranks before this one accumulated for the block, sent during this step's math.
                _wait(pending[0])
                torch.add(pending[2][0], block_dk, out=grad_kv[0])
                torch.add(pending[2][1], block_dv, out=grad_kv[1])
            received = _block_buffer(grad_kv, ring, step + 1, ct)
            pending = (ring.pass_on(grad_kv, received, _GRAD_TAG), grad_kv, received)
            if not last:
                _wait(works)
                kv = incoming
        # After the last step the block that comes back is this rank's own, with every rank's share.
        _wait(pending[0])
        grad_k, grad_v = pending[2]
        return grad_q.to(q.dtype), grad_k.to(k.dtype), grad_v.to(v.dtype), None, None, None, None


def ring_attention(
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
    backend: str = "auto",
) -> Tensor:
    """Self-attention over the whole sequence, with q, k, v split into contiguous shards over ``group``.

    Computes what ``ops.attention`` computes on the concatenation of every rank's shard (in rank order)
    and returns this rank's rows of it; gradients flow to q, k, v and the norm weights exactly as there.

    Args:
        q, k, v: (B, S_rank, H, D), this rank's shard; S_rank >= 1 may differ between ranks, B, H, D
            and the dtype may not.
        group: the context-parallel process group (None: the default group). Every rank of it must call.
        q_norm_weight, k_norm_weight: (D,) per-head RMSNorm weights, or None; the same on every rank.
        norm_eps: added to the mean square in the RMSNorm.
        rope_cos, rope_sin: (S_rank, D/2) this rank's rows of the RoPE tables (``shard_sequence(table,
            group, dim=0)`` of the whole sequence's tables), or None.
        softmax_scale: multiplies the scores; default 1 / sqrt(D).
        backend: the ``ops.attention`` backend for each block ("auto", "triton" or "torch"). ``auto`` on
            CUDA in half precision runs each block on PyTorch's cuDNN (else flash) attention kernel.
    Returns:
        (B, S_rank, H, D) in q's dtype. Partial results are merged in float32 (float64 for float64).

    Every rank checks its input, then the ranks compare shapes in one all_gather before any block
    moves: bad input on any rank raises a ValueError on every rank instead of leaving the others waiting.
    """
    group = check_group("ring_attention", group)
    norm_weights = {"q_norm_weight": q_norm_weight, "k_norm_weight": k_norm_weight}
    sizes = check_shards(
        "ring_attention", group, q, k, v, norm_weights, norm_eps, rope_cos, rope_sin, softmax_scale
    )
    scale = q.shape[-1] ** -0.5 if softmax_scale is None else float(softmax_scale)
    # One plan for the whole call: the prologue and every block run on the backend it names.
    plan = plan_attention(backend, q, rope_cos)
    # The norms and RoPE act per token, so each rank applies them to its own shard before the ring.
    q, k = apply_prologue(q, k, q_norm_weight, k_norm_weight, norm_eps, rope_cos, rope_sin, plan.backend)
    if len(sizes) == 1:
        return attention_core(q, k, v, scale, plan)
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    # Each rank computes its own queries' rows exactly with whichever kernel it picks: the ranks need not
    # agree (they do, on their device, dtype and head dim).
    kernel = block_kernel(q, k, v, plan)
    return _RingAttention.apply(q, k, v, _Ring(group, sizes), scale, kernel, plan.backend)

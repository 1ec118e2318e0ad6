"""What ring and Ulysses attention (``cosmos_kernels.distributed``) compute per rank and per block.

A ring step is plain attention of the local queries over one K/V block that returns its log-sum-exp, a
merge of that block into the running (out, lse), and a backward from the whole ring's out and lse (the
flash-attention identity). PyTorch's cuDNN and flash SDPA kernels have exactly that contract under
their aten names (PyTorch's own context parallelism calls them so); ``block_kernel`` picks them where
the plan allows SDPA (benchmarks/RESULTS.md: faster than our Triton kernel at ring block sizes).
"""

import torch

from cosmos_kernels.checks import last_dim_contiguous
from cosmos_kernels.ops.attention import AttentionPlan, _attention, _attention_backward, _kernels, sdpa

Tensor = torch.Tensor


def attention_core(q: Tensor, k: Tensor, v: Tensor, softmax_scale: float, plan: AttentionPlan) -> Tensor:
    """Attention of q (B, Sq, H, D) over k, v after the prologue, on the plan's kernel, differentiable:
    what ``attention`` runs once q and k are normalized and rotated."""
    if plan.sdpa:
        return sdpa(q, k, v, softmax_scale)
    q, k, v = (last_dim_contiguous(t) for t in (q, k, v))
    out, _ = _attention(q, k, v, None, None, None, None, None, 1e-6, softmax_scale, plan.backend)
    return out


# PyTorch's SDPA kernels that return the lse a ring merges with, by their aten names.
SDPA_BLOCK_KERNELS = ("cudnn", "flash")


def block_kernel(q: Tensor, k: Tensor, v: Tensor, plan: AttentionPlan) -> str:
    """The kernel for the blocks of a ring over q (B, S, H, D) and blocks like k, v: "cudnn" or "flash"
    where the plan allows SDPA and PyTorch says that kernel takes these inputs, else the plan's backend."""
    if not plan.sdpa:
        return plan.backend
    params = torch.backends.cuda.SDPAParams(*(t.transpose(1, 2) for t in (q, k, v)), None, 0.0, False, False)
    if torch.backends.cuda.can_use_cudnn_attention(params):
        return "cudnn"
    if torch.backends.cuda.can_use_flash_attention(params):
        return "flash"
    return plan.backend


def attention_block(
    q: Tensor, k: Tensor, v: Tensor, softmax_scale: float, kernel: str
) -> tuple[Tensor, Tensor, tuple]:
    """(out (B, Sq, H, D) in q's dtype, lse (B, H, Sq) float32, what the backward needs of the kernel's
    other outputs) of plain attention of q over the block k, v; inputs contiguous, checked by the caller."""
    if kernel not in SDPA_BLOCK_KERNELS:
        out, lse = _attention(q, k, v, None, None, None, None, None, 1e-6, softmax_scale, kernel)
        return out, lse, ()
    qt, kt, vt = (t.transpose(1, 2) for t in (q, k, v))
    if kernel == "cudnn":
        out, lse, cum_q, cum_k, _, _, seed, offset, _ = torch.ops.aten._scaled_dot_product_cudnn_attention(
            qt, kt, vt, None, True, scale=softmax_scale
        )
    else:
        out, lse, cum_q, cum_k, _, _, seed, offset, _ = torch.ops.aten._scaled_dot_product_flash_attention(
            qt, kt, vt, scale=softmax_scale
        )
    # cuDNN keeps a trailing unit dim on its lse; flash's is (B, H, Sq) already.
    batch, seq_q, heads, _ = q.shape
    return out.transpose(1, 2), lse.reshape(batch, heads, seq_q), (cum_q, cum_k, seed, offset)


def merge_attention_block(
    out: Tensor, lse: Tensor, block_out: Tensor, block_lse: Tensor, backend: str
) -> Tensor:
    """Fold one block's attention (block_out, block_lse) into the running (out, lse) of the blocks before,
    ``out`` (B, S, H, D) in float32 (float64) in place; returns the lse (B, H, S) of the union of keys.
    Every block has a key, so all lse are finite."""
    if backend == "triton" and out.dtype == torch.float32 and out.is_contiguous() and lse.is_contiguous():
        _kernels().merge_block(out, lse, block_out.contiguous(), block_lse.contiguous())
        return lse
    # softmax over the union of keys: out <- out + (block_out - out) * w with
    # w = exp(block_lse - merged lse) = sigmoid(block_lse - lse).
    weight = torch.sigmoid(block_lse - lse).transpose(1, 2).unsqueeze(-1)  # (B, S, H, 1)
    out.lerp_(block_out.to(out.dtype), weight)
    return torch.logaddexp(lse, block_lse)


def attention_block_backward(
    grad_out: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    out: Tensor,
    lse: Tensor,
    aux: tuple,
    softmax_scale: float,
    kernel: str,
) -> tuple[Tensor, Tensor, Tensor]:
    """(dq, dk, dv) of the block k, v's share of an attention whose out and lse (B, H, Sq) float32 are
    given (the whole ring's); ``aux`` is what ``attention_block`` returned third for this kernel."""
    if kernel not in SDPA_BLOCK_KERNELS:
        grad_lse = torch.zeros_like(lse)  # the ring's lse is not an output
        dq, dk, dv = _attention_backward(
            grad_out, grad_lse, q, k, v, out, lse, None, None, None, None, None, 1e-6, softmax_scale, kernel
        )
        return dq, dk, dv
    qt, kt, vt, ot, gt = (t.transpose(1, 2) for t in (q, k, v, out, grad_out))
    cum_q, cum_k, seed, offset = aux
    seq_q, seq_k = q.shape[1], k.shape[1]
    if kernel == "cudnn":
        grads = torch.ops.aten._scaled_dot_product_cudnn_attention_backward(
            gt, qt, kt, vt, ot, lse.unsqueeze(-1), seed, offset, None, cum_q, cum_k, seq_q, seq_k, 0.0, False,
            scale=softmax_scale,
        )  # fmt: skip
    else:
        grads = torch.ops.aten._scaled_dot_product_flash_attention_backward(
            gt, qt, kt, vt, ot, lse, cum_q, cum_k, seq_q, seq_k, 0.0, False, seed, offset, scale=softmax_scale
        )
    dq, dk, dv = (g.transpose(1, 2) for g in grads)
    return dq, dk, dv

"""Multi-head self- and cross-attention of a Cosmos DiT block, on ``ops.attention``."""

from collections.abc import Callable

import torch
from torch import nn

from cosmos_kernels import ops
from cosmos_kernels.ops.attention_8bit import check_precision


class Attention(nn.Module):
    """Cosmos-1.0's ``Attention`` with qkv_norm "RRI": bias-free projections, per-head RMSNorm on q and k.

    Parameters carry Cosmos's checkpoint names: ``to_q.0.weight``, ``to_q.1.weight`` (the q RMSNorm),
    ``to_k.0.weight``, ``to_k.1.weight``, ``to_v.0.weight`` and ``to_out.0.weight``. Projected
    features split into heads with the head as the outer factor, "(n c)". The RMSNorm modules
    ``to_q[1]``/``to_k[1]`` hold the weights, but their forward is never called: ``ops.attention``
    takes the weights and applies the norm fused with RoPE and the attention itself.

    Self-attention when ``context_dim`` is None (keys and values from x, RoPE applied); otherwise
    cross-attention on ``context`` with no RoPE, as in Cosmos, which passes the same tables to both.
    """

    def __init__(
        self,
        query_dim: int,
        context_dim: int | None = None,
        heads: int = 8,
        dim_head: int = 64,
        qk_norm: bool = True,
        eps: float = 1e-6,
        dropout: float = 0.0,
        attention_precision: str | None = None,
    ) -> None:
        super().__init__()
        # None: exact attention; "qk-int8" / "qk-int8-pv-fp8": ops.attention's 8-bit inference path.
        self.attention_precision = check_precision("Attention", attention_precision)
        self.is_self_attention = context_dim is None
        context_dim = query_dim if context_dim is None else context_dim
        inner_dim = heads * dim_head
        self.heads, self.dim_head, self.eps = heads, dim_head, eps

        def norm() -> nn.Module:
            return nn.RMSNorm(dim_head, eps=eps) if qk_norm else nn.Identity()

        self.to_q = nn.Sequential(nn.Linear(query_dim, inner_dim, bias=False), norm())
        self.to_k = nn.Sequential(nn.Linear(context_dim, inner_dim, bias=False), norm())
        self.to_v = nn.Sequential(nn.Linear(context_dim, inner_dim, bias=False), nn.Identity())
        self.to_out = nn.Sequential(nn.Linear(inner_dim, query_dim, bias=False), nn.Dropout(dropout))

    def _norm_weight(self, proj: nn.Sequential, like: torch.Tensor) -> torch.Tensor | None:
        # Cast to the activations' dtype so that autocast (fp32 weights, bf16 activations) passes the
        # op's same-dtype check; the cast is differentiable and D elements long.
        norm = proj[1]
        return norm.weight.to(like.dtype) if isinstance(norm, nn.RMSNorm) else None

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        rope_cos: torch.Tensor | None = None,
        rope_sin: torch.Tensor | None = None,
        k_lengths: torch.Tensor | None = None,
        attention_fn: Callable[..., torch.Tensor] = ops.attention,
    ) -> torch.Tensor:
        """x (B, S, query_dim), context (B, M, context_dim) -> (B, S, query_dim).

        ``rope_cos``/``rope_sin`` are (S, dim_head / 2) tables, used in self-attention only;
        ``k_lengths`` (B,) masks context tokens at positions >= length (Cosmos attends to all).
        ``attention_fn`` takes ``ops.attention``'s arguments (q, k, v and the norm/RoPE keywords):
        context parallelism passes ring attention here, so this layer stays unaware of process groups.
        """
        source = x if context is None else context
        q = self.to_q[0](x).unflatten(-1, (self.heads, self.dim_head))
        k = self.to_k[0](source).unflatten(-1, (self.heads, self.dim_head))
        v = self.to_v[0](source).unflatten(-1, (self.heads, self.dim_head))
        if not self.is_self_attention:
            rope_cos = rope_sin = None
        # k_lengths only when given: attention_fn may be one without key masking (ring attention).
        masking = {} if k_lengths is None else {"k_lengths": k_lengths}
        if self.attention_precision is not None:
            masking["precision"] = self.attention_precision
        out = attention_fn(
            q,
            k,
            v,
            q_norm_weight=self._norm_weight(self.to_q, q),
            k_norm_weight=self._norm_weight(self.to_k, k),
            norm_eps=self.eps,
            rope_cos=rope_cos,
            rope_sin=rope_sin,
            **masking,
        )
        return self.to_out(out.flatten(-2))

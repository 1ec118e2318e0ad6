"""What ring and Ulysses attention share: the collective check of every rank's input."""

import torch

from cosmos_kernels.checks import check_eps, check_same_dtype_and_device, check_tensor
from cosmos_kernels.distributed._collective import ProcessGroup, agree, local_error
from cosmos_kernels.ops.attention import check_softmax_scale
from cosmos_kernels.ops.qk_norm_rope import check_norm_weight, check_rope

Tensor = torch.Tensor
_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def check_shards(
    op: str,
    group: ProcessGroup,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    norm_weights: dict[str, Tensor | None],
    norm_eps: float,
    rope_cos: Tensor | None,
    rope_sin: Tensor | None,
    softmax_scale: float | None,
) -> list[int]:
    """Check this rank's shard, then agree with the other ranks; returns every rank's S_rank.

    Raises a ValueError on every rank of ``group`` if any rank's input is bad or B, H, D, the dtype or
    which of the norm weights / RoPE tables are given differ between ranks.
    """
    given = {name: w for name, w in norm_weights.items() if w is not None}

    def check() -> None:
        for name, t in (("q", q), ("k", k), ("v", v)):
            check_tensor(op, name, t, (4,))
        for name, t in (("k", k), ("v", v)):
            if t.shape != q.shape:
                raise ValueError(
                    f"{op}: {name} must have the shape of q {tuple(q.shape)} (self-attention on this rank's "
                    f"shard), got {tuple(t.shape)}"
                )
        for name, w in given.items():
            check_norm_weight(op, name, w, q.shape[-1])
        check_same_dtype_and_device(op, q=q, k=k, v=v, **given)
        check_eps(op, norm_eps)
        if (rope_cos is None) != (rope_sin is None):
            raise ValueError(f"{op}: rope_cos and rope_sin must be given together (or neither)")
        if rope_cos is not None:
            try:
                check_rope(op, ("rope_cos", "rope_sin"), rope_cos, rope_sin, q, q.shape[1])
            except ValueError as err:
                raise ValueError(
                    f"{err} (each rank passes the RoPE rows of its own shard of the sequence)"
                ) from None
        check_softmax_scale(op, softmax_scale, q.shape[-1])

    error = local_error(check)
    flags = [norm_weights["q_norm_weight"] is not None, norm_weights["k_norm_weight"] is not None]
    mine = [0] * 8 if error else [*q.shape, _DTYPES.index(q.dtype), *flags, rope_cos is not None]
    table = agree(op, group, error, mine)
    batch, _, heads, dim = q.shape
    if any((row[0], row[2], row[3], *row[4:]) != (batch, heads, dim, *mine[4:]) for row in table):
        shapes = {rank: tuple(row[:4]) for rank, row in enumerate(table)}
        dtypes = {rank: str(_DTYPES[row[4]]) for rank, row in enumerate(table)}
        raise ValueError(
            f"{op}: every rank's q, k, v must be (B, S_rank, H, D) with the same B, H, D, dtype and the same "
            f"norm weights / RoPE given (S_rank may differ), got shapes {shapes} and dtypes {dtypes}"
        )
    return [row[1] for row in table]

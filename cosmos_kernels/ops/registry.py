"""The op registry: every public op with backends, its reference, why ``auto`` orders its backends as it
does, its benchmark cases and a tiny example input. ``cosmos-kernels info`` and ``bench``, the
pytest-benchmark suite and the registry-wide tests read this table; each op module takes its ``auto``
order from it. Adding an op: docs/ADDING_AN_OP.md.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import import_module

import torch

from cosmos_kernels import reference

Tensor = torch.Tensor
# An op's example: (positional args, keyword args) of small CPU tensors in the given dtype.
Example = tuple[tuple[object, ...], dict[str, object]]


@dataclass(frozen=True)
class OpSpec:
    """One public op of ``cosmos_kernels.ops``."""

    name: str
    reference: Callable[..., object]
    # The fast backends ``auto`` tries, fastest first (``torch`` is implied last), and the measurement
    # behind that order (figures in benchmarks/RESULTS.md).
    preference: tuple[str, ...]
    why: str
    example: Callable[[torch.dtype], Example]
    # Names of its cases in ``cosmos_kernels.tools.benchmarking`` (``bench --only`` takes them).
    benchmark_cases: tuple[str, ...] = ()
    # What ``auto`` does beyond the preference, for ``info``.
    auto_note: str = field(default="")

    @property
    def function(self) -> Callable[..., object]:
        return getattr(import_module("cosmos_kernels.ops"), self.name)


def _randn(*shape: int, dtype: torch.dtype, seed: int) -> Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


def _adaln_example(dtype: torch.dtype) -> Example:
    return (_randn(2, 6, 40, dtype=dtype, seed=0), *(_randn(2, 40, dtype=dtype, seed=i) for i in (1, 2))), {}


def _gated_example(dtype: torch.dtype) -> Example:
    x, y = (_randn(2, 6, 40, dtype=dtype, seed=i) for i in (0, 1))
    return (x, y, *(_randn(2, 40, dtype=dtype, seed=i) for i in (2, 3, 4))), {}


def _haar3d_example(dtype: torch.dtype) -> Example:
    return (_randn(1, 2, 5, 4, 6, dtype=dtype, seed=0),), {"levels": 1, "causal": True}


def _haar3d_bands_example(dtype: torch.dtype) -> Example:
    return (_randn(1, 16, 3, 2, 3, dtype=dtype, seed=0),), {"levels": 1, "causal": True}


def _haar2d_example(dtype: torch.dtype) -> Example:
    return (_randn(1, 2, 4, 6, dtype=dtype, seed=0),), {"levels": 1}


def _haar2d_bands_example(dtype: torch.dtype) -> Example:
    return (_randn(1, 8, 2, 3, dtype=dtype, seed=0),), {"levels": 1}


def _group_norm_silu_example(dtype: torch.dtype) -> Example:
    x = _randn(2, 4, 3, 5, 7, dtype=dtype, seed=0)
    weight, bias = (1 + 0.1 * _randn(4, dtype=dtype, seed=i) for i in (1, 2))
    return (x, weight, bias), {"num_groups": 2}


def _rms_norm_channels_silu_example(dtype: torch.dtype) -> Example:
    x = _randn(2, 6, 3, 4, 5, dtype=dtype, seed=0)
    weight, bias = (1 + 0.1 * _randn(6, dtype=dtype, seed=i) for i in (1, 2))
    return (x, weight, bias), {}


def _tables(seq: int, dim: int) -> tuple[Tensor, Tensor]:
    angles = torch.arange(seq, dtype=torch.float32)[:, None] * torch.linspace(0.05, 1.0, dim // 2)
    return angles.cos(), angles.sin()


def _qk_norm_rope_example(dtype: torch.dtype) -> Example:
    q, k = (_randn(2, 10, 2, 32, dtype=dtype, seed=i) for i in (0, 1))
    weights = [1 + 0.1 * _randn(32, dtype=dtype, seed=i) for i in (2, 3)]
    return (q, k, *weights, *_tables(10, 32)), {}


def _attention_example(dtype: torch.dtype) -> Example:
    q, k, v = (_randn(2, 10, 2, 32, dtype=dtype, seed=i) for i in (0, 1, 2))
    weights = [1 + 0.1 * _randn(32, dtype=dtype, seed=i) for i in (3, 4)]
    cos, sin = _tables(10, 32)
    kwargs = {"q_norm_weight": weights[0], "k_norm_weight": weights[1], "rope_cos": cos, "rope_sin": sin}
    return (q, k, v), kwargs


_ADALN_WHY = "Triton as fast or faster than CUDA C++ on an H100 (bf16, 56,320 x 4096)"
_HAAR_WHY = "CUDA C++ faster than Triton on an H100 (bf16, 121 x 704 x 1280)"
_STREAM_WHY = (
    "Triton only: a memory-bound stream with no reuse for shared memory or tensor cores, where CUDA C++ "
    "would move the same bytes"
)

OPS: dict[str, OpSpec] = {
    spec.name: spec
    for spec in (
        OpSpec(
            "adaln_modulate",
            reference.adaln_modulate,
            ("triton", "cuda"),
            _ADALN_WHY,
            _adaln_example,
            ("adaln_modulate",),
        ),
        OpSpec(
            "gated_residual_adaln",
            reference.gated_residual_adaln,
            ("triton", "cuda"),
            _ADALN_WHY,
            _gated_example,
            ("gated_residual_adaln",),
        ),
        OpSpec(
            "haar3d_analysis",
            reference.haar3d_analysis,
            ("cuda", "triton"),
            _HAAR_WHY,
            _haar3d_example,
            ("haar3d_analysis",),
        ),
        OpSpec(
            "haar3d_synthesis",
            reference.haar3d_synthesis,
            ("cuda", "triton"),
            _HAAR_WHY,
            _haar3d_bands_example,
            ("haar3d_synthesis",),
        ),
        OpSpec("haar2d_analysis", reference.haar2d_analysis, ("cuda", "triton"), _HAAR_WHY, _haar2d_example),
        OpSpec(
            "haar2d_synthesis",
            reference.haar2d_synthesis,
            ("cuda", "triton"),
            _HAAR_WHY,
            _haar2d_bands_example,
        ),
        OpSpec(
            "group_norm_silu",
            reference.group_norm_silu,
            ("triton",),
            _STREAM_WHY,
            _group_norm_silu_example,
            ("group_norm_silu",),
        ),
        OpSpec(
            "rms_norm_channels_silu",
            reference.rms_norm_channels_silu,
            ("triton",),
            _STREAM_WHY,
            _rms_norm_channels_silu_example,
            ("rms_norm_channels_silu",),
        ),
        OpSpec(
            "qk_norm_rope",
            reference.qk_norm_rope,
            ("triton",),
            _STREAM_WHY + "; one pass per tensor at 84% of copy bandwidth on an H100",
            _qk_norm_rope_example,
            ("qk_norm_rope",),
        ),
        OpSpec(
            "attention",
            reference.attention,
            ("triton",),
            "our Triton flash attention runs at 0.81x cuDNN on an H100; a faster core needs "
            "FlashAttention-3's warp-specialized pipelines",
            _attention_example,
            (
                "attention fwd",
                "attention fwd+bwd",
                "attention-8bit qk-int8 fwd",
                "attention-8bit qk-int8-pv-fp8 fwd",
            ),
            auto_note="prologue on this backend, then SDPA (cuDNN) in fp16/bf16 without k_lengths or lse; "
            "ring attention's blocks on cuDNN (else flash) attention with its lse; with a precision "
            "(8-bit, inference) Triton on CUDA, else the exact emulation",
        ),
    )
}


def op_spec(name: str) -> OpSpec:
    """The registry entry of ``name``; an unknown name lists the known ones."""
    if name not in OPS:
        raise ValueError(f"unknown op {name!r}; known: {', '.join(OPS)}")
    return OPS[name]

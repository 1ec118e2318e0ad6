"""Plain-PyTorch versions of every op: the executable spec, and the CPU path of ``backend="torch"``.

Each function here is written to be obviously right rather than fast; it computes in float32, or in
float64 when given float64, and returns the input's dtype.
"""

from cosmos_kernels.reference.adaln import adaln_modulate, gated_residual_adaln
from cosmos_kernels.reference.attention import (
    apply_rope,
    attention,
    attention_backward_from_lse,
    qk_norm_rope,
    rms_norm_per_head,
)
from cosmos_kernels.reference.channel_norm import rms_norm_channels_silu
from cosmos_kernels.reference.haar import (
    haar2d_analysis,
    haar2d_synthesis,
    haar3d_analysis,
    haar3d_synthesis,
)
from cosmos_kernels.reference.norm import group_norm_silu

__all__ = [
    "adaln_modulate",
    "apply_rope",
    "attention",
    "attention_backward_from_lse",
    "gated_residual_adaln",
    "group_norm_silu",
    "haar2d_analysis",
    "haar2d_synthesis",
    "haar3d_analysis",
    "haar3d_synthesis",
    "qk_norm_rope",
    "rms_norm_channels_silu",
    "rms_norm_per_head",
]

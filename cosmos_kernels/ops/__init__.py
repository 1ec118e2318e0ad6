"""The public functional ops. Each is a ``torch.library.custom_op`` with a fake impl and autograd."""

from cosmos_kernels.ops.adaln import adaln_modulate, gated_residual_adaln
from cosmos_kernels.ops.attention import attention
from cosmos_kernels.ops.channel_norm import rms_norm_channels_silu
from cosmos_kernels.ops.haar import haar2d_analysis, haar2d_synthesis, haar3d_analysis, haar3d_synthesis
from cosmos_kernels.ops.norm import group_norm_silu
from cosmos_kernels.ops.qk_norm_rope import qk_norm_rope
from cosmos_kernels.ops.rope import rope3d_cos_sin

__all__ = [
    "adaln_modulate",
    "attention",
    "gated_residual_adaln",
    "group_norm_silu",
    "haar2d_analysis",
    "haar2d_synthesis",
    "haar3d_analysis",
    "haar3d_synthesis",
    "qk_norm_rope",
    "rms_norm_channels_silu",
    "rope3d_cos_sin",
]

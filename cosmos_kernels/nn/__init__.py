"""nn.Modules built on ``cosmos_kernels.ops``: the layers that ``cosmos_kernels.models`` assembles."""

from cosmos_kernels.nn.attention import Attention
from cosmos_kernels.nn.dit_layers import (
    DITBuildingBlock,
    FeedForward,
    FinalLayer,
    GeneralDITTransformerBlock,
    LearnablePosEmbAxis,
    PatchEmbed,
    TimestepEmbedding,
    Timesteps,
)
from cosmos_kernels.nn.quantizers import FSQuantizer
from cosmos_kernels.nn.tokenizer_layers2d import (
    AttnBlock,
    Downsample,
    Patcher,
    ResnetBlock,
    UnPatcher,
    Upsample,
    group_norm,
)
from cosmos_kernels.nn.tokenizer_layers3d import (
    CausalAttnBlock,
    CausalConv3d,
    CausalHybridDownsample3d,
    CausalHybridUpsample3d,
    CausalNormalize,
    CausalResnetBlockFactorized3d,
    CausalTemporalAttnBlock,
    Patcher3d,
    UnPatcher3d,
    factorized_causal_conv3d,
    haar_levels,
)

__all__ = [
    "Attention",
    "AttnBlock",
    "CausalAttnBlock",
    "CausalConv3d",
    "CausalHybridDownsample3d",
    "CausalHybridUpsample3d",
    "CausalNormalize",
    "CausalResnetBlockFactorized3d",
    "CausalTemporalAttnBlock",
    "DITBuildingBlock",
    "Downsample",
    "FSQuantizer",
    "FeedForward",
    "FinalLayer",
    "GeneralDITTransformerBlock",
    "LearnablePosEmbAxis",
    "PatchEmbed",
    "Patcher",
    "Patcher3d",
    "ResnetBlock",
    "TimestepEmbedding",
    "Timesteps",
    "UnPatcher",
    "UnPatcher3d",
    "Upsample",
    "factorized_causal_conv3d",
    "group_norm",
    "haar_levels",
]

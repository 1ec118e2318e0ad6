"""User-level generation: Text2World and Video2World pipelines, the diffusion decoder (tokens -> video),
and (from ``models.text_encoders``) the text conditioning they take."""

from cosmos_kernels.models.text_encoders import (
    MAX_TOKENS,
    HashTextEncoder,
    PromptUpsampler,
    T5TextEncoder,
    TextEncoder,
    no_upsampling,
)
from cosmos_kernels.pipelines.diffusion_decoder import (
    DecoderSamplingOptions,
    DiffusionDecoderPipeline,
    linear_blend_video_list,
    split_with_overlap,
)
from cosmos_kernels.pipelines.world import (
    SamplingOptions,
    Text2WorldPipeline,
    Video2WorldPipeline,
    WorldPipeline,
    WorldSample,
)

__all__ = [
    "MAX_TOKENS",
    "DecoderSamplingOptions",
    "DiffusionDecoderPipeline",
    "HashTextEncoder",
    "PromptUpsampler",
    "SamplingOptions",
    "T5TextEncoder",
    "Text2WorldPipeline",
    "TextEncoder",
    "Video2WorldPipeline",
    "WorldPipeline",
    "WorldSample",
    "linear_blend_video_list",
    "no_upsampling",
    "split_with_overlap",
]

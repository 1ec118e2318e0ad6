"""User-level generation: Text2World and Video2World pipelines, and (from ``models``) the
text conditioning and prompt upsampling they take."""

from cosmos_kernels.models.prompt_upsamplers import PromptUpsampler, clean_upsampled_prompt, no_upsampling
from cosmos_kernels.models.text_encoders import MAX_TOKENS, HashTextEncoder, T5TextEncoder, TextEncoder
from cosmos_kernels.pipelines.world import (
    SamplingOptions,
    Text2WorldPipeline,
    Video2WorldPipeline,
    WorldPipeline,
    WorldSample,
)

__all__ = [
    "MAX_TOKENS",
    "HashTextEncoder",
    "PromptUpsampler",
    "SamplingOptions",
    "T5TextEncoder",
    "Text2WorldPipeline",
    "TextEncoder",
    "Video2WorldPipeline",
    "WorldPipeline",
    "WorldSample",
    "clean_upsampled_prompt",
    "no_upsampling",
]

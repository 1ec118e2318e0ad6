"""User-level generation: Text2World and Video2World pipelines, and (from ``models.text_encoders``) the
text conditioning they take."""

from cosmos_kernels.models.text_encoders import (
    MAX_TOKENS,
    HashTextEncoder,
    PromptUpsampler,
    T5TextEncoder,
    TextEncoder,
    no_upsampling,
)
from cosmos_kernels.pipelines.camera import camera_condition, read_camera_trajectory
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
    "camera_condition",
    "no_upsampling",
    "read_camera_trajectory",
]

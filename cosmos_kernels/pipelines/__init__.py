"""User-level generation: Text2World and Video2World pipelines (single- and multi-view), the diffusion
decoder (tokens -> video), and (from ``models``) the text conditioning and prompt upsampling they take."""

from cosmos_kernels.models.prompt_upsamplers import PromptUpsampler, clean_upsampled_prompt, no_upsampling
from cosmos_kernels.models.text_encoders import MAX_TOKENS, HashTextEncoder, T5TextEncoder, TextEncoder
from cosmos_kernels.pipelines.camera import camera_condition, read_camera_trajectory
from cosmos_kernels.pipelines.diffusion_decoder import (
    DecoderSamplingOptions,
    DiffusionDecoderPipeline,
    linear_blend_video_list,
    split_with_overlap,
)
from cosmos_kernels.pipelines.multiview import (
    COSMOS_FRAME_REPEAT,
    MultiviewText2WorldPipeline,
    MultiviewVideo2WorldPipeline,
    decode_views,
    encode_views,
)
from cosmos_kernels.pipelines.world import (
    SamplingOptions,
    Text2WorldPipeline,
    Video2WorldPipeline,
    WorldPipeline,
    WorldSample,
)

__all__ = [
    "COSMOS_FRAME_REPEAT",
    "MAX_TOKENS",
    "DecoderSamplingOptions",
    "DiffusionDecoderPipeline",
    "HashTextEncoder",
    "MultiviewText2WorldPipeline",
    "MultiviewVideo2WorldPipeline",
    "PromptUpsampler",
    "SamplingOptions",
    "T5TextEncoder",
    "Text2WorldPipeline",
    "TextEncoder",
    "Video2WorldPipeline",
    "WorldPipeline",
    "WorldSample",
    "camera_condition",
    "clean_upsampled_prompt",
    "decode_views",
    "encode_views",
    "linear_blend_video_list",
    "no_upsampling",
    "read_camera_trajectory",
    "split_with_overlap",
]

"""Whole models built from ``cosmos_kernels.nn``: the Cosmos-1.0 diffusion transformer, the continuous
and discrete tokenizers, their configs and checkpoint loading, the latent normalization between them,
the diffusion decoder, the tiny world model and decoder shipped with the package
(``load_tiny_world``, ``load_tiny_decoder``), the text encoders that condition
them and Cosmos's prompt upsamplers."""

from cosmos_kernels.diffusion.latents import denormalize_latents, load_latent_stats, normalize_latents
from cosmos_kernels.models.camera import PLUCKER_CHANNELS, plucker_embeddings
from cosmos_kernels.models.diffusers_bridge import (
    DiffusersWorld,
    dit_from_diffusers,
    dit_to_diffusers,
    load_diffusers_dir,
    tokenizer_from_diffusers,
)
from cosmos_kernels.models.dit import DIT_CONFIGS, DiTConfig, GeneralDIT, build_dit, dit_config
from cosmos_kernels.models.dit_action import (
    ACTION_SCALE,
    ActionConditionalDIT,
    ActionDiTConfig,
    scale_actions,
)
from cosmos_kernels.models.dit_checkpoint import LoadedDiTState, load_cosmos_state_dict
from cosmos_kernels.models.dit_decoder import (
    DECODER_DIT_CONFIGS,
    DecoderDiTConfig,
    DiffusionDecoderGeneralDIT,
)
from cosmos_kernels.models.dit_multiview import MultiviewDiTConfig, MultiviewGeneralDIT, multiview_config
from cosmos_kernels.models.prompt_upsamplers import PromptUpsampler, clean_upsampled_prompt, no_upsampling
from cosmos_kernels.models.text_encoders import MAX_TOKENS, HashTextEncoder, T5TextEncoder, TextEncoder
from cosmos_kernels.models.tiny_decoder import TinyDecoder, load_tiny_decoder, tiny_decoder_dir
from cosmos_kernels.models.tiny_world import (
    load_tiny_world,
    tiny_world_dir,
    tiny_world_manifest,
    tiny_world_text_encoder,
)
from cosmos_kernels.models.tokenizer import (
    TOKENIZER_CONFIGS,
    ContinuousTokenizer,
    Decoder,
    DecoderFactorized,
    DiscreteTokenizer,
    DiscreteTokenizerConfig,
    Encoder,
    EncoderFactorized,
    TokenizerBase,
    TokenizerConfig,
    TokenizerNetworkConfig,
    build_tokenizer,
    tokenizer_config,
)
from cosmos_kernels.models.tokenizer_checkpoint import (
    LoadedTokenizerState,
    inert_parameter_names,
    load_cosmos_tokenizer_state_dict,
)

__all__ = [
    "ACTION_SCALE",
    "DECODER_DIT_CONFIGS",
    "DIT_CONFIGS",
    "MAX_TOKENS",
    "PLUCKER_CHANNELS",
    "TOKENIZER_CONFIGS",
    "ActionConditionalDIT",
    "ActionDiTConfig",
    "ContinuousTokenizer",
    "Decoder",
    "DecoderDiTConfig",
    "DecoderFactorized",
    "DiTConfig",
    "DiffusersWorld",
    "DiffusionDecoderGeneralDIT",
    "DiscreteTokenizer",
    "DiscreteTokenizerConfig",
    "Encoder",
    "EncoderFactorized",
    "GeneralDIT",
    "HashTextEncoder",
    "LoadedDiTState",
    "LoadedTokenizerState",
    "MultiviewDiTConfig",
    "MultiviewGeneralDIT",
    "PromptUpsampler",
    "T5TextEncoder",
    "TextEncoder",
    "TinyDecoder",
    "TokenizerBase",
    "TokenizerConfig",
    "TokenizerNetworkConfig",
    "build_dit",
    "build_tokenizer",
    "clean_upsampled_prompt",
    "denormalize_latents",
    "dit_config",
    "dit_from_diffusers",
    "dit_to_diffusers",
    "inert_parameter_names",
    "load_cosmos_state_dict",
    "load_cosmos_tokenizer_state_dict",
    "load_diffusers_dir",
    "load_latent_stats",
    "load_tiny_decoder",
    "load_tiny_world",
    "multiview_config",
    "no_upsampling",
    "normalize_latents",
    "plucker_embeddings",
    "scale_actions",
    "tiny_decoder_dir",
    "tiny_world_dir",
    "tiny_world_manifest",
    "tiny_world_text_encoder",
    "tokenizer_config",
    "tokenizer_from_diffusers",
]

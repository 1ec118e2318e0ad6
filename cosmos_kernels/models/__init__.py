"""Whole models built from ``cosmos_kernels.nn``: the Cosmos-1.0 diffusion transformer and continuous
tokenizers, their configs and checkpoint loading, the latent normalization between them, and the tiny
world model shipped with the package (``load_tiny_world``), and the text encoders that condition them."""

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
from cosmos_kernels.models.dit_checkpoint import LoadedDiTState, load_cosmos_state_dict
from cosmos_kernels.models.text_encoders import (
    MAX_TOKENS,
    HashTextEncoder,
    PromptUpsampler,
    T5TextEncoder,
    TextEncoder,
    no_upsampling,
)
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
    Encoder,
    EncoderFactorized,
    TokenizerConfig,
    build_tokenizer,
    tokenizer_config,
)
from cosmos_kernels.models.tokenizer_checkpoint import (
    LoadedTokenizerState,
    inert_parameter_names,
    load_cosmos_tokenizer_state_dict,
)

__all__ = [
    "DIT_CONFIGS",
    "MAX_TOKENS",
    "PLUCKER_CHANNELS",
    "TOKENIZER_CONFIGS",
    "ContinuousTokenizer",
    "Decoder",
    "DecoderFactorized",
    "DiTConfig",
    "DiffusersWorld",
    "Encoder",
    "EncoderFactorized",
    "GeneralDIT",
    "HashTextEncoder",
    "LoadedDiTState",
    "LoadedTokenizerState",
    "PromptUpsampler",
    "T5TextEncoder",
    "TextEncoder",
    "TokenizerConfig",
    "build_dit",
    "build_tokenizer",
    "denormalize_latents",
    "dit_config",
    "dit_from_diffusers",
    "dit_to_diffusers",
    "inert_parameter_names",
    "load_cosmos_state_dict",
    "load_cosmos_tokenizer_state_dict",
    "load_diffusers_dir",
    "load_latent_stats",
    "load_tiny_world",
    "no_upsampling",
    "normalize_latents",
    "plucker_embeddings",
    "tiny_world_dir",
    "tiny_world_manifest",
    "tiny_world_text_encoder",
    "tokenizer_config",
    "tokenizer_from_diffusers",
]

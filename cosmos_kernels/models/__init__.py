"""Whole models built from ``cosmos_kernels.nn``: the Cosmos continuous tokenizers, their configs and
checkpoint loading, and the latent normalization between tokenizer and diffusion model."""

from cosmos_kernels.models.latents import denormalize_latents, load_latent_stats, normalize_latents
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
    "TOKENIZER_CONFIGS",
    "ContinuousTokenizer",
    "Decoder",
    "DecoderFactorized",
    "Encoder",
    "EncoderFactorized",
    "LoadedTokenizerState",
    "TokenizerConfig",
    "build_tokenizer",
    "denormalize_latents",
    "inert_parameter_names",
    "load_cosmos_tokenizer_state_dict",
    "load_latent_stats",
    "normalize_latents",
    "tokenizer_config",
]

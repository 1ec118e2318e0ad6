"""Weights between diffusers' Cosmos-1.0 models and ours: the same network under two sets of names.

diffusers' ``CosmosTransformer3DModel`` with a Cosmos-1.0 config (learnable extra position embedding,
no cross-attention projection, no image context) computes our ``GeneralDIT``'s function: the same
patch order, [cos | sin] timestep sinusoid, AdaLN-LoRA, head split, rotate-half 3D RoPE with the same
NTK bases, and unpatchify order. Its inputs map one to one: diffusers' ``timestep`` is our
``timesteps`` (c_noise), its ``padding_mask`` of batch 1 is ours expanded to the batch, its
``condition_mask`` our ``condition_video_input_mask`` (Video2World). ``AutoencoderKLCosmos`` is Cosmos's
factorized causal video tokenizer with its modules renamed. The renames below follow the names of
both sides; the tests check every key and the outputs.

diffusers is imported inside the functions that need it: this module loads without it.
"""

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cosmos_kernels.models.dit import DiTConfig, GeneralDIT
from cosmos_kernels.models.tokenizer import ContinuousTokenizer, TokenizerConfig
from cosmos_kernels.models.tokenizer_checkpoint import inert_parameter_names

Tensor = torch.Tensor

# Our (Cosmos's) GeneralDIT names -> diffusers', applied in order to each key.
_DIT_RENAMES = (
    (r"^x_embedder\.proj\.1\.", "patch_embed.proj."),
    (r"^extra_pos_embedder\.", "learnable_pos_embed."),
    (r"^t_embedder\.1\.", "time_embed.t_embedder."),
    (r"^affline_norm\.", "time_embed.norm."),
    (r"^blocks\.block(\d+)\.", r"transformer_blocks.\1."),
    (r"\.blocks\.0\.block\.attn\.", ".attn1."),
    (r"\.blocks\.1\.block\.attn\.", ".attn2."),
    (r"\.blocks\.2\.block\.layer1\.", ".ff.net.0.proj."),
    (r"\.blocks\.2\.block\.layer2\.", ".ff.net.2."),
    (r"\.blocks\.(\d)\.adaLN_modulation\.1\.", lambda m: f".norm{int(m.group(1)) + 1}.linear_1."),
    (r"\.blocks\.(\d)\.adaLN_modulation\.2\.", lambda m: f".norm{int(m.group(1)) + 1}.linear_2."),
    (r"\.to_q\.0\.", ".to_q."),
    (r"\.to_q\.1\.", ".norm_q."),
    (r"\.to_k\.0\.", ".to_k."),
    (r"\.to_k\.1\.", ".norm_k."),
    (r"\.to_v\.0\.", ".to_v."),
    (r"^final_layer\.adaLN_modulation\.1\.", "norm_out.linear_1."),
    (r"^final_layer\.adaLN_modulation\.2\.", "norm_out.linear_2."),
    (r"^final_layer\.linear\.", "proj_out."),
)

# Our (Cosmos Tokenizer's) names -> AutoencoderKLCosmos's. Decoder levels count from the top in
# diffusers (up.0, the last one run, is up_blocks.{n-1}): that rename needs the level count.
_TOKENIZER_RENAMES = (
    (r"\.down\.(\d+)\.", r".down_blocks.\1."),
    (r"\.block\.(\d+)\.", r".resnets.\1."),
    (r"\.downsample\.", ".downsamplers.0."),
    (r"\.upsample\.", ".upsamplers.0."),
    (r"\.attn\.(\d+)\.0\.", r".attentions.\1."),
    (r"\.attn\.(\d+)\.1\.", r".temp_attentions.\1."),
    (r"\.mid\.block_1\.", ".mid_block.resnets.0."),
    (r"\.mid\.attn_1\.0\.", ".mid_block.attentions.0."),
    (r"\.mid\.attn_1\.1\.", ".mid_block.temp_attentions.0."),
    (r"\.mid\.block_2\.", ".mid_block.resnets.1."),
    (r"\.q\.conv3d\.", ".to_q."),
    (r"\.k\.conv3d\.", ".to_k."),
    (r"\.v\.conv3d\.", ".to_v."),
    (r"\.proj_out\.conv3d\.", ".to_out.0."),
    (r"\.(conv_in|conv_out|conv1|conv2)\.0\.conv3d\.", r".\1.conv_s."),
    (r"\.(conv_in|conv_out|conv1|conv2)\.1\.conv3d\.", r".\1.conv_t."),
    (r"\.(conv1|conv2|conv3)\.conv3d\.", r".\1."),
    (r"\.nin_shortcut\.conv3d\.", ".conv_shortcut."),
    (r"^(quant_conv|post_quant_conv)\.conv3d\.", r"\1."),
)


def _renamed(key: str, renames: tuple) -> str:
    for pattern, replacement in renames:
        key = re.sub(pattern, replacement, key)
    return key


def _diffusers():
    try:
        import diffusers
    except ImportError as error:
        raise ImportError(
            "the diffusers bridge needs diffusers: pip install 'cosmos-kernels[diffusers]'"
        ) from error
    return diffusers


def _load_by_map(ours: nn.Module, theirs: dict[str, Tensor], names: dict[str, str], what: str) -> None:
    """Copy ``theirs[names[k]]`` into each of our keys k named; every key of ``theirs`` must be used."""
    missing = sorted(v for v in names.values() if v not in theirs)
    unused = sorted(set(theirs) - set(names.values()))
    if missing or unused:
        raise ValueError(
            f"{what}: the weights do not match this configuration; missing {missing[:8]}, "
            f"unexpected {unused[:8]}"
        )
    state = ours.state_dict()
    for key, name in names.items():
        if theirs[name].shape != state[key].shape:
            raise ValueError(
                f"{what}: {name} has shape {tuple(theirs[name].shape)}, ours ({key}) "
                f"{tuple(state[key].shape)}"
            )
    result = ours.load_state_dict({key: theirs[name] for key, name in names.items()}, strict=False)
    if result.missing_keys and set(result.missing_keys) != set(state) - set(names):
        raise ValueError(f"{what}: no weights for {result.missing_keys[:8]}")


# ---------------------------------------------------------------------------------------------
# DiT


def _dit_config(config: Any) -> DiTConfig:
    """Our DiTConfig for a diffusers CosmosTransformer3DModel config; ValueError if not Cosmos-1.0."""
    unsupported = {
        "extra_pos_embed_type": config.extra_pos_embed_type != "learnable",
        "use_crossattn_projection": bool(config.use_crossattn_projection),
        "img_context_dim_in": bool(config.img_context_dim_in),
        "controlnet_block_every_n": config.controlnet_block_every_n is not None,
    }
    bad = [name for name, flag in unsupported.items() if flag]
    p_t, p_h, p_w = config.patch_size
    if bad or p_h != p_w:
        raise ValueError(
            "dit_from_diffusers: GeneralDIT is Cosmos-1.0's network (learnable extra position embedding, "
            "no cross-attention projection, no image context, square patches); this diffusers config "
            f"differs in {bad or ['patch_size']}"
        )
    t_ratio, h_ratio, w_ratio = config.rope_scale
    video_extend = config.in_channels == config.out_channels + 1
    return DiTConfig(
        max_frames=config.max_size[0],
        max_img_h=config.max_size[1],
        max_img_w=config.max_size[2],
        in_channels=config.in_channels,
        out_channels=config.out_channels,
        patch_spatial=p_h,
        patch_temporal=p_t,
        concat_padding_mask=config.concat_padding_mask,
        model_channels=config.num_attention_heads * config.attention_head_dim,
        num_blocks=config.num_layers,
        num_heads=config.num_attention_heads,
        mlp_ratio=config.mlp_ratio,
        crossattn_emb_channels=config.text_embed_dim,
        adaln_lora_dim=config.adaln_lora_dim,
        rope_t_extrapolation_ratio=t_ratio,
        rope_h_extrapolation_ratio=h_ratio,
        rope_w_extrapolation_ratio=w_ratio,
        video_extend=video_extend,
    )


def _dit_names(net: GeneralDIT) -> dict[str, str]:
    return {key: _renamed(key, _DIT_RENAMES) for key in net.state_dict()}


def _load_transformer(transformer_or_directory: Any) -> nn.Module:
    diffusers = _diffusers()
    if isinstance(transformer_or_directory, diffusers.CosmosTransformer3DModel):
        return transformer_or_directory
    if isinstance(transformer_or_directory, str | Path):
        path = Path(transformer_or_directory)
        subfolder = "transformer" if (path / "model_index.json").exists() else None
        return diffusers.CosmosTransformer3DModel.from_pretrained(path, subfolder=subfolder)
    raise TypeError(
        "dit_from_diffusers: expected a diffusers CosmosTransformer3DModel or a directory holding one "
        f"(a pipeline directory or its transformer/), got {type(transformer_or_directory).__name__}"
    )


def dit_from_diffusers(transformer_or_directory: Any) -> GeneralDIT:
    """Our ``GeneralDIT`` with the weights of a diffusers Cosmos-1.0 ``CosmosTransformer3DModel``.

    Args:
        transformer_or_directory: the model, or a directory saved by diffusers: a pipeline directory
            (``model_index.json``, ``transformer/``) or the transformer's own.
    Returns:
        A GeneralDIT in the diffusers model's dtype and device (copies of its weights), in its
        train/eval mode. For the same inputs it gives diffusers' output: our ``timesteps`` is
        diffusers' ``timestep``, our ``padding_mask`` its (batch-1) mask expanded to the batch.
    """
    transformer = _load_transformer(transformer_or_directory)
    parameter = next(transformer.parameters())
    with torch.device("meta"):
        net = GeneralDIT(_dit_config(transformer.config))
    net = net.to_empty(device=parameter.device).to(parameter.dtype)
    theirs = {k: v.detach().clone() for k, v in transformer.state_dict().items()}
    _load_by_map(net, theirs, _dit_names(net), "dit_from_diffusers")
    return net.train(transformer.training)


def dit_to_diffusers(net: GeneralDIT) -> Any:
    """The diffusers ``CosmosTransformer3DModel`` with our ``GeneralDIT``'s weights (the inverse)."""
    if not isinstance(net, GeneralDIT):
        raise TypeError(f"dit_to_diffusers: net must be a GeneralDIT, got {type(net).__name__}")
    c = net.config
    if c.block_config.upper() != "FA-CA-MLP" or not (c.use_adaln_lora and c.affline_emb_norm):
        raise ValueError(
            "dit_to_diffusers: diffusers' Cosmos transformer has FA-CA-MLP blocks with AdaLN-LoRA and the "
            f"timestep RMSNorm; this network has block_config={c.block_config!r}, "
            f"use_adaln_lora={c.use_adaln_lora}, affline_emb_norm={c.affline_emb_norm}"
        )
    if c.use_cross_attn_mask or not c.extra_per_block_abs_pos_emb:
        raise ValueError(
            "dit_to_diffusers: needs extra_per_block_abs_pos_emb=True and use_cross_attn_mask=False "
            "(Cosmos-1.0), as diffusers' Cosmos-1.0 configs have"
        )
    diffusers = _diffusers()
    parameter = next(net.parameters())
    transformer = diffusers.CosmosTransformer3DModel(
        in_channels=c.in_channels,
        out_channels=c.out_channels,
        num_attention_heads=c.num_heads,
        attention_head_dim=c.head_dim,
        num_layers=c.num_blocks,
        mlp_ratio=c.mlp_ratio,
        text_embed_dim=c.crossattn_emb_channels,
        adaln_lora_dim=c.adaln_lora_dim,
        max_size=(c.max_frames, c.max_img_h, c.max_img_w),
        patch_size=(c.patch_temporal, c.patch_spatial, c.patch_spatial),
        rope_scale=(c.rope_t_extrapolation_ratio, c.rope_h_extrapolation_ratio, c.rope_w_extrapolation_ratio),
        concat_padding_mask=c.concat_padding_mask,
        extra_pos_embed_type="learnable",
    ).to(device=parameter.device, dtype=parameter.dtype)
    ours = net.state_dict()
    names = {name: key for key, name in _dit_names(net).items()}
    theirs = {key: ours[names[key]].detach().clone() for key in transformer.state_dict() if key in names}
    _load_by_map(transformer, theirs, {k: k for k in transformer.state_dict()}, "dit_to_diffusers")
    return transformer.train(net.training)


# ---------------------------------------------------------------------------------------------
# Tokenizer


def _tokenizer_config(config: Any) -> TokenizerConfig:
    """Our TokenizerConfig for an AutoencoderKLCosmos config."""
    encoder, decoder = tuple(config.encoder_block_out_channels), tuple(config.decode_block_out_channels)
    channels = encoder[0]
    mult = tuple(c // channels for c in encoder[1:])
    expected_decoder = (*(channels * m for m in mult), channels * mult[-1])
    if any(c % channels for c in encoder) or decoder != expected_decoder or config.patch_type != "haar":
        raise ValueError(
            "tokenizer_from_diffusers: our tokenizer builds Cosmos's CV networks: encoder channels "
            "(c, c*m1, c*m2, ...), decoder channels (c*m1, c*m2, ..., c*m_last) and the Haar patcher; got "
            f"encoder {encoder}, decoder {decoder}, patch_type {config.patch_type!r}"
        )
    return TokenizerConfig(
        in_channels=config.in_channels,
        out_channels=config.out_channels,
        channels=channels,
        channels_mult=mult,
        num_res_blocks=config.num_layers,
        attn_resolutions=tuple(config.attention_resolutions),
        resolution=config.resolution,
        patch_size=config.patch_size,
        z_channels=config.latent_channels,
        latent_channels=config.latent_channels,
        spatial_compression=config.spatial_compression_ratio,
        temporal_compression=config.temporal_compression_ratio,
    )


def _tokenizer_names(tokenizer: ContinuousTokenizer) -> dict[str, str]:
    """Our keys -> diffusers'. Cosmos builds convs for down/upsamplers that never run (a level that
    halves space only still has a temporal conv); diffusers does not: those keep their init."""
    levels = len(tokenizer.config.channels_mult)
    inert = inert_parameter_names(tokenizer)

    def name(key: str) -> str:
        level = r"^decoder\.up\.(\d+)\."
        key = re.sub(level, lambda m: f"decoder.up_blocks.{levels - 1 - int(m.group(1))}.", key)
        return _renamed(key, _TOKENIZER_RENAMES)

    return {key: name(key) for key in tokenizer.state_dict() if key not in inert}


def tokenizer_from_diffusers(autoencoder: Any) -> ContinuousTokenizer:
    """Our ``ContinuousTokenizer`` with the weights of a diffusers ``AutoencoderKLCosmos``.

    Encode and decode give diffusers' ``encode(x).latent_dist.mode()`` and ``decode(z).sample``.
    The latent statistics (diffusers' ``latents_mean``/``latents_std`` config entries) are not part of
    the network; :func:`load_diffusers_dir` returns them beside it.
    """
    diffusers = _diffusers()
    if not isinstance(autoencoder, diffusers.AutoencoderKLCosmos):
        raise TypeError(
            "tokenizer_from_diffusers: expected a diffusers AutoencoderKLCosmos, got "
            f"{type(autoencoder).__name__}"
        )
    parameter = next(autoencoder.parameters())
    tokenizer = ContinuousTokenizer(_tokenizer_config(autoencoder.config))
    tokenizer = tokenizer.to(device=parameter.device, dtype=parameter.dtype)
    theirs = {
        k: v.detach().clone()
        for k, v in autoencoder.state_dict().items()
        if not k.endswith(("wavelets", "_arange"))
    }
    _load_by_map(tokenizer, theirs, _tokenizer_names(tokenizer), "tokenizer_from_diffusers")
    return tokenizer.train(autoencoder.training)


# ---------------------------------------------------------------------------------------------
# A diffusers model directory


@dataclass
class DiffusersWorld:
    """A diffusers Cosmos-1.0 pipeline directory as our models: what ``generate`` needs beside a text
    encoder. ``latent_mean``/``latent_std`` are None when the VAE config carries no statistics."""

    net: GeneralDIT
    tokenizer: ContinuousTokenizer
    latent_mean: Tensor | None
    latent_std: Tensor | None
    pipeline_class: str


def load_diffusers_dir(path: str | Path, device: str | torch.device = "cpu") -> DiffusersWorld:
    """Load a diffusers-format Cosmos-1.0 model directory (``model_index.json``, ``transformer/``,
    ``vae/``) into our GeneralDIT and tokenizer, float32, in eval mode on ``device``."""
    root = Path(path)
    index_file = root / "model_index.json"
    if not index_file.is_file():
        raise ValueError(f"--diffusers-dir {root}: no model_index.json (not a diffusers pipeline directory)")
    index = json.loads(index_file.read_text())
    for part in ("transformer", "vae"):
        if part not in index or not (root / part).is_dir():
            raise ValueError(f"--diffusers-dir {root}: has no {part}/ component")
    diffusers = _diffusers()
    transformer = diffusers.CosmosTransformer3DModel.from_pretrained(root, subfolder="transformer")
    vae = diffusers.AutoencoderKLCosmos.from_pretrained(root, subfolder="vae")
    net = dit_from_diffusers(transformer.float())
    tokenizer = tokenizer_from_diffusers(vae.float())
    stats = [vae.config.latents_mean, vae.config.latents_std]
    mean, std = (None if s is None else torch.tensor(s, dtype=torch.float32, device=device) for s in stats)
    return DiffusersWorld(
        net.to(device).eval(), tokenizer.to(device).eval(), mean, std, index.get("_class_name", "")
    )

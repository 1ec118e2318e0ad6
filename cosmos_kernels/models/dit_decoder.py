"""Cosmos-1.0's diffusion decoder network, ``DiffusionDecoderGeneralDIT``: the 7B GeneralDIT that
denoises CV8x8x8 latents conditioned on DV8x16x16 token indices (facts in docs/COSMOS.md, Part 2 §1).

Only the input differs from GeneralDIT (cosmos_predict1/autoregressive/diffusion_decoder/network.py):
each token index goes through a zero-initialized ``nn.Embedding(64000, 32)``, the (B T', 32, H', W')
embedding is resized bilinearly onto the latent grid (2x: DV compresses space 16x, CV 8x) and
concatenated after the 16 latent channels, before the padding mask, so the patch embedding takes
16 + 32 + 1 = 49 channels. Time is not resampled: both tokenizers compress it 8x. The unconditional
branch of guidance gives token index 0 everywhere (Cosmos's dropped condition).
"""

from dataclasses import dataclass, fields, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cosmos_kernels.checks import check_int
from cosmos_kernels.models._checks import named_config
from cosmos_kernels.models.dit import DIT_CONFIGS, DiTConfig, GeneralDIT

Tensor = torch.Tensor


@dataclass(frozen=True)
class DecoderDiTConfig(DiTConfig):
    """GeneralDIT's arguments plus the token condition (``diffusion_decoder_token_condition_voc_size``
    and ``_dim`` in Cosmos); ``in_channels`` stays the 16 latent channels, as in Cosmos's config."""

    token_vocab_size: int = 64000
    token_dim: int = 32

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("decoder DiT config", "token_vocab_size", self.token_vocab_size, 1)
        check_int("decoder DiT config", "token_dim", self.token_dim, 1)
        if self.video_extend:
            raise ValueError("decoder DiT config: the diffusion decoder has no Video2World variant")

    @property
    def embed_channels(self) -> int:
        return self.in_channels + self.token_dim + int(self.concat_padding_mask)

    def build(self) -> "DiffusionDecoderGeneralDIT":
        return DiffusionDecoderGeneralDIT(self)


# CP1:autoregressive/diffusion_decoder/config/inference/cosmos_diffusiondecoder_7b.py:51-64; the
# per-block absolute position embedding is left at GeneralDIT's default, False.
_DECODER_OVERRIDES: dict[str, Any] = {
    "max_img_h": 240,
    "max_img_w": 240,
    "rope_h_extrapolation_ratio": 1.5,
    "rope_w_extrapolation_ratio": 1.5,
    "rope_t_extrapolation_ratio": 1.0,
    "extra_per_block_abs_pos_emb": False,
}


def _decoder(base: DiTConfig, **overrides: Any) -> DecoderDiTConfig:
    values = {f.name: getattr(base, f.name) for f in fields(base)}
    return replace(DecoderDiTConfig(**values), **{**_DECODER_OVERRIDES, **overrides})


DECODER_DIT_CONFIGS: dict[str, DecoderDiTConfig] = {
    "cosmos-7b-decoder": _decoder(DIT_CONFIGS["cosmos-7b"]),
    # Milliseconds on CPU; the vocabulary stays FSQ's 64,000 so any DV tokenizer's indices fit.
    "tiny-decoder": _decoder(DIT_CONFIGS["tiny"], max_img_h=32, max_img_w=32),
}
# build_dit / dit_config know the decoders once this module is imported (models/__init__ does).
DIT_CONFIGS.update(DECODER_DIT_CONFIGS)


def embed_tokens(embedding: nn.Embedding, indices: Tensor, size: tuple[int, int]) -> Tensor:
    """Token indices (B, T', H', W') -> their embedding (B, D, T', H, W) resized to ``size`` = (H, W).

    Cosmos resizes with ``torchvision.transforms.functional.resize(..., BILINEAR)``, which for tensors
    is ``F.interpolate(mode="bilinear", align_corners=False, antialias=...)``; antialiasing only acts
    when shrinking, so for the decoder's 2x enlargement both of torchvision's defaults give this.
    """
    batch, frames = indices.shape[:2]
    emb = embedding(indices.long())  # (B, T', H', W', D)
    emb = emb.flatten(0, 1).permute(0, 3, 1, 2)
    emb = F.interpolate(emb, size=size, mode="bilinear", align_corners=False, antialias=True)
    return emb.unflatten(0, (batch, frames)).transpose(1, 2)


class DiffusionDecoderGeneralDIT(GeneralDIT):
    """GeneralDIT with the token condition; ``forward`` takes ``token_indices`` (see the module docstring)."""

    config: DecoderDiTConfig

    def __init__(self, config: DecoderDiTConfig) -> None:
        if not isinstance(config, DecoderDiTConfig):
            raise TypeError(f"config must be a DecoderDiTConfig, got {type(config).__name__}")
        super().__init__(config)
        self.token_embedder = nn.Embedding(config.token_vocab_size, config.token_dim)
        nn.init.zeros_(self.token_embedder.weight)

    def initialize_weights(self) -> None:
        """GeneralDIT's init, and a zero token embedding (Cosmos's)."""
        super().initialize_weights()
        # GeneralDIT.__init__ calls this before the embedder exists; __init__ zeroes it then.
        if hasattr(self, "token_embedder"):
            nn.init.zeros_(self.token_embedder.weight)

    def _check_tokens(self, token_indices: Tensor, x: Tensor) -> None:
        if not isinstance(token_indices, Tensor):
            raise TypeError(
                f"DiffusionDecoderGeneralDIT: token_indices must be an integer tensor (B, T', H', W'), "
                f"got {type(token_indices).__name__}"
            )
        if (
            token_indices.is_floating_point()
            or token_indices.is_complex()
            or token_indices.dtype == torch.bool
        ):
            raise TypeError(
                f"DiffusionDecoderGeneralDIT: token_indices must hold integers, got {token_indices.dtype}"
            )
        if token_indices.dim() != 4 or token_indices.shape[:2] != (x.shape[0], x.shape[2]):
            raise ValueError(
                f"DiffusionDecoderGeneralDIT: token_indices must be (B, T', H', W') with B = {x.shape[0]} "
                f"and T' = {x.shape[2]} (the latent frames), got {tuple(token_indices.shape)}"
            )
        vocab = self.config.token_vocab_size
        if token_indices.numel() and (token_indices.min() < 0 or token_indices.max() >= vocab):
            raise ValueError(
                f"DiffusionDecoderGeneralDIT: token_indices must lie in 0..{vocab - 1}, got "
                f"{int(token_indices.min())}..{int(token_indices.max())}"
            )

    def forward(  # type: ignore[override]
        self,
        x: Tensor,
        timesteps: Tensor,
        crossattn_emb: Tensor,
        *,
        token_indices: Tensor,
        fps: float | Tensor | None = None,
        padding_mask: Tensor | None = None,
        crossattn_mask: Tensor | None = None,
    ) -> Tensor:
        """The network output F (B, 16, T, H, W); ``token_indices`` (B, T, H', W') are the discrete
        tokens in 0..token_vocab_size-1 (any H', W': they are resized to H, W). The other arguments
        are GeneralDIT's."""
        self._check_inputs(x, timesteps, crossattn_emb, padding_mask, crossattn_mask, None)
        self._check_tokens(token_indices, x)
        x = x.to(self.x_embedder.proj[1].weight.dtype)
        tokens = embed_tokens(self.token_embedder, token_indices, x.shape[-2:]).to(x.dtype)
        # The token channels sit where GeneralDIT's condition mask would: after x, before the padding mask.
        inputs = self._input_channels(torch.cat([x, tokens], dim=1), padding_mask, None)
        return self._run(inputs, timesteps, crossattn_emb, fps=fps, crossattn_mask=crossattn_mask)


def decoder_dit_config(name: str, /, **overrides: Any) -> DecoderDiTConfig:
    """The named decoder config with some arguments replaced (Cosmos's argument names); what
    ``models.dit_config`` and ``models.build_dit`` use for the decoders' names."""
    return named_config("decoder DiT", DECODER_DIT_CONFIGS, name, overrides)

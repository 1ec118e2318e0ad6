"""Layers of the Cosmos-1.0 diffusion transformer (``GeneralDIT``), named as Cosmos names them.

Module and parameter names follow cosmos-predict1's ``diffusion/module/blocks.py`` and
``position_embedding.py`` one to one (``x_embedder.proj.1``, ``t_embedder.1.linear_1``,
``blocks.block3.blocks.0.block.attn.to_q.0``, ``adaLN_modulation.2``, ...), so a Cosmos checkpoint
loads key for key. Where Cosmos normalizes then modulates with separate modules, these layers call
the fused ops (``ops.adaln_modulate``, ``ops.gated_residual_adaln``, ``ops.attention``) instead; the
non-affine LayerNorms have no parameters, so nothing is lost from the checkpoint.
"""

import math
from collections.abc import Callable

import torch
from einops.layers.torch import Rearrange
from torch import nn

from cosmos_kernels import ops
from cosmos_kernels.nn.attention import Attention

Tensor = torch.Tensor

# Cosmos's block_config tokens, lower-cased, and the sub-block each one builds.
SUB_BLOCK_TYPES = {"fa": "fa", "full_attn": "fa", "ca": "ca", "cross_attn": "ca", "mlp": "mlp", "ff": "mlp"}


class Timesteps(nn.Module):
    """Sinusoidal embedding of the noise level: (B,) -> (B, C) = [cos | sin] of ``t * 10000^(-i/(C/2))``.

    Cosine first, as Cosmos's ``Timesteps``; computed in float32 and returned in ``t``'s dtype.
    """

    def __init__(self, num_channels: int) -> None:
        super().__init__()
        self.num_channels = num_channels

    def forward(self, timesteps: Tensor) -> Tensor:
        half = self.num_channels // 2
        exponent = -math.log(10000) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / half
        angles = timesteps[:, None].float() * exponent.exp()[None, :]
        return torch.cat([angles.cos(), angles.sin()], dim=-1).to(timesteps.dtype)


class TimestepEmbedding(nn.Module):
    """The timestep MLP. With AdaLN-LoRA it returns (the raw sinusoid, MLP output of size 3D): the
    sinusoid feeds every block's low-rank modulation and the MLP output is added to it as a shared
    full-rank term. Without, (MLP output of size D, None)."""

    def __init__(self, in_features: int, out_features: int, use_adaln_lora: bool) -> None:
        super().__init__()
        self.use_adaln_lora = use_adaln_lora
        self.linear_1 = nn.Linear(in_features, out_features, bias=not use_adaln_lora)
        self.activation = nn.SiLU()
        out = 3 * out_features if use_adaln_lora else out_features
        self.linear_2 = nn.Linear(out_features, out, bias=not use_adaln_lora)

    def forward(self, sample: Tensor) -> tuple[Tensor, Tensor | None]:
        emb = self.linear_2(self.activation(self.linear_1(sample)))
        return (sample, emb) if self.use_adaln_lora else (emb, None)


class PatchEmbed(nn.Module):
    """(B, C, T, H, W) -> (B, T/pt, H/p, W/p, D): each patch flattened channel-major, (c, t, h, w)."""

    def __init__(
        self, spatial_patch_size: int, temporal_patch_size: int, in_channels: int, out_channels: int
    ) -> None:
        super().__init__()
        p, pt = spatial_patch_size, temporal_patch_size
        self.proj = nn.Sequential(
            Rearrange("b c (t r) (h m) (w n) -> b t h w (c r m n)", r=pt, m=p, n=p),
            nn.Linear(in_channels * p * p * pt, out_channels, bias=False),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)


class LearnablePosEmbAxis(nn.Module):
    """Cosmos's per-block absolute position embedding: ``pos_t[t] + pos_h[h] + pos_w[w]`` for each
    token, divided by its RMS over D (plus 1e-6), without weight; tables cropped to the grid."""

    def __init__(self, model_channels: int, len_t: int, len_h: int, len_w: int) -> None:
        super().__init__()
        self.pos_emb_t = nn.Parameter(torch.empty(len_t, model_channels))
        self.pos_emb_h = nn.Parameter(torch.empty(len_h, model_channels))
        self.pos_emb_w = nn.Parameter(torch.empty(len_w, model_channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for table in (self.pos_emb_t, self.pos_emb_h, self.pos_emb_w):
            nn.init.trunc_normal_(table, std=0.02)

    def forward(self, t: int, h: int, w: int) -> Tensor:
        """(t*h*w, D) in the tables' dtype, tokens in (t, h, w) row-major order."""
        emb = self.pos_emb_t[:t, None, None] + self.pos_emb_h[None, :h, None] + self.pos_emb_w[None, None, :w]
        emb = emb.flatten(0, 2)
        dim = emb.shape[-1]
        norm_dtype = torch.promote_types(emb.dtype, torch.float32)  # at least float32, as Cosmos
        norm = torch.linalg.vector_norm(emb, dim=-1, keepdim=True, dtype=norm_dtype)
        return emb / (1e-6 + norm / math.sqrt(dim)).to(emb.dtype)


class SinCosPosEmbAxis(nn.Module):
    """Fixed sin-cos absolute position embedding (cosmos_predict1 ``MultiviewSinCosPosEmbAxis`` for one
    view): D splits into [t | h | w] parts of D - 2 (D // 6 * 2), D // 6 * 2 and D // 6 * 2 dims, each
    ``[sin | cos](pos * 10000^(-i / (d/2)))`` of its axis position divided by the axis's extrapolation
    ratio; concatenated, not normalized. Cosmos keeps the tables as non-persistent buffers, so there
    are no checkpoint keys; here they are computed on the fly (t + h + w rows), which also works for
    a model built on the meta device."""

    def __init__(
        self, model_channels: int, extrapolation: tuple[float, float, float] = (1.0, 1.0, 1.0)
    ) -> None:
        super().__init__()
        self.dim_h = model_channels // 6 * 2
        self.dim_t = model_channels - 2 * self.dim_h
        if self.dim_t % 2:
            raise ValueError(f"SinCosPosEmbAxis: model_channels must be even, got {model_channels}")
        self.extrapolation = extrapolation

    def forward(self, t: int, h: int, w: int, device: torch.device | None = None) -> Tensor:
        """(t*h*w, D) float32, tokens in (t, h, w) row-major order."""
        tables = [
            _sincos_table(dim, torch.arange(length, dtype=torch.float64, device=device) / ratio).float()
            for dim, length, ratio in zip(
                (self.dim_t, self.dim_h, self.dim_h), (t, h, w), self.extrapolation, strict=True
            )
        ]
        parts = (
            tables[0][:, None, None].expand(t, h, w, -1),
            tables[1][None, :, None].expand(t, h, w, -1),
            tables[2][None, None, :].expand(t, h, w, -1),
        )
        return torch.cat(parts, dim=-1).flatten(0, 2)


def _sincos_table(dim: int, positions: Tensor) -> Tensor:
    # Cosmos's get_1d_sincos_pos_embed_from_grid (float64): [sin | cos] of positions x frequencies.
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2))
    angles = positions[:, None] * omega[None]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class FeedForward(nn.Module):
    """Cosmos's ``GPT2FeedForward``: Linear(D, hidden) -> exact GELU -> Linear(hidden, D), no biases."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.layer1 = nn.Linear(dim, hidden_dim, bias=False)
        self.activation = nn.GELU()
        self.layer2 = nn.Linear(hidden_dim, dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.layer2(self.activation(self.layer1(x)))


class VideoAttn(nn.Module):
    """Holder of one :class:`Attention`, so that its parameters sit under ``block.attn`` as in Cosmos."""

    def __init__(self, x_dim: int, context_dim: int | None, num_heads: int) -> None:
        super().__init__()
        self.attn = Attention(x_dim, context_dim, heads=num_heads, dim_head=x_dim // num_heads, eps=1e-6)


def adaln_modulation(dim: int, chunks: int, adaln_lora_dim: int | None) -> nn.Sequential:
    """SiLU -> Linear(D, r) -> Linear(r, chunks*D) with AdaLN-LoRA of rank r, else SiLU -> Linear."""
    if adaln_lora_dim is None:
        return nn.Sequential(nn.SiLU(), nn.Linear(dim, chunks * dim, bias=False))
    return nn.Sequential(
        nn.SiLU(),
        nn.Linear(dim, adaln_lora_dim, bias=False),
        nn.Linear(adaln_lora_dim, chunks * dim, bias=False),
    )


class DITBuildingBlock(nn.Module):
    """One residual sub-block of a DiT block ("fa" self-attention, "ca" cross-attention or "mlp") and
    the AdaLN modulation (shift, scale, gate) of its input."""

    def __init__(
        self,
        block_type: str,
        x_dim: int,
        context_dim: int,
        num_heads: int,
        mlp_ratio: float,
        adaln_lora_dim: int | None,
        n_views: int = 1,
    ) -> None:
        super().__init__()
        self.block_type = SUB_BLOCK_TYPES[block_type.lower()]
        # Multi-view cross-attention: the sequence holds n_views views (view-major) and the context
        # n_views prompts, and each view attends to its own prompt only (Cosmos's VideoAttn n_views).
        self.n_views = n_views
        if self.block_type == "mlp":
            self.block: nn.Module = FeedForward(x_dim, int(x_dim * mlp_ratio))
        else:
            self.block = VideoAttn(x_dim, None if self.block_type == "fa" else context_dim, num_heads)
        self.adaLN_modulation = adaln_modulation(x_dim, 3, adaln_lora_dim)

    def modulation(self, emb: Tensor, adaln_lora: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """(shift, scale, gate), each (B, D): views of one (B, 3D) tensor, read in place by the ops."""
        mod = self.adaLN_modulation(emb)
        if adaln_lora is not None:
            mod = mod + adaln_lora
        return mod.chunk(3, dim=-1)

    def forward(
        self,
        x: Tensor,
        context: Tensor,
        rope_cos: Tensor,
        rope_sin: Tensor,
        k_lengths: Tensor | None,
        attention_fn: Callable[..., Tensor],
    ) -> Tensor:
        """The sub-block's function of its modulated input x (B, S, D)."""
        if self.block_type == "mlp":
            return self.block(x)
        if self.block_type == "fa":
            return self.block.attn(x, rope_cos=rope_cos, rope_sin=rope_sin, attention_fn=attention_fn)
        if self.n_views == 1:
            return self.block.attn(x, context, k_lengths=k_lengths)
        # Views fold into the batch, (B, V*S) -> (B*V, S), so that all views run as one attention call;
        # k_lengths is then per view, (B*V,).
        batch, views = x.shape[0], self.n_views
        out = self.block.attn(
            x.unflatten(1, (views, -1)).flatten(0, 1),
            context.unflatten(1, (views, -1)).flatten(0, 1),
            k_lengths=k_lengths,
        )
        return out.unflatten(0, (batch, views)).flatten(1, 2)


class GeneralDITTransformerBlock(nn.Module):
    """A DiT block: residual sub-blocks in ``block_config`` order ("FA-CA-MLP" in Cosmos-1.0), each
    ``x = x + gate * f(LayerNorm(x) * (1 + scale) + shift)``.

    Between two sub-blocks the gated residual and the next sub-block's norm and modulation run as one
    fused op, so a block reads and writes its residual stream once per sub-block.
    """

    def __init__(
        self,
        x_dim: int,
        context_dim: int,
        num_heads: int,
        block_config: str,
        mlp_ratio: float,
        adaln_lora_dim: int | None,
        n_views: int = 1,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            DITBuildingBlock(kind, x_dim, context_dim, num_heads, mlp_ratio, adaln_lora_dim, n_views)
            for kind in block_config.split("-")
        )

    def forward(
        self,
        x: Tensor,
        emb: Tensor,
        adaln_lora: Tensor | None,
        context: Tensor,
        rope_cos: Tensor,
        rope_sin: Tensor,
        extra_pos_emb: Tensor | None = None,
        k_lengths: Tensor | None = None,
        attention_fn: Callable[..., Tensor] = ops.attention,
    ) -> Tensor:
        """x (B, S, D) tokens, emb (B, D), adaln_lora (B, 3D) or None, context (B, M, context_dim),
        RoPE tables (S, head_dim / 2), extra_pos_emb broadcastable to x, in its dtype -> (B, S, D).

        ``attention_fn`` runs the self-attention (``ops.attention``, or ring attention under context
        parallelism)."""
        if extra_pos_emb is not None:
            x = x + extra_pos_emb
        # Modulations in the stream's dtype: under autocast the Linear outputs may differ from it.
        mods = [tuple(m.to(x.dtype) for m in sub.modulation(emb, adaln_lora)) for sub in self.blocks]
        shift, scale, gate = mods[0]
        modulated = ops.adaln_modulate(x, shift, scale)
        for i, sub in enumerate(self.blocks):
            y = sub(modulated, context, rope_cos, rope_sin, k_lengths, attention_fn)
            if i + 1 < len(self.blocks):
                next_shift, next_scale, next_gate = mods[i + 1]
                x, modulated = ops.gated_residual_adaln(x, y.to(x.dtype), gate, next_shift, next_scale)
                gate = next_gate
            else:
                x = torch.addcmul(x, gate.unsqueeze(1), y.to(x.dtype))
        return x


class FinalLayer(nn.Module):
    """LayerNorm, AdaLN (shift, scale; no gate) and a Linear to the patch's output features."""

    def __init__(
        self,
        hidden_size: int,
        spatial_patch_size: int,
        temporal_patch_size: int,
        out_channels: int,
        adaln_lora_dim: int | None,
    ) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        features = spatial_patch_size * spatial_patch_size * temporal_patch_size * out_channels
        self.linear = nn.Linear(hidden_size, features, bias=False)
        self.adaLN_modulation = adaln_modulation(hidden_size, 2, adaln_lora_dim)

    def forward(self, x: Tensor, emb: Tensor, adaln_lora: Tensor | None) -> Tensor:
        """x (B, S, D) -> (B, S, p*p*pt*out_channels); the LoRA term's first 2D entries are used."""
        mod = self.adaLN_modulation(emb)
        if adaln_lora is not None:
            mod = mod + adaln_lora[:, : 2 * self.hidden_size]
        shift, scale = mod.to(x.dtype).chunk(2, dim=-1)
        return self.linear(ops.adaln_modulate(x, shift, scale))

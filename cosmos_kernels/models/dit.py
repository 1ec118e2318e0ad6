"""The Cosmos-1.0 diffusion transformer: ``GeneralDIT`` (Text2World) and ``VideoExtendGeneralDIT``
(Video2World), exactly as cosmos-predict1 builds them (facts and source files in docs/COSMOS.md).

Read top to bottom: the latent video (B, 16, T, H, W) gets its mask channels, is cut into 1x2x2
patches and projected to tokens (B, S, D), S = T * H/2 * W/2 in (t, h, w) order; the noise level
becomes a sinusoid that drives every block's AdaLN-LoRA modulation; each block adds the learnable
absolute position embedding, then runs self-attention (QK-RMSNorm, 3D RoPE), cross-attention to the
text embeddings and an MLP; the final layer maps tokens back to patches. ``build_dit`` makes the
named configs; parameter names equal Cosmos's, so ``load_cosmos_state_dict`` needs no renaming.
"""

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from cosmos_kernels import ops
from cosmos_kernels.checks import check_int
from cosmos_kernels.models._checks import named_config
from cosmos_kernels.nn.attention import Attention
from cosmos_kernels.nn.dit_layers import (
    SUB_BLOCK_TYPES,
    FinalLayer,
    GeneralDITTransformerBlock,
    LearnablePosEmbAxis,
    PatchEmbed,
    TimestepEmbedding,
    Timesteps,
)
from cosmos_kernels.ops.attention_8bit import check_precision

Tensor = torch.Tensor


@dataclass(frozen=True)
class DiTConfig:
    """GeneralDIT's constructor arguments under Cosmos's names (cosmos_predict1/diffusion/config/base/net.py).

    ``in_channels`` counts the latent channels plus, for Video2World, the condition-mask channel; the
    padding-mask channel is added on top when ``concat_padding_mask``. ``max_img_h``/``max_img_w``
    are in latent pixels and, with ``max_frames``, size the position tables. ``video_extend`` selects
    Video2World's ``VideoExtendGeneralDIT``, which takes a condition-mask channel.
    ``pose_channels`` (Video2World only) are the camera-control channels ``condition_video_pose``
    appended after the condition mask and counted in ``in_channels``: 6 Plücker-ray channels for
    NeMo's camera-control Video2World (docs/COSMOS.md Part 2 §4.2), 0 otherwise.
    """

    max_img_h: int = 240
    max_img_w: int = 240
    max_frames: int = 128
    in_channels: int = 16
    out_channels: int = 16
    patch_spatial: int = 2
    patch_temporal: int = 1
    concat_padding_mask: bool = True
    block_config: str = "FA-CA-MLP"
    model_channels: int = 4096
    num_blocks: int = 28
    num_heads: int = 32
    mlp_ratio: float = 4.0
    crossattn_emb_channels: int = 1024
    use_cross_attn_mask: bool = False
    pos_emb_cls: str = "rope3d"
    affline_emb_norm: bool = True
    use_adaln_lora: bool = True
    adaln_lora_dim: int = 256
    rope_h_extrapolation_ratio: float = 1.0
    rope_w_extrapolation_ratio: float = 1.0
    rope_t_extrapolation_ratio: float = 2.0
    extra_per_block_abs_pos_emb: bool = True
    extra_per_block_abs_pos_emb_type: str = "learnable"
    base_fps: float = 24.0
    video_extend: bool = False
    pose_channels: int = 0
    # The extra per-block position embedding this network builds (multi-view builds "sincos").
    extra_pos_emb_types: ClassVar[tuple[str, ...]] = ("learnable",)

    def __post_init__(self) -> None:
        for name in ("max_img_h", "max_img_w", "max_frames", "in_channels", "out_channels",
                     "patch_spatial", "patch_temporal", "model_channels", "num_blocks", "num_heads",
                     "crossattn_emb_channels", "adaln_lora_dim"):  # fmt: skip
            value = getattr(self, name)
            check_int("DiT config", name, value, 1)
        if self.model_channels % self.num_heads:
            raise ValueError(
                f"DiT config: model_channels ({self.model_channels}) must be divisible by "
                f"num_heads ({self.num_heads})"
            )
        if self.model_channels // self.num_heads < 12:
            raise ValueError(
                f"DiT config: head dim model_channels // num_heads must be >= 12 for 3D RoPE, got "
                f"{self.model_channels // self.num_heads}"
            )
        kinds = self.block_config.split("-")
        unknown = [k for k in kinds if k.lower() not in SUB_BLOCK_TYPES]
        if unknown:
            raise ValueError(
                f"DiT config: block_config {self.block_config!r} has unknown sub-block(s) {unknown}; "
                f"known: {', '.join(SUB_BLOCK_TYPES)}"
            )
        if self.pos_emb_cls != "rope3d":
            raise ValueError(
                f"DiT config: pos_emb_cls must be 'rope3d' (Cosmos-1.0), got {self.pos_emb_cls!r}"
            )
        types = self.extra_pos_emb_types
        if self.extra_per_block_abs_pos_emb and self.extra_per_block_abs_pos_emb_type not in types:
            raise ValueError(
                f"DiT config: extra_per_block_abs_pos_emb_type must be one of {types} for this network "
                f"(Cosmos-1.0), got {self.extra_per_block_abs_pos_emb_type!r}"
            )
        if self.video_extend and self.in_channels < 2:
            raise ValueError(
                "DiT config: video_extend needs in_channels = latent channels + 1 (condition mask)"
            )
        check_int("DiT config", "pose_channels", self.pose_channels, 0)
        if self.pose_channels and (not self.video_extend or self.in_channels < self.pose_channels + 2):
            raise ValueError(
                "DiT config: pose_channels need video_extend and in_channels = latent channels + 1 "
                f"(condition mask) + pose_channels ({self.pose_channels}), got in_channels {self.in_channels}"
            )

    @property
    def head_dim(self) -> int:
        return self.model_channels // self.num_heads

    @property
    def latent_channels(self) -> int:
        """Channels of the latent video x the network takes (without its mask channels)."""
        return self.in_channels - 1 - self.pose_channels if self.video_extend else self.in_channels

    @property
    def embed_channels(self) -> int:
        """Channels the patch embedding takes: ``in_channels`` and the padding mask."""
        return self.in_channels + int(self.concat_padding_mask)

    @property
    def views(self) -> int:
        """Camera views concatenated in time in the latent video (multi-view networks; 1 here)."""
        return 1

    def build(self) -> "GeneralDIT":
        """A freshly initialized network of this config (variants' configs build their own class)."""
        return GeneralDIT(self)


_COSMOS_7B = DiTConfig()
_COSMOS_14B = replace(
    _COSMOS_7B,
    model_channels=5120,
    num_blocks=36,
    num_heads=40,
    rope_h_extrapolation_ratio=2.0,
    rope_w_extrapolation_ratio=2.0,
)
# Runs a forward on CPU in milliseconds; text width stays 1024 so any T5-shaped embedding fits.
_TINY = replace(
    _COSMOS_7B,
    max_img_h=32,
    max_img_w=32,
    max_frames=16,
    model_channels=64,
    num_blocks=2,
    num_heads=2,
    adaln_lora_dim=16,
    rope_t_extrapolation_ratio=1.0,
)


def _video2world(config: DiTConfig) -> DiTConfig:
    return replace(config, in_channels=config.in_channels + 1, video_extend=True)


def _camera(config: DiTConfig) -> DiTConfig:
    # NeMo's DiT7BCameraCtrlConfig: x (16), mask (1), Plücker pose (6), padding (1) = 24 input channels,
    # with the per-block absolute position embedding on (docs/COSMOS.md Part 2 §4.2).
    config = _video2world(config)
    return replace(
        config, in_channels=config.in_channels + 6, pose_channels=6, extra_per_block_abs_pos_emb=True
    )


DIT_CONFIGS: dict[str, DiTConfig] = {
    "tiny": _TINY,
    "tiny-video2world": _video2world(_TINY),
    "cosmos-7b": _COSMOS_7B,
    "cosmos-14b": _COSMOS_14B,
    "cosmos-7b-video2world": _video2world(_COSMOS_7B),
    "cosmos-14b-video2world": _video2world(_COSMOS_14B),
    "tiny-video2world-camera": _camera(_TINY),
    "cosmos-7b-video2world-camera": _camera(_COSMOS_7B),
}


def _check_input(name: str, t: Tensor | None, ndim: int, expected: str) -> None:
    if t is None:
        return
    if not isinstance(t, Tensor):
        raise TypeError(f"GeneralDIT: {name} must be a tensor {expected}, got {type(t).__name__}")
    if t.ndim != ndim:
        raise ValueError(f"GeneralDIT: {name} must be {expected}, got shape {tuple(t.shape)}")


class GeneralDIT(nn.Module):
    """Cosmos-1.0's diffusion network (what Cosmos calls ``net``); see the module docstring.

    ``cp_group``: when set (by ``cosmos_kernels.distributed.context_parallel``), the token sequence
    is split across the process group, self-attention runs as ring (or Ulysses) attention,
    ``cp_attention``, and the output is gathered, so every rank returns the whole result.
    """

    def __init__(self, config: DiTConfig) -> None:
        super().__init__()
        self.config = c = config
        lora = c.adaln_lora_dim if c.use_adaln_lora else None
        # Set by cosmos_kernels.distributed.context_parallel: the group and its self-attention.
        self.cp_group: Any = None
        self.cp_attention: Callable[..., Tensor] | None = None
        self.x_embedder = PatchEmbed(c.patch_spatial, c.patch_temporal, c.embed_channels, c.model_channels)
        if c.extra_per_block_abs_pos_emb:
            self.extra_pos_embedder = self.build_extra_pos_embedder()
        self.t_embedder = nn.Sequential(
            Timesteps(c.model_channels),
            TimestepEmbedding(c.model_channels, c.model_channels, use_adaln_lora=c.use_adaln_lora),
        )
        self.blocks = nn.ModuleDict(
            {
                f"block{i}": GeneralDITTransformerBlock(
                    c.model_channels,
                    c.crossattn_emb_channels,
                    c.num_heads,
                    c.block_config,
                    c.mlp_ratio,
                    lora,
                    n_views=c.views,
                )
                for i in range(c.num_blocks)
            }
        )
        self.final_layer = FinalLayer(
            c.model_channels, c.patch_spatial, c.patch_temporal, c.out_channels, lora
        )
        self.affline_norm = nn.RMSNorm(c.model_channels, eps=1e-6) if c.affline_emb_norm else nn.Identity()
        self.initialize_weights()

    def build_extra_pos_embedder(self) -> nn.Module:
        """The per-block absolute position embedding: Cosmos-1.0's learnable, axis-additive tables."""
        c = self.config
        return LearnablePosEmbAxis(
            c.model_channels,
            len_t=c.max_frames // c.patch_temporal,
            len_h=c.max_img_h // c.patch_spatial,
            len_w=c.max_img_w // c.patch_spatial,
        )

    @property
    def attention_precision(self) -> str | None:
        """None (exact), or the 8-bit precision of ``ops.attention`` every attention layer runs at
        (inference only); setting it sets every layer's."""
        precisions = {m.attention_precision for m in self.modules() if isinstance(m, Attention)}
        return precisions.pop() if len(precisions) == 1 else None

    @attention_precision.setter
    def attention_precision(self, precision: str | None) -> None:
        check_precision("GeneralDIT.attention_precision", precision)
        for module in self.modules():
            if isinstance(module, Attention):
                module.attention_precision = precision

    def initialize_weights(self) -> None:
        """Cosmos's training init: Xavier-uniform Linears, N(0, 0.02) timestep MLP, and zero for the
        last Linear of every block's modulation, so that each block starts as the identity."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        for linear in (self.t_embedder[1].linear_1, self.t_embedder[1].linear_2):
            nn.init.normal_(linear.weight, std=0.02)
        for block in self.blocks.values():
            for sub in block.blocks:
                nn.init.zeros_(sub.adaLN_modulation[-1].weight)

    def _check_inputs(
        self,
        x: Tensor,
        timesteps: Tensor,
        crossattn_emb: Tensor,
        padding_mask: Tensor | None,
        crossattn_mask: Tensor | None,
        condition_video_input_mask: Tensor | None,
    ) -> None:
        c = self.config
        _check_input("x", x, 5, "(B, C, T, H, W)")
        batch, channels, frames, height, width = x.shape
        if channels != c.latent_channels:
            raise ValueError(f"GeneralDIT: x must have {c.latent_channels} channels, got {channels}")
        for name, size, patch in (
            ("T", frames, c.patch_temporal),
            ("H", height, c.patch_spatial),
            ("W", width, c.patch_spatial),
        ):
            if size % patch:
                raise ValueError(
                    f"GeneralDIT: x's {name} = {size} must be divisible by the patch size {patch} "
                    f"(x has shape {tuple(x.shape)})"
                )
        for name, size, limit in (
            ("T" if c.views == 1 else "T per view", frames // c.views, c.max_frames),
            ("H", height, c.max_img_h),
            ("W", width, c.max_img_w),
        ):
            if size > limit:
                raise ValueError(
                    f"GeneralDIT: x's {name} = {size} exceeds this model's position tables ({limit}; "
                    "max_frames / max_img_h / max_img_w in the config)"
                )
        _check_input("timesteps", timesteps, 1, "(B,)")
        if timesteps.numel() != batch:
            raise ValueError(f"GeneralDIT: timesteps must be (B,) = ({batch},), got {tuple(timesteps.shape)}")
        _check_input("crossattn_emb", crossattn_emb, 3, "(B, L, crossattn_emb_channels)")
        if crossattn_emb.shape[0] != batch or crossattn_emb.shape[2] != c.crossattn_emb_channels:
            raise ValueError(
                f"GeneralDIT: crossattn_emb must be (B={batch}, L, {c.crossattn_emb_channels}) text "
                f"embeddings, got {tuple(crossattn_emb.shape)}"
            )
        _check_input("padding_mask", padding_mask, 4, "(B, 1, H_pixels, W_pixels)")
        if padding_mask is not None and (padding_mask.shape[0] != batch or padding_mask.shape[1] != 1):
            raise ValueError(
                f"GeneralDIT: padding_mask must be (B={batch}, 1, H, W), got {tuple(padding_mask.shape)}"
            )
        _check_input("crossattn_mask", crossattn_mask, 2, "(B, L)")
        if crossattn_mask is not None and crossattn_mask.shape != crossattn_emb.shape[:2]:
            raise ValueError(
                f"GeneralDIT: crossattn_mask must be (B, L) = {tuple(crossattn_emb.shape[:2])}, "
                f"got {tuple(crossattn_mask.shape)}"
            )
        _check_input("condition_video_input_mask", condition_video_input_mask, 5, "(B, 1, T, H, W)")
        if condition_video_input_mask is not None:
            if not c.video_extend:
                raise ValueError(
                    "GeneralDIT: condition_video_input_mask is for Video2World models "
                    "(e.g. build_dit('cosmos-7b-video2world'))"
                )
            if condition_video_input_mask.shape != (batch, 1, frames, height, width):
                raise ValueError(
                    f"GeneralDIT: condition_video_input_mask must be {(batch, 1, frames, height, width)}, "
                    f"got {tuple(condition_video_input_mask.shape)}"
                )

    @staticmethod
    def _fps_value(fps: float | Tensor | None, frames: int) -> float | None:
        # The RoPE tables are shared by the batch, so its fps must be too (Cosmos asserts the same).
        if fps is None or frames == 1:
            return None
        if isinstance(fps, Tensor):
            if fps.numel() == 0 or fps.min() != fps.max():
                raise ValueError(
                    f"GeneralDIT: fps must be the same for every video of a batch, got {fps.tolist()}"
                )
            return float(fps.flatten()[0])
        return float(fps)

    def _pose_input(self, x: Tensor, condition_video_pose: Tensor | None) -> Tensor | None:
        """The camera-control channels for x (B, C, T, H, W): ``condition_video_pose`` (B, pose_channels,
        N, H, W) with N >= T, of which NeMo keeps the first T frames (dit_model_7b.py,
        ``DiTCrossAttentionExtendModel7B.forward``)."""
        c = self.config
        if not c.pose_channels:
            if condition_video_pose is not None:
                raise ValueError(
                    "GeneralDIT: condition_video_pose is for camera-control models "
                    "(e.g. build_dit('cosmos-7b-video2world-camera'))"
                )
            return None
        batch, _, frames, height, width = x.shape
        expected = f"(B={batch}, {c.pose_channels}, N >= T={frames}, H={height}, W={width})"
        if condition_video_pose is None:
            raise ValueError(f"GeneralDIT: this camera-control model needs condition_video_pose {expected}")
        _check_input("condition_video_pose", condition_video_pose, 5, expected)
        b, channels, n, h, w = condition_video_pose.shape
        if (b, channels, h, w) != (batch, c.pose_channels, height, width) or n < frames:
            raise ValueError(
                f"GeneralDIT: condition_video_pose must be {expected} Plücker embeddings, "
                f"got {tuple(condition_video_pose.shape)}"
            )
        return condition_video_pose[:, :, :frames]

    def _input_channels(
        self,
        x: Tensor,
        padding_mask: Tensor | None,
        condition_video_input_mask: Tensor | None,
        pose: Tensor | None = None,
    ) -> Tensor:
        """x (B, C, T, H, W) with its condition channels appended: [x | condition mask | camera pose |
        padding mask]."""
        batch, _, frames, height, width = x.shape
        channels = [x]
        if self.config.video_extend:
            if condition_video_input_mask is None:
                condition_video_input_mask = x.new_zeros(batch, 1, frames, height, width)
            channels.append(condition_video_input_mask.to(x.dtype))
        if pose is not None:
            channels.append(pose.to(x.dtype))
        if self.config.concat_padding_mask:
            # Cosmos's pipelines pass zeros (no padding) when there is no mask.
            if padding_mask is None:
                mask = x.new_zeros(batch, 1, height, width)
            else:
                mask = F.interpolate(padding_mask.to(x.dtype), size=(height, width), mode="nearest")
            channels.append(mask.unsqueeze(2).expand(-1, -1, frames, -1, -1))
        return torch.cat(channels, dim=1)

    def _position_tables(
        self, grid: tuple[int, int, int], fps: float | None, device: torch.device
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """RoPE (cos, sin), each (S, head_dim / 2), and the extra absolute embedding (S, D) or None."""
        c = self.config
        rope_cos, rope_sin = ops.rope3d_cos_sin(
            *grid,
            c.head_dim,
            t_extrapolation=c.rope_t_extrapolation_ratio,
            h_extrapolation=c.rope_h_extrapolation_ratio,
            w_extrapolation=c.rope_w_extrapolation_ratio,
            fps=fps,
            base_fps=c.base_fps,
            device=device,
        )
        pos_emb = self.extra_pos_embedder(*grid) if c.extra_per_block_abs_pos_emb else None
        return rope_cos, rope_sin, pos_emb

    def _cross_attention_lengths(self, crossattn_mask: Tensor | None) -> Tensor | None:
        """k_lengths of the cross-attention: (B,) real text tokens, or None (Cosmos-1.0 attends to all)."""
        if not self.config.use_cross_attn_mask or crossattn_mask is None:
            return None
        return crossattn_mask.bool().sum(dim=-1).to(torch.int32)

    def forward(
        self,
        x: Tensor,
        timesteps: Tensor,
        crossattn_emb: Tensor,
        *,
        fps: float | Tensor | None = None,
        padding_mask: Tensor | None = None,
        crossattn_mask: Tensor | None = None,
        condition_video_input_mask: Tensor | None = None,
        condition_video_pose: Tensor | None = None,
        **conditions: Tensor,
    ) -> Tensor:
        """The network output F (B, out_channels, T, H, W).

        Args:
            x: (B, C, T, H, W) noisy latents already multiplied by c_in(sigma).
            timesteps: (B,) c_noise(sigma) = ln(sigma) / 4.
            crossattn_emb: (B, L, crossattn_emb_channels) text embeddings (T5-XXL: L = 512, 1024).
            fps: frames per second of the video (scales RoPE's temporal positions by base_fps / fps);
                None for images. A tensor must hold one value for the whole batch.
            padding_mask: (B, 1, H_pixels, W_pixels), 1 on padded pixels; resized (nearest) to the
                latent grid. None means no padding.
            crossattn_mask: (B, L), 1 on real text tokens; used only if ``use_cross_attn_mask``
                (Cosmos-1.0 attends to all tokens).
            condition_video_input_mask: (B, 1, T, H, W), 1 on given latent frames (Video2World).
            condition_video_pose: (B, pose_channels, N >= T, H, W) camera-control Plücker embeddings
                (``models.plucker_embeddings``); only the first T frames are used, as NeMo does.
            conditions: the further inputs of a subclass's ``time_embedding`` (e.g. ``action``,
                ``models.dit_action``); GeneralDIT takes none.
        """
        self._check_inputs(
            x, timesteps, crossattn_emb, padding_mask, crossattn_mask, condition_video_input_mask
        )
        dtype = self.x_embedder.proj[1].weight.dtype
        pose = self._pose_input(x, condition_video_pose)
        inputs = self._input_channels(x.to(dtype), padding_mask, condition_video_input_mask, pose)
        return self._run(
            inputs, timesteps, crossattn_emb, fps=fps, crossattn_mask=crossattn_mask, **conditions
        )

    def _run(
        self,
        inputs: Tensor,
        timesteps: Tensor,
        crossattn_emb: Tensor,
        *,
        fps: float | Tensor | None,
        crossattn_mask: Tensor | None,
        **conditions: Tensor,
    ) -> Tensor:
        """The network on its checked input channels (B, embed_channels, T, H, W); ``conditions`` go to
        ``time_embedding``."""
        dtype = self.x_embedder.proj[1].weight.dtype
        tokens = self.x_embedder(inputs)
        t, h, w = tokens.shape[1:4]
        tokens = tokens.flatten(1, 3)
        rope_cos, rope_sin, pos_emb = self._position_tables(
            (t, h, w), self._fps_value(fps, t // self.config.views), inputs.device
        )
        if pos_emb is not None:
            # In the tokens' dtype once, not once per block (under autocast the tables stay float32).
            pos_emb = pos_emb[None].to(tokens.dtype)
        emb, adaln_lora = self.time_embedding(timesteps.flatten().to(dtype), **conditions)
        context = crossattn_emb.to(dtype)
        k_lengths = self._cross_attention_lengths(crossattn_mask)

        attention_fn = ops.attention
        if self.cp_group is not None:
            from cosmos_kernels import distributed

            if self.attention_precision is not None:
                raise ValueError(
                    "GeneralDIT: context parallelism runs exact ring attention; set attention_precision=None"
                )

            tokens = distributed.shard_sequence(tokens, self.cp_group, dim=1)
            rope_cos = distributed.shard_sequence(rope_cos, self.cp_group, dim=0)
            rope_sin = distributed.shard_sequence(rope_sin, self.cp_group, dim=0)
            if pos_emb is not None:
                pos_emb = distributed.shard_sequence(pos_emb, self.cp_group, dim=1)
            attention_fn = self.cp_attention

        for block in self.blocks.values():
            tokens = block(
                tokens, emb, adaln_lora, context, rope_cos, rope_sin, pos_emb, k_lengths, attention_fn
            )
        out = self.final_layer(tokens, emb, adaln_lora)
        if self.cp_group is not None:
            out = distributed.gather_sequence(out, self.cp_group, dim=1)
        return self.unpatchify(out, (t, h, w))

    def time_embedding(self, timesteps: Tensor, **conditions: Tensor) -> tuple[Tensor, Tensor | None]:
        """What modulates the blocks, from c_noise ``timesteps`` (B,): the normalized embedding (B, D) and
        the AdaLN-LoRA term (B, 3D) (None without LoRA). Subclasses add their conditions here."""
        if conditions:
            raise TypeError(f"{type(self).__name__}: unexpected input(s) {sorted(conditions)}")
        emb, adaln_lora = self.t_embedder(timesteps)
        return self.affline_norm(emb), adaln_lora

    def unpatchify(self, tokens: Tensor, grid: tuple[int, int, int]) -> Tensor:
        """Final-layer tokens (B, S, p*p*pt*C) on a (t, h, w) grid -> (B, C, t*pt, h*p, w*p).

        Output features are ordered (p1, p2, t, C), unlike the patch embedding's (C, t, p1, p2)."""
        t, h, w = grid
        p, pt = self.config.patch_spatial, self.config.patch_temporal
        return rearrange(
            tokens, "B (T H W) (p1 p2 t C) -> B C (T t) (H p1) (W p2)", T=t, H=h, W=w, p1=p, p2=p, t=pt
        )


def dit_config(name: str, /, **overrides: Any) -> DiTConfig:
    """The named config with some arguments replaced (Cosmos's GeneralDIT argument names)."""
    return named_config("DiT", DIT_CONFIGS, name, overrides)


def build_dit(name: str, /, **overrides: Any) -> GeneralDIT:
    """A freshly initialized network: ``build_dit("tiny")``, ``build_dit("cosmos-7b", num_blocks=4)``.

    Builds on the default device, so ``with torch.device("meta"): build_dit("cosmos-14b")`` gives the
    full model without memory; then ``model.to_empty(device=...)`` and load weights.
    """
    return dit_config(name, **overrides).build()

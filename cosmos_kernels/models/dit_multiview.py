"""Cosmos's multi-view diffusion transformer: ``MultiviewGeneralDIT`` (Text2World) and
``MultiviewVideoExtendGeneralDIT`` (Video2World), as cosmos-predict1 builds them for its six-camera
driving models (docs/COSMOS.md Part 2, section 4.1; cosmos_predict1/diffusion/networks/
general_dit_multiview.py, general_dit_video_conditioned_multiview.py, module/blocks.py VideoAttn,
module/position_embedding.py Multiview*).

It is :class:`~cosmos_kernels.models.dit.GeneralDIT` with four changes:

- the V views are one latent video concatenated in time, view-major: x (B, C, V*T, H, W);
- each view's identity enters as ``view_condition_dim`` extra input channels, ``view_embeddings``
  (nn.Embedding(V, view_condition_dim)) of its index plus, with ``add_repeat_frame_embedding``,
  ``repeat_frame_embedding`` (nn.Linear(1, view_condition_dim)) of its frame-repeat count / 10, constant
  over the view's (T, H, W). Input channels: [x | padding mask | view] = 16 + 1 + 6 = 23, and for
  Video2World [x | condition mask | padding mask | view] = 24;
- RoPE and the per-block absolute embedding (here a fixed sin-cos one, no weights) restart at t = 0 in
  every view, so views are told apart by the view channels only;
- self-attention runs over all V*T*H*W tokens, cross-attention per view: view v attends to the v-th
  block of M text tokens of crossattn_emb (B, V*M, D_text), as one batched attention call.

Cosmos's optional trajectory channels (``concat_traj_embedding``) are off in every released config and
not built here. Context parallelism is not supported for these networks.
"""

from dataclasses import dataclass, fields
from typing import Any, ClassVar

import torch
from torch import nn

from cosmos_kernels.checks import check_int
from cosmos_kernels.models.dit import (
    _COSMOS_7B,
    _TINY,
    DIT_CONFIGS,
    DiTConfig,
    GeneralDIT,
    _video2world,
)
from cosmos_kernels.nn.dit_layers import SinCosPosEmbAxis

Tensor = torch.Tensor
FRAME_REPEAT_SCALE = 10.0  # Cosmos's FrameRepeatAttr conditioner passes frame_repeat / 10 to the network


@dataclass(frozen=True)
class MultiviewDiTConfig(DiTConfig):
    """``DiTConfig`` plus Cosmos's multi-view arguments (config/base/net.py FADITV2_Multiview_Config).

    ``extra_{t,h,w}_extrapolation_ratio`` divide the sin-cos embedding's positions. The released
    multi-view experiments inherit Cosmos_Predict1_Text2World_7B, whose ``net`` overrides Hydra merges
    after the multi-view net config (the experiment group is last in Cosmos's root defaults list; a
    Hydra composition of that structure gives the same): rope_t_extrapolation_ratio = 2 (as in the 7B
    default here) and extra_per_block_abs_pos_emb_type "learnable", which the multi-view network
    ignores (it always builds the sin-cos embedding, so this config names that).
    """

    n_views: int = 6
    view_condition_dim: int = 6
    add_repeat_frame_embedding: bool = True
    extra_per_block_abs_pos_emb_type: str = "sincos"
    extra_t_extrapolation_ratio: float = 1.0
    extra_h_extrapolation_ratio: float = 1.0
    extra_w_extrapolation_ratio: float = 1.0
    extra_pos_emb_types: ClassVar[tuple[str, ...]] = ("sincos",)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("multi-view DiT config", "n_views", self.n_views, 1)
        check_int("multi-view DiT config", "view_condition_dim", self.view_condition_dim, 1)

    @property
    def embed_channels(self) -> int:
        return super().embed_channels + self.view_condition_dim

    @property
    def views(self) -> int:
        return self.n_views

    def build(self) -> "MultiviewGeneralDIT":
        return MultiviewGeneralDIT(self)


def multiview_config(config: DiTConfig, **multiview: Any) -> MultiviewDiTConfig:
    """``config``'s GeneralDIT arguments with the multi-view ones (``n_views``, ...) added."""
    base = {f.name: getattr(config, f.name) for f in fields(DiTConfig)}
    base["extra_per_block_abs_pos_emb_type"] = "sincos"
    return MultiviewDiTConfig(**base, **multiview)


_COSMOS_7B_MULTIVIEW = multiview_config(_COSMOS_7B)
# Cosmos's class defaults (3 views, 3 view channels) on the tiny network, for tests and the demo.
_TINY_MULTIVIEW = multiview_config(_TINY, n_views=3, view_condition_dim=3)

MULTIVIEW_DIT_CONFIGS: dict[str, MultiviewDiTConfig] = {
    "tiny-multiview": _TINY_MULTIVIEW,
    "tiny-multiview-video2world": _video2world(_TINY_MULTIVIEW),
    "cosmos-7b-multiview": _COSMOS_7B_MULTIVIEW,
    "cosmos-7b-multiview-video2world": _video2world(_COSMOS_7B_MULTIVIEW),
}
# build_dit and dit_config look names up in DIT_CONFIGS; models/__init__ imports this module.
DIT_CONFIGS.update(MULTIVIEW_DIT_CONFIGS)


class MultiviewGeneralDIT(GeneralDIT):
    """Cosmos's multi-view network (``net``); see the module docstring. Video2World when
    ``config.video_extend`` (Cosmos's ``MultiviewVideoExtendGeneralDIT``)."""

    config: MultiviewDiTConfig

    def __init__(self, config: MultiviewDiTConfig) -> None:
        if not isinstance(config, MultiviewDiTConfig):
            raise TypeError(
                f"MultiviewGeneralDIT: config must be a MultiviewDiTConfig, got {type(config).__name__}"
            )
        super().__init__(config)
        self.view_embeddings = nn.Embedding(config.n_views, config.view_condition_dim)
        if config.add_repeat_frame_embedding:
            self.repeat_frame_embedding = nn.Linear(1, config.view_condition_dim)
            # Cosmos's initialize_weights, run again after these are built: Xavier weight, zero bias.
            nn.init.xavier_uniform_(self.repeat_frame_embedding.weight)
            nn.init.zeros_(self.repeat_frame_embedding.bias)

    def build_extra_pos_embedder(self) -> nn.Module:
        c = self.config
        ratios = (c.extra_t_extrapolation_ratio, c.extra_h_extrapolation_ratio, c.extra_w_extrapolation_ratio)
        return SinCosPosEmbAxis(c.model_channels, ratios)

    def _position_tables(
        self, grid: tuple[int, int, int], fps: float | None, device: torch.device
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        # One view's tables, repeated for each view: positions restart at t = 0 in every view.
        views = self.config.n_views
        t, h, w = grid
        tables = super()._position_tables((t // views, h, w), fps, device)
        return tuple(None if table is None else table.repeat(views, 1) for table in tables)

    def _cross_attention_lengths(self, crossattn_mask: Tensor | None) -> Tensor | None:
        # Per view, in the (B*V) order the cross-attention folds the views into the batch.
        if not self.config.use_cross_attn_mask or crossattn_mask is None:
            return None
        per_view = crossattn_mask.bool().unflatten(1, (self.config.n_views, -1))
        return per_view.sum(dim=-1).flatten().to(torch.int32)

    def view_channels(self, x: Tensor, frame_repeat: Tensor | None = None) -> Tensor:
        """The (B, view_condition_dim, V*T, H, W) view-embedding channels for the latent video ``x``."""
        c = self.config
        batch, _, frames, height, width = x.shape
        emb = self.view_embeddings.weight[None].expand(batch, -1, -1)  # (B, V, view_condition_dim)
        if c.add_repeat_frame_embedding:
            if frame_repeat is None:
                frame_repeat = x.new_zeros(batch, c.n_views)
            scaled = frame_repeat.to(emb.dtype)[..., None] / FRAME_REPEAT_SCALE
            emb = emb + self.repeat_frame_embedding(scaled)
        per_view = frames // c.n_views
        emb = emb.transpose(1, 2)[..., None, None, None].expand(-1, -1, -1, per_view, height, width)
        return emb.flatten(2, 3)

    def _check_views(self, x: Tensor, crossattn_emb: Tensor, frame_repeat: Tensor | None) -> None:
        views = self.config.n_views
        if self.cp_group is not None:
            raise ValueError("MultiviewGeneralDIT: context parallelism is not supported for multi-view")
        if x.shape[2] % views:
            raise ValueError(
                f"MultiviewGeneralDIT: x's T = {x.shape[2]} must be a multiple of n_views = {views} (the "
                "views are concatenated in time, view-major: (B, C, V*T, H, W))"
            )
        if crossattn_emb.shape[1] % views:
            raise ValueError(
                f"MultiviewGeneralDIT: crossattn_emb must hold the {views} views' text tokens concatenated, "
                f"(B, V*M, D) with V = {views}, got L = {crossattn_emb.shape[1]}"
            )
        if frame_repeat is not None:
            batch = x.shape[0]
            if not isinstance(frame_repeat, Tensor) or tuple(frame_repeat.shape) != (batch, views):
                shape = tuple(frame_repeat.shape) if isinstance(frame_repeat, Tensor) else type(frame_repeat)
                raise ValueError(
                    f"MultiviewGeneralDIT: frame_repeat must be a (B, n_views) = ({batch}, {views}) tensor, "
                    f"got {shape}"
                )
            if not self.config.add_repeat_frame_embedding:
                raise ValueError("MultiviewGeneralDIT: frame_repeat given, add_repeat_frame_embedding is off")

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
        frame_repeat: Tensor | None = None,
    ) -> Tensor:
        """The network output F (B, out_channels, V*T, H, W).

        As :meth:`GeneralDIT.forward`, with x and ``condition_video_input_mask`` holding the V views
        concatenated in time, crossattn_emb (B, V*M, D_text) the V prompts' embeddings concatenated
        (view v attends to tokens [v*M, (v+1)*M)), crossattn_mask (B, V*M), and ``frame_repeat``
        (B, V) each view's frame-repeat count (Cosmos's inference passes [0, 0, 0, 0, 10, 10]; None:
        zeros), scaled by 1/10 as Cosmos's conditioner does.
        """
        self._check_inputs(
            x, timesteps, crossattn_emb, padding_mask, crossattn_mask, condition_video_input_mask
        )
        self._check_views(x, crossattn_emb, frame_repeat)
        dtype = self.x_embedder.proj[1].weight.dtype
        x = x.to(dtype)
        inputs = self._input_channels(x, padding_mask, condition_video_input_mask)
        inputs = torch.cat([inputs, self.view_channels(x, frame_repeat).to(dtype)], dim=1)
        return self._run(inputs, timesteps, crossattn_emb, fps=fps, crossattn_mask=crossattn_mask)

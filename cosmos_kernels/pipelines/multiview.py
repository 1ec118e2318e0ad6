"""Multi-view Text2World and Video2World: V camera views of one scene generated jointly, as Cosmos's
multi-view models sample them (docs/COSMOS.md Part 2, section 4.1; cosmos_predict1/diffusion/model/
model_t2w_multiview.py, model_v2w_multiview.py, inference/inference_utils.py).

The network (``build_dit("cosmos-7b-multiview")`` or ``"tiny-multiview"``) denoises the V views as one
latent video concatenated in time, view-major (B, C, V*T', H', W'). The tokenizer encodes and decodes
each view on its own: ``B C (V T) H W -> (B V) C T H W`` (:func:`encode_views`, :func:`decode_views`).
Each view has its prompt (Cosmos's order: front, left, right, back, back-left, back-right); one prompt
is used for every view. The text embeddings of the V prompts are concatenated to (1, V*M, D), and view
v's tokens cross-attend to the v-th block only. ``frame_repeat`` (V,) is Cosmos's per-view frame-repeat
count (its inference passes 10 for the last two views: ``COSMOS_FRAME_REPEAT``). Video2World takes the
first 1 + 8k frames of every view, concatenated in time, and conditions the first latent frames of each
view. Sampling is otherwise :mod:`cosmos_kernels.pipelines.world`'s.
"""

from collections.abc import Sequence

import torch

from cosmos_kernels.diffusion import (
    AUGMENT_SIGMA,
    num_condition_latent_frames,
)
from cosmos_kernels.models import (
    ContinuousTokenizer,
    MultiviewGeneralDIT,
    normalize_latents,
)
from cosmos_kernels.models.prompt_upsamplers import no_upsampling
from cosmos_kernels.pipelines.world import SamplingOptions, WorldPipeline, WorldSample

Tensor = torch.Tensor
# cosmos_predict1 inference_utils.get_video_batch_for_multiview_model: --frame_repeat_negative_condition
# (default 10) for the back-left and back-right views.
COSMOS_FRAME_REPEAT = (0, 0, 0, 0, 10, 10)
DEFAULT_OPTIONS = SamplingOptions()


def _check_views_video(name: str, video: Tensor, views: int, channels: int | None = None) -> None:
    if not isinstance(video, Tensor) or video.dim() != 5:
        shape = tuple(video.shape) if isinstance(video, Tensor) else type(video).__name__
        raise ValueError(f"{name} must be a (B, C, V*T, H, W) tensor, got {shape}")
    if channels is not None and video.shape[1] != channels:
        raise ValueError(f"{name} must have {channels} channels, got shape {tuple(video.shape)}")
    if views < 1 or video.shape[2] % views:
        raise ValueError(
            f"{name} has {video.shape[2]} frames, not a multiple of the {views} views (the views are "
            "concatenated in time, view-major)"
        )


def encode_views(tokenizer: ContinuousTokenizer, video: Tensor, views: int) -> Tensor:
    """(B, 3, V*T, H, W) video of V views -> (B, C, V*T', H', W') latents, each view encoded alone."""
    _check_views_video("encode_views: video", video, views, 3)
    latents = tokenizer.encode(video.unflatten(2, (views, -1)).transpose(1, 2).flatten(0, 1))
    return latents.unflatten(0, (-1, views)).transpose(1, 2).flatten(2, 3)


def decode_views(tokenizer: ContinuousTokenizer, latents: Tensor, views: int) -> Tensor:
    """(B, C, V*T', H', W') latents of V views -> (B, 3, V*T, H, W) video, each view decoded alone."""
    _check_views_video("decode_views: latents", latents, views)
    video = tokenizer.decode(latents.unflatten(2, (views, -1)).transpose(1, 2).flatten(0, 1))
    return video.unflatten(0, (-1, views)).transpose(1, 2).flatten(2, 3)


class MultiviewPipeline(WorldPipeline):
    """What multi-view Text2World and Video2World share; see the module docstring."""

    net: MultiviewGeneralDIT
    video2world_example = "tiny-multiview-video2world"

    def __init__(self, net: MultiviewGeneralDIT, *args: object, **kwargs: object) -> None:
        if not isinstance(net, MultiviewGeneralDIT):
            raise TypeError(
                "net must be a MultiviewGeneralDIT (build_dit('tiny-multiview'), ...), got "
                f"{type(net).__name__}"
            )
        if kwargs.get("prompt_upsampler", no_upsampling) is not no_upsampling:
            raise ValueError(
                "prompt_upsampler: multi-view pipelines take the prompts as given (Cosmos's multi-view "
                "inference has no prompt upsampler); upsample each view's prompt first if you want to"
            )
        super().__init__(net, *args, **kwargs)

    @property
    def views(self) -> int:
        return self.net.config.n_views

    def view_prompts(self, prompt: str | Sequence[str]) -> list[str]:
        """One prompt per view: ``prompt`` repeated when it is one, else exactly V of them."""
        prompts = self._prompts(prompt)
        if len(prompts) == 1:
            return prompts * self.views
        if len(prompts) != self.views:
            raise ValueError(
                f"prompt must be one string or one per view ({self.views} for this network), got "
                f"{len(prompts)}"
            )
        return prompts

    def view_text(self, prompts: list[str], negative_prompt: str | None) -> tuple[Tensor, Tensor | None]:
        """(1, V*M, D) embeddings of the V prompts concatenated, and the negative prompt's likewise."""
        emb, negative = self.encode_text(prompts, negative_prompt)
        return emb.flatten(0, 1)[None], None if negative is None else negative.flatten(0, 1)[None]

    def frame_repeat(self, frame_repeat: Sequence[float] | Tensor | None) -> Tensor | None:
        if frame_repeat is None:
            return None
        values = torch.as_tensor(frame_repeat, dtype=torch.float32, device=self.device).flatten()
        if values.numel() != self.views:
            raise ValueError(
                f"frame_repeat must hold one count per view ({self.views}), got {values.numel()}"
            )
        return values[None]

    def _encode(self, video: Tensor) -> Tensor:
        return encode_views(self.tokenizer, video, self.views)

    def _decode(self, latents: Tensor) -> Tensor:
        return decode_views(self.tokenizer, latents, self.views)

    def view_latent_shape(self, num_frames: int, height: int, width: int) -> tuple[int, ...]:
        """(1, C, V*T', H', W') latents of V views of num_frames x height x width each."""
        b, c, t, h, w = self.latent_shape(1, num_frames, height, width)
        return b, c, self.views * t, h, w


class MultiviewText2WorldPipeline(MultiviewPipeline):
    """V views of one scene from one prompt or one per view; ``num_frames`` counts one view's frames.
    ``sample.video`` is (1, 3, V*num_frames, H, W), the views concatenated in time."""

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | Sequence[str],
        *,
        negative_prompt: str | None = None,
        num_frames: int = 57,
        height: int = 480,
        width: int = 848,
        frame_repeat: Sequence[float] | Tensor | None = None,
        options: SamplingOptions = DEFAULT_OPTIONS,
        seed: int = 1,
        progress: bool = False,
    ) -> WorldSample:
        if self.net.config.video_extend:
            raise ValueError("this is a Video2World network; use MultiviewVideo2WorldPipeline")
        prompts = self.view_prompts(prompt)
        shape = self.view_latent_shape(num_frames, height, width)
        emb, negative = self.view_text(prompts, negative_prompt)
        z = self.text2world_latents(
            emb,
            shape,
            negative=negative,
            options=options,
            seed=seed,
            progress=progress,
            frame_repeat=self.frame_repeat(frame_repeat),
        )
        latents, video = self.to_video(z)
        return WorldSample(latents, video, prompts)


class MultiviewVideo2WorldPipeline(MultiviewPipeline):
    """V views continuing given frames: ``video`` (1, 3, V*n, H, W) holds the first n = 1 + 8k frames
    of every view, concatenated in time; ``num_frames`` counts one view's frames."""

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | Sequence[str],
        video: Tensor,
        *,
        negative_prompt: str | None = None,
        num_frames: int = 57,
        frame_repeat: Sequence[float] | Tensor | None = None,
        options: SamplingOptions = DEFAULT_OPTIONS,
        augment_sigma: float = AUGMENT_SIGMA,
        seed: int = 1,
        progress: bool = False,
    ) -> WorldSample:
        self._check_video2world()
        _check_views_video("video", video, self.views, 3)
        if video.shape[0] != 1:
            raise ValueError(f"video must hold one scene (batch 1), got batch {video.shape[0]}")
        prompts = self.view_prompts(prompt)
        given_frames = video.shape[2] // self.views
        shape = self.view_latent_shape(num_frames, video.shape[3], video.shape[4])
        per_view = shape[2] // self.views
        given = num_condition_latent_frames(given_frames, self.temporal_compression)
        if given >= per_view:
            raise ValueError(
                f"the {given_frames} given frames per view ({given} latent frames) must be fewer than the "
                f"{num_frames} frames to generate ({per_view} latent frames)"
            )
        condition_latents = normalize_latents(self.encode(video), self.latent_mean, self.latent_std)
        emb, negative = self.view_text(prompts, negative_prompt)
        z = self.video2world_latents(
            condition_latents,
            emb,
            shape,
            negative=negative,
            views=self.views,
            options=options,
            augment_sigma=augment_sigma,
            seed=seed,
            progress=progress,
            frame_repeat=self.frame_repeat(frame_repeat),
        )
        latents, out = self.to_video(z)
        return WorldSample(latents, out, prompts)

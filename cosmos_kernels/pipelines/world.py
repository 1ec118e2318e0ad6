"""Text2World and Video2World: prompts (and given frames) -> latents -> video, as Cosmos-1.0 samples.

A pipeline holds the diffusion network (``build_dit``), optionally the tokenizer that maps between
pixels and latents (without one it returns latents only), a text encoder, the latent statistics and a
prompt upsampler: any function of a prompt, or a ``PromptUpsampler`` of the pipeline's kind (the
Video2World one describes the last given frame and ignores the prompt, as Cosmos does). Sampling is
Cosmos's by default: EDM Euler on Karras sigmas (80 -> 0.0002 -> 0, 35 steps), classifier-free guidance
7 against the zero (or a negative prompt's) embedding, fps 24, no padding. Video2World encodes the 1 or
9 given frames to 1 or 2 condition latent frames and keeps them, noise-augmented at sigma 0.001, through
every step; an action-conditioned network (``build_dit("cosmos-7b-video2world-action")``) also takes
the robot's actions. ``attention_precision`` ("qk-int8", "qk-int8-pv-fp8") sets the network's attention
layers to 8-bit attention (``ops.attention``).
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from cosmos_kernels.diffusion import (
    AUGMENT_SIGMA,
    GUIDANCE,
    NUM_STEPS,
    RHO,
    SIGMA_MAX,
    SIGMA_MIN,
    EDMDenoiser,
    guided_denoiser,
    num_condition_latent_frames,
    sample,
    sample_video2world,
    video2world_condition,
)
from cosmos_kernels.models import (
    ActionConditionalDIT,
    ContinuousTokenizer,
    GeneralDIT,
    denormalize_latents,
    normalize_latents,
)
from cosmos_kernels.models.prompt_upsamplers import PromptUpsampler, no_upsampling
from cosmos_kernels.models.text_encoders import TextEncoder

Tensor = torch.Tensor


@dataclass
class WorldSample:
    """What a pipeline generated: ``latents`` (B, 16, T', H', W') in the tokenizer's space (before
    normalization), ``video`` (B, 3, T, H, W) in [-1, 1] when the pipeline has a tokenizer, and the
    prompts as upsampled."""

    latents: Tensor
    video: Tensor | None
    prompts: list[str]


@dataclass(frozen=True)
class SamplingOptions:
    """Cosmos's inference defaults (cosmos_predict1 inference CLI and EDMEulerScheduler)."""

    num_steps: int = NUM_STEPS
    guidance: float = GUIDANCE
    sampler: str = "euler"
    sigma_min: float = SIGMA_MIN
    sigma_max: float = SIGMA_MAX
    rho: float = RHO
    fps: float = 24.0

    def schedule(self) -> dict[str, object]:
        """The sampler and its noise schedule, as keyword arguments of the samplers."""
        keys = ("sampler", "num_steps", "sigma_min", "sigma_max", "rho")
        return {key: getattr(self, key) for key in keys}


class WorldPipeline:
    """Shared parts of Text2World and Video2World; see the module docstring."""

    upsampler_kind = ""
    video2world_example = "tiny-video2world"  # named in errors when given a Text2World network

    def __init__(
        self,
        net: GeneralDIT,
        text_encoder: TextEncoder,
        tokenizer: ContinuousTokenizer | None = None,
        *,
        latent_mean: Tensor | None = None,
        latent_std: Tensor | None = None,
        prompt_upsampler: PromptUpsampler | Callable[[str], str] = no_upsampling,
        temporal_compression: int = 8,
        spatial_compression: int = 8,
        attention_precision: str | None = None,
    ) -> None:
        if not isinstance(net, GeneralDIT):
            raise TypeError(f"net must be a GeneralDIT (from build_dit), got {type(net).__name__}")
        if getattr(text_encoder, "width", None) != net.config.crossattn_emb_channels:
            raise ValueError(
                f"the text encoder's width {getattr(text_encoder, 'width', None)} must equal the network's "
                f"crossattn_emb_channels {net.config.crossattn_emb_channels}"
            )
        if isinstance(prompt_upsampler, PromptUpsampler) and prompt_upsampler.kind != self.upsampler_kind:
            raise ValueError(
                f"{type(self).__name__} takes a {self.upsampler_kind} prompt upsampler, got a "
                f"{prompt_upsampler.kind} one"
            )
        if tokenizer is not None:
            temporal_compression = tokenizer.config.temporal_compression
            spatial_compression = tokenizer.config.spatial_compression
        if attention_precision is not None:
            # The network's attention layers run at this 8-bit precision from now on (inference only).
            net.attention_precision = attention_precision
        self.net, self.text_encoder, self.tokenizer = net, text_encoder, tokenizer
        self.denoiser = EDMDenoiser(net)
        self.latent_mean, self.latent_std = latent_mean, latent_std
        self.prompt_upsampler = prompt_upsampler
        self.temporal_compression, self.spatial_compression = temporal_compression, spatial_compression

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def latent_shape(self, batch: int, num_frames: int, height: int, width: int) -> tuple[int, ...]:
        """(B, C, T', H', W') latents of a num_frames x height x width video; clear errors otherwise."""
        t, s = self.temporal_compression, self.spatial_compression
        if num_frames < 1 or (num_frames - 1) % t:
            valid = ", ".join(str(1 + t * k) for k in range(1, 5))
            raise ValueError(
                f"num_frames must be 1 + {t} k for this tokenizer ({valid}, ...), got {num_frames}"
            )
        p = self.net.config.patch_spatial
        if height % (s * p) or width % (s * p) or height <= 0 or width <= 0:
            raise ValueError(
                f"height and width must be positive multiples of {s * p} (tokenizer {s}x, patch {p}), "
                f"got {height}x{width}"
            )
        return batch, self.net.config.out_channels, 1 + (num_frames - 1) // t, height // s, width // s

    def encode_text(
        self, prompts: Sequence[str], negative_prompt: str | None
    ) -> tuple[Tensor, Tensor | None]:
        emb, _ = self.text_encoder(list(prompts))
        negative = None
        if negative_prompt is not None:
            negative, _ = self.text_encoder([negative_prompt] * len(prompts))
            negative = negative.to(self.device)
        return emb.to(self.device), negative

    def to_video(self, z: Tensor) -> tuple[Tensor, Tensor | None]:
        """Diffusion-space latents -> (tokenizer latents, decoded video in [-1, 1] or None)."""
        latents = denormalize_latents(z, self.latent_mean, self.latent_std)
        if self.tokenizer is None:
            return latents, None
        with torch.no_grad():
            dtype = next(self.tokenizer.parameters()).dtype
            return latents, self._decode(latents.to(dtype)).float().clamp(-1, 1)

    def encode(self, video: Tensor) -> Tensor:
        """Video in [-1, 1] -> tokenizer latents (float32), before normalization."""
        dtype = next(self.tokenizer.parameters()).dtype
        return self._encode(video.to(self.device, dtype)).float()

    def _encode(self, video: Tensor) -> Tensor:
        return self.tokenizer.encode(video)

    def _decode(self, latents: Tensor) -> Tensor:
        return self.tokenizer.decode(latents)

    def text2world_latents(
        self,
        emb: Tensor,
        shape: Sequence[int],
        *,
        negative: Tensor | None = None,
        options: SamplingOptions = SamplingOptions(),
        seed: int = 1,
        progress: bool = False,
        **inputs: object,
    ) -> Tensor:
        """Diffusion-space latents of ``shape`` (B, C, T', H', W') sampled from text embeddings ``emb``
        (B, L, D), guided against ``negative`` (or the zero embedding); ``inputs`` go to the network in
        both guidance branches, after Cosmos's fps and empty padding mask."""
        denoise = guided_denoiser(
            self.denoiser,
            emb,
            guidance=options.guidance,
            negative_crossattn_emb=negative,
            fps=options.fps,
            padding_mask=self._padding_mask(shape),
            **inputs,
        )
        return sample(
            denoise, shape, **options.schedule(), generator=seed, device=self.device, progress=progress
        )

    def video2world_latents(
        self,
        condition_latents: Tensor,
        emb: Tensor,
        shape: Sequence[int],
        *,
        negative: Tensor | None = None,
        views: int = 1,
        options: SamplingOptions = SamplingOptions(),
        augment_sigma: float = AUGMENT_SIGMA,
        seed: int = 1,
        progress: bool = False,
        **inputs: object,
    ) -> Tensor:
        """Diffusion-space latents of ``shape`` continuing ``condition_latents`` (B, C, n', H', W'),
        normalized latents of the given frames (of each of ``views`` views, concatenated in time),
        noise-augmented at ``augment_sigma`` by seed + 1; otherwise as :meth:`text2world_latents`."""
        condition = video2world_condition(
            condition_latents,
            shape[2] // views,
            augment_sigma=augment_sigma,
            generator=seed + 1,
            views=views,
        )
        return sample_video2world(
            self.denoiser,
            condition,
            emb,
            guidance=options.guidance,
            negative_crossattn_emb=negative,
            **options.schedule(),
            generator=seed,
            progress=progress,
            fps=options.fps,
            padding_mask=self._padding_mask(shape),
            **inputs,
        )

    def _padding_mask(self, shape: Sequence[int]) -> Tensor:
        """Cosmos's padding mask for unpadded frames: zeros (B, 1, H, W) at pixel resolution."""
        s = self.spatial_compression
        return torch.zeros(shape[0], 1, shape[3] * s, shape[4] * s, device=self.device)

    def _check_video2world(self) -> None:
        if not self.net.config.video_extend:
            raise ValueError(
                f"this is a Text2World network; {type(self).__name__} needs a Video2World one, e.g. "
                f"build_dit('{self.video2world_example}')"
            )
        if self.tokenizer is None:
            raise ValueError("Video2World needs a tokenizer to encode the given frames")

    def _prompts(self, prompt: str | Sequence[str]) -> list[str]:
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        if not prompts or not all(isinstance(p, str) for p in prompts):
            raise TypeError("prompt must be a string or a non-empty list of strings")
        return prompts

    def _upsample(self, prompts: list[str], video: Tensor | None = None) -> list[str]:
        if isinstance(self.prompt_upsampler, PromptUpsampler):
            return self.prompt_upsampler.upsample(prompts, video)  # one load of the model for the batch
        return [self.prompt_upsampler(p) for p in prompts]


class Text2WorldPipeline(WorldPipeline):
    """A video from a text prompt."""

    upsampler_kind = "text2world"

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | Sequence[str],
        *,
        negative_prompt: str | None = None,
        num_frames: int = 121,
        height: int = 704,
        width: int = 1280,
        options: SamplingOptions = SamplingOptions(),
        seed: int = 1,
        progress: bool = False,
    ) -> WorldSample:
        if self.net.config.video_extend:
            raise ValueError("this is a Video2World network; use Video2WorldPipeline")
        prompts = self._prompts(prompt)
        shape = self.latent_shape(len(prompts), num_frames, height, width)
        prompts = self._upsample(prompts)
        emb, negative = self.encode_text(prompts, negative_prompt)
        z = self.text2world_latents(
            emb, shape, negative=negative, options=options, seed=seed, progress=progress
        )
        latents, video = self.to_video(z)
        return WorldSample(latents, video, prompts)


class Video2WorldPipeline(WorldPipeline):
    """A video that continues given frames (1 or 9, i.e. 1 or 2 latent frames), guided by a prompt."""

    upsampler_kind = "video2world"

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | Sequence[str],
        video: Tensor,
        *,
        negative_prompt: str | None = None,
        num_frames: int = 121,
        options: SamplingOptions = SamplingOptions(),
        augment_sigma: float = AUGMENT_SIGMA,
        seed: int = 1,
        progress: bool = False,
        actions: Tensor | None = None,
        camera: Tensor | None = None,
    ) -> WorldSample:
        """``video`` (B, 3, n, H, W) in [-1, 1]: the n = 1 + 8k first frames of the result.

        ``actions``: for an action-conditioned network (and only there), (B, num_frames - 1, 7), one per
        transition between frames, or (B, 7) for the first transition alone, already scaled as the
        network takes them (``models.scale_actions``); both guidance branches get them, and the
        network reads the first transition only, as Cosmos's does.

        ``camera``: for camera-control networks (``pose_channels``), the trajectory's Plücker embeddings
        (B, 6, N, H/8, W/8) from ``models.plucker_embeddings``, N >= the latent frames; the network
        keeps the first ones. Both guidance branches get it, as Cosmos does (NeMo
        ``cosmos_extended_diffusion_pipeline.py``, docs/COSMOS.md Part 2 §4.2)."""
        self._check_video2world()
        if not isinstance(video, Tensor) or video.dim() != 5 or video.shape[1] != 3:
            shape = tuple(video.shape) if isinstance(video, Tensor) else type(video).__name__
            raise ValueError(f"video must be (B, 3, n, H, W) frames in [-1, 1], got {shape}")
        prompts = self._prompts(prompt)
        if len(prompts) != video.shape[0]:
            raise ValueError(f"{len(prompts)} prompt(s) for a batch of {video.shape[0]} video(s)")
        shape = self.latent_shape(len(prompts), num_frames, video.shape[3], video.shape[4])
        given = num_condition_latent_frames(video.shape[2], self.temporal_compression)
        if given >= shape[2]:
            raise ValueError(
                f"the {video.shape[2]} given frames ({given} latent frames) must be fewer than the "
                f"{num_frames} frames to generate ({shape[2]} latent frames)"
            )
        prompts = self._upsample(prompts, video)
        conditions = self._actions(actions, len(prompts), num_frames) | self._camera_input(camera, shape)
        condition_latents = normalize_latents(self.encode(video), self.latent_mean, self.latent_std)
        emb, negative = self.encode_text(prompts, negative_prompt)
        z = self.video2world_latents(
            condition_latents,
            emb,
            shape,
            negative=negative,
            options=options,
            augment_sigma=augment_sigma,
            seed=seed,
            progress=progress,
            **conditions,
        )
        latents, out = self.to_video(z)
        return WorldSample(latents, out, prompts)

    def _camera_input(self, camera: Tensor | None, shape: tuple[int, ...]) -> dict[str, Tensor]:
        """The network's ``condition_video_pose`` input, checked: {} for a network without one."""
        channels = self.net.config.pose_channels
        if camera is None and not channels:
            return {}
        if not channels:
            raise ValueError(
                "camera is for camera-control networks, e.g. build_dit('tiny-video2world-camera')"
            )
        batch, _, frames, height, width = shape
        expected = f"(B={batch}, {channels}, N >= {frames}, {height}, {width}) Plücker embeddings"
        if not isinstance(camera, Tensor):
            raise ValueError(f"this camera-control network needs camera = {expected}")
        if (
            camera.dim() != 5
            or camera.shape[:2] + camera.shape[3:] != (batch, channels, height, width)
            or (camera.shape[2] < frames)
        ):
            raise ValueError(f"camera must be {expected}, got {tuple(camera.shape)}")
        return {"condition_video_pose": camera.to(self.device, torch.float32)}

    def _actions(self, actions: Tensor | None, batch: int, num_frames: int) -> dict[str, Tensor]:
        """The network's ``action`` input, checked: {} for a network without one."""
        if not isinstance(self.net, ActionConditionalDIT):
            if actions is not None:
                raise ValueError(
                    "actions are for an action-conditioned network (e.g. build_dit('cosmos-7b-video2world-"
                    f"action')); this one is a {type(self.net).__name__}"
                )
            return {}
        width = self.net.config.action_dim
        expected = f"(B={batch}, num_frames - 1 = {num_frames - 1}, {width}) or (B={batch}, {width})"
        if actions is None:
            raise ValueError(f"this network is action-conditioned: pass actions {expected}")
        if not isinstance(actions, Tensor) or not actions.is_floating_point():
            raise TypeError(f"actions must be a floating-point tensor {expected}")
        if actions.dim() not in (2, 3) or actions.shape[0] != batch or actions.shape[-1] != width:
            raise ValueError(f"actions must be {expected}, got shape {tuple(actions.shape)}")
        if actions.dim() == 3 and actions.shape[1] != num_frames - 1:
            raise ValueError(
                f"actions must hold one action per transition, {expected}, got {actions.shape[1]} "
                f"for {num_frames} frames"
            )
        return {"action": actions.to(self.device)}

"""The Cosmos-1.0 diffusion decoder pipeline: discrete DV tokens -> CV latents -> video, as Cosmos runs
it (cosmos_predict1/autoregressive/diffusion_decoder/inference.py and utils.py; docs/COSMOS.md Part 2
§1.4-1.5).

The tokens (B, T', H', W') are cut along T' into windows of 8 latent frames that overlap by 2, the last
one reflect-padded to full length (``split_with_overlap``). For each window the decoder network
samples a CV latent window (16, 8, H, W) on the CV grid (2x the DV grid for DV8x16x16 -> CV8x8x8):
EDM Euler, 15 steps from sigma 80 to 0.02, guidance 1.8 against zero text and token index 0. The CV
tokenizer decodes every window; the decoded windows are cross-faded over 2 *pixel* frames
(``linear_blend_video_list``; Cosmos blends over the latent overlap's count in pixel frames, as
written) and cropped to the 1 + (T' - 1) t_DV frames the tokens stand for.
"""

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from cosmos_kernels.checks import check_int
from cosmos_kernels.diffusion import EDMDenoiser, guided_denoiser, sample
from cosmos_kernels.diffusion.samplers import as_generator
from cosmos_kernels.models import ContinuousTokenizer, denormalize_latents
from cosmos_kernels.models.dit_decoder import DiffusionDecoderGeneralDIT
from cosmos_kernels.models.text_encoders import TextEncoder

Tensor = torch.Tensor
# Cosmos's base AR pipeline conditions the decoder on a fixed prompt's T5 embedding (aux_vars.pt, made
# from this text per its comment; world_generation_pipeline.py:229-235).
GENERIC_PROMPT = "high quality, 4k, high definition, smooth video"


class _Compression(Protocol):
    temporal_compression: int
    spatial_compression: int


class DiscreteVideoTokenizer(Protocol):
    """What the pipeline needs of a DV tokenizer: its compression factors (``config``)."""

    config: _Compression


@dataclass(frozen=True)
class DecoderSamplingOptions:
    """Cosmos's ``DiffusionDecoderSamplingConfig`` (autoregressive/configs/inference/inference_config.py)."""

    num_steps: int = 15
    guidance: float = 1.8
    sigma_min: float = 0.02
    sigma_max: float = 80.0
    rho: float = 7.0
    fps: float = 24.0
    window: int = 8
    overlap: int = 2

    def __post_init__(self) -> None:
        check_int("DecoderSamplingOptions", "window", self.window, 1)
        check_int("DecoderSamplingOptions", "overlap", self.overlap, 0)
        if self.overlap >= self.window:
            raise ValueError(
                f"DecoderSamplingOptions: overlap ({self.overlap}) must be below window ({self.window})"
            )


def _reflected(index: Tensor, length: int) -> Tensor:
    """Indices beyond ``length - 1`` reflected back without repeating the edge, as ``F.pad(mode="reflect")``
    does; repeated back and forth where the padding is longer than the input."""
    if length == 1:
        return torch.zeros_like(index)
    period = 2 * (length - 1)
    folded = index % period
    return torch.where(folded < length, folded, period - folded)


def split_with_overlap(video: Tensor, window: int, overlap: int = 2) -> list[Tensor]:
    """(B, C, T, ...) -> windows (B, C, window, ...) starting every ``window - overlap`` frames along dim 2.

    Cosmos's ``split_with_overlap`` (autoregressive/diffusion_decoder/utils.py): windows start at
    ``range(0, T - overlap, window - overlap)`` and the last one is reflect-padded to full length. Two
    extensions where Cosmos fails: a video of at most ``overlap`` frames still gives one window, and
    padding longer than the frames left keeps reflecting. Works on any dtype (token indices too).
    """
    if not isinstance(video, Tensor) or video.dim() < 3:
        raise ValueError("split_with_overlap: video must be a tensor (B, C, T, ...)")
    check_int("split_with_overlap", "window", window, 1)
    check_int("split_with_overlap", "overlap", overlap, 0)
    if overlap >= window:
        raise ValueError(f"split_with_overlap: overlap ({overlap}) must be below window ({window})")
    frames = video.shape[2]
    chunks = []
    for start in range(0, max(frames - overlap, 1), window - overlap):
        available = min(window, frames - start)
        index = start + _reflected(torch.arange(window, device=video.device), available)
        chunks.append(video.index_select(2, index))
    return chunks


def linear_blend_video_list(videos: Sequence[Tensor], overlap: int) -> Tensor:
    """Windows (B, C, t, H, W) -> one video of N t - overlap (N - 1) frames: each pair of neighbours
    cross-fades over ``overlap`` frames with weights ``linspace(0, 1, overlap)``.

    Cosmos's ``linear_blend_video_list`` (autoregressive/diffusion_decoder/utils.py), vectorized; one
    window is returned as it is, and the result is float32 like Cosmos's output buffer.
    """
    if not videos or not all(isinstance(v, Tensor) and v.dim() == 5 for v in videos):
        raise ValueError(
            "linear_blend_video_list: videos must be a non-empty list of (B, C, t, H, W) tensors"
        )
    shape = videos[0].shape
    if any(v.shape != shape for v in videos):
        raise ValueError(
            f"linear_blend_video_list: all videos must have one shape, got {[tuple(v.shape) for v in videos]}"
        )
    check_int("linear_blend_video_list", "overlap", overlap, 0)
    t = shape[2]
    if len(videos) > 1 and 2 * overlap > t:
        raise ValueError(f"linear_blend_video_list: overlap ({overlap}) must be at most half of t ({t})")
    videos = [v.float() for v in videos]
    if len(videos) == 1:
        return videos[0]
    weight = torch.linspace(0, 1, overlap, device=videos[0].device).view(1, 1, -1, 1, 1)
    parts = [videos[0][:, :, : t - overlap]]
    for previous, current in itertools.pairwise(videos):
        parts.append((1 - weight) * previous[:, :, t - overlap :] + weight * current[:, :, :overlap])
        last = current is videos[-1]
        parts.append(current[:, :, overlap : t if last else t - overlap])
    return torch.cat(parts, dim=2)


class DiffusionDecoderPipeline:
    """Discrete tokens -> video through Cosmos's diffusion decoder; see the module docstring.

    ``net`` is a ``build_dit("cosmos-7b-decoder")`` (or "tiny-decoder") network, ``dv_tokenizer`` the
    discrete tokenizer the tokens come from (only its compression factors are used), ``cv_tokenizer``
    the continuous one whose latents the network makes, ``text_encoder`` the text conditioning;
    ``latent_mean`` / ``latent_std`` the CV latents' statistics (``models.normalize_latents``).
    """

    def __init__(
        self,
        net: DiffusionDecoderGeneralDIT,
        dv_tokenizer: DiscreteVideoTokenizer,
        cv_tokenizer: ContinuousTokenizer,
        text_encoder: TextEncoder,
        *,
        latent_mean: Tensor | None = None,
        latent_std: Tensor | None = None,
    ) -> None:
        if not isinstance(net, DiffusionDecoderGeneralDIT):
            raise TypeError(
                f"net must be a DiffusionDecoderGeneralDIT (build_dit('cosmos-7b-decoder')), got "
                f"{type(net).__name__}"
            )
        if not isinstance(cv_tokenizer, ContinuousTokenizer):
            raise TypeError(f"cv_tokenizer must be a ContinuousTokenizer, got {type(cv_tokenizer).__name__}")
        dv = getattr(dv_tokenizer, "config", None)
        if not all(
            isinstance(getattr(dv, k, None), int) for k in ("temporal_compression", "spatial_compression")
        ):
            raise TypeError(
                "dv_tokenizer must be a discrete tokenizer with config.temporal/spatial_compression"
            )
        cv = cv_tokenizer.config
        if cv.latent_channels != net.config.out_channels:
            raise ValueError(
                f"the CV tokenizer's {cv.latent_channels} latent channels must equal the network's "
                f"out_channels {net.config.out_channels}"
            )
        if (
            dv.temporal_compression != cv.temporal_compression
            or dv.spatial_compression % cv.spatial_compression
        ):
            raise ValueError(
                f"the DV tokenizer's compression {dv.temporal_compression}x{dv.spatial_compression} must "
                f"match the CV one's {cv.temporal_compression}x{cv.spatial_compression} in time and be a "
                "multiple of it in space"
            )
        if getattr(text_encoder, "width", None) != net.config.crossattn_emb_channels:
            raise ValueError(
                f"the text encoder's width {getattr(text_encoder, 'width', None)} must equal the network's "
                f"crossattn_emb_channels {net.config.crossattn_emb_channels}"
            )
        self.net, self.dv_tokenizer, self.cv_tokenizer, self.text_encoder = (
            net,
            dv_tokenizer,
            cv_tokenizer,
            text_encoder,
        )
        self.denoiser = EDMDenoiser(net)
        self.latent_mean, self.latent_std = latent_mean, latent_std

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def check_tokens(self, tokens: Tensor) -> None:
        """ValueError/TypeError unless ``tokens`` are (B, T', H', W') integer indices in the vocabulary."""
        if not isinstance(tokens, Tensor):
            raise TypeError(f"tokens must be an integer tensor (B, T', H', W'), got {type(tokens).__name__}")
        if tokens.is_floating_point() or tokens.is_complex() or tokens.dtype == torch.bool:
            raise TypeError(f"tokens must hold integer indices, got {tokens.dtype}")
        if tokens.dim() != 4 or tokens.numel() == 0:
            raise ValueError(
                f"tokens must be (B, T', H', W') with no empty dimension, got {tuple(tokens.shape)}"
            )
        vocab = self.net.config.token_vocab_size
        low, high = int(tokens.min()), int(tokens.max())
        if low < 0 or high >= vocab:
            raise ValueError(f"tokens must be indices in 0..{vocab - 1}, got values in {low}..{high}")
        scale = self.dv_tokenizer.config.spatial_compression // self.cv_tokenizer.config.spatial_compression
        height, width = tokens.shape[2] * scale, tokens.shape[3] * scale
        patch, c = self.net.config.patch_spatial, self.net.config
        if height % patch or width % patch or height > c.max_img_h or width > c.max_img_w:
            raise ValueError(
                f"tokens' grid {tuple(tokens.shape[2:])} gives a {height}x{width} latent grid; the network "
                f"takes multiples of {patch} up to {c.max_img_h}x{c.max_img_w}"
            )

    def num_frames(self, latent_frames: int) -> int:
        """Pixel frames that ``latent_frames`` DV latent frames stand for: 1 + (T' - 1) t."""
        return 1 + (latent_frames - 1) * self.dv_tokenizer.config.temporal_compression

    @torch.no_grad()
    def __call__(
        self,
        tokens: Tensor,
        prompt: str | Sequence[str] = GENERIC_PROMPT,
        *,
        options: DecoderSamplingOptions = DecoderSamplingOptions(),
        seed: int = 1,
        progress: bool = False,
    ) -> Tensor:
        """Video (B, 3, 1 + (T' - 1) t, H, W) in [-1, 1] from tokens (B, T', H', W').

        ``prompt``: one for all or one per video (Cosmos: the generic prompt for the base AR model, the
        user's prompt for Video2World). ``seed`` seeds the noise of every window, drawn in turn.
        Cosmos maps its result to [0, 1] by (1 + video) / 2 afterwards.
        """
        self.check_tokens(tokens)
        if not isinstance(options, DecoderSamplingOptions):
            raise TypeError(f"options must be DecoderSamplingOptions, got {type(options).__name__}")
        batch, frames = tokens.shape[:2]
        prompts = [prompt] * batch if isinstance(prompt, str) else list(prompt)
        if len(prompts) != batch or not all(isinstance(p, str) for p in prompts):
            raise ValueError(f"prompt must be a string or {batch} strings (one per video)")
        emb, _ = self.text_encoder(prompts)
        emb = emb.to(self.device)
        scale = self.dv_tokenizer.config.spatial_compression // self.cv_tokenizer.config.spatial_compression
        height, width = tokens.shape[2] * scale, tokens.shape[3] * scale
        cv = self.cv_tokenizer.config
        padding_mask = torch.zeros(batch, 1, height * cv.spatial_compression, width * cv.spatial_compression)
        generator = as_generator(seed)
        videos = []
        for window in split_with_overlap(tokens.unsqueeze(1), options.window, options.overlap):
            window_tokens = window[:, 0].to(self.device)
            denoise = guided_denoiser(
                self.denoiser,
                emb,
                guidance=options.guidance,
                token_indices=window_tokens,
                uncond_conditions={"token_indices": torch.zeros_like(window_tokens)},
                fps=options.fps,
                padding_mask=padding_mask.to(self.device),
            )
            z = sample(
                denoise,
                (batch, self.net.config.out_channels, options.window, height, width),
                num_steps=options.num_steps,
                sigma_min=options.sigma_min,
                sigma_max=options.sigma_max,
                rho=options.rho,
                generator=generator,
                device=self.device,
                progress=progress,
            )
            latents = denormalize_latents(z, self.latent_mean, self.latent_std)
            dtype = next(self.cv_tokenizer.parameters()).dtype
            videos.append(self.cv_tokenizer.decode(latents.to(dtype)).float().clamp(-1, 1))
        return linear_blend_video_list(videos, options.overlap)[:, :, : self.num_frames(frames)]

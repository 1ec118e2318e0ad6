"""Train a tokenizer to reconstruct synthetic physics clips (``data.physics``), in phases.

Continuous tokenizers decode their latents; discrete ones (DV, DI) decode their FSQ codes, whose
straight-through rounding passes the pixel loss's gradient on to the encoder, as in Cosmos.

The loss is L1 + MSE on pixels. Cosmos trains its tokenizers with L1 plus a perceptual (VGG) loss (and
later an adversarial one); a perceptual loss needs pretrained network weights, which we never download,
and pixel losses are enough for a small tokenizer to learn to reconstruct. Two options make them work
on physics clips, where a few balls cover a few percent of a dark frame:

- ``TokenizerPhase.foreground_weight`` weights the pixels that differ from the scene's background by
  1 + that weight; unweighted, the network learns the background and drops the balls;
- ``latent_tie`` adds an MSE between the first latent channels (a discrete tokenizer's codes) and the
  pooled frames (:func:`pooled_video_target`); without it the latents of a fresh 8x8x8 tokenizer hardly
  depend on its input, the decoder learns the average clip, and the latents stay uninformative
  ("collapse").
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cosmos_kernels.checks import check_int, check_number
from cosmos_kernels.data import physics_clip
from cosmos_kernels.models import ContinuousTokenizer, DiscreteTokenizer

Tensor = torch.Tensor
TokenizerBatches = Callable[[int, int, int], tuple[Tensor, Tensor]]
"""``(step, clips, frames) -> (video (clips, 3, frames, H, W) in [-1, 1], mask (clips, 1, frames, H, W))``:
the batch of one training step and its foreground mask (1 where a pixel is not background)."""


@dataclass(frozen=True)
class TokenizerPhase:
    """``steps`` AdamW steps with a fresh optimizer, warming up to the peak ``lr`` and decaying to a
    fraction of it, on batches of ``clips`` clips of ``frames`` frames, with the foreground pixels'
    loss weighted 1 + ``foreground_weight``. The field order is the shipped model's manifest's."""

    steps: int
    lr: float
    foreground_weight: float = 0.0
    frames: int = 9
    clips: int = 4

    def __post_init__(self) -> None:
        check_int("TokenizerPhase", "steps", self.steps, 1)
        check_number("TokenizerPhase", "lr", self.lr, positive=True)
        check_number("TokenizerPhase", "foreground_weight", self.foreground_weight, minimum=0)
        check_int("TokenizerPhase", "frames", self.frames, 1)
        check_int("TokenizerPhase", "clips", self.clips, 1)


def physics_tokenizer_batch(
    step: int, clips: int, frames: int, size: tuple[int, int] = (32, 32)
) -> tuple[Tensor, Tensor]:
    """The clips ``physics_clip(frames, *size, [step, i])`` for i < ``clips``, and masks of their pixels
    that differ from the scene's background (summed absolute difference over RGB above 0.05)."""
    videos, masks = [], []
    for i in range(clips):
        video, _, scene = physics_clip(frames, *size, [step, i])
        background = torch.from_numpy(scene.background)[:, None]
        videos.append(video)
        masks.append(((video - background).abs().sum(0, keepdim=True) > 0.05).float())
    return torch.stack(videos), torch.stack(masks)


def pooled_video_target(
    video: Tensor, temporal: int = 8, spatial: int = 8, frames_per_latent: int = 4
) -> Tensor:
    """(B, 3f, 1 + k, H / s, W / s) targets for the first 3f latent channels of a t x s x s tokenizer
    (t = ``temporal``, s = ``spatial``, f = ``frames_per_latent``) from (B, 3, 1 + t*k, H, W) clips:
    frame 0 averaged over s x s pixels (f copies) for latent frame 0, frames t*j + (t/f)*i for
    i = 1 .. f averaged for latent frame j + 1. The defaults give an 8x8x8 tokenizer's 12 channels
    from frames 8j + 2, 4, 6, 8."""
    for name, value in (
        ("temporal", temporal),
        ("spatial", spatial),
        ("frames_per_latent", frames_per_latent),
    ):
        check_int("pooled_video_target", name, value, 1)
    if temporal % frames_per_latent:
        raise ValueError(
            f"pooled_video_target: frames_per_latent = {frames_per_latent} must divide temporal = {temporal}"
        )
    if (
        video.dim() != 5
        or video.shape[1] != 3
        or (video.shape[2] - 1) % temporal
        or video.shape[-2] % spatial
        or video.shape[-1] % spatial
    ):
        raise ValueError(
            f"pooled_video_target: video must be (B, 3, 1 + {temporal}k, {spatial}m, {spatial}n), "
            f"got {tuple(video.shape)}"
        )
    pooled = F.avg_pool3d(video, (1, spatial, spatial))
    stride = temporal // frames_per_latent
    first = [pooled[:, :, [0]].repeat(1, frames_per_latent, 1, 1, 1)]
    later = [
        torch.cat([pooled[:, :, [temporal * j + stride * i]] for i in range(1, frames_per_latent + 1)], dim=1)
        for j in range((video.shape[2] - 1) // temporal)
    ]
    return torch.cat(first + later, dim=2)


def _latents_and_reconstruction(
    tokenizer: ContinuousTokenizer | DiscreteTokenizer, video: Tensor
) -> tuple[Tensor, Tensor]:
    """The latents (a discrete tokenizer's straight-through codes) and the decoded video."""
    if isinstance(tokenizer, DiscreteTokenizer):
        _, codes = tokenizer.encode(video, return_codes=True)
        return codes, tokenizer.decode_codes(codes)
    latents = tokenizer.encode(video)
    return latents, tokenizer.decode(latents)


def _latent_target(tokenizer: nn.Module, video: Tensor, channels: int) -> Tensor:
    """:func:`pooled_video_target` for the tokenizer's compression, over as many whole frames as its
    ``channels`` latent channels hold (at most 4 per latent frame)."""
    config = tokenizer.config
    frames = min(4, channels // 3)
    while frames > 1 and config.temporal_compression % frames:
        frames -= 1
    if not config.is_video or frames < 1:
        raise ValueError(
            "train_tokenizer: latent_tie needs a video tokenizer with at least 3 latent channels, got "
            f"{'an image tokenizer' if not config.is_video else f'{channels} channels'}"
        )
    return pooled_video_target(video, config.temporal_compression, config.spatial_compression, frames)


def train_tokenizer(
    tokenizer: ContinuousTokenizer | DiscreteTokenizer,
    phases: Sequence[TokenizerPhase],
    *,
    batches: TokenizerBatches = physics_tokenizer_batch,
    latent_tie: float = 0.0,
    warmup_steps: int = 50,
    min_lr_ratio: float = 0.1,
    grad_clip: float | None = 1.0,
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train ``tokenizer`` in place through ``phases``; returns the loss of each step.

    Step k of the whole run (counting across phases) trains on ``batches(k, phase.clips, phase.frames)``
    (default: fresh 32x32 physics clips every step). Each phase has its own AdamW (no weight decay) and
    schedule: linear warmup over ``warmup_steps``, then a cosine from the peak lr to ``min_lr_ratio`` of
    it. A discrete tokenizer trains through its straight-through FSQ codes. ``latent_tie`` weights the
    MSE of the first latent channels (codes) against :func:`pooled_video_target` at the tokenizer's
    compression; ``grad_clip`` caps the gradient norm (None: no clipping);
    ``on_step(k, loss)`` is called after each step.
    """
    if not isinstance(tokenizer, nn.Module):
        raise TypeError(f"train_tokenizer: tokenizer must be an nn.Module, got {type(tokenizer).__name__}")
    if not phases or not all(isinstance(p, TokenizerPhase) for p in phases):
        raise TypeError(
            f"train_tokenizer: phases must be a non-empty sequence of TokenizerPhase, got {phases!r}"
        )
    check_number("train_tokenizer", "latent_tie", latent_tie, minimum=0)
    check_int("train_tokenizer", "warmup_steps", warmup_steps, 0)
    check_number("train_tokenizer", "min_lr_ratio", min_lr_ratio, minimum=0, maximum=1)
    if grad_clip is not None:
        check_number("train_tokenizer", "grad_clip", grad_clip, positive=True)
    param = next(tokenizer.parameters())
    tokenizer.train()
    history: list[float] = []
    for phase in phases:
        optimizer = torch.optim.AdamW(tokenizer.parameters(), lr=phase.lr, weight_decay=0.0)

        def lr_factor(s: int, steps: int = phase.steps) -> float:
            warmup = min(1.0, (s + 1) / warmup_steps) if warmup_steps else 1.0
            return warmup * (min_lr_ratio + (1 - min_lr_ratio) / 2 * (1 + math.cos(math.pi * s / steps)))

        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
        for _ in range(phase.steps):
            video, mask = batches(len(history), phase.clips, phase.frames)
            video, mask = video.to(param), mask.to(param)
            latents, out = _latents_and_reconstruction(tokenizer, video)
            weight = 1 + phase.foreground_weight * mask
            loss = ((out - video).abs() * weight).mean() + ((out - video) ** 2 * weight).mean()
            if latent_tie:
                target = _latent_target(tokenizer, video, latents.shape[1])
                loss = loss + latent_tie * F.mse_loss(latents[:, : target.shape[1]], target)
            optimizer.zero_grad()
            loss.backward()
            if grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(tokenizer.parameters(), grad_clip)
            optimizer.step()
            schedule.step()
            history.append(loss.item())
            if on_step is not None:
                on_step(len(history) - 1, history[-1])
    tokenizer.eval()
    return history

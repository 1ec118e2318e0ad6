"""Video2World conditioning: the first latent frames are given, noise-augmented, and held fixed.

Cosmos-1.0's Video2World models take an extra input channel, ``condition_video_input_mask`` (B, 1, T, H, W),
1 on the given latent frames. In those frames the network input is not the sampler's state but the clean
latent plus a little noise, x_aug = gt + augment_sigma * eps, scaled as the network would see it at
augment_sigma: c_in(augment_sigma) x_aug. The state is rewritten so that after the c_in(sigma) scaling of
the current step it equals exactly that (cosmos_predict1/diffusion/model/model_v2w.py
``_augment_noise_with_latent``), and the x0 estimate on those frames is replaced by gt, so the frames stay
fixed. While sampling, augment_sigma = 0.001 and eps is drawn once for the whole run; once sigma falls
to augment_sigma or below, the frames are denoised like the rest. Training draws the number of frames
per batch (0 to 2 in Cosmos's Video2World experiment), a log-normal augment_sigma (ln ~ N(-3, 2)) per
sample, drops the condition of one batch in five for classifier-free guidance, and leaves the condition
frames out of the loss by the same replacement (cosmos_predict1/diffusion/training/models/extend_model.py).

One departure: model_v2w.py at the snapshot in docs/COSMOS.md writes the replaced network output as
``gt / c_out - c_skip x``, which does not give x0 = gt; later copies of the file write
``(gt - c_skip x) / c_out``, which does and is what this module does (in x0 space).
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch

from cosmos_kernels.checks import check_int, check_number
from cosmos_kernels.diffusion.edm import SIGMA_DATA, batch_sigma, per_sample
from cosmos_kernels.diffusion.guidance import GUIDANCE, guided_denoiser
from cosmos_kernels.diffusion.samplers import (
    NUM_STEPS,
    RHO,
    SIGMA_MAX,
    SIGMA_MIN,
    as_generator,
    initial_noise,
    sample,
)

Tensor = torch.Tensor
AUGMENT_SIGMA = 0.001


@dataclass(frozen=True)
class VideoCondition:
    """The first ``num_condition_frames`` latent frames of ``latent`` (B, C, T, H, W) as a fixed condition.

    ``augment_sigma`` (B,) and ``noise`` (B, C, T, H, W) make the noise-augmented input; with
    ``skip_below_augment`` (sampling) a sample whose sigma is <= its augment_sigma is left alone. A
    ``dropped`` condition (training's unconditional batches, for classifier-free guidance) shows the
    network zeros and a zero mask on those frames, which still stay out of the loss.
    """

    latent: Tensor
    num_condition_frames: int
    augment_sigma: Tensor
    noise: Tensor
    skip_below_augment: bool = True
    dropped: bool = False
    sigma_data: float = SIGMA_DATA
    # Multi-view latents hold ``views`` videos concatenated in time (B, C, V*T, H, W); the first
    # num_condition_frames of each view are the condition (cosmos_predict1 model_v2w_multiview.py).
    views: int = 1

    def condition_frames(self) -> Tensor:
        """(T,) booleans, True on the condition frames (the first ones of each view)."""
        frames = self.latent.shape[2]
        index = torch.arange(frames, device=self.latent.device) % (frames // self.views)
        return index < self.num_condition_frames

    def input_mask(self) -> Tensor:
        """``condition_video_input_mask`` for the network: (B, 1, T, H, W), 1 on the condition frames."""
        b, _, t, h, w = self.latent.shape
        mask = torch.zeros(b, 1, t, h, w, dtype=self.latent.dtype, device=self.latent.device)
        if not self.dropped:
            mask[:, :, self.condition_frames()] = 1
        return mask

    def _active(self, x: Tensor, sigma: Tensor | float) -> tuple[Tensor, Tensor]:
        """(B, 1, T, 1, 1) booleans where the condition applies at ``sigma``, and sigma as (B,)."""
        if x.shape != self.latent.shape:
            raise ValueError(f"x has shape {tuple(x.shape)}, the condition {tuple(self.latent.shape)}")
        sigma = batch_sigma(sigma, x.shape[0], x.device)
        frames = self.condition_frames().to(x.device)
        active = frames.view(1, 1, -1, 1, 1).expand(x.shape[0], 1, -1, 1, 1)
        if self.skip_below_augment:
            active = active & per_sample(sigma > self.augment_sigma.to(sigma), active)
        return active, sigma

    def impose(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        """The state ``x`` at ``sigma`` with its condition frames set to c_in(aug) / c_in(sigma) * x_aug."""
        active, sigma = self._active(x, sigma)
        if self.dropped:
            return torch.where(active, torch.zeros_like(x), x)
        aug = self.augment_sigma.to(sigma)
        # c_in(aug) / c_in(sigma) = sqrt(sigma^2 + sd^2) / sqrt(aug^2 + sd^2)
        scale = ((sigma**2 + self.sigma_data**2) / (aug**2 + self.sigma_data**2)).sqrt()
        augmented = (self.latent + per_sample(aug, x) * self.noise).to(scale) * per_sample(scale, x)
        return torch.where(active, augmented.to(x.dtype), x)

    def replace_x0(self, x0: Tensor, sigma: Tensor | float) -> Tensor:
        """The x0 estimate with its condition frames replaced by the given latent."""
        active, _ = self._active(x0, sigma)
        return torch.where(active, self.latent.to(x0.dtype), x0)


def _check_latent(latent: object, name: str) -> Tensor:
    if not isinstance(latent, Tensor) or not latent.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor (B, C, T, H, W)")
    if latent.dim() != 5:
        raise ValueError(f"{name} must be (B, C, T, H, W), got shape {tuple(latent.shape)}")
    return latent


def num_condition_latent_frames(num_input_frames: int, temporal_compression: int = 8) -> int:
    """Latent frames that ``num_input_frames`` video frames encode to: 1 + (n - 1) / 8 for CV8x8x8.

    The causal tokenizer encodes the first frame alone, then 8 frames per latent frame: Cosmos's
    Video2World takes 1 or 9 input frames, i.e. 1 or 2 condition latent frames.
    """
    op = "num_condition_latent_frames"
    check_int(op, "num_input_frames", num_input_frames, 1)
    check_int(op, "temporal_compression", temporal_compression, 1)
    if (num_input_frames - 1) % temporal_compression:
        raise ValueError(
            f"num_input_frames must be 1 + {temporal_compression} k for a causal tokenizer, "
            f"got {num_input_frames}"
        )
    return 1 + (num_input_frames - 1) // temporal_compression


def video2world_condition(
    condition_latent: Tensor,
    num_frames: int,
    *,
    num_condition_frames: int | None = None,
    augment_sigma: float = AUGMENT_SIGMA,
    generator: torch.Generator | int | None = None,
    sigma_data: float = SIGMA_DATA,
    views: int = 1,
) -> VideoCondition:
    """The sampling condition from the latents of the given frames, ``condition_latent`` (B, C, n', H, W).

    Its first ``num_condition_frames`` frames (default: all n') condition a video of ``num_frames`` latent
    frames; the rest of the condition latent is zero, as Cosmos pads it. The augmentation noise is drawn
    once here from ``generator`` (a seed draws on the CPU). Multi-view: ``condition_latent`` holds
    ``views`` views concatenated in time (B, C, V*n', H, W), ``num_frames`` counts one view's frames,
    and each view is padded to num_frames.
    """
    latent = _check_latent(condition_latent, "condition_latent")
    op = "video2world_condition"
    check_int(op, "num_frames", num_frames, 2)
    check_int(op, "views", views, 1)
    if latent.shape[2] % views:
        raise ValueError(
            f"condition_latent's {latent.shape[2]} frames must be a multiple of views = {views} "
            "(the views concatenated in time)"
        )
    latent = latent.unflatten(2, (views, -1)).transpose(1, 2).flatten(0, 1)  # (B*V, C, n', H, W)
    n = latent.shape[2] if num_condition_frames is None else num_condition_frames
    check_int(op, "num_condition_frames", n, 1)
    if n > latent.shape[2]:
        raise ValueError(f"num_condition_frames={n} but condition_latent holds {latent.shape[2]} frames")
    if n >= num_frames:
        raise ValueError(
            f"the condition frames ({n}) must be fewer than the frames to generate (num_frames={num_frames})"
        )
    check_number(op, "augment_sigma", augment_sigma, minimum=0)
    b, c, _, h, w = latent.shape
    padded = latent.new_zeros(b, c, num_frames, h, w, dtype=torch.float32)
    padded[:, :, :n] = latent[:, :, :n]
    padded = padded.unflatten(0, (-1, views)).transpose(1, 2).flatten(2, 3)  # (B, C, V*num_frames, H, W)
    return VideoCondition(
        latent=padded,
        num_condition_frames=n,
        augment_sigma=torch.full((padded.shape[0],), float(augment_sigma), device=latent.device),
        noise=initial_noise(padded.shape, generator, device=latent.device),
        skip_below_augment=True,
        sigma_data=sigma_data,
        views=views,
    )


def video2world_training_condition(
    x0: Tensor,
    *,
    max_condition_frames: int = 2,
    min_condition_frames: int = 0,
    augment_p_mean: float = -3.0,
    augment_p_std: float = 2.0,
    augment_multiplier: float = 1.0,
    condition_dropout: float = 0.2,
    generator: torch.Generator | int | None = None,
    sigma_data: float = SIGMA_DATA,
) -> VideoCondition:
    """A training condition on the clean latents ``x0`` (B, C, T, H, W): the first n frames, n uniform in
    [min_condition_frames, max_condition_frames] for the batch, each sample augmented at
    sigma_aug = augment_multiplier * exp(N(augment_p_mean, augment_p_std^2)), and the whole batch's
    condition dropped with probability ``condition_dropout`` (Cosmos's video_cond_bool dropout with
    cfg_unconditional_type "zero_condition_region_condition_mask"). Defaults are Cosmos's Video2World
    training config. Pass it to ``edm_training_loss(..., video_condition=...)``.
    """
    x0 = _check_latent(x0, "x0")
    op = "video2world_training_condition"
    check_int(op, "min_condition_frames", min_condition_frames, 0)
    check_int(op, "max_condition_frames", max_condition_frames, min_condition_frames)
    if max_condition_frames >= x0.shape[2]:
        raise ValueError(
            f"max_condition_frames ({max_condition_frames}) must be below the latent frames ({x0.shape[2]})"
        )
    if not 0 <= condition_dropout <= 1:
        raise ValueError(f"condition_dropout must be a probability, got {condition_dropout!r}")
    generator = as_generator(generator)
    device = None if generator is None else generator.device
    high = max_condition_frames + 1
    n = int(torch.randint(min_condition_frames, high, (1,), generator=generator, device=device))
    dropped = bool(torch.rand((), generator=generator, device=device) < condition_dropout)
    log_sigma = initial_noise((x0.shape[0],), generator, device=x0.device) * augment_p_std + augment_p_mean
    return VideoCondition(
        latent=x0,
        num_condition_frames=n,
        augment_sigma=log_sigma.exp() * augment_multiplier,
        noise=initial_noise(x0.shape, generator, device=x0.device),
        skip_below_augment=False,
        dropped=dropped,
        sigma_data=sigma_data,
    )


def sample_video2world(
    denoiser: Callable[..., Tensor],
    condition: VideoCondition,
    crossattn_emb: Tensor,
    *,
    guidance: float = GUIDANCE,
    negative_crossattn_emb: Tensor | None = None,
    sampler: str = "euler",
    num_steps: int = NUM_STEPS,
    sigma_min: float = SIGMA_MIN,
    sigma_max: float = SIGMA_MAX,
    rho: float = RHO,
    generator: torch.Generator | int | None = None,
    progress: bool = False,
    **conditions: object,
) -> Tensor:
    """Video2World latents (B, C, T, H, W), float32, continuing the condition frames of ``condition``.

    Each step puts the condition frames back into the state (``condition.impose``), runs the guided
    ``denoiser`` with ``condition_video_input_mask`` set in both branches (as Cosmos does), replaces the x0
    estimate on the condition frames and takes the sampler's step. ``generator`` draws the initial noise;
    ``conditions`` (fps, padding_mask, ...) go to the network.
    """
    if not isinstance(condition, VideoCondition):
        raise TypeError(f"condition must be a VideoCondition, got {type(condition).__name__}")
    if "condition_video_input_mask" in conditions:
        raise ValueError("condition_video_input_mask comes from the condition; do not pass it")
    denoise = guided_denoiser(
        denoiser,
        crossattn_emb,
        guidance=guidance,
        negative_crossattn_emb=negative_crossattn_emb,
        condition_video_input_mask=condition.input_mask(),
        **conditions,
    )

    def denoise_with_condition(x: Tensor, sigma: float) -> Tensor:
        return condition.replace_x0(denoise(x, sigma), sigma)

    return sample(
        denoise_with_condition,
        condition.latent.shape,
        sampler=sampler,
        num_steps=num_steps,
        sigma_min=sigma_min,
        sigma_max=sigma_max,
        rho=rho,
        generator=generator,
        device=condition.latent.device,
        impose=condition.impose,
        progress=progress,
    )
